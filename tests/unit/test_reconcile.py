"""When a session reads results back from the table, and how many (no AWS: the policy alone)."""

from __future__ import annotations

from htcgrid.reconcile import MAX_PAGES, PAGE, STREAMING_WAIT_S, Reconciliation

BASE, CAP = STREAMING_WAIT_S


def test_quiet_turns_read_nothing_the_counters_do_not_ask_for_and_back_off_to_a_cap() -> None:
    # GIVEN a session whose counters show no task finished
    plan = Reconciliation.start(0.0, streaming=True)
    assert not plan.is_due(BASE - 0.1)
    assert plan.is_due(BASE)
    now, waits, pages = BASE, [], []
    for _ in range(8):
        pages.append(plan.pages(finished=0, yielded=0))
        plan.turned(now, found=0)
        waits.append(plan.wait_s)
        now = plan.due_at
    # THEN each quiet turn waits twice as long, up to the cap, and reads no task until the
    # wait reached its cap; from then on one page per turn (counters can trail)
    assert waits == [30, 60, 120, 240, CAP, CAP, CAP, CAP]
    assert pages == [0, 0, 0, 0, 0, 1, 1, 1]


def test_a_turn_reads_as_many_pages_as_the_counters_say_are_missing_within_a_bound() -> None:
    plan = Reconciliation.start(0.0, streaming=True)
    # GIVEN 250 finished tasks, 40 of them already yielded from notices
    assert plan.pages(finished=250, yielded=40) == 3
    plan.turned(BASE, found=210)
    # AND later, 20,000 more finished of which notices brought none
    assert plan.pages(finished=20_250, yielded=250) == MAX_PAGES


def test_results_brought_by_notices_are_not_read_again() -> None:
    plan = Reconciliation.start(0.0, streaming=True)
    plan.pages(finished=100, yielded=100)
    plan.turned(BASE, found=0)
    # GIVEN 500 more finished, and notices brought all 500
    plan.notified(BASE + 1, 500)
    # THEN the next turn reads nothing (the wait is back at its base)
    assert plan.wait_s == BASE
    assert plan.pages(finished=600, yielded=600) == 0


def test_a_fruitful_turn_goes_on_at_once_and_a_partly_fruitful_one_after_the_base_wait() -> None:
    plan = Reconciliation.start(0.0, streaming=True)
    plan.pages(finished=5000, yielded=0)
    plan.turned(20.0, found=PAGE * MAX_PAGES)
    assert plan.due_at == 20.0
    plan.pages(finished=5000, yielded=PAGE * MAX_PAGES)
    plan.turned(21.0, found=10)
    assert plan.due_at == 21.0 + BASE


def test_missing_results_not_found_are_looked_for_again_less_each_time() -> None:
    # GIVEN counters showing 1,000 finished tasks no turn finds (another client's tasks)
    plan = Reconciliation.start(0.0, streaming=True)
    pages = []
    for turn in range(6):
        pages.append(plan.pages(finished=1000, yielded=0))
        plan.turned(float(turn), found=0)
    assert pages == [10, 5, 3, 2, 1, 1]


def test_a_forced_turn_reads_at_least_a_page_and_a_lost_stream_turns_to_polling() -> None:
    plan = Reconciliation.start(0.0, streaming=True)
    assert plan.pages(finished=0, yielded=0, forced=True) == 1
    plan.stream_lost(3.0)
    assert plan.is_due(3.0)
    plan.pages(finished=0, yielded=0)
    plan.turned(3.0, found=0)
    assert plan.wait_s == 2.0  # polling's base of 1 s, doubled
