"""Submission function: validate a submission and persist its tasks as PENDING.

First step of the submit workflow. Its output is the dispatch step's input.
"""

from typing import Any

from htcgrid_core.metrics_catalogue import TASKS_PERSISTED
from htcgrid_core.models import Submission
from htcgrid_core.observability import emit, lambda_entrypoint, logger
from htcgrid_core.resources import get_resources
from htcgrid_core.submissions import parse_document, persist_submission
from htcgrid_core.traces import active_trace_header


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    submission = parse_document(Submission, event)
    logger.append_keys(session_id=submission.session_id)
    batch = persist_submission(submission, get_resources(), active_trace_header())
    emit(TASKS_PERSISTED, len(batch.messages))
    return batch.model_dump(mode="json")
