"""Session function: create or delete a session's result queue.

Invoked by the client (lambda:InvokeFunction) with a SessionQueueRequest; returns a
SessionQueue. Clients cannot create, delete or configure queues themselves: this function
creates each result queue encrypted and TLS-only, under this stack's name.
"""

from typing import Any

from htcgrid_core.metrics_catalogue import RESULT_QUEUES_CLOSED, RESULT_QUEUES_OPENED
from htcgrid_core.models import SessionQueueRequest
from htcgrid_core.observability import emit, lambda_entrypoint, logger
from htcgrid_core.resources import get_resources
from htcgrid_core.result_queues import close_queue, open_queue
from htcgrid_core.submissions import parse_document


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_document(SessionQueueRequest, event)
    logger.append_keys(session_id=request.session_id)
    grid = get_resources()
    if request.action == "open":
        # The queue lives in this function's own partition, region and account.
        queue = open_queue(grid, request.session_id, context.invoked_function_arn)
        emit(RESULT_QUEUES_OPENED, 1)
    else:
        queue = close_queue(grid, request.session_id)
        emit(RESULT_QUEUES_CLOSED, 1)
    return queue.model_dump(mode="json")
