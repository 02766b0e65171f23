"""The TTL reaper's two sweeps, each bounded per run, each ending in retry requests.

Expired leases: a worker that dies (SIGKILL, a reclaimed spot node) stops renewing its lease.
The task table's sparse ``leases`` index holds only leased tasks, by shard and expiry, so the
sweep reads the expired ones and nothing else: no scan, however large the table.

Dead letters: a message SQS delivered ``max_receive_count`` times without an outcome moves to
its queue's DLQ. Its task would otherwise stay PENDING for ever, so the sweep reads each DLQ and
reports the attempt as failed for good (cause ``dead_lettered``, not retryable: SQS already
retried it). The messages stay in the DLQ, visible, for ``htcgrid dlq list`` and ``redrive``
(and the depth alarm); tasks already FAILED are skipped by a cheap batch read, not rewritten.

Stranded submissions: a submission whose tasks were written (PERSISTED) but whose workflow
never dispatched them (it failed after its retries, and the client gave up) would leave its
tasks PENDING with no message. A PERSISTED submission is filed in the ``leases`` index under a
dispatch shard until it is dispatched; the sweep reads those past their dispatch deadline and
sends the messages of their tasks still PENDING at their first attempt, then marks them
DISPATCHED. A message sent twice is harmless: only one attempt's outcome is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from htcgrid_core import keys
from htcgrid_core.models import (
    MAX_FAILURES_PER_REQUEST,
    AttemptFailure,
    FailureCause,
    ReaperReport,
    RetryRequest,
    TaskError,
    TaskMessage,
    TaskState,
)
from htcgrid_core.ports import GridPorts, Key, SubmissionStage
from htcgrid_core.queues import MAX_BATCH_ENTRIES, ReceivedTask

#: How long the sweep hides the DLQ messages it reads; it hands them back when done.
SWEEP_VISIBILITY_S = 30


def batched(failures: Sequence[AttemptFailure]) -> list[RetryRequest]:
    """Failures as retry requests of at most ``MAX_FAILURES_PER_REQUEST`` each."""
    return [
        RetryRequest(failures=list(failures[i : i + MAX_FAILURES_PER_REQUEST]))
        for i in range(0, len(failures), MAX_FAILURES_PER_REQUEST)
    ]


def find_expired_leases(grid: GridPorts, now: float, limit: int) -> ReaperReport:
    """Up to ``limit`` expired leases, an equal share from each index shard (so a burst of
    expiries in one shard cannot starve the others)."""
    share = math.ceil(limit / keys.LEASE_SHARDS)
    failures: list[AttemptFailure] = []
    more = False
    for shard in range(keys.LEASE_SHARDS):
        start_key: Key | None = None
        taken = 0
        while taken < share:
            page, start_key = grid.table.expired_leases(shard, now, start_key, share - taken)
            failures.extend(page)
            taken += len(page)
            if start_key is None:
                break
        more = more or start_key is not None
    return ReaperReport(batches=batched(failures), found=len(failures), more=more)


def sweep_dead_letters(grid: GridPorts, now: float, limit: int) -> ReaperReport:
    """Up to ``limit`` dead-lettered tasks not yet FAILED, from every priority level's DLQ."""
    queues = grid.queues
    share = math.ceil(limit / queues.priority_levels)
    failures: list[AttemptFailure] = []
    more = False
    for priority in range(queues.priority_levels):
        url = queues.dead_letter_queue_url(priority)
        received: list[ReceivedTask] = []
        while len(received) < share:
            page = queues.receive_from(
                url, min(MAX_BATCH_ENTRIES, share - len(received)), 0, SWEEP_VISIBILITY_S
            )
            received.extend(page)
            if not page:
                break
        more = more or len(received) >= share
        try:
            failures.extend(_unfinished(grid, received, now))
        finally:
            queues.make_visible(url, [task.receipt_handle for task in received])
    return ReaperReport(batches=batched(failures), found=len(failures), more=more)


def _unfinished(
    grid: GridPorts, received: Sequence[ReceivedTask], now: float
) -> list[AttemptFailure]:
    """The dead letters whose task is still at the message's attempt and unfinished."""
    messages: dict[tuple[str, str], TaskMessage] = {}
    for task in received:
        if task.message is not None:  # not a task: nothing to mark; it waits in the DLQ
            messages[(task.message.session_id, task.message.task_id)] = task.message
    records = grid.table.get_tasks(messages)
    failures: list[AttemptFailure] = []
    for (session_id, task_id), message in messages.items():
        record = records.get((session_id, task_id))
        if record is None or record.state.is_terminal or record.attempt != message.attempt:
            continue
        failures.append(
            AttemptFailure(
                session_id=session_id,
                task_id=task_id,
                attempt=message.attempt,
                max_attempts=message.max_attempts,
                cause=FailureCause.DEAD_LETTERED,
                error=TaskError(
                    type="DeadLettered",
                    message=(
                        "the task's message was delivered "
                        f"{grid.settings.max_receive_count} times without an "
                        "outcome and moved to the dead-letter queue: its workers died or "
                        "could not process it. `htcgrid dlq redrive` replays it."
                    ),
                    attempt=message.attempt,
                    at=now,
                    retryable=False,
                ),
            )
        )
    return failures


def redispatch_stranded_submissions(grid: GridPorts, now: float, limit: int) -> ReaperReport:
    """Dispatch the tasks of submissions PERSISTED and past their dispatch deadline, about
    ``limit`` tasks per run (whole submissions), and mark each DISPATCHED. Idempotent: a task
    already running, finished or retried is not sent again."""
    table = grid.table
    stranded: list[tuple[str, str]] = []
    more = False
    for shard in range(keys.DISPATCH_SHARDS):
        found, truncated = table.stranded_submissions(shard, now, limit)
        stranded.extend(found)
        more = more or truncated
    dispatched = 0
    # The index is eventually consistent: read each submission's stage and size from the table.
    for record in table.submissions(stranded):
        if dispatched >= limit:
            more = True
            break
        if record.stage is not SubmissionStage.PERSISTED:
            continue
        session_id, token = record.session_id, record.submission_token
        tasks = table.get_records(
            session_id, [keys.task_id_for(session_id, token, i) for i in range(record.task_count)]
        )
        messages = [
            task.message()
            for task in tasks.values()
            if task.state is TaskState.PENDING and task.attempt == 1
        ]
        grid.queues.dispatch(messages)
        table.advance_submission(session_id, token, SubmissionStage.DISPATCHED)
        dispatched += len(messages)
    return ReaperReport(found=dispatched, more=more)
