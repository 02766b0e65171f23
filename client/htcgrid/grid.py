"""The grid as a client sees it: submit through the submit workflow, read through the status
function, stream results from a session's result queue."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from htcgrid.connection import GridEndpoints
from htcgrid.errors import QueryFailedError, SubmissionFailedError
from htcgrid_core.models import (
    CancelReport,
    CancelRequest,
    ResultsPage,
    ResultsQuery,
    SessionStatus,
    StatusQuery,
    Submission,
    SubmissionReceipt,
    TaskResult,
)
from htcgrid_core.payloads import PayloadStore
from htcgrid_core.settings import GridSettings

if TYPE_CHECKING:
    from htcgrid.session import Session

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


def _readable_cause(cause: str) -> str:
    """Step Functions wraps a Lambda error's message in JSON; unwrap it."""
    try:
        decoded = json.loads(cause)
    except (TypeError, ValueError):
        return cause
    if isinstance(decoded, dict) and "errorMessage" in decoded:
        return str(decoded["errorMessage"])
    return cause


class Grid:
    """A connection to one htcgrid deployment (or the local grid)."""

    def __init__(self, endpoints: GridEndpoints) -> None:
        self.endpoints = endpoints
        outputs = endpoints.outputs
        self.settings = GridSettings(
            table_name=outputs["TaskTableName"],
            bucket_name=outputs["DataBucketName"],
            queue_prefix=outputs["QueuePrefix"],
            priority_levels=int(outputs["PriorityLevels"]),
            inline_threshold_bytes=int(outputs["InlinePayloadThresholdBytes"]),
            endpoint_url=endpoints.endpoint_url,
            region=endpoints.region,
        )
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
    ) -> Grid:
        """Connect to a deployed stack by name, with boto3's usual credential chain."""
        return cls(GridEndpoints.from_stack(stack_name, region=region, endpoint_url=endpoint_url))

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
            time.sleep(min(10.0, 0.5 * 2**attempt) * random.random())  # noqa: S311 - jitter
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the status function ------------------------------------------------------------------

    def _query(self, query: BaseModel, function: str = "StatusFunctionName") -> dict[str, Any]:
        response = self.endpoints.client("lambda").invoke(
            FunctionName=self.endpoints.output(function),
            Payload=query.model_dump_json(exclude_none=True).encode(),
        )
        payload: dict[str, Any] = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise QueryFailedError(
                f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', payload)}"
            )
        return payload

    def status(self, session_id: str) -> SessionStatus:
        """How many of a session's tasks are in each state."""
        return SessionStatus.model_validate(self._query(StatusQuery(session_id=session_id)))

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
