"""Reading results back: a session's counts per state, and finished tasks as results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from htcgrid_core.models import (
    Data,
    ResultsPage,
    ResultsQuery,
    SessionStatus,
    TaskError,
    TaskMessage,
    TaskRecord,
    TaskResult,
    TaskState,
)
from htcgrid_core.paging import across_shards
from htcgrid_core.table import TaskTable


def result_of(record: TaskRecord) -> TaskResult:
    """What the client sees of a finished task: its result, or the error of its last attempt."""
    return TaskResult(
        session_id=record.session_id,
        task_id=record.task_id,
        state=record.state,
        attempt=record.attempt,
        result=record.result,
        error=record.errors[-1] if record.errors and record.result is None else None,
        submitted_at=record.submitted_at,
        finished_at=record.finished_at,
    )


@dataclass(frozen=True)
class AttemptTimings:
    """When an attempt's message was sent to its queue, received by an agent, and handed to
    the handler (epoch seconds)."""

    queued_at: float
    received_at: float
    started_at: float


def finished_result(
    message: TaskMessage,
    state: TaskState,
    finished_at: float,
    result: Data | None = None,
    error: TaskError | None = None,
    timings: AttemptTimings | None = None,
) -> TaskResult:
    """The result of an attempt that just finished the task, built by the agent that recorded it
    (no read of the record needed: the message and the outcome say everything). ``timings``:
    where this attempt's time went, as the agent saw it."""
    return TaskResult(
        session_id=message.session_id,
        task_id=message.task_id,
        state=state,
        attempt=message.attempt,
        result=result,
        error=error,
        submitted_at=message.submitted_at,
        finished_at=finished_at,
        queued_at=timings.queued_at if timings else None,
        received_at=timings.received_at if timings else None,
        started_at=timings.started_at if timings else None,
    )


def session_status(session_id: str, table: TaskTable) -> SessionStatus:
    """Counts per state for a session."""
    return SessionStatus(session_id=session_id, counts=table.count_states(session_id))


def fetch_results(query: ResultsQuery, table: TaskTable) -> ResultsPage:
    """Results of the named tasks (unfinished or unknown ones listed as missing), or the next
    page of a session's finished tasks."""
    if query.task_ids is not None:
        records = table.get_records(query.session_id, query.task_ids)
        finished = [r for r in records.values() if r.state.is_terminal]
        done = {r.task_id for r in finished}
        return ResultsPage(
            results=[result_of(r) for r in finished],
            missing=[t for t in query.task_ids if t not in done],
        )

    def finished_page(
        shard: int, key: dict[str, Any] | None, limit: int
    ) -> tuple[list[TaskResult], dict[str, Any] | None]:
        page, key = table.page_finished(query.session_id, shard, key, limit)
        return [result_of(r) for r in page], key

    results, token = across_shards(query.session_id, query.next_token, query.limit, finished_page)
    return ResultsPage(results=results, next_token=token)
