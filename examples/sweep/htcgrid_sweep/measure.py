"""``python -m htcgrid_sweep.measure``: the batch size, measured. The same 20,000 points of the
full sweep's region are run at each batch size on a running grid, under a name of their own
(so nothing resumes from an earlier measurement), and tasks/s and points/s printed for each."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from rich.console import Console

from htcgrid import Grid
from htcgrid_sweep.client import run
from htcgrid_sweep.definition import FULL, Axis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="a deployed stack's name (default: the local grid)")
    parser.add_argument("--sizes", default="250,1000,2500,5000", help="points per task")
    parser.add_argument("--output", type=Path, default=Path("measure.parquet"))
    args = parser.parse_args(argv)
    console = Console()
    rows = []
    with Grid.connect(args.stack) if args.stack else Grid.local() as grid:
        run_name = f"measure-{uuid.uuid4().hex[:8]}"
        for size in (int(s) for s in args.sizes.split(",")):
            sweep = FULL.model_copy(
                update={
                    "name": run_name,
                    "amplitude": Axis(start=0.0, stop=2.0, count=100),
                    "frequency": Axis(start=0.4, stop=1.6, count=200),
                    "batch_points": size,
                }
            )
            outcome = run(grid, sweep, args.output, console)
            if not outcome.complete:
                console.print(outcome.summary())
                return 1
            rows.append((size, sweep.batches, outcome.seconds))
    console.print("points/task  tasks  seconds  tasks/s  points/s")
    for size, tasks, seconds in rows:
        console.print(
            f"{size:>11}  {tasks:>5}  {seconds:>7.1f}  {tasks / seconds:>7.1f}  "
            f"{tasks * size / seconds:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
