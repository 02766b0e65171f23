"""Status function: a session's counts per state, or results of its finished tasks.

Invoked by the client (lambda:InvokeFunction) with a StatusQuery or a ResultsQuery.
"""

from typing import Any

from htcgrid_core.models import StatusFunctionInput, StatusQuery
from htcgrid_core.observability import lambda_entrypoint, logger, metrics
from htcgrid_core.resources import get_resources
from htcgrid_core.results import fetch_results, session_status
from htcgrid_core.submissions import parse_document


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    query = parse_document(StatusFunctionInput, event).root
    logger.append_keys(session_id=query.session_id)
    metrics.add_metric(name=f"{query.action.capitalize()}Queries", unit="Count", value=1)
    table = get_resources().table
    if isinstance(query, StatusQuery):
        return session_status(query.session_id, table).model_dump(mode="json")
    return fetch_results(query, table).model_dump(mode="json")
