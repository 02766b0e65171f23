"""Retry function: decide every failed attempt (retry with backoff, or FAILED).

Invoked by the retry workflow with a RetryRequest (from an agent, or from the reaper's
workflow); returns a RetryReport.
"""

import time
from typing import Any

from htcgrid_core.metrics_catalogue import ATTEMPTS_RETRIED, TASKS_FAILED
from htcgrid_core.models import RetryRequest
from htcgrid_core.observability import emit, lambda_entrypoint
from htcgrid_core.resources import get_resources
from htcgrid_core.retries import decide
from htcgrid_core.submissions import parse_document


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_document(RetryRequest, event)
    report = decide(request, get_resources(), time.time())
    emit(ATTEMPTS_RETRIED, len(report.retried))
    emit(TASKS_FAILED, len(report.failed))
    return report.model_dump(mode="json")
