"""Reaper function: find failed attempts nobody reported, for the retry workflow, and tasks
whose submission was never dispatched.

Invoked by the reaper workflow (on its schedule) with a ReaperInput naming the sweep: expired
leases (dead workers), dead letters, or stranded submissions (dispatched here). Returns a
ReaperReport whose batches the workflow hands to the retry workflow.
"""

import time
from typing import Any

from htcgrid_core.metrics_catalogue import LEASES_EXPIRED, TASKS_DEAD_LETTERED, TASKS_REDISPATCHED
from htcgrid_core.models import ReaperInput
from htcgrid_core.observability import emit, lambda_entrypoint
from htcgrid_core.reaper import (
    find_expired_leases,
    redispatch_stranded_submissions,
    sweep_dead_letters,
)
from htcgrid_core.resources import get_resources
from htcgrid_core.submissions import parse_document

#: Each sweep, and the metric of what it found.
SWEEPS = {
    "leases": (find_expired_leases, LEASES_EXPIRED),
    "dead_letters": (sweep_dead_letters, TASKS_DEAD_LETTERED),
    "submissions": (redispatch_stranded_submissions, TASKS_REDISPATCHED),
}


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_document(ReaperInput, event)
    grid = get_resources()
    sweep, metric = SWEEPS[request.sweep]
    report = sweep(grid, time.time(), grid.settings.reaper_batch_limit)
    emit(metric, report.found)
    return report.model_dump(mode="json")
