"""The dead-letter queues, for operators: what is in them, and replaying it.

A task message lands in its level's DLQ after ``max_receive_count`` deliveries without an
outcome (workers that crashed on it, or a body that is not a task). The reaper's sweep marks
such a task FAILED (``DeadLettered``) and leaves the message where it is, so the DLQ depth
alarm keeps firing until an operator looks: ``peek`` lists the messages with their tasks'
states, ``redrive`` gives each dead-lettered task one more attempt and removes its message.

Both read the DLQ with receives, the only way SQS offers; every message they did not remove is
made visible again before they return, so a listing never hides messages from the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from htcgrid_core.counters import SessionCounters
from htcgrid_core.errors import TransitionRejected
from htcgrid_core.models import TaskMessage, TaskRecord, TaskState
from htcgrid_core.ports import TaskQueues, TaskStore
from htcgrid_core.queues import MAX_BATCH_ENTRIES, ReceivedTask

#: How long a listing or a redrive hides the messages it reads (it hands back the rest).
READ_VISIBILITY_S = 60


@dataclass(frozen=True)
class DeadLetter:
    """One message in a DLQ, and the state of its task if it is one."""

    priority: int
    message_id: str
    sent_at: float
    receive_count: int
    message: TaskMessage | None
    problem: str | None
    task: TaskRecord | None


@dataclass(frozen=True)
class DeadLetterQueueDepth:
    priority: int
    visible: int
    in_flight: int


@dataclass
class RedriveReport:
    """What a redrive did with each message it read."""

    #: Dead-lettered tasks given a new attempt (their messages removed from the DLQ).
    redriven: list[str] = field(default_factory=list)
    #: Tasks not yet marked FAILED by the sweep: their message went back as it was.
    requeued: list[str] = field(default_factory=list)
    #: Messages of tasks that finished or moved on without them: removed.
    discarded: list[str] = field(default_factory=list)
    #: Messages left in the DLQ: not tasks, or not of the session asked for.
    left: int = 0


def depths(queues: TaskQueues) -> list[DeadLetterQueueDepth]:
    """Messages in each level's DLQ."""
    found = []
    for priority in range(queues.priority_levels):
        visible, hidden = queues.depth(queues.dead_letter_queue_url(priority))
        found.append(DeadLetterQueueDepth(priority, visible, hidden))
    return found


def _read(queues: TaskQueues, url: str, limit: int) -> list[ReceivedTask]:
    received: list[ReceivedTask] = []
    seen: set[str] = set()
    while len(received) < limit:
        page = queues.receive_from(
            url, min(MAX_BATCH_ENTRIES, limit - len(received)), 0, READ_VISIBILITY_S
        )
        fresh = [task for task in page if task.message_id not in seen]
        if not fresh:
            break
        seen.update(task.message_id for task in fresh)
        received.extend(fresh)
    return received


def peek(
    queues: TaskQueues, table: TaskStore, priorities: Sequence[int], limit: int = 100
) -> list[DeadLetter]:
    """Up to ``limit`` messages of each named level's DLQ, with their tasks' records."""
    letters: list[DeadLetter] = []
    for priority in priorities:
        url = queues.dead_letter_queue_url(priority)
        received = _read(queues, url, limit)
        try:
            records = table.get_tasks(
                (t.message.session_id, t.message.task_id) for t in received if t.message
            )
        finally:
            queues.make_visible(url, [task.receipt_handle for task in received])
        letters.extend(
            DeadLetter(
                priority=priority,
                message_id=task.message_id,
                sent_at=task.sent_at,
                receive_count=task.receive_count,
                message=task.message,
                problem=task.problem,
                task=(
                    records.get((task.message.session_id, task.message.task_id))
                    if task.message
                    else None
                ),
            )
            for task in received
        )
    return letters


def redrive(
    queues: TaskQueues,
    table: TaskStore,
    priorities: Sequence[int],
    session_id: str | None = None,
    limit: int = 1000,
) -> RedriveReport:
    """Replay up to ``limit`` messages of each named level's DLQ (of one session, if given).

    A task the sweep FAILED as dead-lettered goes back to PENDING at its next attempt (a
    conditional write: a task that failed on its own errors, or finished, is never reopened)
    and gets a new message; its old one leaves the DLQ. The new messages are sent before the
    old ones are deleted, so a redrive that dies midway loses nothing.
    """
    report = RedriveReport()
    for priority in priorities:
        url = queues.dead_letter_queue_url(priority)
        received = _read(queues, url, limit)
        resend: list[TaskMessage] = []
        done: list[str] = []
        kept: list[str] = []
        try:
            for task in received:
                message = task.message
                if message is None or (session_id and message.session_id != session_id):
                    kept.append(task.receipt_handle)
                    continue
                outcome = _replay(table, message)
                if isinstance(outcome, TaskMessage):
                    resend.append(outcome)
                    bucket = (
                        report.redriven if outcome.attempt > message.attempt else report.requeued
                    )
                    bucket.append(message.task_id)
                else:
                    report.discarded.append(message.task_id)
                done.append(task.receipt_handle)
            if resend:
                queues.dispatch(resend)
            _uncount_failures(table, resend, received)
            queues.delete(url, done)
        finally:
            queues.make_visible(url, kept)
        report.left += len(kept)
    return report


def _uncount_failures(
    table: TaskStore, resent: Sequence[TaskMessage], received: Sequence[ReceivedTask]
) -> None:
    """A redriven task is unfinished again: take it off its session's FAILED count."""
    before = {
        (task.message.session_id, task.message.task_id): task.message.attempt
        for task in received
        if task.message is not None
    }
    reopened: Counter[str] = Counter(
        message.session_id
        for message in resent
        if message.attempt > before.get((message.session_id, message.task_id), message.attempt)
    )
    counters = SessionCounters(table)
    for session_id, count in reopened.items():
        counters.add(session_id, {TaskState.FAILED: -count})


def _replay(table: TaskStore, message: TaskMessage) -> TaskMessage | None:
    """The message to send for a dead letter's task, or None if it needs none."""
    try:
        return table.redrive(
            message.session_id, message.task_id, message.attempt, message.max_attempts
        ).message()
    except TransitionRejected as rejected:
        current: TaskRecord | None = rejected.current
    if current is None or current.state.is_terminal:
        return None  # finished (or deleted) without this message
    if current.attempt == message.attempt:
        return message  # not swept yet: the attempt goes back as it was
    if current.state is TaskState.PENDING and current.attempt == message.attempt + 1:
        # Redriven before by a run that died between its write and its send.
        return current.message()
    return None
