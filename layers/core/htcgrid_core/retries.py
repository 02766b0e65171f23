"""The retry decision: every failed attempt, whoever saw it fail, is decided here.

The retry workflow's function calls ``decide`` with failures from agents (handler errors,
timeouts, crashes of the handler process), from the reaper (leases that expired: dead workers)
and from the DLQ sweep (messages delivered too often without an outcome). For each, one
conditional write records the attempt's error and moves the task on: back to PENDING at the
next attempt while its budgets last and the error allows a retry, else FAILED. Handler errors
spend the task's attempt budget; a dead worker's attempt (``LeaseExpired``) spends its
worker-loss budget instead (``max_receive_count``, as SQS grants a short task's redeliveries),
so reclaimed spot nodes never fail a task that would succeed. The decision reads the tasks'
error history first (one batch read); the write names the attempt, so it cannot land on a task
that moved on in between. A retried task gets a new message after an exponential, fully
jittered delay; a FAILED one is announced to its session's result queue.

A request may be retried as a whole (the workflow retries the function on errors). A failure
whose write already happened then finds the task moved on by that very error, and its message
or notice is sent again instead of being lost; duplicates of either are harmless.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from itertools import groupby

from htcgrid_core.counters import SessionCounters
from htcgrid_core.errors import QueueMissingError, TransitionRejected
from htcgrid_core.lifecycle import retry_delay_s, state_after_failure
from htcgrid_core.models import (
    AttemptFailure,
    ResultNotice,
    RetryReport,
    RetryRequest,
    TaskMessage,
    TaskRecord,
    TaskState,
)
from htcgrid_core.ports import GridPorts
from htcgrid_core.results import result_of

logger = logging.getLogger(__name__)

#: Results per notice: a notice stays far below SQS's 256 KiB message size.
RESULTS_PER_NOTICE = 20


def decide(request: RetryRequest, grid: GridPorts, now: float) -> RetryReport:
    """Record each failed attempt, re-dispatch the tasks that get another attempt and announce
    the ones that failed for good."""
    retries: list[TaskMessage] = []
    delays: list[int] = []
    failed: list[TaskRecord] = []
    stale: list[str] = []
    newly_failed: Counter[str] = Counter()
    # The failed tasks as they are, for their error history (one batch read per session).
    tasks = grid.table.get_tasks((f.session_id, f.task_id) for f in request.failures)
    for failure in request.failures:
        task = tasks.get((failure.session_id, failure.task_id))
        try:
            if task is None:  # deleted with its session
                raise TransitionRejected(failure.task_id, "record failure", None)
            target = state_after_failure(
                [*task.errors, failure.error],
                task.max_attempts,
                grid.settings.max_receive_count,
            )
            record = grid.table.record_failure(failure, target, now)
            if record.state is TaskState.FAILED:
                newly_failed[record.session_id] += 1
        except TransitionRejected as rejected:
            earlier = _recorded_before(failure, rejected.current if task else None)
            if earlier is None:
                stale.append(failure.task_id)
                _log_decision(failure, "stale")
                continue
            record = earlier
        if record.state is TaskState.PENDING:
            retries.append(record.message())
            delays.append(retry_delay_s(failure.attempt))
            _log_decision(failure, "retried")
        else:
            failed.append(record)
            _log_decision(failure, "failed")
    # Counted once, by the write that failed the task (a retried request's earlier write was
    # counted by its first try, or not at all if that died: counters may trail, never lead).
    counters = SessionCounters.from_resources(grid)
    for session_id, count in newly_failed.items():
        counters.add(session_id, {TaskState.FAILED: count}, now)
    if retries:
        grid.queues.dispatch(retries, delays)
    _announce(failed, grid)
    logger.info(
        "failed attempts decided",
        extra={"retried": len(retries), "failed": len(failed), "stale": len(stale)},
    )
    return RetryReport(
        retried=[m.task_id for m in retries],
        failed=[r.task_id for r in failed],
        stale=stale,
    )


def _log_decision(failure: AttemptFailure, decision: str) -> None:
    """One line per failed attempt, with the keys the agent logs it under (session_id,
    task_id, attempt) and what became of it: retried, failed (for good) or stale (its
    attempt was already over)."""
    logger.info(
        "failed attempt decided",
        extra={
            "session_id": failure.session_id,
            "task_id": failure.task_id,
            "attempt": failure.attempt,
            "decision": decision,
            "error_type": failure.error.type,
            "error_message": failure.error.message,
            "retryable": failure.error.retryable,
        },
    )


def _recorded_before(failure: AttemptFailure, current: TaskRecord | None) -> TaskRecord | None:
    """The task, if this very failure already moved it on (an earlier try of the same request
    wrote, then died before sending): its last error is this one, one attempt on or FAILED."""
    if current is None or not current.errors or current.errors[-1] != failure.error:
        return None
    if current.state is TaskState.PENDING and current.attempt == failure.attempt + 1:
        return current
    if current.state is TaskState.FAILED and current.attempt == failure.attempt:
        return current
    return None


def _announce(failed: Sequence[TaskRecord], grid: GridPorts) -> None:
    """Tell each session's result queue about its tasks that failed for good."""
    announced = sorted((r for r in failed if r.result_queue_url), key=_result_queue)
    for queue_url, group in groupby(announced, key=_result_queue):
        results = [result_of(record) for record in group]
        notices = [
            ResultNotice(results=results[i : i + RESULTS_PER_NOTICE])
            for i in range(0, len(results), RESULTS_PER_NOTICE)
        ]
        try:
            grid.queues.notify(queue_url, notices)
        except QueueMissingError:
            pass  # the session was closed: nobody is listening, and the record holds the outcome


def _result_queue(record: TaskRecord) -> str:
    return record.result_queue_url or ""
