"""Reaper function: find failed attempts nobody reported, for the retry workflow.

Invoked by the reaper workflow (on its schedule) with a ReaperInput naming the sweep: expired
leases (dead workers) or dead letters. Returns a ReaperReport whose batches the workflow hands
to the retry workflow.
"""

import time
from typing import Any

from htcgrid_core.models import ReaperInput
from htcgrid_core.observability import lambda_entrypoint, metrics
from htcgrid_core.reaper import find_expired_leases, sweep_dead_letters
from htcgrid_core.resources import get_resources
from htcgrid_core.submissions import parse_document


@lambda_entrypoint
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_document(ReaperInput, event)
    grid = get_resources()
    sweep = find_expired_leases if request.sweep == "leases" else sweep_dead_letters
    report = sweep(grid, time.time(), grid.settings.reaper_batch_limit)
    name = "LeasesExpired" if request.sweep == "leases" else "TasksDeadLettered"
    metrics.add_metric(name=name, unit="Count", value=report.found)
    return report.model_dump(mode="json")
