"""Retry function: decide every failed attempt (retry with backoff, or FAILED).

Invoked by the retry workflow with a RetryRequest (from an agent, or from the reaper's
workflow); returns a RetryReport.
"""

import time
from typing import Any

from htcgrid_core.models import RetryRequest
from htcgrid_core.observability import lambda_entrypoint, metrics
from htcgrid_core.resources import get_resources
from htcgrid_core.retries import decide
from htcgrid_core.submissions import parse_document


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_document(RetryRequest, event)
    report = decide(request, get_resources(), time.time())
    metrics.add_metric(name="AttemptsRetried", unit="Count", value=len(report.retried))
    metrics.add_metric(name="TasksFailed", unit="Count", value=len(report.failed))
    return report.model_dump(mode="json")
