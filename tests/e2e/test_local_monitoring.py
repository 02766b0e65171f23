"""The local grid with monitoring, as a user runs it: ``htcgrid-local up --monitoring`` starts a
real Prometheus (Debian's, `make prometheus`) scraping every agent; after a run its HTTP API
reports what the run did, ``htcgrid top`` shows each agent, and ``down`` stops Prometheus too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from htcgrid import Grid
from htcgrid_local.monitoring.prometheus import JOB, query_api
from tests.waiting import wait_for

HANDLER = "htcgrid_examples.scripted:handler"
STACK = "htcgrid-mon"
SUCCEEDING = 12
FAILING = 2


def run(cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def value(prometheus_url: str, expr: str) -> float | None:
    """The one value of a query, or None while it yields no series."""
    result = query_api(prometheus_url, "query", {"query": expr})
    assert len(result) <= 1, f"{expr!r} yields {len(result)} series"
    return float(result[0]["value"][1]) if result else None


def serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback http
            return True
    except (urllib.error.URLError, ConnectionError):
        return False


@pytest.fixture(scope="module")
def monitored_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A detached local grid with --monitoring, its state as ``up`` recorded it."""
    cwd = tmp_path_factory.mktemp("monitored")
    up = run(
        cwd, "htcgrid_local", "up", "--detach", "--monitoring", "--agents", "2", "--slots", "2",
        "--handler", HANDLER, "--stack-name", STACK,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    state: dict[str, Any] = json.loads((cwd / ".htcgrid/local.json").read_text())
    state["cwd"] = cwd
    try:
        yield state
    finally:
        run(cwd, "htcgrid_local", "down")


@pytest.fixture(scope="module")
def finished_run(monitored_grid: dict[str, Any]) -> str:
    """Runs SUCCEEDING tasks and FAILING tasks that fail permanently; returns the session id."""
    state_file = monitored_grid["cwd"] / ".htcgrid/local.json"
    with Grid.local(state_file) as grid, grid.open_session() as session:
        session.submit(
            [{"value": i} for i in range(SUCCEEDING)] + [{"fail": "permanent"}] * FAILING
        )
        session.wait(timeout=120)
        return session.id


def test_prometheus_scrapes_every_agent_of_the_grid(monitored_grid: dict[str, Any]) -> None:
    url = monitored_grid["prometheus_url"]
    assert url.startswith("http://127.0.0.1:")
    assert sorted(monitored_grid["metrics"]) == ["local-0", "local-1"]
    # Both agents are scraped, labelled as the EKS PodMonitor labels them.
    up = wait_for(
        lambda: value(url, f'count(up{{job="{JOB}", namespace="{STACK}"}} == 1)') == 2,
        timeout_s=30,
        what="both agents up in Prometheus",
    )
    assert up
    pods = query_api(url, "query", {"query": f'up{{job="{JOB}"}}'})
    assert sorted(series["metric"]["pod"] for series in pods) == ["local-0", "local-1"]


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at ``port`` on this machine (``/proc/net/tcp``)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_the_agents_metrics_listen_on_loopback_only(monitored_grid: dict[str, Any]) -> None:
    # The local grid's agents are reached by this machine's Prometheus and top, no one else.
    for url in monitored_grid["metrics"].values():
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        assert listening_addresses(port) == {"127.0.0.1"}, url


def test_prometheus_counts_what_the_run_did(
    monitored_grid: dict[str, Any], finished_run: str
) -> None:
    url = monitored_grid["prometheus_url"]
    tasks = f'htcgrid_agent_tasks_total{{namespace="{STACK}"}}'
    succeeded = f'sum(htcgrid_agent_tasks_total{{namespace="{STACK}", outcome="succeeded"}})'
    failed = f'sum(htcgrid_agent_tasks_total{{namespace="{STACK}", outcome!="succeeded"}})'
    # GIVEN the run finished: the next scrapes show every attempt, and nothing running
    wait_for(
        lambda: value(url, succeeded) == SUCCEEDING and value(url, failed) == FAILING,
        timeout_s=30,
        what=f"{SUCCEEDING} succeeded and {FAILING} failed attempts in Prometheus",
    )
    wait_for(
        lambda: value(url, f'sum(htcgrid_agent_busy_slots{{namespace="{STACK}"}})') == 0,
        timeout_s=30,
        what="busy slots back to 0",
    )
    # THEN each histogram saw every attempt once: handler time and queue wait
    total = SUCCEEDING + FAILING
    assert value(url, "sum(htcgrid_agent_handler_seconds_count)") == total
    assert value(url, "sum(htcgrid_agent_queue_wait_seconds_count)") == total
    # and both agents did some of the work between them, by the pod label the dashboards use
    by_pod = query_api(url, "query", {"query": f"sum by (pod) ({tasks})"})
    assert sum(float(s["value"][1]) for s in by_pod) == total


def test_top_shows_each_agent_from_its_metrics(
    monitored_grid: dict[str, Any], finished_run: str
) -> None:
    cwd = monitored_grid["cwd"]
    top = run(cwd, "htcgrid.cli", "--local", "--json", "top", finished_run, "--once",
              "--interval", "0.2")  # fmt: skip
    assert top.returncode == 0, top.stderr
    agents = {row["agent"]: row for row in json.loads(top.stdout)["agents"]}
    assert sorted(agents) == ["local-0", "local-1"]
    assert all(row["reachable"] and row["busy_slots"] == 0 for row in agents.values())
    assert all(row["tasks_per_s"] == 0 for row in agents.values())  # the run is over
    errors = sum(sum(row["errors"].values()) for row in agents.values())
    assert errors == FAILING
    # The same view through Prometheus (--metrics-url at the server, as on EKS).
    via = run(cwd, "htcgrid.cli", "--local", "--json", "top", finished_run, "--once",
              "--interval", "0.2", "--metrics-url", monitored_grid["prometheus_url"])  # fmt: skip
    assert via.returncode == 0, via.stderr
    rows = [r for r in json.loads(via.stdout)["agents"] if r["agent"] in ("local-0", "local-1")]
    # Each agent twice: from its own endpoint (state file) and from Prometheus.
    assert len(rows) == 4
    assert sum(sum(row["errors"].values()) for row in rows) == 2 * FAILING


def test_down_stops_prometheus_with_the_grid(tmp_path: Path) -> None:
    up = run(tmp_path, "htcgrid_local", "up", "--detach", "--monitoring", "--agents", "1",
             "--handler", HANDLER, "--stack-name", "htcgrid-mon-down")  # fmt: skip
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / ".htcgrid/local.json").read_text())
    ready = f"{state['prometheus_url']}/-/ready"
    assert serving(ready)
    down = run(tmp_path, "htcgrid_local", "down")
    assert down.returncode == 0, down.stderr
    assert not serving(ready)
