"""Submission function: validate a submission and persist its tasks as PENDING.

First step of the submit workflow. A small submission it dispatches too, and the workflow ends
with its receipt; a larger one's output is the dispatch step's input.
"""

from typing import Any

from htcgrid_core.metrics_catalogue import TASKS_DISPATCHED, TASKS_PERSISTED
from htcgrid_core.models import Submission
from htcgrid_core.observability import emit, lambda_entrypoint, logger
from htcgrid_core.resources import get_resources
from htcgrid_core.submissions import accept_submission, parse_document
from htcgrid_core.traces import active_trace_header


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    submission = parse_document(Submission, event)
    logger.append_keys(session_id=submission.session_id)
    accepted = accept_submission(submission, get_resources(), active_trace_header())
    emit(TASKS_PERSISTED, accepted.written)
    if accepted.sent:
        emit(TASKS_DISPATCHED, accepted.sent)
    return accepted.batch.model_dump(mode="json")
