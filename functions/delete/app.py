"""Delete function: delete a session with everything it stored.

Invoked by the client (lambda:InvokeFunction) with a DeleteRequest; returns a DeleteReport.
A large session takes several calls: each deletes for at most ``DELETE_SLICE_S`` (well inside
the client's read timeout, so botocore never re-sends a call still running) and says whether
it is done. Clients hold no write access to the table or the bucket: this function does it.
"""

import time
from typing import Any

from htcgrid_core import aws
from htcgrid_core.metrics_catalogue import RECORDS_DELETED
from htcgrid_core.models import DeleteRequest
from htcgrid_core.observability import emit, lambda_entrypoint, logger
from htcgrid_core.resources import get_resources
from htcgrid_core.sessions import delete_session
from htcgrid_core.submissions import parse_document

#: Seconds of deleting per call.
DELETE_SLICE_S = 20.0


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_document(DeleteRequest, event)
    logger.append_keys(session_id=request.session_id)
    grid = get_resources()
    settings = grid.settings
    report = delete_session(
        grid.table,
        aws.s3(settings.endpoint_url, settings.region),
        settings.bucket_name,
        request.session_id,
        deadline=time.monotonic() + DELETE_SLICE_S,
    )
    emit(RECORDS_DELETED, report.records_deleted)
    return report.model_dump(mode="json")
