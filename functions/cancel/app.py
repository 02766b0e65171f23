"""Cancel function: cancel a session, or some of its tasks.

Invoked by the client (lambda:InvokeFunction) with a CancelRequest; returns a CancelReport.
"""

from typing import Any

from htcgrid_core.cancellation import cancel
from htcgrid_core.counters import SessionCounters
from htcgrid_core.metrics_catalogue import TASKS_CANCELLED
from htcgrid_core.models import CancelRequest
from htcgrid_core.observability import emit, lambda_entrypoint, logger
from htcgrid_core.resources import get_resources
from htcgrid_core.submissions import parse_document


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_document(CancelRequest, event)
    logger.append_keys(session_id=request.session_id)
    grid = get_resources()
    report = cancel(request, grid.table, SessionCounters.from_resources(grid))
    emit(TASKS_CANCELLED, report.cancelled)
    return report.model_dump(mode="json")
