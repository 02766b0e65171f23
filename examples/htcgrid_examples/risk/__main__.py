"""``python -m htcgrid_examples.risk``: 1-day and 10-day VaR and ES at 99 % of a portfolio on
the grid, checked against the same run in this process.

By default it starts a local grid of its own (the emulator, the stack from template.yaml, and
``--agents`` agents running the risk handler); ``--stack NAME`` runs on a deployed grid whose
agents run ``htcgrid_examples.risk.handler:handler``. Its last line is the summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_examples.risk.portfolio import Portfolio, PortfolioFileError, load_portfolio
from htcgrid_examples.risk.run import GridRun, Plan, run_on_grid, single_process
from htcgrid_examples.risk.scenarios import HORIZONS_DAYS
from htcgrid_examples.risk.tail import RiskMeasures

HANDLER = "htcgrid_examples.risk.handler:handler"
PORTFOLIO = Path(__file__).resolve().parent / "portfolio.json"


@contextmanager
def local_grid(agents: int, slots: int, console: Console) -> Iterator[Grid]:
    """A local grid of its own with ``agents`` agents running the risk handler."""
    from htcgrid_local.grid import LocalGrid  # only this path needs the local grid installed

    with console.status(f"starting the local grid with {agents} agents"):
        started = time.monotonic()
        local = LocalGrid(agents=agents, handler=HANDLER, slots=slots)
        local.start()
    try:
        console.print(
            f"local grid up in {time.monotonic() - started:.1f} s at {local.endpoint_url}: "
            f"{agents} agents x {slots} slots running {HANDLER}"
        )
        yield Grid(GridEndpoints.for_emulator(dict(local.outputs), local.endpoint_url))
    finally:
        with console.status("stopping the local grid"):
            local.stop()


def run_with_progress(grid: Grid, portfolio: Portfolio, plan: Plan, console: Console) -> GridRun:
    progress = Progress(
        TextColumn("[bold]scenarios"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} scenarios/s"),
        TimeElapsedColumn(),
        console=console,
    )
    began = time.monotonic()
    with progress:
        bar = progress.add_task("scenarios", total=plan.scenarios, rate="-")

        def advance(scenarios: int) -> None:
            done = progress.tasks[0].completed + scenarios
            rate = done / max(time.monotonic() - began, 1e-9)
            progress.update(bar, advance=scenarios, rate=f"{rate:,.0f}")

        return run_on_grid(grid, portfolio, plan, advance)


def summary(run: GridRun, reference: dict[int, RiskMeasures] | None, scenarios: int) -> str:
    one, ten = run.measures[1], run.measures[10]
    matches = "not checked" if reference is None else "yes" if reference == run.measures else "NO"
    return (
        f"risk: VaR99 1d={one.var:,.0f} 10d={ten.var:,.0f}, ES99 1d={one.es:,.0f} "
        f"10d={ten.es:,.0f}, {scenarios:,} scenarios in {run.elapsed_s:.1f} s "
        f"({scenarios / run.elapsed_s:,.0f} scenarios/s), matches single-process: {matches}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--portfolio", type=Path, default=PORTFOLIO, help="the portfolio file")
    parser.add_argument("--seeds", type=int, default=500, help="blocks of scenarios in the run")
    parser.add_argument("--scenarios-per-seed", type=int, default=10_000)
    parser.add_argument("--seeds-per-task", type=int, default=10)
    parser.add_argument("--run-seed", type=int, default=2024, help="the run's seed")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1, help="concurrent tasks per agent")
    parser.add_argument("--stack", help="a deployed grid's stack (default: a local grid)")
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the same scenarios in this process and compare (default: yes)",
    )
    args = parser.parse_args(argv)
    console = Console()
    try:
        portfolio = load_portfolio(args.portfolio)
        plan = Plan(args.run_seed, args.seeds, args.scenarios_per_seed, args.seeds_per_task)
    except (PortfolioFileError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    console.print(
        f"portfolio {portfolio.name}: {len(portfolio.positions)} positions on "
        f"{len(portfolio.factors)} factors; {plan.scenarios:,} scenarios = {plan.seeds} seeds x "
        f"{plan.scenarios_per_seed:,}, {len(plan.shards())} tasks of up to "
        f"{plan.seeds_per_task} seeds"
    )
    if args.stack:
        run = run_with_progress(Grid.connect(args.stack), portfolio, plan, console)
    else:
        with local_grid(args.agents, args.slots, console) as grid:
            run = run_with_progress(grid, portfolio, plan, console)
    for days in HORIZONS_DAYS:
        measures = run.measures[days]
        console.print(
            f"{days:>2}-day: VaR99 {measures.var:,.2f} {portfolio.currency}, "
            f"ES99 {measures.es:,.2f} {portfolio.currency}"
        )
    console.print(f"{run.tasks} tasks ({run.refetched} run again to complete the tail)")
    reference = None
    if args.check:
        with console.status("the same scenarios in this process"):
            started = time.monotonic()
            reference = single_process(portfolio, plan)
        console.print(f"single-process run: {time.monotonic() - started:.1f} s")
    line = summary(run, reference, plan.scenarios)
    print(line)
    return 0 if reference is None or reference == run.measures else 1


if __name__ == "__main__":
    sys.exit(main())
