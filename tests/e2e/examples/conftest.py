"""The examples end to end: one local grid for every example's test, with no agents of its own;
each test starts the agent that runs its example's handler (``run_agent``, shared with the
runtimes' tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_local.grid import LocalGrid
from tests.e2e.runtimes.conftest import run_agent

__all__ = ["run_agent"]


@pytest.fixture(scope="session")
def examples_grid() -> Iterator[LocalGrid]:
    """A local grid with no agents: each test starts the agent its example needs."""
    grid = LocalGrid(agents=0, handler="unused", stack_name="htcgrid-examples")
    grid.start()
    yield grid
    grid.stop()


@pytest.fixture(scope="session")
def examples_client(examples_grid: LocalGrid) -> Grid:
    return Grid(GridEndpoints.for_emulator(dict(examples_grid.outputs), examples_grid.endpoint_url))
