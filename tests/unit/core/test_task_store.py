"""The task store's contract: lifecycle transitions as conditional writes, racing writers
included, pages, submissions and the leases index.

Each test runs twice: here against the in-memory fake (``tests/fakes``), and from
``tests/integration/test_table.py`` against the DynamoDB adapter on moto, so the fake the
core's unit tests rely on is held to what the table does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from htcgrid_core import keys
from htcgrid_core.errors import RetryableError, TransitionRejected
from htcgrid_core.models import (
    MAX_ERROR_MESSAGE_CHARS,
    AttemptFailure,
    FailureCause,
    InlineData,
    ResultsQuery,
    TaskError,
    TaskMessage,
    TaskRecord,
    TaskState,
)
from htcgrid_core.ports import GridPorts
from htcgrid_core.results import fetch_results
from htcgrid_core.table import PERSISTING_STALE_AFTER_S, Completion, SubmissionStage
from tests.integration.builders import persist


def race(writers: int, write: Callable[[int], object]) -> tuple[list[object], list[Exception]]:
    """Run ``write(i)`` on ``writers`` threads released at the same instant."""
    barrier = threading.Barrier(writers)
    wins: list[object] = []
    losses: list[Exception] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcome = write(i)
        except TransitionRejected as rejected:
            with lock:
                losses.append(rejected)
        else:
            with lock:
                wins.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wins, losses


def error(attempt: int, retryable: bool = True) -> TaskError:
    return TaskError(
        type="Boom",
        message=f"attempt {attempt}",
        attempt=attempt,
        at=time.time(),
        retryable=retryable,
    )


def failure(
    session_id: str,
    task_id: str,
    attempt: int,
    max_attempts: int,
    *,
    retryable: bool = True,
    lease_token: str | None = None,
    cause: FailureCause = FailureCause.HANDLER,
) -> AttemptFailure:
    return AttemptFailure(
        session_id=session_id,
        task_id=task_id,
        attempt=attempt,
        max_attempts=max_attempts,
        lease_token=lease_token,
        cause=cause,
        error=error(attempt, retryable),
    )


def test_persisted_tasks_are_pending_at_attempt_one(grid: GridPorts, session_id: str) -> None:
    batch = persist(grid, session_id, [1, 2, 3])
    records = grid.table.get_records(session_id, batch.task_ids)
    assert {r.state for r in records.values()} == {TaskState.PENDING}
    assert {r.attempt for r in records.values()} == {1}
    assert [records[t].payload for t in batch.task_ids] == [InlineData(inline=i) for i in (1, 2, 3)]


def test_racing_claims_have_exactly_one_winner(grid: GridPorts, session_id: str) -> None:
    (task_id,) = persist(grid, session_id, ["x"]).task_ids
    now = time.time()

    def claim(i: int) -> str:
        grid.table.claim(session_id, task_id, 1, f"lease-{i}", now + 60, now)
        return f"lease-{i}"

    wins, losses = race(8, claim)
    assert len(wins) == 1
    assert len(losses) == 7
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert record.state is TaskState.RUNNING
    assert record.lease_token == wins[0]
    assert all(loss.current.state is TaskState.RUNNING for loss in losses)  # type: ignore[attr-defined]


def test_racing_completions_record_exactly_one_result(grid: GridPorts, session_id: str) -> None:
    (task_id,) = persist(grid, session_id, ["x"]).task_ids
    completion = Completion(session_id, task_id, attempt=1, lease_token=None)

    def complete(i: int) -> InlineData:
        grid.table.record_success(completion, InlineData(inline=i), time.time())
        return InlineData(inline=i)

    wins, losses = race(8, complete)
    assert len(wins) == 1
    assert len(losses) == 7
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert record.state is TaskState.SUCCEEDED
    assert record.result == wins[0]


def test_late_worker_whose_lease_was_taken_over_cannot_record(
    grid: GridPorts, session_id: str
) -> None:
    (task_id,) = persist(grid, session_id, ["x"]).task_ids
    now = time.time()
    grid.table.claim(session_id, task_id, 1, "first", now + 60, now)
    grid.table.release(Completion(session_id, task_id, 1, "first"))
    grid.table.claim(session_id, task_id, 1, "second", now + 60, now)
    with pytest.raises(TransitionRejected):
        grid.table.record_success(
            Completion(session_id, task_id, 1, "first"), InlineData(inline="late"), now
        )
    with pytest.raises(TransitionRejected):
        grid.table.extend_lease(Completion(session_id, task_id, 1, "first"), now + 120)
    grid.table.record_success(
        Completion(session_id, task_id, 1, "second"), InlineData(inline="on time"), now
    )
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert record.result == InlineData(inline="on time")
    assert record.lease_token is None


def test_unleased_completion_cannot_finish_a_leased_task(grid: GridPorts, session_id: str) -> None:
    (task_id,) = persist(grid, session_id, ["x"]).task_ids
    now = time.time()
    grid.table.claim(session_id, task_id, 1, "holder", now + 60, now)
    with pytest.raises(TransitionRejected):
        grid.table.record_success(
            Completion(session_id, task_id, 1, None), InlineData(inline="dup"), now
        )


def test_failed_attempts_retry_within_budget_then_fail_keeping_every_error(
    grid: GridPorts, session_id: str
) -> None:
    (task_id,) = persist(grid, session_id, ["x"], max_attempts=2).task_ids
    returned = grid.table.record_failure(
        failure(session_id, task_id, 1, 2), TaskState.PENDING, time.time()
    )
    first = grid.table.get_records(session_id, [task_id])[task_id]
    assert returned == first
    assert first.state is TaskState.PENDING
    assert first.attempt == 2
    with pytest.raises(TransitionRejected):  # a stale attempt can no longer write
        grid.table.record_success(
            Completion(session_id, task_id, 1, None), InlineData(inline="stale"), time.time()
        )
    returned = grid.table.record_failure(
        failure(session_id, task_id, 2, 2), TaskState.FAILED, time.time()
    )
    final = grid.table.get_records(session_id, [task_id])[task_id]
    assert returned.state is final.state is TaskState.FAILED
    assert final.attempt == 2
    assert [e.message for e in final.errors] == ["attempt 1", "attempt 2"]
    assert final.finished_at is not None


def test_non_retryable_error_fails_the_task_at_once(grid: GridPorts, session_id: str) -> None:
    (task_id,) = persist(grid, session_id, ["x"], max_attempts=5).task_ids
    returned = grid.table.record_failure(
        failure(session_id, task_id, 1, 5, retryable=False), TaskState.FAILED, time.time()
    )
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert returned.state is record.state is TaskState.FAILED
    assert record.attempt == 1


def test_cancelled_task_never_records_a_late_success(grid: GridPorts, session_id: str) -> None:
    (task_id,) = persist(grid, session_id, ["x"]).task_ids
    grid.table.cancel(session_id, task_id, time.time())
    assert grid.table.get_records(session_id, [task_id])[task_id].state is TaskState.CANCELLED
    with pytest.raises(TransitionRejected) as rejected:
        grid.table.record_success(
            Completion(session_id, task_id, 1, None), InlineData(inline="late"), time.time()
        )
    assert rejected.value.current.state is TaskState.CANCELLED
    with pytest.raises(TransitionRejected):
        grid.table.cancel(session_id, task_id, time.time())


def test_counts_and_pages_cover_every_shard(grid: GridPorts, session_id: str) -> None:
    task_ids = persist(grid, session_id, list(range(150))).task_ids
    for task_id in task_ids[:100]:
        grid.table.record_success(
            Completion(session_id, task_id, 1, None), InlineData(inline=task_id), time.time()
        )
    counts = grid.table.count_states(session_id)
    assert counts[TaskState.SUCCEEDED] == 100
    assert counts[TaskState.PENDING] == 50
    seen: list[str] = []
    token = None
    while True:
        page = fetch_results(
            ResultsQuery(session_id=session_id, limit=7, next_token=token), grid.table
        )
        assert len(page.results) <= 7
        seen.extend(r.task_id for r in page.results)
        token = page.next_token
        if token is None:
            break
    assert sorted(seen) == sorted(task_ids[:100])


def test_resubmitting_a_token_after_progress_rewrites_nothing(
    grid: GridPorts, session_id: str
) -> None:
    first = persist(grid, session_id, [1, 2], token="same-token")
    grid.table.record_success(
        Completion(session_id, first.task_ids[0], 1, None), InlineData(inline="done"), time.time()
    )
    again = persist(grid, session_id, [1, 2], token="same-token")
    assert again.task_ids == first.task_ids
    record = grid.table.get_records(session_id, [first.task_ids[0]])[first.task_ids[0]]
    assert record.state is TaskState.SUCCEEDED
    assert record.result == InlineData(inline="done")
    assert grid.table.count_states(session_id)[TaskState.PENDING] == 1


def test_a_concurrent_attempt_at_the_same_submission_is_told_to_retry_later(
    grid: GridPorts, session_id: str
) -> None:
    now = time.time()
    assert grid.table.begin_submission(session_id, "tok", 3, now) is None
    with pytest.raises(RetryableError, match="being persisted by another attempt"):
        grid.table.begin_submission(session_id, "tok", 3, now + 1)


def test_an_attempt_that_died_while_persisting_is_taken_over(
    grid: GridPorts, session_id: str
) -> None:
    now = time.time()
    assert grid.table.begin_submission(session_id, "tok", 3, now) is None
    later = now + PERSISTING_STALE_AFTER_S + 1
    assert grid.table.begin_submission(session_id, "tok", 3, later) is None
    grid.table.advance_submission(session_id, "tok", SubmissionStage.PERSISTED)
    assert grid.table.begin_submission(session_id, "tok", 3, later + 1000) is (
        SubmissionStage.PERSISTED
    )


def lone_task_record(session_id: str, token: str, now: float) -> TaskRecord:
    message = TaskMessage(
        session_id=session_id,
        task_id=keys.task_id_for(session_id, token, 0),
        attempt=1,
        max_attempts=3,
        priority=0,
        timeout_s=60,
        payload=InlineData(inline=1),
        submitted_at=now,
    )
    return message.pending_record(None, None)


def test_a_lone_task_is_persisted_in_one_write_once(grid: GridPorts, session_id: str) -> None:
    now = time.time()
    record = lone_task_record(session_id, "lone", now)

    def persist_once(at: float) -> SubmissionStage | None:
        return grid.table.persist_at_once(
            session_id, "lone", [record], at, at + 600, None, "sha-of-the-tasks"
        )

    # The first attempt writes the task and the submission record, PERSISTED
    assert persist_once(now) is None
    assert grid.table.get_records(session_id, [record.task_id])[record.task_id].state is (
        TaskState.PENDING
    )
    (submission,) = grid.table.submissions([(session_id, "lone")])
    assert submission.stage is SubmissionStage.PERSISTED
    assert grid.table.persisted_content(session_id, "lone") == "sha-of-the-tasks"
    # A retry writes nothing over a task that may have started: it learns the stage
    grid.table.record_success(
        Completion(session_id, record.task_id, 1, None), InlineData(inline="done"), now
    )
    assert persist_once(now + 1) is SubmissionStage.PERSISTED
    after = grid.table.get_records(session_id, [record.task_id])[record.task_id]
    assert after.state is TaskState.SUCCEEDED


def test_a_lone_task_being_persisted_by_another_attempt_is_told_to_retry_later(
    grid: GridPorts, session_id: str
) -> None:
    now = time.time()
    assert grid.table.begin_submission(session_id, "lone", 1, now) is None
    record = lone_task_record(session_id, "lone", now)
    with pytest.raises(RetryableError, match="being persisted by another attempt"):
        grid.table.persist_at_once(session_id, "lone", [record], now + 1, now + 600, None, "x")
    assert grid.table.get_records(session_id, [record.task_id]) == {}


def test_only_leased_tasks_are_in_the_leases_index_and_only_expired_ones_are_found(
    grid: GridPorts, session_id: str
) -> None:
    short, alive, dead = persist(grid, session_id, ["short", "alive", "dead"]).task_ids
    now = time.time()
    grid.table.claim(session_id, alive, 1, "alive-lease", now + 60, now)
    grid.table.claim(session_id, dead, 1, "dead-lease", now - 1, now - 61)
    found = [
        f
        for shard in range(keys.LEASE_SHARDS)
        for f in grid.table.expired_leases(shard, now, None, 100)[0]
        if f.session_id == session_id
    ]
    assert [(f.task_id, f.attempt, f.lease_token, f.cause) for f in found] == [
        (dead, 1, "dead-lease", FailureCause.LEASE_EXPIRED)
    ]
    assert short not in {f.task_id for f in found}


def test_reaper_loses_to_a_heartbeat_that_renewed_the_lease(
    grid: GridPorts, session_id: str
) -> None:
    (task_id,) = persist(grid, session_id, ["x"]).task_ids
    now = time.time()
    grid.table.claim(session_id, task_id, 1, "lease", now - 1, now - 61)
    (expired,) = [
        f
        for shard in range(keys.LEASE_SHARDS)
        for f in grid.table.expired_leases(shard, now, None, 100)[0]
        if f.task_id == task_id
    ]
    # The holder's heartbeat lands between the reaper's query and its write.
    grid.table.extend_lease(Completion(session_id, task_id, 1, "lease"), now + 60)
    with pytest.raises(TransitionRejected) as rejected:
        grid.table.record_failure(expired, TaskState.PENDING, now)
    assert rejected.value.current.state is TaskState.RUNNING
    # Once it really expires, the reaper's write wins and the task leaves the index.
    later = now + 61
    retried = grid.table.record_failure(
        expired.model_copy(update={"error": error(1)}), TaskState.PENDING, later
    )
    assert (retried.state, retried.attempt, retried.lease_token) == (TaskState.PENDING, 2, None)
    assert not [
        f
        for shard in range(keys.LEASE_SHARDS)
        for f in grid.table.expired_leases(shard, later + 1000, None, 100)[0]
        if f.task_id == task_id
    ]


def test_only_dead_lettered_failures_can_be_redriven(grid: GridPorts, session_id: str) -> None:
    dead, broken = persist(grid, session_id, ["dead", "broken"], max_attempts=1).task_ids
    now = time.time()
    grid.table.record_failure(
        failure(session_id, dead, 1, 1, retryable=False, cause=FailureCause.DEAD_LETTERED),
        TaskState.FAILED,
        now,
    )
    grid.table.record_failure(failure(session_id, broken, 1, 1), TaskState.FAILED, now)
    with pytest.raises(TransitionRejected):  # failed on its own errors: stays FAILED
        grid.table.redrive(session_id, broken, 1, 1)
    reopened = grid.table.redrive(session_id, dead, 1, 1)
    assert (reopened.state, reopened.attempt, reopened.max_attempts) == (TaskState.PENDING, 2, 2)
    assert reopened.finished_at is None
    with pytest.raises(TransitionRejected):  # a second redrive of the same failure does nothing
        grid.table.redrive(session_id, dead, 1, 1)


def test_a_long_error_history_stays_within_the_item_limit_and_counts_every_attempt(
    grid: GridPorts, session_id: str
) -> None:
    # GIVEN a task that fails 250 times with the longest messages an agent writes (about
    # 2 KB each: 500 KB in all, past DynamoDB's 400 KB item limit)
    (task_id,) = persist(grid, session_id, [1], max_attempts=100).task_ids
    for attempt in range(1, 251):
        error = TaskError.bounded(
            type=f"Boom{attempt}", message="€" * 5000, attempt=attempt, at=time.time()
        )
        grid.table.record_failure(
            AttemptFailure(
                session_id=session_id,
                task_id=task_id,
                attempt=attempt,
                max_attempts=100,
                error=error,
            ),
            TaskState.PENDING,
            time.time(),
        )
    # THEN every attempt is still counted, the first and the last ten whole
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert record.attempt == 251
    assert [(e.type, e.attempt) for e in record.errors] == [(f"Boom{n}", n) for n in range(1, 251)]
    whole = [e for e in record.errors if e.message]
    assert [e.attempt for e in whole] == [1, *range(241, 251)]
    assert all(len(e.message.encode()) <= MAX_ERROR_MESSAGE_CHARS for e in whole)
