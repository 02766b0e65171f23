"""The grid as a client sees it: submit through the submit workflow, read through the status
function, stream results from a session's result queue."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, JsonValue

from htcgrid.connection import GridEndpoints
from htcgrid.errors import QueryFailedError, ResultsIncompleteError, SubmissionFailedError
from htcgrid_core.models import (
    CancelReport,
    CancelRequest,
    DeleteReport,
    DeleteRequest,
    ResultsPage,
    ResultsQuery,
    SessionQueue,
    SessionQueueRequest,
    SessionsList,
    SessionsQuery,
    SessionStatus,
    StatusQuery,
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

if TYPE_CHECKING:
    from htcgrid.session import Completed, Session

#: Errors after which resubmitting the same submission (same token) is safe and may succeed.
RETRYABLE_SUBMISSION_ERRORS = frozenset(
    {
        "RetryableError",
        "States.Timeout",
        "States.TaskFailed",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "DynamoDB.ProvisionedThroughputExceededException",
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
    }
)
SUBMIT_ATTEMPTS = 5
#: Error types of a function call after which the same call may succeed: the core's transient
#: error, and a function that ran out of time (Lambda's error type for a timeout).
RETRYABLE_QUERY_ERRORS = frozenset({"RetryableError", "Sandbox.Timedout"})
#: Lambda's answers to an invoke it throttled (botocore retries them first).
THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException"})
QUERY_ATTEMPTS = 5
#: Results ``map`` keeps in memory while they wait for earlier ones (in input order).
ORDERED_WINDOW = 10_000


def _back_off(attempt: int) -> None:
    """Wait before attempt ``attempt + 1``: capped exponential, full jitter."""
    time.sleep(min(10.0, 0.5 * 2**attempt) * random.random())  # noqa: S311 - jitter


def _readable_cause(cause: str) -> str:
    """Step Functions wraps a Lambda error's message in JSON; unwrap it."""
    try:
        decoded = json.loads(cause)
    except (TypeError, ValueError):
        return cause
    if isinstance(decoded, dict) and "errorMessage" in decoded:
        return str(decoded["errorMessage"])
    return cause


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
    """A connection to one htcgrid deployment (or the local grid).

    Every AWS call goes through boto3 clients made with botocore's standard retry mode
    (exponential backoff with jitter, ``htcgrid_core.aws.RETRY_CONFIG``), from whatever
    credential source the boto3 session has.
    """

    def __init__(self, endpoints: GridEndpoints) -> None:
        self.endpoints = endpoints
        self.settings = endpoints.settings
        self.payloads = PayloadStore(
            endpoints.client("s3"),
            self.settings.bucket_name,
            self.settings.inline_threshold_bytes,
            self.settings.max_payload_bytes,
        )

    @classmethod
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
    def local(cls, state_file: Path | None = None) -> Grid:
        """Connect to the local grid started by ``htcgrid-local up``."""
        return cls(GridEndpoints.from_local_state(state_file))

    # -- sessions -----------------------------------------------------------------------------

    def open_session(
        self, session_id: str | None = None, *, stream_results: bool = True
    ) -> Session:
        """Start a session. With ``stream_results`` (the default) it gets a result queue and
        ``Session.results()`` yields results as agents finish them."""
        from htcgrid.session import Session

        return Session.open(self, session_id or uuid.uuid4().hex[:20], stream_results)

    def open_result_queue(self, session_id: str) -> str:
        """Have the session function create a session's result queue; its URL."""
        request = SessionQueueRequest(action="open", session_id=session_id)
        queue = SessionQueue.model_validate(self._query(request, "SessionFunctionName"))
        if queue.result_queue_url is None:  # pragma: no cover - the function always names it
            raise QueryFailedError(f"the session function opened no queue for {session_id}")
        return queue.result_queue_url

    def close_result_queue(self, session_id: str) -> None:
        """Have the session function delete a session's result queue (gone already is fine)."""
        self._query(
            SessionQueueRequest(action="close", session_id=session_id), "SessionFunctionName"
        )

    # -- the submit workflow -------------------------------------------------------------------

    def submit_batch(self, submission: Submission) -> SubmissionReceipt:
        """Run the submit workflow synchronously for one batch. Retries with the same token are
        idempotent, so transient failures are retried here with backoff."""
        stepfunctions = self.endpoints.client("stepfunctions")
        body = submission.model_dump_json(exclude_none=True)
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            response = stepfunctions.start_sync_execution(
                stateMachineArn=self.endpoints.output("SubmitWorkflowArn"),
                name=f"{submission.submission_token[:60]}-{uuid.uuid4().hex[:12]}",
                input=body,
            )
            if response["status"] == "SUCCEEDED":
                return SubmissionReceipt.model_validate_json(response["output"])
            error = response.get("error", response["status"])
            cause = _readable_cause(response.get("cause", ""))
            retryable = response["status"] == "TIMED_OUT" or error in RETRYABLE_SUBMISSION_ERRORS
            if not retryable or attempt == SUBMIT_ATTEMPTS:
                raise SubmissionFailedError(error, cause)
            _back_off(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the status function ------------------------------------------------------------------

    def _query(self, query: BaseModel, function: str = "StatusFunctionName") -> dict[str, Any]:
        """Call one of the grid's functions. Every call is safe to repeat (reads, and writes
        that resume or find their work done), so a transient failure is retried with backoff:
        the function's own ``RetryableError`` or timeout, or throttling that outlasted
        botocore's retries."""
        body = query.model_dump_json(exclude_none=True).encode()
        for attempt in range(1, QUERY_ATTEMPTS + 1):
            try:
                payload, error_type = self._invoke(self.endpoints.output(function), body)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in THROTTLED or attempt == QUERY_ATTEMPTS:
                    raise
                _back_off(attempt)
                continue
            if error_type is None:
                return payload
            if error_type not in RETRYABLE_QUERY_ERRORS or attempt == QUERY_ATTEMPTS:
                raise QueryFailedError(f"{error_type}: {payload.get('errorMessage', payload)}")
            _back_off(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _invoke(self, function_name: str, body: bytes) -> tuple[dict[str, Any], str | None]:
        """Invoke a function synchronously: its response, and its error type if it failed."""
        response = self.endpoints.client("lambda").invoke(FunctionName=function_name, Payload=body)
        payload: dict[str, Any] = json.loads(response["Payload"].read())
        if not response.get("FunctionError"):
            return payload, None
        return payload, str(payload.get("errorType", response["FunctionError"]))

    def status(self, session_id: str, *, exact: bool = False) -> SessionStatus:
        """How many of a session's tasks are in each state.

        By default from the session's counters: a few item reads whatever its size, with
        PENDING counting every unfinished task, and possibly a little behind if a process died
        between a task's write and its counter write (``status.exact`` is False). ``exact``
        reads every task's state instead (slower: the whole session is read).
        """
        query = StatusQuery(session_id=session_id, exact=exact)
        return SessionStatus.model_validate(self._query(query))

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
        return TasksPage.model_validate(self._query(query))

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

    def sessions(self, limit: int = 20) -> list[SessionStatus]:
        """The most recently created sessions, newest first, with their counts (counters)."""
        return self.sessions_page(limit).sessions

    def sessions_page(self, limit: int = 20, next_token: str | None = None) -> SessionsList:
        """A page of sessions, newest first; pass its ``next_token`` for the older ones (None:
        no more)."""
        query = SessionsQuery(limit=limit, next_token=next_token)
        return SessionsList.model_validate(self._query(query))

    def delete_session(
        self, session_id: str, progress: DeleteProgress | None = None
    ) -> DeleteReport:
        """Delete a session's task records, submission records, counters and S3 objects,
        through the delete function (clients have no write access to the table): a call per
        time slice of its work until it is done. Its unfinished tasks never run: the session is
        flagged cancelled first. ``progress(records, objects)`` is called after each call."""
        records = 0
        while True:
            report = DeleteReport.model_validate(
                self._query(DeleteRequest(session_id=session_id), "DeleteFunctionName")
            )
            records += report.records_deleted
            if progress is not None:
                progress(records, report.objects_deleted)
            if report.done:
                return report.model_copy(update={"records_deleted": records})

    def queue_depths(self) -> list[QueueDepth]:
        """Each priority level's queue depth, highest level first."""
        sqs = self.endpoints.client("sqs")
        attributes = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]

        def read(name: str) -> dict[str, str]:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
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

    def fetch_results(self, session_id: str, task_ids: list[str]) -> ResultsPage:
        """Results of the named tasks (100 at most); unfinished ones are listed as missing."""
        query = ResultsQuery(session_id=session_id, task_ids=task_ids)
        return ResultsPage.model_validate(self._query(query))

    def cancel(self, session_id: str, task_ids: list[str] | None = None) -> CancelReport:
        """Cancel the named tasks (1,000 at most), or every unfinished task of the session.
        Pending tasks never start; running ones are stopped by their agent within a heartbeat;
        a task that finished first keeps its outcome."""
        cancelled = already_finished = 0
        token: str | None = None
        while True:
            request = CancelRequest(session_id=session_id, task_ids=task_ids, next_token=token)
            report = CancelReport.model_validate(self._query(request, "CancelFunctionName"))
            cancelled += report.cancelled
            already_finished += report.already_finished
            token = report.next_token
            if token is None:
                return CancelReport(
                    session_id=session_id, cancelled=cancelled, already_finished=already_finished
                )

    def iter_results(self, session_id: str, page_size: int = 500) -> Iterator[TaskResult]:
        """Every finished task of a session, page by page."""
        token: str | None = None
        while True:
            query = ResultsQuery(session_id=session_id, next_token=token, limit=page_size)
            page = ResultsPage.model_validate(self._query(query))
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
