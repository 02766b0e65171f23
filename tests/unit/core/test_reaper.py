"""The reaper's sweeps, without AWS: which expired leases, dead letters and stranded
submissions each run selects, and that runs are bounded and drain everything."""

from __future__ import annotations

import time

from htcgrid_core import keys
from htcgrid_core.cancellation import cancel
from htcgrid_core.models import (
    MAX_FAILURES_PER_REQUEST,
    CancelRequest,
    FailureCause,
    InlineData,
    RetryRequest,
    TaskState,
)
from htcgrid_core.ports import GridPorts
from htcgrid_core.reaper import (
    find_expired_leases,
    redispatch_stranded_submissions,
    sweep_dead_letters,
)
from htcgrid_core.retries import decide
from htcgrid_core.sessions import DISPATCH_DEADLINE_S
from htcgrid_core.submissions import dispatch_submission, persist_submission
from htcgrid_core.table import Completion
from tests.fakes import FakeGrid
from tests.integration.builders import persist, submission


def test_one_reaper_run_is_bounded_and_runs_drain_every_expired_lease(
    grid: GridPorts, session_id: str
) -> None:
    task_ids = persist(grid, session_id, list(range(40)), timeout_s=600).task_ids
    now = time.time()
    for task_id in task_ids:
        grid.table.claim(session_id, task_id, 1, f"lease-{task_id}", now - 1, now - 61)
    reaped: list[str] = []
    for _ in range(10):
        report = find_expired_leases(grid, time.time(), limit=keys.LEASE_SHARDS)
        mine = [f for b in report.batches for f in b.failures if f.session_id == session_id]
        assert report.found <= keys.LEASE_SHARDS
        if not mine:
            break
        decide(RetryRequest(failures=mine), grid, time.time())
        reaped.extend(f.task_id for f in mine)
    assert sorted(reaped) == sorted(task_ids)  # every one, each once
    records = grid.table.get_records(session_id, task_ids)
    assert {(r.state, r.attempt) for r in records.values()} == {(TaskState.PENDING, 2)}


def test_a_retried_retry_request_resends_what_its_first_try_may_have_lost(
    grid: GridPorts, session_id: str
) -> None:
    (task_id,) = persist(grid, session_id, ["x"], timeout_s=600).task_ids
    now = time.time()
    grid.table.claim(session_id, task_id, 1, "lease", now - 1, now - 61)
    (failure,) = [
        f
        for b in find_expired_leases(grid, now, 1000).batches
        for f in b.failures
        if f.task_id == task_id
    ]
    request = RetryRequest(failures=[failure])
    first = decide(request, grid, now)
    again = decide(request, grid, now)  # the workflow retried the function after its write
    assert first.retried == again.retried == [task_id]
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert (record.state, record.attempt, len(record.errors)) == (TaskState.PENDING, 2, 1)


def test_only_expired_leases_are_reaped_in_retry_sized_batches(
    grid: FakeGrid, session_id: str
) -> None:
    count = MAX_FAILURES_PER_REQUEST + 10
    task_ids = persist(grid, session_id, list(range(count + 1)), timeout_s=600).task_ids
    now = time.time()
    for task_id in task_ids[:count]:
        grid.table.claim(session_id, task_id, 1, "dead", now - 1, now - 61)
    grid.table.claim(session_id, task_ids[count], 1, "alive", now + 60, now)
    report = find_expired_leases(grid, now, limit=10_000)
    assert [len(b.failures) for b in report.batches] == [MAX_FAILURES_PER_REQUEST, 10]
    assert report.found == count
    assert not report.more
    failures = [f for b in report.batches for f in b.failures]
    assert {f.task_id for f in failures} == set(task_ids[:count])
    assert {(f.cause, f.lease_token, f.error.type) for f in failures} == {
        (FailureCause.LEASE_EXPIRED, "dead", "LeaseExpired")
    }


def test_a_burst_of_expiries_in_one_shard_cannot_starve_the_others(
    grid: FakeGrid, session_id: str
) -> None:
    # GIVEN many expired leases in one lease shard and one in another
    task_ids = persist(grid, session_id, list(range(200)), timeout_s=600).task_ids
    by_shard: dict[str, list[str]] = {}
    for task_id in task_ids:
        by_shard.setdefault(keys.lease_shard(task_id), []).append(task_id)
    crowded, *others = sorted(by_shard.values(), key=len, reverse=True)
    lonely = others[-1][0]
    now = time.time()
    for task_id in [*crowded, lonely]:
        grid.table.claim(session_id, task_id, 1, "dead", now - 1, now - 61)
    # WHEN a run may take one per shard
    report = find_expired_leases(grid, now, limit=keys.LEASE_SHARDS)
    found = {f.task_id for b in report.batches for f in b.failures}
    # THEN the lonely shard's lease is among them, and the run says more are left
    assert lonely in found
    assert len(found & set(crowded)) == 1
    assert report.more


def dead_letter(grid: FakeGrid, session_id: str, payloads: list[object]) -> list[str]:
    """Tasks whose messages SQS moved to the DLQ of priority 1."""
    batch = persist(grid, session_id, payloads)
    for message in batch.messages:
        grid.queues.send(grid.queues.dead_letter_queue_url(1), message.model_dump_json())
    return batch.task_ids


def test_the_dead_letter_sweep_fails_only_unfinished_tasks_at_the_messages_attempt(
    grid: FakeGrid, session_id: str
) -> None:
    # GIVEN dead letters of a PENDING task, a finished one, one retried since, and a non-task
    pending, finished, retried = dead_letter(grid, session_id, ["p", "f", "r"])
    grid.table.record_success(Completion(session_id, finished, 1, None), InlineData(inline=1), 1.0)
    grid.table.claim(session_id, retried, 1, "l", time.time() + 60, time.time())
    grid.table.release(Completion(session_id, retried, 1, "l"))
    retried_record = grid.table.get_records(session_id, [retried])[retried]
    grid.table.put_new_tasks([retried_record.model_copy(update={"attempt": 2})])
    dlq = grid.queues.dead_letter_queue_url(1)
    grid.queues.send(dlq, "not a task")
    # WHEN the sweep runs
    report = sweep_dead_letters(grid, time.time(), limit=100)
    # THEN only the PENDING task's attempt is reported, failed for good with the reason
    (failure,) = [f for b in report.batches for f in b.failures]
    assert (failure.task_id, failure.attempt, failure.cause) == (
        pending,
        1,
        FailureCause.DEAD_LETTERED,
    )
    assert failure.error.type == "DeadLettered"
    assert not failure.error.retryable
    assert "5 times" in failure.error.message  # the grid's max_receive_count
    # AND every message is left in the DLQ, visible, for operators
    assert grid.queues.depth(dlq) == (4, 0)


def test_the_dead_letter_sweep_is_bounded_per_level(grid: FakeGrid, session_id: str) -> None:
    dead_letter(grid, session_id, list(range(12)))
    report = sweep_dead_letters(grid, time.time(), limit=grid.queues.priority_levels * 5)
    assert report.found == 5
    assert report.more
    assert grid.queues.depth(grid.queues.dead_letter_queue_url(1)) == (12, 0)


def test_a_stranded_submission_is_dispatched_once_after_its_deadline(
    grid: GridPorts, session_id: str
) -> None:
    # GIVEN a submission whose workflow wrote its tasks and died before dispatching them, one
    # of them cancelled since
    task_ids = persist(grid, session_id, [{"value": i} for i in range(3)], token="tok").task_ids
    cancel(CancelRequest(session_id=session_id, task_ids=task_ids[:1]), grid.table)
    # WHEN the reaper sweeps before the dispatch deadline, it leaves it alone
    assert redispatch_stranded_submissions(grid, time.time(), 1000).found == 0
    # WHEN it sweeps after the deadline
    later = time.time() + DISPATCH_DEADLINE_S + 1
    report = redispatch_stranded_submissions(grid, later, 1000)
    # THEN the tasks still PENDING got their messages, once: the next sweep sends nothing
    assert report.found == 2
    assert redispatch_stranded_submissions(grid, later, 1000).found == 0
    assert grid.queues.depth(grid.queues.task_queue_url(1)) == (2, 0)


def test_a_dispatched_submission_is_never_swept(grid: FakeGrid, session_id: str) -> None:
    dispatch_submission(persist_submission(submission(session_id, [1, 2]), grid), grid)
    later = time.time() + DISPATCH_DEADLINE_S + 1
    assert redispatch_stranded_submissions(grid, later, 1000).found == 0
    assert grid.queues.depth(grid.queues.task_queue_url(1)) == (2, 0)  # the dispatch's own
