"""A ``GridPorts`` of fakes: settings, an in-memory task table and in-memory queues."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from htcgrid_core.settings import GridSettings
from tests.fakes.queues import FakeQueues
from tests.fakes.table import FakeTaskTable


@dataclass
class FakeGrid:
    """What the core's logic takes as its grid (``ports.GridPorts``), all in memory."""

    settings: GridSettings
    table: FakeTaskTable = field(default_factory=FakeTaskTable)
    queues: FakeQueues = field(default_factory=FakeQueues)


def fake_grid(**settings: Any) -> FakeGrid:
    """A fake grid with the template's defaults, or the settings given."""
    values: dict[str, Any] = {
        "table_name": "tasks",
        "bucket_name": "data",
        "queue_prefix": "grid",
        "priority_levels": 3,
        "max_receive_count": 5,
        "result_retention_days": 7,
        **settings,
    }
    grid_settings = GridSettings(**values)
    return FakeGrid(
        grid_settings, queues=FakeQueues(grid_settings.queue_prefix, grid_settings.priority_levels)
    )
