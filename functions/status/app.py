"""Status function: a session's counts per state, results of its finished tasks, a page of its
tasks, or the newest sessions.

Invoked by the client (lambda:InvokeFunction) with a StatusQuery, ResultsQuery, TasksQuery or
SessionsQuery.
"""

from typing import Any

from htcgrid_core.counters import SessionCounters
from htcgrid_core.metrics_catalogue import STATUS_QUERIES
from htcgrid_core.models import SessionsQuery, StatusFunctionInput, StatusQuery, TasksQuery
from htcgrid_core.observability import emit, lambda_entrypoint, logger
from htcgrid_core.resources import get_resources
from htcgrid_core.results import fetch_results
from htcgrid_core.sessions import list_sessions, list_tasks, status_of
from htcgrid_core.submissions import parse_document


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    query = parse_document(StatusFunctionInput, event).root
    emit(STATUS_QUERIES[query.action], 1)
    grid = get_resources()
    if isinstance(query, SessionsQuery):
        counters = SessionCounters.from_resources(grid)
        return list_sessions(query, grid.table, counters).model_dump(mode="json")
    logger.append_keys(session_id=query.session_id)
    if isinstance(query, StatusQuery):
        counters = SessionCounters.from_resources(grid)
        return status_of(query.session_id, grid.table, counters, query.exact).model_dump(
            mode="json"
        )
    if isinstance(query, TasksQuery):
        return list_tasks(query, grid.table).model_dump(mode="json")
    return fetch_results(query, grid.table).model_dump(mode="json")
