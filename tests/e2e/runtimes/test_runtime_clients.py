"""Lambda handlers run unmodified by AWS's runtime interface clients, as the agent's
``--bootstrap`` runtime on the local grid: Python with awslambdaric (the client of AWS's Python
images, ``examples/runtimes/python``) and Node.js with aws-lambda-ric (npm,
``examples/runtimes/node``), both built into ``.tools/runtimes`` by ``make runtimes``. The same
handler cases in both languages, so the same tests; what each client says differs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from htcgrid import Completed, Grid
from htcgrid_core.models import TaskState
from htcgrid_local.grid import LocalGrid
from tests.e2e.runtimes.conftest import built, run_agent


@dataclass(frozen=True)
class Client:
    """One runtime interface client and what it says of a failure."""

    name: str
    handler: str
    #: The handler's own error's type, and lines of the stack trace it posts.
    error_type: str
    trace_lines: tuple[str, ...]
    #: What it says of a module it cannot find.
    missing_module: str


CLIENTS = [
    # awslambdaric's stack trace (file, line, source) comes first, the message last.
    Client(
        "python",
        "app.handler",
        "ValueError",
        ('app.py", line ', "raise ValueError("),
        "No module named 'missing'",
    ),
    # aws-lambda-ric's (its "trace": the error, then each frame) too.
    Client(
        "node",
        "index.handler",
        "RangeError",
        ("RangeError: no price for XYZ\n    at Runtime.handler (file://", "/task/index.mjs:"),
        "Cannot find module 'missing'",
    ),
]


@pytest.fixture(params=CLIENTS, ids=lambda c: c.name)
def ric(request: pytest.FixtureRequest) -> Client:
    return request.param  # type: ignore[no-any-return]


def runtime_args(ric: Client, handler: str | None = None) -> list[str]:
    """The agent's arguments that run the example: its bootstrap, handler and task root."""
    folder = built(ric.name)
    return [
        "--bootstrap",
        str(folder / "bootstrap"),
        "--handler",
        handler or ric.handler,
        "--task-root",
        str(folder / "task"),
    ]


def run(client: Grid, events: list[dict[str, Any]], **options: Any) -> list[Completed]:
    """Submit one task per event in a session; their outcomes, in the events' order."""
    with client.open_session() as session:
        task_ids = list(session.submit(events, **options))
        done = {completed.task_id: completed for completed in session.wait(timeout=60)}
    return [done[task_id] for task_id in task_ids]


def test_tasks_run_end_to_end(runtime_grid: LocalGrid, client: Grid, ric: Client) -> None:
    with run_agent(runtime_grid, *runtime_args(ric), slots=2):
        results = run(client, [{"action": "square", "value": i} for i in range(20)])
    assert all(done.ok for done in results), [done.error for done in results]
    assert [done.value for done in results] == [
        {"value": i, "square": i * i, "runtime": ric.name} for i in range(20)
    ]


def test_a_handler_error_is_recorded_with_its_type_message_and_stack_trace(
    runtime_grid: LocalGrid, client: Grid, ric: Client
) -> None:
    with run_agent(runtime_grid, *runtime_args(ric)), client.open_session() as session:
        (failed_id,) = session.submit(
            [{"action": "fail", "message": "no price for XYZ"}], max_attempts=1
        )
        # The grid's default attempts: more than one.
        (permanent_id,) = session.submit([{"action": "fail_permanently", "message": "bad trade"}])
        done = {completed.task_id: completed for completed in session.wait(timeout=60)}
    failed, permanent = done[failed_id], done[permanent_id]
    assert failed.state is TaskState.FAILED
    assert failed.error is not None
    assert failed.error.type == ric.error_type
    assert failed.error.retryable
    for line in ric.trace_lines:
        assert line in failed.error.message
    assert failed.error.message.endswith("\nno price for XYZ")
    # An error named PermanentTaskError fails the task on its first attempt.
    assert permanent.state is TaskState.FAILED
    assert permanent.error is not None
    assert permanent.error.type == "PermanentTaskError"
    assert not permanent.error.retryable
    assert permanent.error.attempt == 1
    assert permanent.error.message.endswith("\nbad trade")


def test_a_deadline_overrun_is_a_timeout_and_a_new_runtime_takes_the_next_task(
    runtime_grid: LocalGrid, client: Grid, ric: Client
) -> None:
    with run_agent(runtime_grid, *runtime_args(ric)):
        before, overrun, after = (
            run(client, [event], timeout_s=2, max_attempts=1)[0]
            for event in (
                {"action": "context"},
                {"action": "sleep", "seconds": 60},
                {"action": "context"},
            )
        )
    assert before.ok, before.error
    assert overrun.state is TaskState.FAILED
    assert overrun.error is not None
    assert overrun.error.type == "TaskTimeout"
    assert after.ok, after.error
    # The one slot's runtime that overran was killed; another process ran the next task.
    assert after.value["pid"] != before.value["pid"]  # type: ignore[index,call-overload]


def test_the_handler_sees_the_tasks_id_deadline_and_session_in_its_context(
    runtime_grid: LocalGrid, client: Grid, ric: Client
) -> None:
    with run_agent(runtime_grid, *runtime_args(ric)), client.open_session() as session:
        submitted_at = time.time()
        (task_id,) = session.submit([{"action": "context"}], timeout_s=60)
        (done,) = session.wait(timeout=60)
        waited_s = time.time() - submitted_at
    assert done.ok, done.error
    seen: Any = done.value
    assert seen["request_id"] == task_id
    # The deadline is the task's timeout from when the attempt started, which was after the
    # submission and before the result.
    assert 60_000 - waited_s * 1000 <= seen["remaining_ms"] <= 60_000
    assert seen["custom"] == {"session_id": session.id, "attempt": "1"}
    assert seen["invoked_function_arn"].endswith(f":function:{seen['function_name']}")


def test_a_handler_that_cannot_be_imported_fails_the_task_with_the_runtimes_init_error(
    runtime_grid: LocalGrid, client: Grid, ric: Client
) -> None:
    with run_agent(runtime_grid, *runtime_args(ric, "missing.handler")):
        (done,) = run(client, [{"action": "square", "value": 3}], max_attempts=1)
    assert done.state is TaskState.FAILED
    assert done.error is not None
    assert done.error.type == "Runtime.ImportModuleError"
    assert ric.missing_module in done.error.message
