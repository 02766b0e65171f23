"""``htcgrid top``: a live view of the grid: queue depth per priority, tasks per state,
throughput and latency. ``--once`` (with ``--json`` for scripts) takes one reading instead.

Everything comes from cheap reads: SQS queue attributes, session counters, and one page of
finished tasks per session for the latency sample. Throughput is the change in finished
tasks between two readings, so even ``--once`` takes two, ``--interval`` apart.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table

from htcgrid.cli.common import Context, add_command
from htcgrid.cli.exit_codes import EXIT_OK
from htcgrid.cli.sessions import status_table
from htcgrid.grid import Grid, QueueDepth
from htcgrid_core.models import SessionStatus, TaskState
from htcgrid_core.percentiles import percentile

#: Finished tasks read per session for the latency sample, and sessions sampled at most.
LATENCY_SAMPLE = 100
LATENCY_SESSIONS = 3


@dataclass(frozen=True)
class Reading:
    """The grid at one moment."""

    at: float
    queues: list[QueueDepth]
    sessions: list[SessionStatus]

    @property
    def finished(self) -> int:
        return sum(s.finished for s in self.sessions)


def read(grid: Grid, session_ids: list[str], limit: int) -> Reading:
    if session_ids:
        sessions = [grid.status(session_id) for session_id in session_ids]
    else:
        sessions = grid.sessions(limit)
    return Reading(time.monotonic(), grid.queue_depths(), sessions)


def latency_sample(grid: Grid, sessions: list[SessionStatus]) -> list[float]:
    """Submit-to-finish times of some finished tasks of the first few sessions (one page each:
    a sample, not every task)."""
    finished = [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED]
    sample: list[float] = []
    # Every session is read, not only those whose counters show finished tasks: counters
    # trail the records by up to a second.
    for session in sessions[:LATENCY_SESSIONS]:
        page = grid.tasks_page(session.session_id, finished, limit=LATENCY_SAMPLE)
        sample.extend(t.finished_at - t.submitted_at for t in page.tasks if t.finished_at)
    return sample


def percentiles(values: list[float]) -> dict[str, float] | None:
    """The sample's p50, p90 and p99 (None for no sample)."""
    if not values:
        return None
    return {
        "p50": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
        "p99": percentile(values, 0.99),
    }


def summary(before: Reading, after: Reading, latency: list[float]) -> dict[str, Any]:
    """The document ``top --json`` prints."""
    elapsed = max(after.at - before.at, 1e-9)
    return {
        "queues": [vars(q) for q in after.queues],
        "sessions": [s.model_dump(mode="json") for s in after.sessions],
        "throughput_per_s": round(max(0, after.finished - before.finished) / elapsed, 2),
        "latency_s": percentiles(latency),
        "latency_sampled": len(latency),
    }


def render(document: dict[str, Any], after: Reading) -> Group:
    queues = Table(title="queues (highest priority first)")
    for column in ("priority", "waiting", "in flight", "delayed", "dead letters"):
        queues.add_column(column, justify="right")
    for q in after.queues:
        dead = f"[red]{q.dead_letters}[/]" if q.dead_letters else "0"
        queues.add_row(str(q.priority), str(q.waiting), str(q.in_flight), str(q.delayed), dead)
    latency = document["latency_s"]
    line = f"throughput [bold]{document['throughput_per_s']}[/] tasks/s"
    if latency:
        line += (
            f"   latency p50 {latency['p50']:.2f} s, p90 {latency['p90']:.2f} s, "
            f"p99 {latency['p99']:.2f} s (sample of {document['latency_sampled']})"
        )
    return Group(queues, status_table(after.sessions, title="sessions"), line)


def top(context: Context) -> int:
    args, grid = context.args, context.grid
    before = read(grid, args.sessions, args.limit)
    if args.once:
        time.sleep(args.interval)
        after = read(grid, args.sessions, args.limit)
        document = summary(before, after, latency_sample(grid, after.sessions))
        if context.json:
            context.emit(document)
        else:
            context.console.print(render(document, after))
        return EXIT_OK
    with Live(console=context.console, auto_refresh=False, screen=False) as live:
        while True:  # until Ctrl-C (exit code 130, see main)
            time.sleep(args.interval)
            after = read(grid, args.sessions, args.limit)
            document = summary(before, after, latency_sample(grid, after.sessions))
            live.update(render(document, after), refresh=True)
            before = after


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``top``."""
    parser = add_command(
        commands,
        "top",
        top,
        "live view: queue depth per priority, tasks per state, throughput, latency",
        "  htcgrid --local top                       # recent sessions, refreshed every 2 s\n"
        "  htcgrid --local top 3f9c2a... 7d01b4...   # these sessions\n"
        "  htcgrid --local --json top --once         # one reading, for scripts",
    )
    parser.add_argument("sessions", nargs="*", help="sessions to watch (default: recent ones)")
    parser.add_argument("--once", action="store_true", help="one reading, then exit")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between readings (default 2)"
    )
    parser.add_argument("--limit", type=int, default=5, help="recent sessions shown (default 5)")
