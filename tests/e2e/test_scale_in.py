"""Scale-in on the local grid: an agent told to stop mid-task (SIGTERM, as Kubernetes does when
KEDA scales in or Karpenter drains a spot node) finishes what it runs, hands back what it only
held, and the grid loses nothing and runs nothing twice.

The SIGKILL half (an agent that dies holding leases, recovered by the TTL reaper) lives with the
reaper's tests.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_core.models import TaskState
from htcgrid_core.resources import GridResources
from htcgrid_core.settings import GridSettings
from htcgrid_local.grid import LocalGrid
from tests.waiting import wait_for

HANDLER = "htcgrid_examples.scripted:handler"
#: Above the default lease threshold (240 s): these tasks are claimed with a lease, so RUNNING in
#: the table says exactly which tasks an agent holds.
LEASED_TIMEOUT_S = 600
#: How long each task runs: long enough to be caught mid-task, short enough for a quick test.
TASK_S = 4.0
#: The agent's grace period in this test (Kubernetes' terminationGracePeriodSeconds): a draining
#: agent must be gone well within it.
GRACE_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def probe(port: int, path: str) -> int:
    """HTTP status of the agent's health endpoint (0 if it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.fixture
def scale_in_grid(local_grid: LocalGrid) -> Iterator[LocalGrid]:
    """A stack of its own on the session's emulator, with no agent yet: the test starts and
    stops its agents without touching the session grid's."""
    grid = LocalGrid(
        agents=0,
        handler=HANDLER,
        slots=2,
        stack_name=f"scale-in-{uuid.uuid4().hex[:8]}",
        endpoint_url=local_grid.endpoint_url,
    )
    grid.start()
    try:
        yield grid
    finally:
        grid.stop()


def table_of(grid: LocalGrid) -> GridResources:
    return GridResources.from_settings(
        GridSettings.from_stack_outputs(
            grid.outputs, endpoint_url=grid.endpoint_url, region="us-east-1"
        )
    )


def start_agent(grid: LocalGrid, *args: str) -> subprocess.Popen[bytes]:
    grid.agent_args = ["--long-poll", "1", *args]
    return grid.start_agent()


def test_sigterm_mid_task_finishes_running_tasks_hands_back_the_rest_and_loses_nothing(
    scale_in_grid: LocalGrid, tmp_path: Path
) -> None:
    resources = table_of(scale_in_grid)
    client = Grid(
        GridEndpoints.for_emulator(dict(scale_in_grid.outputs), scale_in_grid.endpoint_url)
    )
    runs = tmp_path / "runs"  # the scripted handler appends "<task id> <attempt>" per run
    health_port = free_port()
    # GIVEN an agent with 2 slots that also holds 2 prefetched messages it has not started
    first = start_agent(scale_in_grid, "--prefetch", "2", "--health-port", str(health_port))
    with client.open_session() as session:
        task_ids = session.submit(
            [{"value": i, "sleep": TASK_S, "touch": str(runs)} for i in range(8)],
            timeout_s=LEASED_TIMEOUT_S,
        )

        def running() -> list[str]:
            records = resources.table.get_records(session.id, task_ids)
            return [t for t, r in records.items() if r.state is TaskState.RUNNING]

        held = wait_for(lambda: (now := running()) and len(now) == 2 and now, 60, "2 running")
        assert probe(health_port, "/readyz") == 200

        # WHEN Kubernetes stops it (scale-in, spot interruption)
        stopped_at = time.monotonic()
        first.send_signal(signal.SIGTERM)

        # THEN it leaves the ready set at once but stays alive while it drains
        wait_for(lambda: probe(health_port, "/readyz") == 503, 5, "readyz to turn 503")
        assert probe(health_port, "/healthz") == 200
        # AND it exits cleanly within the grace period, its running tasks finished
        assert first.wait(GRACE_S) == 0
        assert time.monotonic() - stopped_at < GRACE_S
        after = resources.table.get_records(session.id, task_ids)
        assert all(after[t].state is TaskState.SUCCEEDED for t in held)
        # AND it holds nothing any more: no task is left RUNNING under a dead agent's lease
        assert {r.state for r in after.values()} <= {TaskState.SUCCEEDED, TaskState.PENDING}
        assert all(r.lease_token is None for r in after.values())

        # WHEN a second agent comes up
        start_agent(scale_in_grid)
        # THEN it gets every remaining task at once: the prefetched ones were handed back, not
        # left invisible for the queue's visibility timeout (300 s), far longer than this wait
        results = session.wait(timeout=90)

    # AND every task has exactly one result, from its first attempt, run exactly once
    assert sorted(r.task_id for r in results) == sorted(task_ids)
    assert all(r.ok for r in results)
    records = resources.table.get_records(session.id, task_ids)
    assert {r.state for r in records.values()} == {TaskState.SUCCEEDED}
    assert all(r.attempt == 1 and r.errors == [] for r in records.values())
    started = Counter(line.split()[0] for line in runs.read_text().splitlines())
    assert started == dict.fromkeys(task_ids, 1)
