"""Anti-starvation: with a weight, low-priority work progresses under a high-priority backlog."""

from __future__ import annotations

from pathlib import Path

from htcgrid_agent.config import AgentConfig
from htcgrid_agent.worker import Worker
from htcgrid_core.resources import GridResources
from tests.integration.builders import submit

HANDLER = "htcgrid_examples.scripted:handler"


def test_low_priority_tasks_progress_under_a_high_priority_backlog_with_a_weight(
    grid: GridResources, session_id: str, tmp_path: Path
) -> None:
    # GIVEN a few low-priority tasks, then a larger urgent backlog submitted after them
    order = tmp_path / "order"
    low = submit(grid, session_id, [{"touch": str(order)}] * 3, priority=0).task_ids
    high = submit(grid, session_id, [{"touch": str(order)}] * 12, priority=2).task_ids
    # WHEN one single-slot agent with a starvation weight of 3 works through them (without
    # prefetch, so that a fetch is one task: the weight counts fetches)
    config = AgentConfig(handler=HANDLER, slots=1, prefetch=0, burst=True, starvation_weight=3)
    Worker(config, grid).work()
    # THEN low-priority tasks ran while urgent ones were still waiting: one within the first
    # weight + 1 starts, and all of them before the backlog was done
    started = [line.split()[0] for line in order.read_text().splitlines()]
    assert set(started) == set(low) | set(high)
    low_positions = [started.index(task_id) for task_id in low]
    assert min(low_positions) <= 3
    assert max(low_positions) < max(started.index(task_id) for task_id in high)
