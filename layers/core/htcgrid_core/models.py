"""Every document that crosses a boundary of the grid, defined once.

Submissions go from the client to the submit workflow, task messages from the dispatcher to the
agents over SQS, task records live in DynamoDB, results go back to the client. Each is a frozen
pydantic model with its limits as field constraints; ``docs/schema/`` holds their JSON Schema so
any AWS SDK can drive the grid.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    RootModel,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

from htcgrid_core.settings import MAX_PRIORITY_LEVELS, SQS_MAX_VISIBILITY_S
from htcgrid_core.traces import TRACE_HEADER_PATTERN

#: Most tasks one submission may carry. The client splits larger lists; the byte limit below
#: usually binds first.
MAX_TASKS_PER_SUBMISSION = 1000
#: Largest persist-step output (the ``DispatchBatch``, as JSON) a submission may produce. Step
#: Functions fails a state whose data exceeds 262,144 bytes with an error no Catch can take,
#: after the tasks were written; this leaves room for the Lambda invoke's envelope and for a
#: Catch adding the error to the state. A submission over it is refused before any write.
MAX_DISPATCH_BATCH_BYTES = 224 * 1024
#: Bytes of a ``DispatchBatch`` that one task takes besides its payload's JSON and its
#: ``result_queue_url``, at most: its message's other fields and its id in ``task_ids``, at
#: their longest (checked by a unit test). Clients size their submissions with it.
TASK_STATE_OVERHEAD_BYTES = 450
#: Bytes of a ``DispatchBatch`` besides its tasks, at most (its ids and keys).
DISPATCH_BATCH_OVERHEAD_BYTES = 512
#: Longest error message kept per attempt, so a task record stays well under DynamoDB's 400 KB:
#: in characters (the document's limit), and in bytes of its JSON string (what the record
#: stores) for the messages agents write.
MAX_ERROR_MESSAGE_CHARS = 2000
#: Longest error type (an exception class name) kept per attempt, in characters and bytes.
MAX_ERROR_TYPE_CHARS = 256
#: Errors of a task's history kept whole: the first and this many last ones. Those in between
#: keep their type, attempt, time and retryability (the retry budgets count them) but not their
#: message, so a history of any length stays far below DynamoDB's 400 KB item limit.
WHOLE_ERRORS_KEPT = 10
#: Longest type an error in the middle of a history keeps ("LeaseExpired" and other names stay
#: whole; only the budgets read them there).
_COMPACT_TYPE_CHARS = 64
#: Longest timeout a task may ask for (12 hours, SQS's longest visibility timeout).
MAX_TIMEOUT_S = SQS_MAX_VISIBILITY_S

#: A session id names queues, S3 prefixes and table keys: ASCII, at most 48 characters.
SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$"
#: A submission token: ASCII, at most 64 characters.
SUBMISSION_TOKEN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"  # noqa: S105 - not a secret

SessionId = Annotated[str, StringConstraints(pattern=SESSION_ID_PATTERN)]
TaskId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")]
SubmissionToken = Annotated[str, StringConstraints(pattern=SUBMISSION_TOKEN_PATTERN)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: An X-Ray trace header as the grid passes it on (``traces.trace_header`` normalises one).
TraceHeader = Annotated[str, StringConstraints(pattern=TRACE_HEADER_PATTERN, max_length=80)]
Priority = Annotated[int, Field(ge=0, lt=MAX_PRIORITY_LEVELS)]


class Document(BaseModel):
    """Base of every document: immutable, and unknown fields are an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskState(StrEnum):
    """Where a task is in its lifecycle (see ``lifecycle`` for the legal transitions)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


class InlineData(Document):
    """A payload or result carried inline as JSON (at most the inline threshold in size)."""

    inline: JsonValue


class StoredData(Document):
    """A payload or result stored in the data-plane bucket, checked by size and SHA-256."""

    s3_key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    size: int = Field(ge=0)
    sha256: Sha256Hex


#: A payload or result: inline JSON, or a reference to an S3 object holding the JSON.
Data = InlineData | StoredData


class TaskSpec(Document):
    """One task in a submission: its payload and its per-task overrides."""

    payload: Data
    priority: Priority | None = Field(
        default=None, description="0 is the lowest; the grid's default priority if unset."
    )
    timeout_s: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_S)
    max_attempts: int | None = Field(default=None, ge=1, le=100)


class Submission(Document):
    """Input of the submit workflow: a batch of tasks for one session.

    The submission token makes a retried submission harmless: the same token yields the same
    task ids and creates no second copy of any task.
    """

    session_id: SessionId
    submission_token: SubmissionToken
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_TASKS_PER_SUBMISSION)
    result_queue_url: str | None = Field(
        default=None,
        max_length=512,
        description=(
            "The session's result queue, as the session function's 'open' returned it: agents "
            "notify it as tasks of this submission finish. No other queue is accepted."
        ),
    )


class TaskAttempt(Document):
    """What a task message and a task record share, defined once: the task, its current
    attempt, and how to run it. A message is rebuilt from a record and a record from a message
    by these fields alone."""

    session_id: SessionId
    task_id: TaskId
    attempt: int = Field(ge=1)
    max_attempts: int = Field(ge=1)
    priority: Priority
    timeout_s: int = Field(ge=1, le=MAX_TIMEOUT_S)
    payload: Data
    submitted_at: float
    result_queue_url: str | None = None
    trace_header: TraceHeader | None = Field(
        default=None,
        description=(
            "The X-Ray trace of the task's submission (or of the retry that re-dispatched it): "
            "agents pass it to the handler as Lambda passes _X_AMZN_TRACE_ID, so one task's "
            "journey is one trace. Absent from messages of grids that do not trace."
        ),
    )

    @model_serializer(mode="wrap")
    def _omit_absent_trace(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No ``trace_header`` key when there is none: a task's share of the submit workflow's
        state stays within ``TASK_STATE_OVERHEAD_BYTES``, and such messages still parse in
        agents older than the field (documents forbid unknown keys)."""
        data: dict[str, Any] = serialize(self)
        if self.trace_header is None:
            data.pop("trace_header", None)
        return data

    def attempt_fields(self) -> dict[str, Any]:
        """The fields every ``TaskAttempt`` has, as keyword arguments for another one."""
        return {name: getattr(self, name) for name in TaskAttempt.model_fields}


class TaskMessage(TaskAttempt):
    """The SQS message that hands one attempt of a task to an agent."""

    def pending_record(
        self, expires_at: int | None = None, trace_header: str | None = None
    ) -> TaskRecord:
        """The PENDING record of a task about to be dispatched with this message, in
        ``trace_header``'s trace if given (else this message's)."""
        fields = self.attempt_fields()
        if trace_header:
            fields["trace_header"] = trace_header
        return TaskRecord(state=TaskState.PENDING, expires_at=expires_at, **fields)


class DispatchBatch(Document):
    """Output of the persist step, input of the dispatch step of the submit workflow.

    ``messages`` is empty when an earlier attempt of the same submission already dispatched,
    or when the persist step dispatched them itself (a small submission): then ``dispatched``
    is set and the workflow skips the dispatch step.
    """

    session_id: SessionId
    submission_token: SubmissionToken
    task_ids: list[TaskId]
    messages: list[TaskMessage]
    dispatched: bool = False


class SubmissionReceipt(Document):
    """What the submit workflow returns: the ids of the submitted tasks, in submission order."""

    session_id: SessionId
    submission_token: SubmissionToken
    task_ids: list[TaskId]


def printable_text(text: str) -> str:
    """``text`` with lone surrogates (which no UTF-8 document can hold: an ``os.fsdecode``d
    file name, say) escaped as ``\\udcxx``, so it can always be serialised."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _json_bytes(text: str) -> int:
    """Bytes of ``text`` as a JSON string's contents (escapes counted, quotes not)."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def text_within(text: str, max_bytes: int, *, keep: str) -> str:
    """The longest head (``keep="head"``) or tail (``keep="tail"``) of ``text`` whose JSON takes
    at most ``max_bytes``: a character can take up to six (a control character's escape)."""
    text = text[:max_bytes] if keep == "head" else text[-max_bytes:] if max_bytes else ""
    if _json_bytes(text) <= max_bytes:
        return text
    low, high = 0, len(text)  # how many characters to drop: the fewest that make it fit
    while low < high:
        middle = (low + high) // 2
        kept = text[: len(text) - middle] if keep == "head" else text[middle:]
        if _json_bytes(kept) <= max_bytes:
            high = middle
        else:
            low = middle + 1
    return text[: len(text) - low] if keep == "head" else text[low:]


class TaskError(Document):
    """Why one attempt failed."""

    type: str = Field(
        max_length=MAX_ERROR_TYPE_CHARS, description="Exception class name, e.g. 'ValueError'."
    )
    message: str = Field(max_length=MAX_ERROR_MESSAGE_CHARS)
    attempt: int = Field(ge=1)
    at: float
    retryable: bool = True

    @classmethod
    def bounded(
        cls, *, type: str, message: str, attempt: int, at: float, retryable: bool = True
    ) -> TaskError:
        """A TaskError from text a handler controls (its exception's class name and message),
        made to fit: lone surrogates escaped, the type cut to its limit, and the message cut to
        its tail (a traceback's last line names the error), both measured in bytes of their
        JSON as well as in characters."""
        return cls(
            type=text_within(printable_text(type), MAX_ERROR_TYPE_CHARS, keep="head") or "Error",
            message=text_within(printable_text(message), MAX_ERROR_MESSAGE_CHARS, keep="tail"),
            attempt=attempt,
            at=at,
            retryable=retryable,
        )


def compact_history(errors: list[TaskError]) -> list[TaskError]:
    """A task's error history bounded in size: the first error and the last
    ``WHOLE_ERRORS_KEPT`` whole, the ones in between without their message. Every error keeps
    its place, type, attempt, time and retryability, so the retry budgets count the same."""
    middle = range(1, len(errors) - WHOLE_ERRORS_KEPT)
    return [
        error.model_copy(update={"message": "", "type": error.type[:_COMPACT_TYPE_CHARS]})
        if i in middle
        else error
        for i, error in enumerate(errors)
    ]


class TaskRecord(TaskAttempt):
    """A task as the task table holds it (the table's item, decoded)."""

    state: TaskState
    result: Data | None = None
    errors: list[TaskError] = Field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    expires_at: int | None = Field(
        default=None,
        description="Epoch seconds after which DynamoDB's TTL deletes the record (retention).",
    )

    def message(self) -> TaskMessage:
        """The message that hands the task's current attempt to an agent."""
        return TaskMessage(**self.attempt_fields())


class TaskResult(Document):
    """A finished task as the client sees it: its result, or the error that failed it."""

    session_id: SessionId
    task_id: TaskId
    state: TaskState
    attempt: int
    result: Data | None = None
    error: TaskError | None = None
    submitted_at: float
    finished_at: float | None = None
    #: Where the finishing attempt's time went, as the agent that recorded it saw it (epoch s;
    #: absent from results read back from the table): its message sent to the queue, received
    #: by the agent, and handed to the handler.
    queued_at: float | None = None
    received_at: float | None = None
    started_at: float | None = None


class ResultNotice(Document):
    """Sent by agents to a session's result queue as tasks finish.

    ``results`` carries finished tasks in full. ``changed`` names tasks whose record changed but
    whose result the sender does not hold (a redelivered message found the task already
    finished): the client reads those from the status function.
    """

    results: list[TaskResult] = Field(default_factory=list)
    changed: list[TaskId] = Field(default_factory=list)
    sent_at: float | None = Field(default=None, description="When the agent sent it, epoch s.")


class SessionStatus(Document):
    """How many tasks of a session are in each state.

    By default the counts come from the session's counters (a handful of item reads whatever
    the session's size). Counters only know submitted and finished tasks, so PENDING then
    counts every unfinished task (RUNNING ones included) and a process that died between a
    task's write and its counter write leaves them slightly behind: ``exact`` is False. An
    exact status reads every task's state (RUNNING only for leased, long tasks: short tasks
    finish straight from PENDING).
    """

    session_id: SessionId
    counts: dict[TaskState, int]
    exact: bool = True
    created_at: float | None = Field(default=None, description="First submission, epoch s.")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(n for state, n in self.counts.items() if state.is_terminal)


class StatusQuery(Document):
    """Input of the status function: counts per state for a session."""

    action: Literal["status"] = "status"
    session_id: SessionId
    exact: bool = Field(
        default=False, description="Count every task's state instead of reading the counters."
    )


class ResultsQuery(Document):
    """Input of the status function: results of named tasks, or a page of finished tasks."""

    action: Literal["results"] = "results"
    session_id: SessionId
    task_ids: list[TaskId] | None = Field(default=None, min_length=1, max_length=100)
    next_token: str | None = Field(default=None, max_length=2048)
    limit: int = Field(default=100, ge=1, le=1000)


class ResultsPage(Document):
    """Output of a results query. ``missing`` lists named tasks that are unknown or unfinished."""

    results: list[TaskResult]
    missing: list[TaskId] = Field(default_factory=list)
    next_token: str | None = None


class TaskSummary(Document):
    """A task as a listing shows it: where it is, without its payload or result."""

    task_id: TaskId
    state: TaskState
    attempt: int
    priority: int
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None


class TasksQuery(Document):
    """Input of the status function: a page of a session's tasks, optionally in given states."""

    action: Literal["tasks"] = "tasks"
    session_id: SessionId
    states: list[TaskState] | None = Field(default=None, min_length=1)
    next_token: str | None = Field(default=None, max_length=2048)
    limit: int = Field(default=100, ge=1, le=1000)


class TasksPage(Document):
    """Output of a tasks query; ``next_token`` is None once every task was listed."""

    tasks: list[TaskSummary]
    next_token: str | None = None


class SessionsQuery(Document):
    """Input of the status function: the most recently created sessions, newest first; with a
    ``next_token`` from an earlier page, the ones created before those."""

    action: Literal["sessions"] = "sessions"
    limit: int = Field(default=20, ge=1, le=100)
    next_token: str | None = Field(default=None, max_length=200)


class SessionsList(Document):
    """Output of a sessions query: each session's status from its counters, and the token of
    the next (older) page, None when there is none."""

    sessions: list[SessionStatus]
    next_token: str | None = None


StatusFunctionQuery = Annotated[
    StatusQuery | ResultsQuery | TasksQuery | SessionsQuery, Field(discriminator="action")
]


class StatusFunctionInput(RootModel[StatusFunctionQuery]):
    """What the status function accepts: either query, told apart by its ``action``."""


class CancelRequest(Document):
    """Input of the cancel function: a whole session, or the named tasks of it.

    Cancelling a large session takes several calls: each cancels up to ``limit`` tasks and
    returns a ``next_token`` until none is left. Agents stop starting the session's tasks from
    the first call on.
    """

    session_id: SessionId
    task_ids: list[TaskId] | None = Field(default=None, min_length=1, max_length=1000)
    next_token: str | None = Field(default=None, max_length=2048)
    limit: int = Field(default=1000, ge=1, le=5000)


class CancelReport(Document):
    """What a cancel call did: tasks it moved to CANCELLED, tasks already finished."""

    session_id: SessionId
    cancelled: int
    already_finished: int
    next_token: str | None = None


class DeleteRequest(Document):
    """Delete a session with everything it stored (the delete function)."""

    session_id: SessionId


class DeleteReport(Document):
    """What deleting a session removed: its task and session records, its S3 objects. Not
    ``done`` when the call ran out of time: delete again to go on."""

    session_id: SessionId
    records_deleted: int
    objects_deleted: int
    done: bool = True


class SessionQueueRequest(Document):
    """Input of the session function: create (``open``) or delete (``close``) a session's
    result queue. Clients cannot create, delete or re-configure queues themselves."""

    action: Literal["open", "close"]
    session_id: SessionId


class SessionQueue(Document):
    """Output of the session function: the session's result queue (None once closed)."""

    session_id: SessionId
    result_queue_url: str | None = None


class SessionFlags(Document):
    """What agents read of a session to know whether its tasks may still run."""

    cancelled: bool = False
    #: Some of the session's tasks were cancelled one by one: check a task before running it.
    has_cancelled_tasks: bool = False


class FailureCause(StrEnum):
    """Who saw an attempt fail, which decides what the failing write may expect of the task."""

    #: The agent running it: the handler raised, crashed or ran past its timeout.
    HANDLER = "handler"
    #: The reaper: the attempt's lease expired without a heartbeat (its worker died).
    LEASE_EXPIRED = "lease_expired"
    #: The DLQ sweep: the message was delivered ``max_receive_count`` times with no outcome.
    DEAD_LETTERED = "dead_lettered"


class AttemptFailure(Document):
    """One failed attempt, handed to the retry workflow to decide: retry or FAILED."""

    session_id: SessionId
    task_id: TaskId
    attempt: int = Field(ge=1)
    max_attempts: int = Field(ge=1)
    lease_token: str | None = Field(
        default=None, max_length=64, description="The attempt's lease, if it was leased."
    )
    cause: FailureCause = FailureCause.HANDLER
    error: TaskError


#: Most failures in one retry request: keeps the workflow input far below its 256 KiB limit.
MAX_FAILURES_PER_REQUEST = 200


class RetryRequest(Document):
    """Input of the retry workflow: failed attempts, from one agent or one reaper run."""

    failures: list[AttemptFailure] = Field(min_length=1, max_length=MAX_FAILURES_PER_REQUEST)


class RetryReport(Document):
    """Output of the retry workflow: what became of each failed attempt.

    ``stale`` names failures that changed nothing because the task had moved on (finished,
    cancelled, retried already, or its lease was renewed after all).
    """

    retried: list[TaskId] = Field(default_factory=list)
    failed: list[TaskId] = Field(default_factory=list)
    stale: list[TaskId] = Field(default_factory=list)


class ReaperInput(Document):
    """Input of the reaper function: which sweep to run (expired leases, dead letters, or
    submissions persisted but never dispatched)."""

    sweep: Literal["leases", "dead_letters", "submissions"]


class ReaperReport(Document):
    """Output of the reaper function: the failures it found, in retry-request-sized batches
    (for the submissions sweep: no batches, ``found`` tasks it dispatched).

    ``more`` is true when the run stopped at its limit with work left for the next run.
    """

    batches: list[RetryRequest] = Field(default_factory=list)
    found: int = 0
    more: bool = False


#: Every document published as JSON Schema under docs/schema/.
PUBLISHED_DOCUMENTS: tuple[type[Document], ...] = (
    Submission,
    SubmissionReceipt,
    TaskMessage,
    TaskRecord,
    TaskResult,
    ResultNotice,
    TaskError,
    SessionStatus,
    StatusQuery,
    ResultsQuery,
    ResultsPage,
    TasksQuery,
    TasksPage,
    SessionsQuery,
    SessionsList,
    CancelRequest,
    CancelReport,
    DeleteRequest,
    DeleteReport,
    SessionQueueRequest,
    SessionQueue,
    AttemptFailure,
    RetryRequest,
    RetryReport,
    ReaperInput,
    ReaperReport,
)
