"""The resumable sweep (examples/sweep): interrupted part-way and run again, it finishes with
every point once, and the grid ran each batch once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console

from htcgrid import Grid, TaskState
from htcgrid_local.grid import LocalGrid
from htcgrid_sweep.client import run
from htcgrid_sweep.definition import Axis, Sweep
from tests.e2e.runtimes.conftest import run_agent

HANDLER = "htcgrid_sweep.handler:handler"
#: 600 points in 12 batches: a task is a few tenths of a second.
SMALL = Sweep(
    amplitude=Axis(start=0.0, stop=2.0, count=20),
    frequency=Axis(start=0.4, stop=1.6, count=30),
    damping=0.5,
    batch_points=50,
)
STOP_AFTER = 3


def test_an_interrupted_sweep_resumes_without_running_a_batch_twice(
    examples_grid: LocalGrid, examples_client: Grid, tmp_path: Path
) -> None:
    output = tmp_path / "small.parquet"
    console = Console(quiet=True)
    with run_agent(examples_grid, "--handler", HANDLER, "--prefetch", "0"):
        # GIVEN a sweep interrupted once STOP_AFTER of its batches had finished
        first = run(examples_client, SMALL, output, console, stop_after_batches=STOP_AFTER)
        assert first.interrupted
        assert first.submitted_batches == SMALL.batches
        assert len(first.done) >= STOP_AFTER
        assert pq.read_table(output).num_rows == first.points_done < SMALL.points

        # WHEN it is run again
        second = run(examples_client, SMALL, output, console)

    # THEN it resumes from what the grid had finished and completes
    assert second.complete
    assert not second.interrupted
    assert not second.failed
    assert second.resumed_points >= first.points_done
    assert second.submitted_batches == SMALL.batches - second.resumed_points // SMALL.batch_points
    assert second.summary().startswith(f"sweep: 600/600 points, {second.resumed_points} resumed")
    # every point once, in order, with its own parameters
    table = pq.read_table(output)
    assert table["point"].to_pylist() == list(range(SMALL.points))
    rows, columns = np.divmod(np.arange(SMALL.points), SMALL.frequency.count)
    assert np.array_equal(table["drive_amplitude"].to_numpy(), SMALL.amplitude.values()[rows])
    assert np.array_equal(table["drive_frequency"].to_numpy(), SMALL.frequency.values()[columns])
    assert output.with_suffix(".png").stat().st_size > 0
    # and the grid ran one task per batch, each once: resubmitted batches made no new tasks
    status = examples_client.status(SMALL.session_id, exact=True)
    assert status.counts[TaskState.SUCCEEDED] == sum(status.counts.values()) == SMALL.batches
    results = list(examples_client.iter_results(SMALL.session_id))
    assert len(results) == SMALL.batches
    assert all(result.attempt == 1 for result in results)
