"""Lambda runtimes as workers, end to end: one local grid for every runtime's tests, and agents
started per test with the runtime's arguments (``--bootstrap`` or ``--runtime-api-port``).

The example runtimes are built into ``.tools/runtimes/<name>/`` by ``make runtimes``
(``scripts/build-runtimes.sh``), which ``make test`` runs first.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_local.emulator import stop_processes
from htcgrid_local.grid import LocalGrid

ROOT = Path(__file__).resolve().parents[3]
#: Where ``scripts/build-runtimes.sh`` puts each runtime's build.
BUILT = ROOT / ".tools" / "runtimes"
EXAMPLES = ROOT / "examples" / "runtimes"


def built(name: str) -> Path:
    """The build folder of runtime ``name``; fails (never skips) if it was not built."""
    folder = BUILT / name
    if not folder.is_dir():
        pytest.fail(
            f"runtime {name!r} is not built: run `make runtimes` (scripts/build-runtimes.sh)"
        )
    return folder


@pytest.fixture(scope="session")
def runtime_grid() -> Iterator[LocalGrid]:
    """A local grid with no agents of its own: each test starts the agent it needs."""
    grid = LocalGrid(agents=0, handler="unused", stack_name="htcgrid-runtimes")
    grid.start()
    yield grid
    grid.stop()


@pytest.fixture(scope="session")
def client(runtime_grid: LocalGrid) -> Grid:
    return Grid(GridEndpoints.for_emulator(dict(runtime_grid.outputs), runtime_grid.endpoint_url))


@contextmanager
def run_agent(grid: LocalGrid, *args: str, slots: int = 1) -> Iterator[subprocess.Popen[bytes]]:
    """One agent on ``grid`` with ``args`` (after the grid's own), stopped (drained) on exit.
    Its long poll is short so that it stops within a second once idle."""
    agent = grid.start_agent("--slots", str(slots), "--long-poll", "1", *args)
    try:
        yield agent
    finally:
        grid.agents.remove(agent)
        stop_processes([agent], grid.agent_grace_s)
