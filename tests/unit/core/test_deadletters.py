"""Listing and redriving dead letters, without AWS: what becomes of each message, and of its
task and its session's counts."""

from __future__ import annotations

import time

from htcgrid_core import deadletters
from htcgrid_core.counters import SessionCounters
from htcgrid_core.models import (
    AttemptFailure,
    FailureCause,
    InlineData,
    TaskError,
    TaskMessage,
    TaskState,
)
from htcgrid_core.table import Completion
from tests.fakes import FakeGrid
from tests.integration.builders import persist


def dead_letter(grid: FakeGrid, session_id: str, payloads: list[object]) -> list[TaskMessage]:
    """Tasks whose first messages SQS moved to the DLQ of priority 1."""
    messages = persist(grid, session_id, payloads).messages
    for message in messages:
        grid.queues.send(grid.queues.dead_letter_queue_url(1), message.model_dump_json())
    return messages


def sweep(grid: FakeGrid, message: TaskMessage) -> None:
    """Fail the task as the reaper's DLQ sweep does, and count it."""
    grid.table.record_failure(
        AttemptFailure(
            session_id=message.session_id,
            task_id=message.task_id,
            attempt=message.attempt,
            max_attempts=message.max_attempts,
            cause=FailureCause.DEAD_LETTERED,
            error=TaskError(
                type="DeadLettered", message="", attempt=message.attempt, at=1.0, retryable=False
            ),
        ),
        TaskState.FAILED,
        time.time(),
    )
    SessionCounters.from_resources(grid).add(message.session_id, {TaskState.FAILED: 1})


def test_redrive_reopens_swept_tasks_requeues_unswept_ones_and_drops_finished_ones(
    grid: FakeGrid, session_id: str
) -> None:
    # GIVEN dead letters of a task the sweep failed, one not swept yet, and one that finished
    swept, unswept, finished = dead_letter(grid, session_id, ["s", "u", "f"])
    sweep(grid, swept)
    grid.table.record_success(
        Completion(session_id, finished.task_id, 1, None), InlineData(inline=1), 1.0
    )
    # WHEN they are redriven
    report = deadletters.redrive(grid.queues, grid.table, [1])
    # THEN the swept task has a new attempt and a new message; the unswept one goes back as it
    # was; the finished one's message is dropped; the DLQ is empty
    assert (report.redriven, report.requeued, report.discarded, report.left) == (
        [swept.task_id],
        [unswept.task_id],
        [finished.task_id],
        0,
    )
    record = grid.table.get_records(session_id, [swept.task_id])[swept.task_id]
    assert (record.state, record.attempt) == (TaskState.PENDING, 2)
    sent = {(m.task_id, m.attempt) for m, _ in grid.queues.messages(grid.queues.task_queue_url(1))}
    assert {(swept.task_id, 2), (unswept.task_id, 1)} <= sent
    assert grid.queues.depth(grid.queues.dead_letter_queue_url(1)) == (0, 0)
    # AND the reopened task is no longer counted FAILED
    counts = SessionCounters.from_resources(grid).read([session_id])[session_id]
    assert counts.finished[TaskState.FAILED] == 0


def test_a_redrive_of_one_session_leaves_others_and_non_tasks_visible(
    grid: FakeGrid, session_id: str
) -> None:
    (mine,) = dead_letter(grid, session_id, ["mine"])
    (theirs,) = dead_letter(grid, f"{session_id}-other", ["theirs"])
    dlq = grid.queues.dead_letter_queue_url(1)
    grid.queues.send(dlq, "not a task")
    sweep(grid, mine)
    sweep(grid, theirs)
    report = deadletters.redrive(grid.queues, grid.table, [1], session_id=session_id)
    assert (report.redriven, report.left) == ([mine.task_id], 2)
    assert grid.queues.depth(dlq) == (2, 0)
    other = grid.table.get_records(theirs.session_id, [theirs.task_id])[theirs.task_id]
    assert other.state is TaskState.FAILED


def test_a_redrive_that_died_after_its_write_resends_the_next_attempt(
    grid: FakeGrid, session_id: str
) -> None:
    # GIVEN a swept task an earlier redrive reopened, then died before sending its message
    (message,) = dead_letter(grid, session_id, ["x"])
    sweep(grid, message)
    grid.table.redrive(session_id, message.task_id, 1, message.max_attempts)
    # WHEN it is redriven again
    report = deadletters.redrive(grid.queues, grid.table, [1])
    # THEN the task's second attempt is sent, once more, and not reopened twice
    assert report.redriven == [message.task_id]
    ((sent, _),) = grid.queues.messages(grid.queues.task_queue_url(1))
    assert sent.attempt == 2
    assert grid.table.get_records(session_id, [message.task_id])[message.task_id].attempt == 2


def test_a_task_that_failed_on_its_own_errors_is_never_reopened(
    grid: FakeGrid, session_id: str
) -> None:
    (message,) = dead_letter(grid, session_id, ["x"])
    grid.table.record_failure(
        AttemptFailure(
            session_id=session_id,
            task_id=message.task_id,
            attempt=1,
            max_attempts=1,
            error=TaskError(type="Boom", message="", attempt=1, at=1.0, retryable=False),
        ),
        TaskState.FAILED,
        1.0,
    )
    report = deadletters.redrive(grid.queues, grid.table, [1])
    assert report.discarded == [message.task_id]
    record = grid.table.get_records(session_id, [message.task_id])[message.task_id]
    assert record.state is TaskState.FAILED


def test_peek_lists_each_letter_with_its_task_and_hides_none(
    grid: FakeGrid, session_id: str
) -> None:
    (message,) = dead_letter(grid, session_id, ["x"])
    dlq = grid.queues.dead_letter_queue_url(1)
    grid.queues.send(dlq, "not a task")
    letters = deadletters.peek(grid.queues, grid.table, [1])
    by_body = {letter.message.task_id if letter.message else None: letter for letter in letters}
    task = by_body[message.task_id].task
    assert task is not None
    assert task.state is TaskState.PENDING
    assert by_body[None].problem is not None
    assert by_body[None].task is None
    assert grid.queues.depth(dlq) == (2, 0)
    assert [d.visible for d in deadletters.depths(grid.queues)] == [0, 2, 0]
