"""``htcgrid top``: a live view of the grid: queue depth per priority, tasks per state,
throughput and latency, and per agent its busy slots, tasks/s and errors. ``--once`` (with
``--json`` for scripts) takes one reading instead.

Everything comes from cheap reads: SQS queue attributes, session counters, and one page of
finished tasks per session for the latency sample. Throughput is the change in finished
tasks between two readings, so even ``--once`` takes two, ``--interval`` apart.

The per-agent view reads the agents' Prometheus metrics where they can be reached: the local
grid's agents (their metrics URLs are in its state file), or ``--metrics-url``: an agent's
``.../metrics`` endpoint (read twice, like the counters) or a Prometheus server (its rates).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.live import Live
from rich.table import Table

from htcgrid.cli.common import Context, UsageError, add_command
from htcgrid.cli.exit_codes import EXIT_OK
from htcgrid.cli.sessions import status_table
from htcgrid.connection import LOCAL_STATE_FILE
from htcgrid.grid import Grid, QueueDepth
from htcgrid_core.models import SessionStatus, TaskState
from htcgrid_core.percentiles import percentile

#: How long one read of an agent's or Prometheus' metrics may take.
METRICS_TIMEOUT_S = 2.0
#: The agents' metrics top reads (htcgrid_agent.metrics).
TASKS_METRIC = "htcgrid_agent_tasks"
BUSY_METRIC = "htcgrid_agent_busy_slots"
#: The one outcome that is not an error; every other is counted, by outcome.
SUCCEEDED = "succeeded"
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


@dataclass(frozen=True)
class AgentSample:
    """One agent's counters at one moment, from its own metrics endpoint."""

    busy_slots: float
    attempts: float
    errors: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricsSources:
    """Where the per-agent view reads: agents' endpoints (name -> URL) and Prometheus URLs."""

    agents: dict[str, str]
    prometheus: list[str]


def metrics_sources(local: bool, urls: list[str]) -> MetricsSources:
    """The local grid's agents (from its state file) and each ``--metrics-url``: one ending in
    ``/metrics`` is an agent's endpoint, any other a Prometheus server."""
    agents: dict[str, str] = {}
    prometheus: list[str] = []
    if local:
        state_file = Path(os.environ.get("HTCGRID_LOCAL_STATE", LOCAL_STATE_FILE))
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            state = {}  # Grid.local() reports the missing grid; no agents to read here
        agents.update(state.get("metrics") or {})
    for url in urls:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise UsageError(f"--metrics-url {url!r}: an http(s) URL")
        if urllib.parse.urlsplit(url).path.rstrip("/").endswith("/metrics"):
            agents[urllib.parse.urlsplit(url).netloc] = url
        else:
            prometheus.append(url.rstrip("/"))
    return MetricsSources(agents, prometheus)


def parse_agent_metrics(text: str) -> AgentSample:
    """The sample of one agent from its Prometheus text exposition."""
    busy = attempts = 0.0
    errors: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == BUSY_METRIC:
                busy += sample.value
            elif sample.name == f"{TASKS_METRIC}_total":
                attempts += sample.value
                outcome = sample.labels.get("outcome", "")
                if outcome != SUCCEEDED:
                    errors[outcome] = errors.get(outcome, 0.0) + sample.value
    return AgentSample(busy, attempts, errors)


def _http_get(url: str, data: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=data)  # noqa: S310 - http(s), checked above
    with urllib.request.urlopen(request, timeout=METRICS_TIMEOUT_S) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def scrape_agents(agents: Mapping[str, str]) -> dict[str, AgentSample | None]:
    """Each agent's sample, or None for one that did not answer (gone, or not yet up)."""
    samples: dict[str, AgentSample | None] = {}
    for name, url in sorted(agents.items()):
        try:
            samples[name] = parse_agent_metrics(_http_get(url).decode("utf-8"))
        except (OSError, ValueError):  # unreachable, refused, or not Prometheus' format
            samples[name] = None
    return samples


def agent_rows(
    before: Mapping[str, AgentSample | None],
    after: Mapping[str, AgentSample | None],
    elapsed: float,
) -> list[dict[str, Any]]:
    """Per agent: busy slots now, attempts finished per second between the two samples, and
    its errors (attempts not succeeded, by outcome) since it started."""
    rows = []
    for name, now in after.items():
        then = before.get(name)
        if now is None:
            rows.append({"agent": name, "reachable": False})
            continue
        rate = (now.attempts - then.attempts) / max(elapsed, 1e-9) if then else None
        rows.append(
            {
                "agent": name,
                "reachable": True,
                "busy_slots": now.busy_slots,
                "tasks_per_s": None if rate is None else round(max(rate, 0.0), 2),
                "errors": {k: v for k, v in sorted(now.errors.items()) if v},
            }
        )
    return rows


def _prometheus_query(url: str, expr: str) -> list[dict[str, Any]]:
    body = urllib.parse.urlencode({"query": expr}).encode()
    document = json.loads(_http_get(f"{url}/api/v1/query", body))
    result: list[dict[str, Any]] = document["data"]["result"]
    return result


def prometheus_rows(url: str) -> list[dict[str, Any]]:
    """The same per-agent view from a Prometheus that scrapes the agents (tasks/s over the
    last minute); an agent is its ``pod`` label, else its ``instance``."""

    def agent(metric: dict[str, str]) -> str:
        return metric.get("pod") or metric.get("instance", "?")

    try:
        busy = _prometheus_query(url, BUSY_METRIC)
        rates = _prometheus_query(url, f"sum by (pod, instance) (rate({TASKS_METRIC}_total[1m]))")
        errors = _prometheus_query(
            url,
            f'sum by (pod, instance, outcome) ({TASKS_METRIC}_total{{outcome!="{SUCCEEDED}"}})',
        )
    except (OSError, ValueError, KeyError):  # unreachable, or not a Prometheus API
        return [{"agent": url, "reachable": False}]
    rows: dict[str, dict[str, Any]] = {}
    for series in busy:
        name = agent(series["metric"])
        rows[name] = {"agent": name, "reachable": True, "busy_slots": float(series["value"][1])}
        rows[name].update(tasks_per_s=0.0, errors={})
    for series in rates:
        if (row := rows.get(agent(series["metric"]))) is not None:
            row["tasks_per_s"] = round(float(series["value"][1]), 2)
    for series in errors:
        if (row := rows.get(agent(series["metric"]))) is not None and float(series["value"][1]):
            row["errors"][series["metric"].get("outcome", "")] = float(series["value"][1])
    return [rows[name] for name in sorted(rows)]


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


def summary(
    before: Reading, after: Reading, latency: list[float], agents: list[dict[str, Any]]
) -> dict[str, Any]:
    """The document ``top --json`` prints."""
    elapsed = max(after.at - before.at, 1e-9)
    return {
        "agents": agents,
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
    parts: list[Any] = [queues, status_table(after.sessions, title="sessions"), line]
    if document["agents"]:
        parts.append(agents_table(document["agents"]))
    return Group(*parts)


def agents_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="agents")
    for column, justify in (("agent", "left"), ("busy slots", "right"), ("tasks/s", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("errors (since start)")
    for row in rows:
        if not row["reachable"]:
            table.add_row(row["agent"], "[red]unreachable[/]", "", "")
            continue
        rate = "" if row["tasks_per_s"] is None else str(row["tasks_per_s"])
        errors = ", ".join(f"{k} {v:g}" for k, v in row["errors"].items())
        table.add_row(row["agent"], f"{row['busy_slots']:g}", rate, f"[red]{errors}[/]")
    return table


class AgentView:
    """The per-agent view between two readings: agents' endpoints read at both, Prometheus
    servers (which keep their own history) at the second."""

    def __init__(self, sources: MetricsSources) -> None:
        self.sources = sources
        self._before = scrape_agents(sources.agents)
        self._at = time.monotonic()

    def rows(self) -> list[dict[str, Any]]:
        """The rows since the last call (or since the view was made), and a new baseline."""
        after, at = scrape_agents(self.sources.agents), time.monotonic()
        rows = agent_rows(self._before, after, at - self._at)
        for url in self.sources.prometheus:
            rows.extend(prometheus_rows(url))
        self._before, self._at = after, at
        return rows


def top(context: Context) -> int:
    args, grid = context.args, context.grid
    agents = AgentView(metrics_sources(bool(getattr(args, "local", False)), args.metrics_url))
    before = read(grid, args.sessions, args.limit)
    if args.once:
        time.sleep(args.interval)
        after = read(grid, args.sessions, args.limit)
        document = summary(before, after, latency_sample(grid, after.sessions), agents.rows())
        if context.json:
            context.emit(document)
        else:
            context.console.print(render(document, after))
        return EXIT_OK
    with Live(console=context.console, auto_refresh=False, screen=False) as live:
        while True:  # until Ctrl-C (exit code 130, see main)
            time.sleep(args.interval)
            after = read(grid, args.sessions, args.limit)
            document = summary(before, after, latency_sample(grid, after.sessions), agents.rows())
            live.update(render(document, after), refresh=True)
            before = after


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``top``."""
    parser = add_command(
        commands,
        "top",
        top,
        "live view: queue depth per priority, tasks per state, throughput, latency, agents",
        "  htcgrid --local top                       # recent sessions, refreshed every 2 s\n"
        "  htcgrid --local top 3f9c2a... 7d01b4...   # these sessions\n"
        "  htcgrid --local --json top --once         # one reading, for scripts\n"
        "  htcgrid top --metrics-url http://prometheus.monitoring:9090   # agents, via Prometheus",
    )
    parser.add_argument("sessions", nargs="*", help="sessions to watch (default: recent ones)")
    parser.add_argument("--once", action="store_true", help="one reading, then exit")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between readings (default 2)"
    )
    parser.add_argument("--limit", type=int, default=5, help="recent sessions shown (default 5)")
    parser.add_argument(
        "--metrics-url",
        action="append",
        default=[],
        metavar="URL",
        help="per-agent view from this agent's .../metrics or this Prometheus (repeatable; "
        "the local grid's agents are read without it)",
    )
