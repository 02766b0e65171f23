"""The examples, end to end: one local grid for every example's test, with no agents of its own;
each test starts an agent running its example's handler (``run_agent``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_local.grid import LocalGrid


@pytest.fixture(scope="session")
def examples_grid() -> Iterator[LocalGrid]:
    grid = LocalGrid(agents=0, handler="unused", stack_name="htcgrid-examples")
    grid.start()
    yield grid
    grid.stop()


@pytest.fixture(scope="session")
def examples_client(examples_grid: LocalGrid) -> Grid:
    return Grid(GridEndpoints.for_emulator(dict(examples_grid.outputs), examples_grid.endpoint_url))
