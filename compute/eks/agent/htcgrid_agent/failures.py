"""Failed attempts go to the retry workflow, which alone decides: retry or FAILED.

The agent does not decide retries itself: one decision point (the retry function) applies the
same budget, backoff and bookkeeping to every failure, whether an agent saw it (handler error,
timeout, crash of the handler process) or the reaper did (a dead worker's expired lease).
The call is a synchronous Express execution, so the agent knows the decision is recorded
before it acknowledges the task's message; if the call fails, the message stays and comes back.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from htcgrid_agent.log import logger
from htcgrid_core.models import AttemptFailure, RetryRequest


class FailureReporter:
    """Reports failed attempts to the retry workflow."""

    def __init__(self, stepfunctions: Any, retry_workflow_arn: str) -> None:
        if not retry_workflow_arn:
            raise ValueError(
                "HTCGRID_RETRY_WORKFLOW_ARN is not set: the agent reports failed attempts to the "
                "retry workflow (stack output RetryWorkflowArn)"
            )
        self._client = stepfunctions
        self._arn = retry_workflow_arn

    def report(self, failure: AttemptFailure, trace_header: str | None = None) -> bool:
        """Whether the retry workflow recorded the failure (else the caller keeps the message).
        The workflow runs in ``trace_header``'s trace (the task's), if given."""
        request = RetryRequest(failures=[failure])
        trace = {"traceHeader": trace_header} if trace_header else {}
        try:
            response = self._client.start_sync_execution(
                stateMachineArn=self._arn, input=request.model_dump_json(), **trace
            )
        except (ClientError, BotoCoreError) as error:
            logger.error(
                "retry workflow unreachable",
                extra={"task_id": failure.task_id, "error": str(error)},
            )
            return False
        if response.get("status") != "SUCCEEDED":
            logger.error(
                "retry workflow failed",
                extra={
                    "task_id": failure.task_id,
                    "error": response.get("error"),
                    "cause": response.get("cause"),
                },
            )
            return False
        return True
