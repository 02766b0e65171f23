"""Dispatch function: enqueue a persisted submission's tasks on their priority queues.

Second step of the submit workflow. Its output is what the client's submit call returns.
"""

from typing import Any

from htcgrid_core.metrics_catalogue import TASKS_DISPATCHED
from htcgrid_core.models import DispatchBatch
from htcgrid_core.observability import emit, lambda_entrypoint, logger
from htcgrid_core.resources import get_resources
from htcgrid_core.submissions import dispatch_submission, parse_document
from htcgrid_core.traces import active_trace_header


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = parse_document(DispatchBatch, event)
    logger.append_keys(session_id=batch.session_id)
    receipt = dispatch_submission(batch, get_resources(), active_trace_header())
    emit(TASKS_DISPATCHED, len(batch.messages))
    return receipt.model_dump(mode="json")
