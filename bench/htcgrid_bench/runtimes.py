"""``make bench`` (its runtimes part): what the Runtime API path costs per task, per runtime,
side by side with the in-process Python slots, on one local grid.

For each runtime built in ``.tools/runtimes`` (``make runtimes``), one agent of ``--slots``
slots runs a burst of ``--tasks`` no-op tasks and then ``--sequential`` single tasks one after
the other. Reported: tasks/s; the agent process's CPU per task, which is the cost the Runtime
API adds, also net of what the agent spends idle over the same seconds, so that a slower
runtime is not charged for its own time; the CPU of the slot processes (the Python children or
the runtimes, whose handler does nothing); and the p50 latency from the submit call to the
result in the client. The runtimes take turns within each of ``--repeats`` rounds, so the
machine's drift falls on all of them alike; medians are reported, and each runtime's
difference from in-process Python. The last line is the summary:

    bench-runtimes: <name>=+<agent CPU ms>/+<p50 ms> ...
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import JsonValue
from rich.console import Console
from rich.table import Table

from htcgrid import Completed
from htcgrid_bench import procstat, runs
from htcgrid_local.emulator import stop_processes
from htcgrid_local.grid import LocalGrid

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / ".tools" / "runtimes"
#: Seconds the idle agent is measured for.
IDLE_S = 3.0


@dataclass(frozen=True)
class Runtime:
    """How an agent runs one runtime: its arguments (None: not built here), and the event of a
    no-op task for its example handler."""

    name: str
    label: str
    args: Callable[[], list[str] | None]
    event: JsonValue


def _bootstrap(name: str, handler: str, task_root: str = "") -> Callable[[], list[str] | None]:
    def args() -> list[str] | None:
        built = BUILT / name
        if not (built / "bootstrap").exists():
            return None
        return [
            "--bootstrap",
            str(built / "bootstrap"),
            "--handler",
            handler,
            "--task-root",
            str(built / task_root),
        ]

    return args


RUNTIMES = (
    Runtime("in-process", "Python in-process", lambda: [], {}),
    Runtime(
        "python", "Python awslambdaric", _bootstrap("python", "app.handler", "task"), {"value": 1}
    ),
    Runtime(
        "node", "Node aws-lambda-ric", _bootstrap("node", "index.handler", "task"), {"value": 1}
    ),
    Runtime("java", "Java 17", _bootstrap("java", "example.Handler"), {}),
    Runtime("cpp", "C++", _bootstrap("cpp", "example.handle"), {"op": "stats", "values": [1]}),
    Runtime("shell", "bash", _bootstrap("shell", "function.handler"), {}),
)


@dataclass(frozen=True)
class Sample:
    tasks_per_s: float
    #: The agent process's CPU per task, and the same less its idle CPU over the burst.
    agent_cpu_ms: float
    agent_net_cpu_ms: float
    slot_cpu_ms: float
    p50_ms: float


def measure(
    grid: LocalGrid, args: list[str], event: JsonValue, slots: int, tasks: int, sequential: int
) -> Sample:
    agent = grid.start_agent("--slots", str(slots), "--long-poll", "1", *args)
    try:
        client = runs.client_of(grid)
        with client.open_session() as session:  # warm-up: every slot's runtime has started
            session.submit([event] * (4 * slots))
            _check(session.wait(timeout=120))
        # What the agent spends idle each second (its slots' and pollers' wake-ups), so that a
        # slow runtime is not charged for the seconds its tasks take.
        idle_from = procstat.cpu_seconds(agent.pid)
        time.sleep(IDLE_S)
        idle_per_s = (procstat.cpu_seconds(agent.pid) - idle_from) / IDLE_S
        before = procstat.tree_cpu_seconds([agent.pid])
        with client.open_session() as session:
            began = time.perf_counter()
            session.submit([event] * tasks)
            _check(session.wait(timeout=600))
            elapsed = time.perf_counter() - began
        after = procstat.tree_cpu_seconds([agent.pid])
        own = after.get(agent.pid, 0.0) - before.get(agent.pid, 0.0)
        # Only processes seen twice count (a runtime replaced between took its CPU along).
        slot_processes = sum(
            after[pid] - before[pid] for pid in after if pid in before and pid != agent.pid
        )
        latencies = []
        with client.open_session() as session:
            for _ in range(sequential):
                began = time.perf_counter()
                session.submit([event])
                _check(list(session.results(timeout=30)))
                latencies.append(time.perf_counter() - began)
        return Sample(
            tasks / elapsed,
            1000 * own / tasks,
            1000 * max(0.0, own - idle_per_s * elapsed) / tasks,
            1000 * slot_processes / tasks,
            1000 * statistics.median(latencies),
        )
    finally:
        grid.agents.remove(agent)
        stop_processes([agent], grid.agent_grace_s)


def _check(results: list[Completed]) -> None:
    failed = [done for done in results if not done.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} tasks failed, e.g. {failed[0].error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--only", help="comma-separated runtime names (default: every one built)")
    args = parser.parse_args(argv)
    console = Console(width=max(100, Console().width))
    chosen = [r for r in RUNTIMES if not args.only or r.name in args.only.split(",")]
    available = [(r, a) for r in chosen if (a := r.args()) is not None]
    for runtime in chosen:
        if runtime.args() is None:
            console.print(f"{runtime.name}: not built (make runtimes), left out")
    samples: dict[str, list[Sample]] = {r.name: [] for r, _ in available}
    with runs.local_grid(0, args.slots, 10, count_requests=False) as grid:
        for repeat in range(1, args.repeats + 1):
            for runtime, runtime_args in available:
                with console.status(f"round {repeat}/{args.repeats}: {runtime.label}"):
                    sample = measure(
                        grid, runtime_args, runtime.event, args.slots, args.tasks, args.sequential
                    )
                samples[runtime.name].append(sample)
                console.print(
                    f"round {repeat}: {runtime.name}: {sample.tasks_per_s:.0f} tasks/s, agent "
                    f"{sample.agent_cpu_ms:.2f} ms/task ({sample.agent_net_cpu_ms:.2f} net of "
                    f"idle), p50 {sample.p50_ms:.0f} ms"
                )
    print(report(available, samples, args, console))
    return 0


def report(
    available: list[tuple[Runtime, list[str]]],
    samples: dict[str, list[Sample]],
    args: argparse.Namespace,
    console: Console,
) -> str:
    def med(name: str, field: str) -> float:
        return float(statistics.median(getattr(s, field) for s in samples[name]))

    table = Table(
        title=f"Runtimes: 1 agent x {args.slots} slots, {args.tasks:,} no-op tasks and "
        f"{args.sequential} sequential ones, medians of {args.repeats} rounds; "
        "+: net agent CPU and p50 over in-process Python",
        title_justify="left",
    )
    for column in (
        "runtime",
        "tasks/s",
        "agent ms/task",
        "net of idle",
        "runtime ms/task",
        "p50 ms",
        "+agent ms",
        "+p50 ms",
    ):
        table.add_column(column, justify="left" if column == "runtime" else "right")
    base = "in-process" if "in-process" in samples else None
    summary = []
    for runtime, _ in available:
        name = runtime.name
        cpu, p50 = med(name, "agent_net_cpu_ms"), med(name, "p50_ms")
        added_cpu = cpu - med(base, "agent_net_cpu_ms") if base else float("nan")
        added_p50 = p50 - med(base, "p50_ms") if base else float("nan")
        table.add_row(
            runtime.label,
            f"{med(name, 'tasks_per_s'):.0f}",
            f"{med(name, 'agent_cpu_ms'):.2f}",
            f"{cpu:.2f}",
            f"{med(name, 'slot_cpu_ms'):.2f}",
            f"{p50:.0f}",
            "" if name == base else f"{added_cpu:+.2f}",
            "" if name == base else f"{added_p50:+.1f}",
        )
        if name != base:
            summary.append(f"{name}={added_cpu:+.2f}ms/{added_p50:+.1f}ms")
    console.print(table)
    return "bench-runtimes: " + " ".join(summary)


if __name__ == "__main__":
    sys.exit(main())
