"""The agent's Runtime API, end to end on the local grid, with a runtime that misbehaves on
request (``misbehaving_runtime.py``): each way a runtime can fail is a recorded outcome and
the slot goes on. The real runtime clients have tests of their own beside this one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from htcgrid import Completed, Grid
from htcgrid_core.models import TaskState
from htcgrid_core.traces import trace_root
from htcgrid_local.grid import LocalGrid
from tests.e2e.runtimes.conftest import run_agent
from tests.e2e.test_traces import submission_trace
from tests.waiting import wait_for

RUNTIME = Path(__file__).with_name("misbehaving_runtime.py")
BOOTSTRAP = f"{sys.executable} {RUNTIME}"


def run(client: Grid, events: list[dict[str, Any]], **options: Any) -> list[Completed]:
    """Submit one task per event in a session; their outcomes, in the events' order."""
    with client.open_session() as session:
        task_ids = list(session.submit(events, **options))
        done = {completed.task_id: completed for completed in session.wait(timeout=90)}
    return [done[task_id] for task_id in task_ids]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_runtime_gets_lambdas_headers_and_environment(
    runtime_grid: LocalGrid, client: Grid, tmp_path: Path
) -> None:
    with (
        run_agent(
            runtime_grid,
            "--bootstrap",
            BOOTSTRAP,
            "--handler",
            "app.handler",
            "--task-root",
            str(tmp_path),
            "--name",
            "pricer",
        ),
        client.open_session() as session,
    ):
        submitted_at = time.time()
        (task_id,) = session.submit([{"do": "describe"}], timeout_s=120)
        (done,) = session.wait(timeout=60)
    assert done.ok, done.error
    seen = done.value
    headers, env = seen["headers"], seen["env"]
    assert headers["Lambda-Runtime-Aws-Request-Id"] == task_id
    deadline_s = int(headers["Lambda-Runtime-Deadline-Ms"]) / 1000
    assert submitted_at + 120 <= deadline_s <= time.time() + 120
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == (
        "arn:aws:lambda:us-east-1:000000000000:function:pricer"
    )
    # the task's trace: the one its submission ran in, as its record keeps it
    assert trace_root(headers["Lambda-Runtime-Trace-Id"]) == trace_root(
        submission_trace(runtime_grid, session.id, task_id)
    )
    assert json.loads(headers["Lambda-Runtime-Client-Context"]) == {
        "custom": {"session_id": session.id, "attempt": "1"}
    }
    assert "Lambda-Runtime-Cognito-Identity" not in headers  # none, as Lambda omits it
    assert env["_HANDLER"] == "app.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(tmp_path) == seen["cwd"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "pricer"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) > 0
    # The agent's credentials stay with the agent.
    assert env["AWS_ACCESS_KEY_ID"] is None
    assert env["AWS_SECRET_ACCESS_KEY"] is None


def test_each_way_a_runtime_fails_is_recorded_and_the_slot_goes_on(
    runtime_grid: LocalGrid, client: Grid
) -> None:
    events = [
        {"do": "describe"},
        {"do": "error"},
        {"do": "error", "type": "com.example.PermanentTaskError"},
        {"do": "sleep", "seconds": 30},
        {"do": "describe"},
        {"do": "exit", "code": 7},
        {"do": "big", "bytes": 7_000_000},
        {"do": "not-json"},
        {"do": "describe"},
    ]
    with run_agent(runtime_grid, "--bootstrap", BOOTSTRAP):
        # One at a time, in order, on the one slot: each outcome is the event's own.
        outcomes = [run(client, [event], timeout_s=2, max_attempts=1)[0] for event in events]
    first, error, permanent, slept, after_kill, exited, big, not_json, last = outcomes
    assert first.ok
    assert after_kill.ok
    assert last.ok
    assert error.state is TaskState.FAILED
    assert error.error is not None
    assert error.error.type == "ValueError"
    assert error.error.message.endswith("raise ValueError\nthe event asked for an error")
    assert error.error.retryable
    assert permanent.error is not None
    assert not permanent.error.retryable
    assert slept.error is not None
    assert slept.error.type == "TaskTimeout"
    assert "ran past the task's timeout of 2 s" in slept.error.message
    # The overrun runtime was killed and replaced; the one that answered a too-large response
    # went on serving (it was told 413), so the last task ran where the big one had.
    assert after_kill.value["pid"] != first.value["pid"]
    assert exited.error is not None
    assert exited.error.type == "Runtime.ExitError"
    assert exited.error.message == "Runtime exited with error: exit status 7"
    assert big.error is not None
    assert big.error.type == "Function.ResponseSizeTooLarge"
    assert not big.error.retryable
    assert not_json.error is not None
    assert not_json.error.type == "ResultNotJson"
    assert last.value["pid"] not in (first.value["pid"], after_kill.value["pid"])


def test_a_handler_error_is_retried_within_the_tasks_attempts(
    runtime_grid: LocalGrid, client: Grid
) -> None:
    with run_agent(runtime_grid, "--bootstrap", BOOTSTRAP):
        (done,) = run(client, [{"do": "error"}], max_attempts=2)
    assert done.state is TaskState.FAILED
    assert done.error is not None
    assert done.error.type == "ValueError"
    assert done.error.attempt == 2


def test_a_runtime_that_stops_asking_for_work_is_replaced(
    runtime_grid: LocalGrid, client: Grid
) -> None:
    with run_agent(runtime_grid, "--bootstrap", BOOTSTRAP, "--runtime-init-timeout", "2"):
        silent, waiting, after = (
            run(client, [event], timeout_s=30, max_attempts=1)[0]
            for event in ({"do": "no-next"}, {"do": "echo"}, {"do": "echo"})
        )
    assert silent.ok  # it answered, then went quiet
    assert waiting.error is not None
    assert waiting.error.type == "Runtime.NoNextInvocation"
    assert "did not ask for its next invocation within 2 s" in waiting.error.message
    assert after.ok
    assert after.value == {"echo": {"do": "echo"}}


def test_a_runtime_that_cannot_start_fails_tasks_with_its_init_error_and_is_not_ready(
    runtime_grid: LocalGrid, client: Grid
) -> None:
    health = free_port()
    with run_agent(
        runtime_grid,
        "--bootstrap",
        BOOTSTRAP,
        "--handler",
        "init-error",
        "--health-port",
        str(health),
    ):
        (done,) = run(client, [{"do": "echo"}], max_attempts=1)

        def readiness() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz") as answer:
                    return answer.status, answer.read().decode()
            except urllib.error.HTTPError as refused:
                return refused.code, refused.read().decode()
            except OSError:
                return 0, ""

        _status, reason = wait_for(lambda: (r := readiness())[0] == 503 and r, 20, "readiness")
    assert done.state is TaskState.FAILED
    assert done.error is not None
    assert done.error.type == "Runtime.ImportModuleError"
    assert "no module 'app'" in done.error.message
    assert "Runtime.ImportModuleError" in reason


def test_cancelling_a_running_task_kills_its_runtime(
    runtime_grid: LocalGrid, client: Grid, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    with run_agent(runtime_grid, "--bootstrap", BOOTSTRAP):
        (before,) = run(client, [{"do": "describe"}])
        with client.open_session() as session:
            (task_id,) = session.submit(
                [{"do": "sleep", "seconds": 60, "mark": str(started)}], timeout_s=120
            )
            wait_for(started.exists, 30, "the runtime to start the task")
            cancelled_at = time.monotonic()
            client.cancel(session.id, [task_id])
            (done,) = session.wait(timeout=60)
            stopped_in = time.monotonic() - cancelled_at
        (after,) = run(client, [{"do": "describe"}])
    assert done.state is TaskState.CANCELLED
    assert stopped_in < 30  # within a heartbeat or two, not the task's 60 s
    assert after.ok
    assert after.value["pid"] != before.value["pid"]


def test_a_sidecar_runtime_that_overruns_is_killed_by_the_agent(
    runtime_grid: LocalGrid, client: Grid
) -> None:
    port = free_port()

    def sidecar() -> subprocess.Popen[bytes]:
        # Started as the pod would start a runtime container beside the agent, once the
        # agent listens (a runtime started earlier exits, and its container is restarted).
        wait_for(lambda: listening(port), 30, "the agent's Runtime API")
        env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"}
        return subprocess.Popen([sys.executable, str(RUNTIME)], env=env)

    with run_agent(runtime_grid, "--runtime-api-port", str(port)):
        runtime = sidecar()
        try:
            (first,) = run(client, [{"do": "describe"}])
            (slept,) = run(client, [{"do": "sleep", "seconds": 60}], timeout_s=2, max_attempts=1)
            # The agent found the runtime by its connection and killed it.
            assert runtime.wait(10) == -signal.SIGKILL
            runtime = sidecar()  # as the kubelet restarts the container
            (after,) = run(client, [{"do": "describe"}])
        finally:
            runtime.kill()
            runtime.wait()
    assert first.ok
    assert first.value["pid"] != after.value["pid"]
    assert slept.error is not None
    assert slept.error.type == "TaskTimeout"
    assert after.ok


def test_an_agent_waiting_for_its_sidecar_runtime_stops_at_once(runtime_grid: LocalGrid) -> None:
    # GIVEN an agent whose sidecar runtime never comes, with a long init timeout
    port = free_port()
    with run_agent(
        runtime_grid, "--runtime-api-port", str(port), "--runtime-init-timeout", "300"
    ) as agent:
        wait_for(lambda: listening(port), 30, "the agent's Runtime API")
        stopping_at = time.monotonic()
    # THEN a SIGTERM ends it cleanly without waiting out the timeout
    assert agent.returncode == 0
    assert time.monotonic() - stopping_at < 10
