"""What the grid's logic needs of its adapters, as Protocols, and the values that cross them.

The retry decision, the reaper's sweeps, redrive, cancellation, submissions and the session
bookkeeping take these, not the boto3-backed adapters: ``table.TaskTable`` (DynamoDB) and
``queues.Queues`` (SQS) implement them, and so do the in-memory fakes in ``tests/fakes``, which
test the decisions without AWS. ``GridResources`` is a ``GridPorts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from htcgrid_core.models import (
    AttemptFailure,
    Data,
    ResultNotice,
    SessionFlags,
    TaskMessage,
    TaskRecord,
    TaskState,
    TaskSummary,
)
from htcgrid_core.queues import ReceivedTask
from htcgrid_core.settings import GridSettings

#: A table key, or the position a paged read resumes from (DynamoDB's attribute-value form:
#: ``paging`` checks and encodes it as an opaque token).
Key = dict[str, Any]


class SubmissionStage(StrEnum):
    """How far a submission got; a retried submission resumes from here."""

    PERSISTING = "PERSISTING"
    PERSISTED = "PERSISTED"
    DISPATCHED = "DISPATCHED"


@dataclass(frozen=True)
class SubmissionRecord:
    """A submission's record (its idempotency record) as read back."""

    session_id: str
    submission_token: str
    #: None for a record that only holds why the grid refused the submission.
    stage: SubmissionStage | None
    task_count: int = 0
    failed_error: str | None = None
    expires_at: int | None = None


@dataclass(frozen=True)
class Completion:
    """An attempt as the agent holding it reports it: what a write finishing it names."""

    session_id: str
    task_id: str
    attempt: int
    lease_token: str | None


@dataclass(frozen=True)
class CounterItem:
    """One item a session's counters are summed from: a counter shard (``finished``), or the
    session record (``submitted``, None if it carries no count, and ``created_at``)."""

    session_id: str
    finished: Mapping[TaskState, int] = field(default_factory=dict)
    submitted: int | None = None
    created_at: float | None = None


class SessionStore(Protocol):
    """A session's own records: submitted count and registry entry, counters, tombstone."""

    def count_submitted(
        self, session_id: str, task_count: int, now: float, expires_at: int | None
    ) -> None: ...

    def newest(
        self, shard: int, limit: int, before: float | None
    ) -> tuple[list[tuple[float, str]], bool]: ...

    def bury(self, session_id: str, now: float, expires_at: int) -> None: ...

    def add_to_counter(
        self, session_id: str, shard: int, deltas: Mapping[TaskState, int], expires_at: int | None
    ) -> None: ...

    def read_counters(self, session_ids: Iterable[str]) -> list[CounterItem]: ...


class TaskStore(Protocol):
    """Task and submission records, every lifecycle transition a conditional write that
    raises ``TransitionRejected`` when the task is not as it expects."""

    @property
    def sessions(self) -> SessionStore: ...

    # submissions
    def begin_submission(
        self, session_id: str, submission_token: str, task_count: int, now: float
    ) -> SubmissionStage | None: ...

    def persist_at_once(
        self,
        session_id: str,
        submission_token: str,
        records: Sequence[TaskRecord],
        now: float,
        dispatch_deadline: float,
        expires_at: int | None,
        content_sha256: str,
    ) -> SubmissionStage | None: ...

    def mark_persisted(
        self,
        session_id: str,
        submission_token: str,
        dispatch_deadline: float,
        expires_at: int | None,
        content_sha256: str | None,
    ) -> bool: ...

    def advance_submission(
        self, session_id: str, submission_token: str, stage: SubmissionStage
    ) -> None: ...

    def record_rejection(
        self,
        session_id: str,
        submission_token: str,
        error: Exception,
        now: float,
        expires_at: int | None,
    ) -> None: ...

    def persisted_content(self, session_id: str, submission_token: str) -> str | None: ...

    def submissions(self, submissions: Sequence[tuple[str, str]]) -> list[SubmissionRecord]: ...

    def stranded_submissions(
        self, shard: int, now: float, limit: int
    ) -> tuple[list[tuple[str, str]], bool]: ...

    def submission_keys(self, session_id: str) -> list[Key]: ...

    def put_new_tasks(self, records: Sequence[TaskRecord]) -> None: ...

    # lifecycle transitions
    def claim(
        self,
        session_id: str,
        task_id: str,
        attempt: int,
        lease_token: str,
        lease_expires_at: float,
        now: float,
    ) -> None: ...

    def release(self, completion: Completion) -> None: ...

    def extend_lease(self, completion: Completion, lease_expires_at: float) -> None: ...

    def record_success(self, completion: Completion, result: Data, now: float) -> None: ...

    def record_failure(
        self, failure: AttemptFailure, target: TaskState, now: float
    ) -> TaskRecord: ...

    def redrive(
        self, session_id: str, task_id: str, attempt: int, max_attempts: int
    ) -> TaskRecord: ...

    def cancel(self, session_id: str, task_id: str, now: float) -> None: ...

    def expired_leases(
        self, shard: int, now: float, start_key: Key | None, limit: int
    ) -> tuple[list[AttemptFailure], Key | None]: ...

    def flag_session(self, session_id: str, now: float, *, whole_session: bool) -> None: ...

    def session_flags(self, session_id: str) -> SessionFlags: ...

    # reads
    def get_tasks(self, tasks: Iterable[tuple[str, str]]) -> dict[tuple[str, str], TaskRecord]: ...

    def get_records(self, session_id: str, task_ids: Iterable[str]) -> dict[str, TaskRecord]: ...

    def count_states(self, session_id: str) -> dict[TaskState, int]: ...

    def page_unfinished(
        self, session_id: str, shard: int, start_key: Key | None, limit: int
    ) -> tuple[list[str], Key | None]: ...

    def page_finished(
        self, session_id: str, shard: int, start_key: Key | None, limit: int
    ) -> tuple[list[TaskRecord], Key | None]: ...

    def page_tasks(
        self,
        session_id: str,
        shard: int,
        start_key: Key | None,
        limit: int,
        states: Sequence[TaskState] | None = None,
    ) -> tuple[list[TaskSummary], Key | None]: ...

    # deleting a session
    def session_keys(
        self, session_id: str, shard: int, start_key: Key | None
    ) -> tuple[list[Key], Key | None]: ...

    def delete_keys(self, item_keys: Sequence[Key]) -> None: ...


class TaskQueues(Protocol):
    """The task queues by priority, their dead-letter queues, and result queues by URL."""

    @property
    def priority_levels(self) -> int: ...

    def task_queue_url(self, priority: int) -> str: ...

    def dead_letter_queue_url(self, priority: int) -> str: ...

    def dispatch(
        self, messages: Sequence[TaskMessage], delay_s: int | Sequence[int] = 0
    ) -> None: ...

    def receive_from(
        self,
        url: str,
        max_messages: int,
        wait_s: int = 0,
        visibility_timeout_s: int | None = None,
    ) -> list[ReceivedTask]: ...

    def make_visible(self, queue_url: str, receipt_handles: Sequence[str]) -> None: ...

    def delete(self, queue_url: str, receipt_handles: Sequence[str]) -> None: ...

    def depth(self, url: str) -> tuple[int, int]: ...

    def notify(self, queue_url: str, notices: Sequence[ResultNotice]) -> None: ...


class GridPorts(Protocol):
    """Settings and the adapters the grid's logic works through."""

    @property
    def settings(self) -> GridSettings: ...

    @property
    def table(self) -> TaskStore: ...

    @property
    def queues(self) -> TaskQueues: ...
