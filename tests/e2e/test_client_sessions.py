"""The client's session features end to end on the local grid: map, asyncio streaming,
counter-based status, and the CLI's sessions, listings, follow, delete and top."""

from __future__ import annotations

import asyncio
import json

from htcgrid import Completed, Grid
from htcgrid_core.models import TaskState
from htcgrid_local.grid import LocalGrid
from tests.e2e.test_local_grid import run_cli
from tests.waiting import wait_for


def test_map_yields_results_in_input_order(client: Grid) -> None:
    # GIVEN tasks that finish in roughly the reverse of their order
    payloads = [{"value": i, "sleep": 0.05 * (6 - i)} for i in range(6)]
    # THEN map hands their results back in input order, and unordered in completion order
    ordered = [done.value["value"] for done in client.map(payloads, timeout=60)]  # type: ignore[index]
    assert ordered == list(range(6))
    unordered = [done.value["value"] for done in client.map(payloads, ordered=False, timeout=60)]  # type: ignore[index]
    assert sorted(unordered) == list(range(6))


def test_results_stream_into_asyncio(client: Grid) -> None:
    async def collect() -> list[Completed]:
        with client.open_session() as session:
            session.submit([{"value": i} for i in range(10)])
            return [done async for done in session.aresults(timeout=60)]

    results = asyncio.run(collect())
    assert sorted(done.value["value"] for done in results) == list(range(10))  # type: ignore[index]


def test_counter_status_catches_up_with_an_exact_count(client: Grid) -> None:
    with client.open_session() as session:
        session.submit([{"value": i} for i in range(12)])
        session.wait(timeout=60)
    exact = client.status(session.id, exact=True)
    assert exact.exact
    assert exact.counts[TaskState.SUCCEEDED] == 12
    # Agents write their counts at most a second after the results went out.
    counted = wait_for(
        lambda: (s := client.status(session.id)).counts == exact.counts and s, 10, "counters"
    )
    assert not counted.exact


def test_cli_lists_sessions_and_tasks_then_deletes_a_session(
    client: Grid, local_grid: LocalGrid
) -> None:
    with client.open_session() as session:
        task_ids = session.submit([{"value": i} for i in range(5)])
        session.wait(timeout=60)
    first = run_cli(local_grid, "sessions", "--limit", "1")
    assert first.returncode == 0, first.stderr
    assert [json.loads(line)["session_id"] for line in first.stdout.splitlines()[:1]] == [
        session.id
    ]
    # Paged two at a time, every session comes once, newest first, and no token is left.
    listed = run_cli(local_grid, "sessions", "--limit", "2", "--all")
    assert listed.returncode == 0, listed.stderr
    sessions = [json.loads(line) for line in listed.stdout.splitlines()]
    assert all("next_token" not in s for s in sessions)
    ids = [s["session_id"] for s in sessions]
    assert ids[0] == session.id
    assert len(ids) == len(set(ids))
    tasks = run_cli(
        local_grid, "status", session.id, "--tasks", "succeeded", "--limit", "2", "--all"
    )
    assert tasks.returncode == 0, tasks.stderr
    assert sorted(json.loads(line)["task_id"] for line in tasks.stdout.splitlines()) == sorted(
        task_ids
    )
    deleted = run_cli(local_grid, "delete", session.id, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout)["records_deleted"] == 6  # 5 tasks and 1 submission
    assert client.status(session.id, exact=True).total == 0
    gone = run_cli(local_grid, "sessions", "--limit", "50")
    assert session.id not in gone.stdout


def test_cli_delete_without_confirmation_is_refused(local_grid: LocalGrid) -> None:
    refused = run_cli(local_grid, "delete", "some-session")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr


def test_cli_follows_results_until_the_session_is_done(client: Grid, local_grid: LocalGrid) -> None:
    with client.open_session(stream_results=False) as session:
        task_ids = session.submit([{"value": i, "sleep": 1.0} for i in range(4)])
    followed = run_cli(local_grid, "results", session.id, "--follow", "--timeout", "60")
    assert followed.returncode == 0, followed.stderr
    lines = [json.loads(line) for line in followed.stdout.splitlines()]
    assert sorted(line["task_id"] for line in lines) == sorted(task_ids)
    assert {line["state"] for line in lines} == {"SUCCEEDED"}


def test_cli_top_once_reports_queues_sessions_and_throughput(
    client: Grid, local_grid: LocalGrid
) -> None:
    with client.open_session() as session:
        session.submit([{"value": i} for i in range(6)])
        session.wait(timeout=60)
    top = run_cli(local_grid, "top", session.id, "--once", "--interval", "0.2")
    assert top.returncode == 0, top.stderr
    reading = json.loads(top.stdout)
    levels = int(local_grid.outputs["PriorityLevels"])
    assert [q["priority"] for q in reading["queues"]] == list(range(levels - 1, -1, -1))
    assert [s["session_id"] for s in reading["sessions"]] == [session.id]
    assert reading["throughput_per_s"] >= 0
    assert reading["latency_sampled"] == 6
    assert 0 < reading["latency_s"]["p50"] < 60
