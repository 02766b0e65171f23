"""The client's calls to the grid, in one place: its boto3 clients, the submit workflow, the
grid's functions (status, session, cancel, delete) and a session's result queue.

Every AWS error is mapped to the client's own (``errors.calling``), naming the IAM action and
the resource. ``Grid`` and ``Session`` both call through a ``Transport``; it imports neither.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from htcgrid.connection import GridEndpoints
from htcgrid.errors import (
    GridClosedError,
    NotFoundError,
    QueryFailedError,
    SubmissionFailedError,
    ThrottledError,
    calling,
    raises_grid_errors,
)
from htcgrid_core import aws
from htcgrid_core.models import (
    CancelReport,
    CancelRequest,
    ResultsPage,
    ResultsQuery,
    SessionQueue,
    SessionQueueRequest,
    SessionStatus,
    StatusQuery,
    Submission,
    SubmissionReceipt,
)
from htcgrid_core.payloads import PayloadStore
from htcgrid_core.queues import Queues
from htcgrid_core.settings import GridSettings

DocumentT = TypeVar("DocumentT", bound=BaseModel)

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
QUERY_ATTEMPTS = 5
#: The client's own back-off between those attempts (``aws.back_off``): each attempt is a
#: workflow execution or a function call that botocore has already retried.
RETRY_BASE_S = 0.5
RETRY_CAP_S = 10.0


def _readable_cause(cause: str) -> str:
    """Step Functions wraps a Lambda error's message in JSON; unwrap it."""
    try:
        decoded = json.loads(cause)
    except (TypeError, ValueError):
        return cause
    if isinstance(decoded, dict) and "errorMessage" in decoded:
        return str(decoded["errorMessage"])
    return cause


class Transport:
    """One grid's boto3 clients (botocore's standard retry mode, ``aws.RETRY_CONFIG``) and the
    calls made through them. Closing it closes the clients; a call after that raises
    ``GridClosedError`` before reaching AWS."""

    @raises_grid_errors
    def __init__(self, endpoints: GridEndpoints) -> None:
        self.endpoints = endpoints
        #: What the stack's outputs and the caller's arguments say (``GridEndpoints``).
        self.settings: GridSettings = endpoints.settings
        self._payloads = PayloadStore(
            endpoints.client("s3"),
            self.settings.bucket_name,
            self.settings.inline_threshold_bytes,
            self.settings.max_payload_bytes,
        )
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def payloads(self) -> PayloadStore:
        """Where payloads and results above the inline threshold are stored (S3)."""
        if self._closed:
            raise GridClosedError("this grid was closed: connect again for a new one")
        return self._payloads

    def client(self, service: str) -> Any:
        """The shared boto3 client for ``service`` at the grid's endpoint."""
        if self._closed:
            raise GridClosedError("this grid was closed: connect again for a new one")
        return self.endpoints.client(service)

    def close(self) -> None:
        """Close the clients (their connection pools). Closing twice is fine."""
        if not self._closed:
            self._closed = True
            self.endpoints.close()

    # -- the submit workflow -------------------------------------------------------------------

    @raises_grid_errors
    def submit_batch(self, submission: Submission) -> SubmissionReceipt:
        """Run the submit workflow synchronously for one batch. Retries with the same token are
        idempotent, so transient failures are retried here with backoff."""
        stepfunctions = self.client("stepfunctions")
        workflow = self.endpoints.output("SubmitWorkflowArn")
        body = submission.model_dump_json(exclude_none=True)
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            with calling("states:StartSyncExecution", workflow):
                response = stepfunctions.start_sync_execution(
                    stateMachineArn=workflow,
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
            aws.back_off(attempt, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the grid's functions -----------------------------------------------------------------

    @raises_grid_errors
    def query(
        self, query: BaseModel, answer: type[DocumentT], function: str = "StatusFunctionName"
    ) -> DocumentT:
        """Call one of the grid's functions (``function`` names its stack output) and read its
        answer as an ``answer``. Every call is safe to repeat (reads, and writes that resume or
        find their work done), so a transient failure is retried with backoff: the function's
        own ``RetryableError`` or timeout, or throttling that outlasted botocore's retries."""
        body = query.model_dump_json(exclude_none=True).encode()
        name = self.endpoints.output(function)
        for attempt in range(1, QUERY_ATTEMPTS + 1):
            try:
                with calling("lambda:InvokeFunction", name):
                    payload, error_type = self._invoke(name, body)
            except ThrottledError:
                if attempt == QUERY_ATTEMPTS:
                    raise
                aws.back_off(attempt, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S)
                continue
            if error_type is None:
                try:
                    return answer.model_validate(payload)
                except ValidationError as error:
                    raise QueryFailedError(
                        "UnexpectedAnswer",
                        f"{name} answered with no {answer.__name__} (client and grid of "
                        f"different versions?): {error.errors(include_url=False)[0]['msg']}",
                    ) from error
            if error_type not in RETRYABLE_QUERY_ERRORS or attempt == QUERY_ATTEMPTS:
                raise QueryFailedError(error_type, str(payload.get("errorMessage", payload)))
            aws.back_off(attempt, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S)
        raise AssertionError("unreachable")  # pragma: no cover

    def _invoke(self, function_name: str, body: bytes) -> tuple[dict[str, Any], str | None]:
        """Invoke a function synchronously: its response, and its error type if it failed."""
        response = self.client("lambda").invoke(FunctionName=function_name, Payload=body)
        payload: dict[str, Any] = json.loads(response["Payload"].read())
        if not response.get("FunctionError"):
            return payload, None
        return payload, str(payload.get("errorType", response["FunctionError"]))

    @raises_grid_errors
    def status(self, session_id: str, *, exact: bool = False) -> SessionStatus:
        """How many of a session's tasks are in each state (see ``Grid.status``)."""
        return self.query(StatusQuery(session_id=session_id, exact=exact), SessionStatus)

    @raises_grid_errors
    def fetch_results(self, session_id: str, task_ids: list[str]) -> ResultsPage:
        """Results of the named tasks (100 at most); unfinished ones are listed as missing."""
        return self.query(ResultsQuery(session_id=session_id, task_ids=task_ids), ResultsPage)

    @raises_grid_errors
    def cancel(self, session_id: str, task_ids: list[str] | None = None) -> CancelReport:
        """Cancel the named tasks, or every unfinished task of the session (see
        ``Grid.cancel``): a call of the cancel function per page of its work."""
        cancelled = already_finished = 0
        token: str | None = None
        while True:
            request = CancelRequest(session_id=session_id, task_ids=task_ids, next_token=token)
            report = self.query(request, CancelReport, "CancelFunctionName")
            cancelled += report.cancelled
            already_finished += report.already_finished
            token = report.next_token
            if token is None:
                return CancelReport(
                    session_id=session_id, cancelled=cancelled, already_finished=already_finished
                )

    # -- a session's result queue ---------------------------------------------------------------

    @raises_grid_errors
    def open_result_queue(self, session_id: str) -> str:
        """Have the session function create a session's result queue; its URL."""
        request = SessionQueueRequest(action="open", session_id=session_id)
        queue = self.query(request, SessionQueue, "SessionFunctionName")
        if queue.result_queue_url is None:  # pragma: no cover - the function always names it
            raise QueryFailedError(
                "UnexpectedAnswer", f"the session function opened no queue for {session_id}"
            )
        return queue.result_queue_url

    @raises_grid_errors
    def close_result_queue(self, session_id: str) -> None:
        """Have the session function delete a session's result queue (gone already is fine)."""
        request = SessionQueueRequest(action="close", session_id=session_id)
        self.query(request, SessionQueue, "SessionFunctionName")

    @raises_grid_errors
    def receive_notices(self, queue_url: str, wait_s: int) -> list[dict[str, Any]] | None:
        """One long poll of a result queue: its messages (10 at most), or None if the queue is
        gone (deleted under the session: no notice can come any more)."""
        sqs = self.client("sqs")
        try:
            with calling("sqs:ReceiveMessage", queue_url):
                response = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
                )
        except NotFoundError:
            return None
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    @raises_grid_errors
    def delete_notices(self, queue_url: str, receipt_handles: Sequence[str]) -> None:
        """Acknowledge received notices (entries SQS fails are resent, ``Queues.delete``). A
        queue deleted meanwhile took them with it."""
        queues = Queues(
            self.client("sqs"), self.settings.queue_prefix, self.settings.priority_levels
        )
        try:
            with calling("sqs:DeleteMessage", queue_url):
                queues.delete(queue_url, receipt_handles)
        except NotFoundError:
            return
