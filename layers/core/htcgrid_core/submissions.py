"""Accepting a submission: validate it, persist its tasks, dispatch them to the queues.

The submit workflow's submission function calls ``accept_submission``: it persists the tasks
and, for a small submission (one batch of messages), dispatches them itself, so the workflow
ends there; a larger one goes on to the dispatch function (``dispatch_submission``), a step of
its own that a failure retries without redoing the writes. Every step is idempotent on the
submission token: the submission record says how far an earlier attempt got, so a retried
execution (Step Functions Retry, or a client retrying a failed synchronous call) never writes a
task twice over one that may already be running.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from htcgrid_core import aws, counters, keys, result_queues, sessions, traces
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    MAX_DISPATCH_BATCH_BYTES,
    DispatchBatch,
    InlineData,
    StoredData,
    Submission,
    SubmissionReceipt,
    TaskMessage,
)
from htcgrid_core.payloads import session_prefix, to_json_bytes
from htcgrid_core.ports import GridPorts, SubmissionStage
from htcgrid_core.queues import MAX_BATCH_ENTRIES
from htcgrid_core.settings import GridSettings

DocumentT = TypeVar("DocumentT", bound=BaseModel)

#: A submission of at most this many tasks is dispatched by the submission function itself:
#: its messages are one SendMessageBatch, which costs less than the workflow's hop to the
#: dispatch function (a state transition and a Lambda invocation, one after the other).
DISPATCH_AT_ONCE_MAX_TASKS = MAX_BATCH_ENTRIES
#: A submission of at most this many tasks is persisted in one transaction (its submission
#: record and task records together): two round trips fewer than claiming the record, writing
#: the tasks and marking it PERSISTED, for one more write unit per task (a transaction bills
#: 2 per item). Worth it for a lone task, whose latency is the submission's; beyond, the
#: extra units grow with the tasks and the round trips saved do not.
ONE_WRITE_MAX_TASKS = 1


def parse_document(model: type[DocumentT], data: object) -> DocumentT:
    """Validate ``data`` as ``model``; the error names every offending field and its limit."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or model.__name__}: {e['msg']}"
            for e in error.errors()[:10]
        )
        raise InvalidSubmissionError(f"invalid {model.__name__}: {problems}") from None


def check_against_settings(submission: Submission, settings: GridSettings) -> None:
    """Rules that depend on the deployment: priority levels, timeouts, inline size, S3 keys."""
    prefix = session_prefix(submission.session_id)
    for index, task in enumerate(submission.tasks):
        field = f"tasks.{index}"
        if task.priority is not None and task.priority >= settings.priority_levels:
            raise InvalidSubmissionError(
                f"{field}.priority: {task.priority} is not a priority level of this grid "
                f"(0 to {settings.priority_levels - 1})"
            )
        if task.timeout_s is not None and task.timeout_s > settings.max_timeout_s:
            raise InvalidSubmissionError(
                f"{field}.timeout_s: {task.timeout_s} exceeds the grid's limit of "
                f"{settings.max_timeout_s} s"
            )
        if isinstance(task.payload, InlineData):
            size = len(to_json_bytes(task.payload.inline, what=f"{field}.payload"))
            if size > settings.inline_threshold_bytes:
                raise InvalidSubmissionError(
                    f"{field}.payload: {size} bytes inline; the inline limit is "
                    f"{settings.inline_threshold_bytes} bytes (store it in S3: the client does)"
                )
        elif isinstance(task.payload, StoredData):
            check_stored_payload(task.payload, prefix, settings, f"{field}.payload")


def check_stored_payload(data: StoredData, prefix: str, settings: GridSettings, field: str) -> None:
    """A stored payload must lie under its session's prefix, and plainly: no empty, ``.`` or
    ``..`` path segment. S3 and botocore keep such segments as they are, but URL libraries,
    proxies and S3-compatible stores normalise or refuse them, and
    ``sessions/<session>/../<other>/...`` would then name another session's object. Its
    declared size is at most what the grid stores."""
    segments = data.s3_key.removeprefix(prefix).split("/")
    if not data.s3_key.startswith(prefix) or any(s in ("", ".", "..") for s in segments):
        raise InvalidSubmissionError(
            f"{field}.s3_key: must lie under the session's prefix '{prefix}', with no empty, "
            "'.' or '..' segment"
        )
    if data.size > settings.max_payload_bytes:
        raise InvalidSubmissionError(
            f"{field}.size: {data.size} bytes; the largest stored payload is "
            f"{settings.max_payload_bytes} bytes"
        )


def task_messages(submission: Submission, settings: GridSettings, now: float) -> list[TaskMessage]:
    """The first-attempt message of every task, with per-task overrides applied."""
    return [
        TaskMessage(
            session_id=submission.session_id,
            task_id=keys.task_id_for(submission.session_id, submission.submission_token, i),
            attempt=1,
            max_attempts=task.max_attempts or settings.max_attempts,
            priority=settings.priority_or_default(task.priority),
            timeout_s=task.timeout_s or settings.default_timeout_s,
            payload=task.payload,
            submitted_at=now,
            result_queue_url=submission.result_queue_url,
        )
        for i, task in enumerate(submission.tasks)
    ]


def state_bytes(document: BaseModel) -> int:
    """Bytes of ``document`` as a Python Lambda hands it to Step Functions: ``json.dumps`` of
    its JSON form (ASCII-escaped, with spaces), the largest form it takes on the way."""
    return len(json.dumps(document.model_dump(mode="json")))


def dispatch_batch(submission: Submission, settings: GridSettings, now: float) -> DispatchBatch:
    """The persist step's output for a submission: every task's first message. Refused, naming
    the limit, if it would be too large for the submit workflow's state."""
    messages = task_messages(submission, settings, now)
    batch = DispatchBatch(
        session_id=submission.session_id,
        submission_token=submission.submission_token,
        task_ids=[m.task_id for m in messages],
        messages=messages,
    )
    size = state_bytes(batch)
    if size > MAX_DISPATCH_BATCH_BYTES:
        raise InvalidSubmissionError(
            f"tasks: {len(messages)} tasks make {size} bytes of task messages for the submit "
            f"workflow's state; the limit is {MAX_DISPATCH_BATCH_BYTES} bytes (Step Functions "
            "allows 262,144 per state): submit fewer or smaller tasks per submission (the "
            "Python client splits them)"
        )
    return batch


def content_sha256(submission: Submission) -> str:
    """SHA-256 of a submission's tasks (payloads and overrides) as canonical JSON: what makes
    two submissions with one token the same submission."""
    tasks = [task.model_dump(mode="json") for task in submission.tasks]
    canonical = json.dumps(tasks, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_same_content(submission: Submission, persisted: str | None, content: str) -> None:
    """A resubmission must carry the tasks its token was first persisted with."""
    if persisted is not None and persisted != content:
        raise InvalidSubmissionError(
            f"submission_token: '{submission.submission_token}' already names a submission of "
            f"other tasks (SHA-256 {persisted[:12]}..., this one {content[:12]}...): resubmit "
            "the same tasks with it, or give these tasks a new token"
        )


@dataclass(frozen=True)
class Persisted:
    """A submission's tasks in the table: the batch to dispatch, and whether this attempt
    made the submission PERSISTED (then it, and only it, counts the tasks on the session)."""

    batch: DispatchBatch
    newly_persisted: bool
    at: float


def write_submission(
    submission: Submission, grid: GridPorts, trace_header: str | None = None
) -> Persisted:
    """Validate a submission against the grid and write its tasks as PENDING, exactly once.
    Nothing is written for a submission that breaks a rule. The records keep ``trace_header``
    (the submission's trace) for the messages of the tasks' retries; the batch's messages do
    not carry it, which would take the workflow state's room from payloads."""
    now = time.time()
    try:
        check_against_settings(submission, grid.settings)
        result_queues.check_submitted_url(grid, submission.session_id, submission.result_queue_url)
        batch = dispatch_batch(submission, grid.settings, now)
    except InvalidSubmissionError as error:
        # Its ids are valid (the document parsed): say why on its record, which expires.
        sessions.record_rejection(
            grid, submission.session_id, submission.submission_token, error, now
        )
        raise
    content = content_sha256(submission)
    expires_at = counters.expiry(grid.settings.result_retention_days, now)
    header = traces.trace_header(trace_header)
    if len(batch.messages) <= ONE_WRITE_MAX_TASKS:
        # Claim, records and PERSISTED in one transaction: two round trips fewer.
        stage = grid.table.persist_at_once(
            submission.session_id,
            submission.submission_token,
            [m.pending_record(expires_at, header) for m in batch.messages],
            now,
            now + sessions.DISPATCH_DEADLINE_S,
            expires_at,
            content,
        )
        moved = stage is None
    else:
        stage = grid.table.begin_submission(
            submission.session_id, submission.submission_token, len(batch.messages), now
        )
        moved = False
    if stage is not None:  # an earlier attempt got further: it must be this very submission
        persisted = grid.table.persisted_content(submission.session_id, submission.submission_token)
        check_same_content(submission, persisted, content)
    # None: this attempt owns the submission. If an earlier attempt died while writing, no
    # message was sent yet, so rewriting the same PENDING records is safe. Past PERSISTING,
    # the tasks may be running and are never written again.
    if stage is None and not moved:
        grid.table.put_new_tasks([m.pending_record(expires_at, header) for m in batch.messages])
        # PERSISTED (filed for the reaper's sweep until it is dispatched).
        moved = sessions.mark_persisted(
            grid, submission.session_id, submission.submission_token, now, content
        )
    if stage is SubmissionStage.DISPATCHED:
        batch = batch.model_copy(update={"messages": []})
    return Persisted(batch, moved, now)


def count_persisted(grid: GridPorts, persisted: Persisted) -> None:
    """Count the tasks on the session record, if this attempt persisted the submission."""
    if persisted.newly_persisted:
        batch = persisted.batch
        sessions.count_submitted(grid, batch.session_id, len(batch.task_ids), persisted.at)


def persist_submission(
    submission: Submission, grid: GridPorts, trace_header: str | None = None
) -> DispatchBatch:
    """Write a submission's tasks (:func:`write_submission`) and count them on the session:
    the batch for :func:`dispatch_submission`."""
    persisted = write_submission(submission, grid, trace_header)
    count_persisted(grid, persisted)
    return persisted.batch


@dataclass(frozen=True)
class Accepted:
    """The submission function's output (``batch``) and what this attempt did: tasks written
    (0 when an earlier attempt had), messages sent."""

    batch: DispatchBatch
    written: int
    sent: int


def accept_submission(
    submission: Submission, grid: GridPorts, trace_header: str | None = None
) -> Accepted:
    """The submission function's step: persist a submission and, if it is small (at most
    :data:`DISPATCH_AT_ONCE_MAX_TASKS` tasks), dispatch it too. A dispatched batch comes back
    with ``dispatched`` set and no messages, and the workflow ends with its receipt; any other
    goes on to the dispatch step.

    The messages go first, on the calling thread; the DISPATCHED mark and the session's count
    then go out together (neither needs the other). The guarantees are the two steps': the
    messages are sent only once the tasks are PERSISTED, the submission is marked DISPATCHED
    only once they are sent, and a retry after a failure in between sends them again
    (harmless: only one attempt's completion can be recorded).
    """
    persisted = write_submission(submission, grid, trace_header)
    batch = persisted.batch
    written = len(batch.task_ids) if persisted.newly_persisted else 0
    if len(batch.task_ids) > DISPATCH_AT_ONCE_MAX_TASKS:
        count_persisted(grid, persisted)
        return Accepted(batch, written, 0)

    # The send first, on this thread: the message leaves one round trip after the records.
    try:
        send_messages(batch, grid, trace_header)
    except BaseException:
        count_persisted(grid, persisted)  # this attempt's to make, whatever the send did
        raise

    def mark() -> None:
        mark_dispatched(batch, grid)

    def count() -> None:
        count_persisted(grid, persisted)

    aws.in_parallel(lambda step: step(), [mark, count])
    return Accepted(
        batch.model_copy(update={"messages": [], "dispatched": True}), written, len(batch.messages)
    )


def dispatch_submission(
    batch: DispatchBatch, grid: GridPorts, trace_header: str | None = None
) -> SubmissionReceipt:
    """Enqueue a persisted submission's tasks on their priority queues (:func:`send_messages`),
    then mark it DISPATCHED (:func:`mark_dispatched`).

    A retry may send a message twice; that is harmless, since only one attempt's completion
    can be recorded.
    """
    send_messages(batch, grid, trace_header)
    mark_dispatched(batch, grid)
    return SubmissionReceipt(
        session_id=batch.session_id,
        submission_token=batch.submission_token,
        task_ids=batch.task_ids,
    )


def send_messages(batch: DispatchBatch, grid: GridPorts, trace_header: str | None = None) -> None:
    """Send a batch's task messages, each carrying ``trace_header`` (the dispatching step's
    trace: the submission's, one segment on)."""
    header = traces.trace_header(trace_header)  # copies are not validated: checked once here
    grid.queues.dispatch(
        [m.model_copy(update={"trace_header": header}) for m in batch.messages]
        if header
        else batch.messages
    )


def mark_dispatched(batch: DispatchBatch, grid: GridPorts) -> None:
    """Mark a submission DISPATCHED once its messages are sent (none to send: nothing to mark),
    which takes it out of the reaper's sweep for stranded submissions."""
    if batch.messages:
        grid.table.advance_submission(
            batch.session_id, batch.submission_token, SubmissionStage.DISPATCHED
        )
