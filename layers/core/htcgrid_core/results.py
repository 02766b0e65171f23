"""Reading results back: a session's counts per state, and finished tasks as results."""

from __future__ import annotations

from dataclasses import dataclass

from htcgrid_core.models import (
    Data,
    ResultsPage,
    ResultsQuery,
    TaskAttempt,
    TaskError,
    TaskRecord,
    TaskResult,
    TaskState,
)
from htcgrid_core.paging import across_shards
from htcgrid_core.ports import Key, TaskStore


def result_of(record: TaskRecord) -> TaskResult:
    """What the client sees of a finished task: its result, or the error of its last attempt."""
    error = record.errors[-1] if record.errors and record.result is None else None
    return finished_result(record, record.state, record.finished_at, record.result, error)


@dataclass(frozen=True)
class AttemptTimings:
    """When an attempt's message was sent to its queue, received by an agent, and handed to
    the handler (epoch seconds)."""

    queued_at: float
    received_at: float
    started_at: float


def finished_result(
    task: TaskAttempt,
    state: TaskState,
    finished_at: float | None,
    result: Data | None = None,
    error: TaskError | None = None,
    timings: AttemptTimings | None = None,
) -> TaskResult:
    """The result of the attempt ``task`` names, ended in ``state`` with ``result`` or
    ``error``: the one way a result is built. An agent builds it from the message of the
    attempt it just recorded (no read of the record needed: the message and the outcome say
    everything), a reader from the record (``result_of``). ``timings``: where this attempt's
    time went, as the agent saw it."""
    return TaskResult(
        session_id=task.session_id,
        task_id=task.task_id,
        state=state,
        attempt=task.attempt,
        result=result,
        error=error,
        submitted_at=task.submitted_at,
        finished_at=finished_at,
        queued_at=timings.queued_at if timings else None,
        received_at=timings.received_at if timings else None,
        started_at=timings.started_at if timings else None,
    )


def fetch_results(query: ResultsQuery, table: TaskStore) -> ResultsPage:
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
        shard: int, key: Key | None, limit: int
    ) -> tuple[list[TaskResult], Key | None]:
        page, key = table.page_finished(query.session_id, shard, key, limit)
        return [result_of(r) for r in page], key

    results, token = across_shards(query.session_id, query.next_token, query.limit, finished_page)
    return ResultsPage(results=results, next_token=token)
