"""``python -m htcgrid_sweep``: run a sweep on a grid, or go on with one that was interrupted.

A run reads what the grid has already finished for the sweep's session (``Grid.iter_results``),
submits each batch not yet finished with its own token (a batch submitted before gets the same
task, not a second one), takes the rest of the results as they come, and rewrites the Parquet
file from every finished batch. Interrupted (Ctrl-C, killed), it leaves the session and its
result queue as they are: the batches already submitted keep running on the grid, and the next
run picks up their results. Its last line is the summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import JsonValue
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from htcgrid import Grid, GridError, TaskResult, TaskState
from htcgrid_core import keys
from htcgrid_sweep.definition import FULL, Axis, Sweep
from htcgrid_sweep.table import BadResultError, check_batch, plot, write_parquet

#: Exit status of an interrupted run (the shell's for SIGINT), so scripts can tell it apart.
INTERRUPTED = 130


@dataclass
class Outcome:
    """What one run of the client found, submitted and finished."""

    sweep: Sweep
    output: Path
    #: Finished batches' columns, by batch number, and why each failed batch failed.
    done: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    resumed_points: int = 0
    submitted_batches: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def points_done(self) -> int:
        return sum(len(self.sweep.span(batch)) for batch in self.done)

    @property
    def complete(self) -> bool:
        return bool(len(self.done) == self.sweep.batches)

    def summary(self) -> str:
        rate = (self.points_done - self.resumed_points) / self.seconds if self.seconds else 0.0
        line = (
            f"sweep: {self.points_done}/{self.sweep.points} points, {self.resumed_points} resumed, "
            f"{rate:.0f} points/s, results in {self.output}"
        )
        if self.failed:
            line += f", {len(self.failed)} batches failed"
        return line + (" (interrupted: run again to resume)" if self.interrupted else "")


def run(
    grid: Grid,
    sweep: Sweep,
    output: Path,
    console: Console,
    *,
    stop_after_batches: int | None = None,
) -> Outcome:
    """Bring ``sweep`` as far as it goes on ``grid`` and write its finished points to
    ``output``. ``stop_after_batches`` stops the run, as Ctrl-C does, once that many batches
    have finished in it (how the tests interrupt a run)."""
    outcome = Outcome(sweep, output)
    started = time.monotonic()
    # Each batch's task id follows from the session and its token (``<token>.0``: one
    # submission of one task), so a result, even a failed one with no value, names its batch.
    batch_of = {
        keys.task_id_for(sweep.session_id, f"{sweep.token(b)}.0", 0): b
        for b in range(sweep.batches)
    }
    with console.status(f"reading what the grid has finished of session {sweep.session_id}"):
        for result in grid.iter_results(sweep.session_id):
            _record(grid, outcome, batch_of, result)
    outcome.resumed_points = outcome.points_done
    if outcome.resumed_points:
        console.print(f"resuming: {outcome.resumed_points:,} points already done")
    # Not ``with``: an interrupted run must leave the session's result queue in place, for the
    # notices of its batches still running. Only a finished sweep closes it.
    session = grid.open_session(sweep.session_id)
    todo = [b for b in range(sweep.batches) if b not in outcome.done and b not in outcome.failed]
    progress = Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("points, {task.fields[rate]} points/s, {task.fields[submitted]} submitted"),
        TimeElapsedColumn(),
        console=console,
    )
    finished_here = 0
    try:
        with progress:
            bar = progress.add_task(
                "points", total=sweep.points, completed=outcome.points_done, rate="-", submitted=0
            )
            for batch in todo:
                payload: JsonValue = {"sweep": sweep.model_dump(mode="json"), "batch": batch}
                session.submit([payload], submission_token=sweep.token(batch))
                outcome.submitted_batches += 1
                progress.update(bar, submitted=f"{outcome.submitted_batches}/{len(todo)}")
            for completed in session.results():
                _record(grid, outcome, batch_of, completed.result, completed.value)
                finished_here += 1
                elapsed = time.monotonic() - started
                computed = outcome.points_done - outcome.resumed_points
                progress.update(
                    bar, completed=outcome.points_done, rate=f"{computed / elapsed:,.0f}"
                )
                if stop_after_batches is not None and finished_here >= stop_after_batches:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        outcome.seconds = time.monotonic() - started
        write_parquet(sweep, outcome.done, output)
    if outcome.complete:
        session.close()
        plot(sweep, output, output.with_suffix(".png"))
        console.print(f"plot in {output.with_suffix('.png')}")
    return outcome


def _record(
    grid: Grid,
    outcome: Outcome,
    batch_of: dict[str, int],
    result: TaskResult,
    value: object = None,
) -> None:
    """File one finished task under its batch: its columns, or why it failed."""
    batch = batch_of.get(result.task_id)
    if batch is None or batch in outcome.done:
        return  # not one of this sweep's batches, or already filed (notices are at-least-once)
    if result.state is not TaskState.SUCCEEDED:
        error = result.error
        outcome.failed[batch] = f"{error.type}: {error.message}" if error else result.state.value
        return
    if value is None:
        value = grid.value_of(result)
    try:
        number, columns = check_batch(outcome.sweep, value)
    except BadResultError as error:
        outcome.failed[batch] = str(error)
        return
    if number != batch:
        outcome.failed[batch] = f"result.batch: {number}, but the task is batch {batch}"
        return
    outcome.done[batch] = columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="a deployed stack's name (default: the local grid)")
    parser.add_argument("--output", type=Path, default=Path("sweep.parquet"))
    parser.add_argument("--amplitudes", type=int, default=FULL.amplitude.count)
    parser.add_argument("--frequencies", type=int, default=FULL.frequency.count)
    parser.add_argument("--batch-points", type=int, default=FULL.batch_points)
    parser.add_argument("--name", default=FULL.name, help="another name runs the sweep afresh")
    args = parser.parse_args(argv)
    sweep = FULL.model_copy(
        update={
            "amplitude": Axis(
                start=FULL.amplitude.start, stop=FULL.amplitude.stop, count=args.amplitudes
            ),
            "frequency": Axis(
                start=FULL.frequency.start, stop=FULL.frequency.stop, count=args.frequencies
            ),
            "batch_points": args.batch_points,
            "name": args.name,
        }
    )
    sweep = Sweep.model_validate(sweep.model_dump())  # the limits, checked on the whole
    console = Console()
    try:
        grid = Grid.connect(args.stack) if args.stack else Grid.local()
    except GridError as error:
        # The sweep's session lives in the grid, so the grid must outlive this client: it does
        # not start a local grid of its own, which would die with it and lose what was done.
        console.print(
            f"sweep: {error}\n(start a local grid that outlives this client: htcgrid-local up "
            "--detach --agents 2 --handler htcgrid_sweep.handler:handler; or use --stack)"
        )
        return 2
    with grid:
        outcome = run(grid, sweep, args.output, console)
    for batch, reason in sorted(outcome.failed.items())[:5]:
        console.print(f"batch {batch} failed: {reason}")
    print(outcome.summary())
    if outcome.interrupted:
        return INTERRUPTED
    return 0 if outcome.complete else 1


if __name__ == "__main__":
    sys.exit(main())
