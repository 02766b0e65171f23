"""``make demo``: the whole grid on this machine, pricing 10,000 European options.

Starts the local grid (moto provisioned from template.yaml, the real Lambda handlers and state
machine, 2 agents), submits one task per option through the client, streams the results with a
progress bar, checks every price against Black-Scholes within its Monte Carlo error, prints
throughput and latency, and stops everything. Its last line is the summary.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_core.percentiles import percentile
from htcgrid_examples.pricing import check, random_option
from htcgrid_local.grid import LocalGrid

HANDLER = "htcgrid_examples.pricing:handler"


def run(tasks: int, agents: int, slots: int, prefetch: int, console: Console) -> str:
    options = [random_option(seed) for seed in range(tasks)]
    with console.status(f"starting the local grid with {agents} agents"):
        started = time.monotonic()
        # Prefetch fills each receive with a batch: these tasks take milliseconds, so a message
        # waiting in an agent for a slot waits no longer than that.
        local = LocalGrid(
            agents=agents, handler=HANDLER, slots=slots, agent_args=["--prefetch", str(prefetch)]
        )
        local.start()
    try:
        console.print(
            f"local grid up in {time.monotonic() - started:.1f} s at {local.endpoint_url}: "
            f"stack from template.yaml, {agents} agents x {slots} slots"
        )
        grid = Grid(GridEndpoints.for_emulator(dict(local.outputs), local.endpoint_url))
        with grid.open_session() as session:
            began = time.time()
            task_ids = session.submit(options)
            submitted = time.time()
            console.print(
                f"submitted {len(task_ids):,} tasks in {submitted - began:.1f} s "
                f"({len(task_ids) / (submitted - began):,.0f} tasks/s) through the submit workflow"
            )
            option_of = dict(zip(task_ids, options, strict=True))
            correct, latencies = 0, []
            progress = Progress(
                TextColumn("[bold]pricing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} tasks/s"),
                TimeElapsedColumn(),
                console=console,
            )
            with progress:
                bar = progress.add_task("results", total=len(task_ids), rate="-")
                for done in session.results(timeout=600):
                    latencies.append(done.latency_s)
                    if done.ok and isinstance(done.value, dict):
                        correct += check(option_of[done.task_id], done.value)
                    elapsed = time.time() - began
                    progress.update(bar, advance=1, rate=f"{len(latencies) / elapsed:,.0f}")
            finished = time.time()
    finally:
        with console.status("stopping the local grid"):
            local.stop()
    throughput = len(latencies) / (finished - began)
    p50 = percentile(latencies, 0.50) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    console.print(
        f"{len(latencies):,} results in {finished - began:.1f} s; latency from submit to result: "
        f"mean {statistics.fmean(latencies) * 1000:.0f} ms (a burst of {tasks:,} queues behind "
        "itself, so this is mostly time in the queue)"
    )
    return (
        f"demo: {correct}/{tasks} results correct, {throughput:.0f} tasks/s, "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4, help="concurrent tasks per agent")
    parser.add_argument("--prefetch", type=int, default=10, help="messages held beyond slots")
    args = parser.parse_args(argv)
    console = Console()
    summary = run(args.tasks, args.agents, args.slots, args.prefetch, console)
    print(summary)
    return 0 if summary.startswith(f"demo: {args.tasks}/{args.tasks}") else 1


if __name__ == "__main__":
    sys.exit(main())
