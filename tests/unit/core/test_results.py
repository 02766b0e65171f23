"""Results, messages and records derived from one another, and reading results back, without
AWS: each derivation is one constructor, and fetching says what is missing."""

from __future__ import annotations

from htcgrid_core.models import (
    InlineData,
    ResultsQuery,
    TaskAttempt,
    TaskError,
    TaskMessage,
    TaskState,
)
from htcgrid_core.results import AttemptTimings, fetch_results, finished_result, result_of
from htcgrid_core.table import Completion
from tests.fakes import FakeGrid
from tests.integration.builders import persist

MESSAGE = TaskMessage(
    session_id="s",
    task_id="t-1",
    attempt=2,
    max_attempts=3,
    priority=1,
    timeout_s=60,
    payload=InlineData(inline={"x": 1}),
    submitted_at=10.0,
    result_queue_url="https://sqs.example/q",
)


def test_a_message_and_its_pending_record_carry_the_same_attempt_both_ways() -> None:
    record = MESSAGE.pending_record(expires_at=99)
    assert (record.state, record.expires_at, record.errors) == (TaskState.PENDING, 99, [])
    assert record.message() == MESSAGE
    assert set(TaskAttempt.model_fields) <= set(type(record).model_fields)


def test_a_result_from_the_record_is_the_result_the_agent_built_from_the_message() -> None:
    error = TaskError(type="Boom", message="no", attempt=2, at=20.0)
    failed = MESSAGE.pending_record().model_copy(
        update={"state": TaskState.FAILED, "errors": [error], "finished_at": 20.0}
    )
    assert result_of(failed) == finished_result(MESSAGE, TaskState.FAILED, 20.0, error=error)
    timed = finished_result(
        MESSAGE, TaskState.SUCCEEDED, 30.0, InlineData(inline=1), timings=AttemptTimings(1, 2, 3)
    )
    assert (timed.queued_at, timed.received_at, timed.started_at) == (1, 2, 3)
    assert (timed.attempt, timed.submitted_at, timed.error) == (2, 10.0, None)


def test_a_succeeded_tasks_result_hides_the_errors_of_earlier_attempts() -> None:
    error = TaskError(type="Boom", message="first try", attempt=1, at=1.0)
    done = MESSAGE.pending_record().model_copy(
        update={"state": TaskState.SUCCEEDED, "errors": [error], "result": InlineData(inline=7)}
    )
    assert (result_of(done).result, result_of(done).error) == (InlineData(inline=7), None)


def test_named_results_list_unfinished_and_unknown_tasks_as_missing(
    grid: FakeGrid, session_id: str
) -> None:
    done, waiting = persist(grid, session_id, ["a", "b"]).task_ids
    grid.table.record_success(Completion(session_id, done, 1, None), InlineData(inline=1), 5.0)
    page = fetch_results(
        ResultsQuery(session_id=session_id, task_ids=[done, waiting, "unknown"]), grid.table
    )
    assert [(r.task_id, r.result) for r in page.results] == [(done, InlineData(inline=1))]
    assert page.missing == [waiting, "unknown"]
    assert page.next_token is None


def test_a_finished_sessions_results_page_through_every_shard_once(
    grid: FakeGrid, session_id: str
) -> None:
    task_ids = persist(grid, session_id, list(range(30))).task_ids
    for task_id in task_ids[::2]:
        grid.table.cancel(session_id, task_id, 1.0)
    seen: list[str] = []
    token: str | None = None
    while True:
        page = fetch_results(
            ResultsQuery(session_id=session_id, limit=4, next_token=token), grid.table
        )
        assert len(page.results) <= 4
        seen.extend(r.task_id for r in page.results)
        token = page.next_token
        if token is None:
            break
    assert sorted(seen) == sorted(task_ids[::2])
