"""The local grid, as a user runs it: emulator, stack from template.yaml, real agents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_local.grid import LocalGrid

HANDLER = "htcgrid_examples.scripted:handler"


@pytest.fixture(scope="session")
def local_grid() -> Iterator[LocalGrid]:
    grid = LocalGrid(agents=2, handler=HANDLER, slots=2, stack_name="htcgrid-e2e")
    grid.start()
    yield grid
    grid.stop()


@pytest.fixture(scope="session")
def client(local_grid: LocalGrid) -> Grid:
    return Grid(GridEndpoints.for_emulator(dict(local_grid.outputs), local_grid.endpoint_url))
