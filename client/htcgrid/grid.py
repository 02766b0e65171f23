"""The grid as a client sees it: connect to it, open sessions, read their status, tasks and
results, cancel and delete them. The calls themselves are the transport's (``_transport``),
which the sessions opened here share."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import boto3
from pydantic import JsonValue

from htcgrid._transport import Transport
from htcgrid.connection import GridEndpoints
from htcgrid.errors import ResultsIncompleteError, calling, raises_grid_errors
from htcgrid.session import Completed, Session
from htcgrid_core.models import (
    CancelReport,
    DeleteReport,
    DeleteRequest,
    ResultsPage,
    ResultsQuery,
    SessionsList,
    SessionsQuery,
    SessionStatus,
    Submission,
    SubmissionReceipt,
    TaskResult,
    TasksPage,
    TasksQuery,
    TaskState,
    TaskSummary,
)
from htcgrid_core.payloads import PayloadStore
from htcgrid_core.sessions import DeleteProgress
from htcgrid_core.settings import GridSettings

#: Results ``map`` keeps in memory while they wait for earlier ones (in input order).
ORDERED_WINDOW = 10_000


@dataclass(frozen=True)
class QueueDepth:
    """One priority level's task queue as SQS reports it (approximate, a few seconds old)."""

    priority: int
    #: Messages waiting to be received.
    waiting: int
    #: Messages received by agents and not yet acknowledged (running or buffered).
    in_flight: int
    #: Retries waiting out their backoff.
    delayed: int
    #: Messages in the level's dead-letter queue.
    dead_letters: int


class Grid:
    """A connection to one htcgrid deployment (or the local grid). Use it as a context manager
    (or call ``close()``) to close its clients when done; sessions opened from it have their
    own ``with`` block, which removes their result queue.

    Every AWS call goes through boto3 clients made with botocore's standard retry mode
    (exponential backoff with jitter, ``htcgrid_core.aws.RETRY_CONFIG``), from whatever
    credential source the boto3 session has. Every error it raises is a ``GridError``.
    """

    def __init__(self, endpoints: GridEndpoints | Transport) -> None:
        """A grid at ``endpoints`` (its clients are made from them), or over a ``Transport``
        already made (a subclass whose calls are answered in-process, say)."""
        self._transport = endpoints if isinstance(endpoints, Transport) else Transport(endpoints)
        self.endpoints = self._transport.endpoints

    @property
    def transport(self) -> Transport:
        """The calls to the grid's workflows, functions and queues, which sessions share."""
        return self._transport

    @property
    def settings(self) -> GridSettings:
        """The grid's resources and limits, as its stack outputs give them."""
        return self._transport.settings

    @property
    def payloads(self) -> PayloadStore:
        """Where payloads and results above the inline threshold are stored (S3)."""
        return self._transport.payloads

    @classmethod
    @raises_grid_errors
    def connect(
        cls,
        stack_name: str = "htcgrid",
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        boto_session: boto3.session.Session | None = None,
    ) -> Grid:
        """Connect to a deployed stack by name, with boto3's usual credential chain (or the
        given ``boto_session``: a profile, assumed-role credentials...)."""
        return cls(
            GridEndpoints.from_stack(
                stack_name, region=region, endpoint_url=endpoint_url, boto_session=boto_session
            )
        )

    @classmethod
    @raises_grid_errors
    def from_outputs(
        cls,
        outputs: dict[str, str],
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        boto_session: boto3.session.Session | None = None,
    ) -> Grid:
        """Connect to explicitly named resources: a dict of the stack's outputs
        (``TaskTableName``, ``DataBucketName``, ``QueuePrefix``, ``PriorityLevels``,
        ``SubmitWorkflowArn``, ``StatusFunctionName``, ``SessionFunctionName``,
        ``InlinePayloadThresholdBytes``...), for
        callers without ``cloudformation:DescribeStacks``."""
        return cls(
            GridEndpoints(
                outputs, endpoint_url=endpoint_url, region=region, boto_session=boto_session
            )
        )

    @classmethod
    @raises_grid_errors
    def local(cls, state_file: Path | None = None) -> Grid:
        """Connect to the local grid started by ``htcgrid-local up``."""
        return cls(GridEndpoints.from_local_state(state_file))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the grid's clients (and their connections). A call on the grid, or on a
        session opened from it, raises ``GridClosedError`` after this. Closing twice is fine."""
        self._transport.close()

    # -- sessions -----------------------------------------------------------------------------

    @raises_grid_errors
    def open_session(
        self, session_id: str | None = None, *, stream_results: bool = True
    ) -> Session:
        """Start a session. With ``stream_results`` (the default) it gets a result queue and
        ``Session.results()`` yields results as agents finish them."""
        return Session.open(self._transport, session_id or uuid.uuid4().hex[:20], stream_results)

    @raises_grid_errors
    def submit_batch(self, submission: Submission) -> SubmissionReceipt:
        """Run the submit workflow for one ``Submission`` document as it is (``Session.submit``
        makes them from payloads); retried with backoff, as resubmitting a token is safe."""
        return self._transport.submit_batch(submission)

    # -- the status function ------------------------------------------------------------------

    @raises_grid_errors
    def status(self, session_id: str, *, exact: bool = False) -> SessionStatus:
        """How many of a session's tasks are in each state.

        By default from the session's counters: a few item reads whatever its size, with
        PENDING counting every unfinished task, and possibly a little behind if a process died
        between a task's write and its counter write (``status.exact`` is False). ``exact``
        reads every task's state instead (slower: the whole session is read).
        """
        return self._transport.status(session_id, exact=exact)

    @raises_grid_errors
    def tasks_page(
        self,
        session_id: str,
        states: Sequence[TaskState] | None = None,
        *,
        next_token: str | None = None,
        limit: int = 100,
    ) -> TasksPage:
        """One page of a session's tasks (in ``states``, if given), without payloads or
        results; pass its ``next_token`` to get the next page (None: no more)."""
        query = TasksQuery(
            session_id=session_id,
            states=list(states) if states else None,
            next_token=next_token,
            limit=limit,
        )
        return self._transport.query(query, TasksPage)

    @raises_grid_errors
    def iter_tasks(
        self, session_id: str, states: Sequence[TaskState] | None = None, page_size: int = 500
    ) -> Iterator[TaskSummary]:
        """Every task of a session (in ``states``, if given), page by page."""
        token: str | None = None
        while True:
            page = self.tasks_page(session_id, states, next_token=token, limit=page_size)
            yield from page.tasks
            token = page.next_token
            if token is None:
                return

    @raises_grid_errors
    def sessions(self, limit: int = 20) -> list[SessionStatus]:
        """The most recently created sessions, newest first, with their counts (counters)."""
        return self.sessions_page(limit).sessions

    @raises_grid_errors
    def sessions_page(self, limit: int = 20, next_token: str | None = None) -> SessionsList:
        """A page of sessions, newest first; pass its ``next_token`` for the older ones (None:
        no more)."""
        query = SessionsQuery(limit=limit, next_token=next_token)
        return self._transport.query(query, SessionsList)

    @raises_grid_errors
    def delete_session(
        self, session_id: str, progress: DeleteProgress | None = None
    ) -> DeleteReport:
        """Delete a session's task records, submission records, counters and S3 objects,
        through the delete function (clients have no write access to the table): a call per
        time slice of its work until it is done. Its unfinished tasks never run: the session is
        flagged cancelled first. ``progress(records, objects)`` is called after each call."""
        request = DeleteRequest(session_id=session_id)
        records = 0
        while True:
            report = self._transport.query(request, DeleteReport, "DeleteFunctionName")
            records += report.records_deleted
            if progress is not None:
                progress(records, report.objects_deleted)
            if report.done:
                return report.model_copy(update={"records_deleted": records})

    @raises_grid_errors
    def queue_depths(self) -> list[QueueDepth]:
        """Each priority level's queue depth, highest level first."""
        sqs = self._transport.client("sqs")
        attributes = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]

        def read(name: str) -> dict[str, str]:
            with calling("sqs:GetQueueUrl", name):
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            with calling("sqs:GetQueueAttributes", url):
                found: dict[str, str] = sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=attributes
                )["Attributes"]
            return found

        depths = []
        for level in range(self.settings.priority_levels - 1, -1, -1):
            queue = read(self.settings.queue_name(level))
            dlq = read(f"{self.settings.queue_name(level)}-dlq")
            depths.append(
                QueueDepth(
                    priority=level,
                    waiting=int(queue.get("ApproximateNumberOfMessages", 0)),
                    in_flight=int(queue.get("ApproximateNumberOfMessagesNotVisible", 0)),
                    delayed=int(queue.get("ApproximateNumberOfMessagesDelayed", 0)),
                    dead_letters=int(dlq.get("ApproximateNumberOfMessages", 0)),
                )
            )
        return depths

    # -- conveniences -----------------------------------------------------------------------------

    @raises_grid_errors
    def map(
        self,
        payloads: Iterable[JsonValue],
        *,
        ordered: bool = True,
        priority: int | None = None,
        timeout_s: int | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        on_submitted: Callable[[Session], None] | None = None,
    ) -> Iterator[Completed]:
        """Run one task per payload in a session of its own and yield their results: in input
        order (``ordered``, the default: a result waits for those before it) or as they
        complete. The session's result queue is removed when the iterator finishes or is
        closed. ``timeout`` bounds the whole wait (``ResultsTimeoutError``).

        In input order, at most ``ORDERED_WINDOW`` results wait in memory for the ones before
        them; one further ahead is read back from the grid when its turn comes."""
        with self.open_session() as session:
            task_ids = session.submit(
                payloads, priority=priority, timeout_s=timeout_s, max_attempts=max_attempts
            )
            if on_submitted is not None:
                on_submitted(session)
            if not ordered:
                yield from session.results(timeout)
                return
            yield from _in_input_order(session, task_ids, timeout)

    @raises_grid_errors
    def fetch_results(self, session_id: str, task_ids: list[str]) -> ResultsPage:
        """Results of the named tasks (100 at most); unfinished ones are listed as missing."""
        return self._transport.fetch_results(session_id, task_ids)

    @raises_grid_errors
    def value_of(self, result: TaskResult) -> JsonValue:
        """A finished task's result value, read from S3 if it was stored there (checked against
        its recorded size and SHA-256). None for a task that has none (failed, cancelled)."""
        if result.result is None:
            return None
        return self._transport.payloads.decode(result.result)

    @raises_grid_errors
    def cancel(self, session_id: str, task_ids: list[str] | None = None) -> CancelReport:
        """Cancel the named tasks (1,000 at most), or every unfinished task of the session.
        Pending tasks never start; running ones are stopped by their agent within a heartbeat;
        a task that finished first keeps its outcome."""
        return self._transport.cancel(session_id, task_ids)

    @raises_grid_errors
    def iter_results(self, session_id: str, page_size: int = 500) -> Iterator[TaskResult]:
        """Every finished task of a session, page by page."""
        token: str | None = None
        while True:
            query = ResultsQuery(session_id=session_id, next_token=token, limit=page_size)
            page = self._transport.query(query, ResultsPage)
            yield from page.results
            token = page.next_token
            if token is None:
                return


def _in_input_order(
    session: Session, task_ids: Sequence[str], timeout: float | None
) -> Iterator[Completed]:
    """The session's results in the order of ``task_ids``. A result that arrives more than
    ``ORDERED_WINDOW`` places ahead of the next one due is not kept: a bit marks it finished,
    and it is read back from the grid when its turn comes, so memory stays bounded when an
    early task is slow."""
    total = len(task_ids)
    waiting: dict[int, Completed] = {}
    parked = bytearray((total + 7) // 8)

    def is_parked(index: int) -> bool:
        return index < total and bool(parked[index >> 3] & (1 << (index & 7)))

    next_index = 0
    for done in session.results(timeout):
        position = session.position_of(done.task_id)
        if position is None:  # pragma: no cover - results() yields only tasks submitted here
            continue
        if position - next_index < ORDERED_WINDOW:
            waiting[position] = done
        else:
            parked[position >> 3] |= 1 << (position & 7)
        while next_index in waiting or is_parked(next_index):
            if next_index in waiting:
                yield waiting.pop(next_index)
                next_index += 1
                continue
            run = next_index
            while is_parked(run) and run - next_index < 100:
                run += 1
            for read in session.read_back(list(task_ids[next_index:run])):
                yield read
                next_index += 1
    if next_index < total:
        raise ResultsIncompleteError(
            f"no result for task {next_index} ({task_ids[next_index]}) of "
            f"{total}: the results after it were not yielded"
        )
