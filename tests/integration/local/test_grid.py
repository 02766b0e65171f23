"""LocalGrid and the htcgrid-local command, without agents (their package is tested apart)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from htcgrid_local.clients import client
from htcgrid_local.emulator import is_serving
from htcgrid_local.grid import LocalGrid
from tests.integration.local.conftest import FIXTURE_TEMPLATE

pytestmark = pytest.mark.timeout(180)


def test_local_grid_starts_an_emulator_provisions_and_stops(tmp_path: Path) -> None:
    grid = LocalGrid(agents=0, stack_name="lg", log_dir=tmp_path)

    with grid:
        env = grid.agent_env()
        endpoint_url = grid.endpoint_url
        assert is_serving(endpoint_url)
        assert env["HTCGRID_ENDPOINT_URL"] == endpoint_url
        assert env["HTCGRID_TABLE_NAME"] == grid.outputs["TaskTableName"]
        assert env["HTCGRID_QUEUE_PREFIX"] == "lg"
        assert env["HTCGRID_PRIORITY_LEVELS"] == "3"
        assert env["AWS_ACCESS_KEY_ID"] == "testing"
        client("dynamodb", endpoint_url).describe_table(TableName=env["HTCGRID_TABLE_NAME"])

    assert not is_serving(endpoint_url)
    assert (tmp_path / "emulator.log").exists()


def test_local_grid_provisions_on_a_given_endpoint_and_leaves_it_running(
    local_emulator: object,
) -> None:
    endpoint_url: str = local_emulator.endpoint_url  # type: ignore[attr-defined]

    with LocalGrid(
        agents=0, stack_name="given", endpoint_url=endpoint_url, template_path=FIXTURE_TEMPLATE
    ) as grid:
        assert grid.emulator is None
        assert grid.outputs["TableName"] == "given-table"

    assert is_serving(endpoint_url)


def test_agents_need_a_handler() -> None:
    with pytest.raises(ValueError, match="handler"):
        LocalGrid(agents=1)


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "htcgrid_local", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_cli_up_detached_env_and_down(tmp_path: Path) -> None:
    up = run_cli(tmp_path, "up", "--detach", "--agents", "0", "--stack-name", "cli")
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / ".htcgrid" / "local.json").read_text())
    try:
        assert is_serving(state["endpoint_url"])
        assert state["outputs"]["QueuePrefix"] == "cli"

        env = run_cli(tmp_path, "env")
        assert env.returncode == 0, env.stderr
        assert f"export HTCGRID_ENDPOINT_URL={state['endpoint_url']}" in env.stdout.splitlines()
    finally:
        down = run_cli(tmp_path, "down")

    assert down.returncode == 0, down.stderr
    assert not is_serving(state["endpoint_url"])
    assert not (tmp_path / ".htcgrid" / "local.json").exists()


CHILD = """
import signal, sys, time
terms = []
def on_term(signum, frame):
    terms.append(signum)
    if len(terms) > 1:
        sys.exit(2)  # a second SIGTERM means "abort", as for an agent
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while not terms:
    time.sleep(0.01)
time.sleep(float(sys.argv[1]))  # finishing held work
sys.exit(0)
"""


def spawn(finish_s: float) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(finish_s)], stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    return child


def test_stopping_sends_one_sigterm_each_and_waits_for_them_together() -> None:
    from htcgrid_local.emulator import stop_processes

    children = [spawn(0.3), spawn(0.3)]

    stop_processes(list(children), grace_s=5.0)

    assert [child.returncode for child in children] == [0, 0]


def test_stopping_kills_what_outlives_the_grace_period() -> None:
    from htcgrid_local.emulator import stop_processes

    child = spawn(60.0)

    stop_processes([child], grace_s=0.5)

    assert child.returncode == -9
