"""The retry decision (``retries.decide``), without AWS: what each failed attempt becomes, what
is sent where, and what is counted."""

from __future__ import annotations

import time

from htcgrid_core.counters import SessionCounters
from htcgrid_core.lifecycle import MAX_RETRY_DELAY_S
from htcgrid_core.models import (
    AttemptFailure,
    FailureCause,
    InlineData,
    RetryRequest,
    TaskError,
    TaskState,
)
from htcgrid_core.retries import RESULTS_PER_NOTICE, decide
from htcgrid_core.table import Completion
from tests.fakes import FakeGrid
from tests.integration.builders import persist


def failure(
    session_id: str,
    task_id: str,
    attempt: int = 1,
    *,
    retryable: bool = True,
    kind: str = "Boom",
    lease_token: str | None = None,
    cause: FailureCause = FailureCause.HANDLER,
) -> AttemptFailure:
    return AttemptFailure(
        session_id=session_id,
        task_id=task_id,
        attempt=attempt,
        max_attempts=3,
        lease_token=lease_token,
        cause=cause,
        error=TaskError(
            type=kind, message=f"attempt {attempt}", attempt=attempt, at=1.0, retryable=retryable
        ),
    )


def failed_count(grid: FakeGrid, session_id: str) -> int:
    counts = SessionCounters.from_resources(grid).read([session_id])[session_id]
    return counts.finished[TaskState.FAILED]


def test_a_retryable_failure_within_budget_gets_its_next_attempt_after_a_backoff(
    grid: FakeGrid, session_id: str
) -> None:
    (task_id,) = persist(grid, session_id, ["x"], max_attempts=3, priority=2).task_ids
    report = decide(RetryRequest(failures=[failure(session_id, task_id)]), grid, time.time())
    assert (report.retried, report.failed, report.stale) == ([task_id], [], [])
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert (record.state, record.attempt) == (TaskState.PENDING, 2)
    # the next attempt's message, on its priority's queue, delayed within the backoff bound
    ((message, delay),) = grid.queues.messages(grid.queues.task_queue_url(2))
    assert (message.task_id, message.attempt, message.payload) == (
        task_id,
        2,
        InlineData(inline="x"),
    )
    assert 0 <= delay <= 2
    assert failed_count(grid, session_id) == 0


def test_the_last_attempt_fails_the_task_counts_it_and_announces_it(
    grid: FakeGrid, session_id: str
) -> None:
    url = grid.queues.open_result_queue(session_id)
    (task_id,) = persist(grid, session_id, ["x"], max_attempts=1, result_queue_url=url).task_ids
    report = decide(RetryRequest(failures=[failure(session_id, task_id)]), grid, time.time())
    assert report.failed == [task_id]
    assert grid.table.get_records(session_id, [task_id])[task_id].state is TaskState.FAILED
    assert grid.queues.messages(grid.queues.task_queue_url(1)) == []
    ((result,),) = [notice.results for notice in grid.queues.notices[url]]
    assert (result.task_id, result.state, result.error) == (
        task_id,
        TaskState.FAILED,
        failure(session_id, task_id).error,
    )
    assert failed_count(grid, session_id) == 1


def test_a_non_retryable_error_fails_the_task_with_budget_left(
    grid: FakeGrid, session_id: str
) -> None:
    (task_id,) = persist(grid, session_id, ["x"], max_attempts=5).task_ids
    decide(
        RetryRequest(failures=[failure(session_id, task_id, retryable=False)]), grid, time.time()
    )
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert (record.state, record.attempt) == (TaskState.FAILED, 1)


def test_dead_workers_spend_the_worker_loss_budget_not_the_attempts(
    grid: FakeGrid, session_id: str
) -> None:
    # GIVEN a task allowed one attempt, whose workers die (grid: max_receive_count 5)
    (task_id,) = persist(grid, session_id, ["x"], max_attempts=1, timeout_s=600).task_ids
    for attempt in range(1, 5):
        now = time.time()
        grid.table.claim(session_id, task_id, attempt, f"lease-{attempt}", now - 1, now - 60)
        lost = failure(
            session_id,
            task_id,
            attempt,
            kind="LeaseExpired",
            lease_token=f"lease-{attempt}",
            cause=FailureCause.LEASE_EXPIRED,
        )
        assert decide(RetryRequest(failures=[lost]), grid, now).retried == [task_id]
    # THEN four lost workers left it PENDING; the fifth spends the budget
    now = time.time()
    grid.table.claim(session_id, task_id, 5, "lease-5", now - 1, now - 60)
    last = failure(
        session_id,
        task_id,
        5,
        kind="LeaseExpired",
        lease_token="lease-5",
        cause=FailureCause.LEASE_EXPIRED,
    )
    assert decide(RetryRequest(failures=[last]), grid, now).failed == [task_id]


def test_a_failure_of_a_task_that_moved_on_or_is_gone_changes_nothing(
    grid: FakeGrid, session_id: str
) -> None:
    (done,) = persist(grid, session_id, ["done"]).task_ids
    grid.table.record_success(Completion(session_id, done, 1, None), InlineData(inline=1), 1.0)
    request = RetryRequest(failures=[failure(session_id, done), failure(session_id, "deleted")])
    report = decide(request, grid, time.time())
    assert (report.retried, report.failed, report.stale) == ([], [], [done, "deleted"])
    assert grid.table.get_records(session_id, [done])[done].state is TaskState.SUCCEEDED
    assert grid.queues.messages(grid.queues.task_queue_url(1)) == []


def test_a_retried_request_resends_what_its_first_try_sent_and_counts_once(
    grid: FakeGrid, session_id: str
) -> None:
    retried, failed = persist(grid, session_id, ["a", "b"], max_attempts=1).task_ids
    grid.table.put_new_tasks(
        [
            grid.table.get_records(session_id, [retried])[retried].model_copy(
                update={"max_attempts": 3}
            )
        ]
    )
    request = RetryRequest(failures=[failure(session_id, retried), failure(session_id, failed)])
    first = decide(request, grid, time.time())
    again = decide(request, grid, time.time())  # the workflow retried the function
    assert (first.retried, first.failed) == (again.retried, again.failed) == ([retried], [failed])
    assert len(grid.queues.messages(grid.queues.task_queue_url(1))) == 2  # sent again: harmless
    record = grid.table.get_records(session_id, [retried])[retried]
    assert (record.attempt, len(record.errors)) == (2, 1)
    assert failed_count(grid, session_id) == 1  # counted by the write that failed it only


def test_a_closed_sessions_result_queue_is_no_error(grid: FakeGrid, session_id: str) -> None:
    # GIVEN a task naming its session's result queue, closed since
    url = grid.queues.open_result_queue(session_id)
    (task_id,) = persist(grid, session_id, ["x"], max_attempts=1, result_queue_url=url).task_ids
    del grid.queues.notices[url]
    # THEN failing it for good records the outcome and raises nothing
    assert decide(RetryRequest(failures=[failure(session_id, task_id)]), grid, 1.0).failed == [
        task_id
    ]


def test_failed_tasks_are_announced_in_notices_of_bounded_size(
    grid: FakeGrid, session_id: str
) -> None:
    url = grid.queues.open_result_queue(session_id)
    count = RESULTS_PER_NOTICE + 1
    task_ids = persist(
        grid, session_id, list(range(count)), max_attempts=1, result_queue_url=url
    ).task_ids
    decide(RetryRequest(failures=[failure(session_id, t) for t in task_ids]), grid, 1.0)
    sizes = [len(notice.results) for notice in grid.queues.notices[url]]
    assert sizes == [RESULTS_PER_NOTICE, 1]


def test_retry_delays_stay_within_the_cap(grid: FakeGrid, session_id: str) -> None:
    (task_id,) = persist(grid, session_id, ["x"], max_attempts=100).task_ids
    for attempt in range(1, 30):
        decide(RetryRequest(failures=[failure(session_id, task_id, attempt)]), grid, 1.0)
    delays = [delay for _, delay in grid.queues.messages(grid.queues.task_queue_url(1))]
    assert len(delays) == 29
    assert all(0 <= delay <= MAX_RETRY_DELAY_S for delay in delays)
