"""Priorities: agents take work from the highest-priority queue first."""

from __future__ import annotations

from pathlib import Path

from htcgrid_agent.config import AgentConfig
from htcgrid_agent.worker import Worker
from htcgrid_core.resources import GridResources
from tests.integration.builders import submit

HANDLER = "htcgrid_examples.scripted:handler"


def test_high_priority_tasks_submitted_after_a_backlog_start_first(
    grid: GridResources, session_id: str, tmp_path: Path
) -> None:
    # GIVEN a backlog of low-priority tasks, then a few urgent ones submitted after it
    order = tmp_path / "order"
    backlog = submit(grid, session_id, [{"touch": str(order)}] * 12, priority=0).task_ids
    urgent = submit(grid, session_id, [{"touch": str(order)}] * 4, priority=2).task_ids
    # WHEN one agent with one slot works through them
    Worker(AgentConfig(handler=HANDLER, slots=1, burst=True), grid).work()
    # THEN the urgent tasks ran before any of the backlog, and everything ran
    started = [line.split()[0] for line in order.read_text().splitlines()]
    assert set(started[:4]) == set(urgent)
    assert set(started[4:]) == set(backlog)
