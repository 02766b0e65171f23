"""The C++ custom runtime (examples/runtimes/cpp) as a worker: an agent starts its ``bootstrap``
and serves it the Runtime API; tasks run end to end on the local grid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from htcgrid import Grid
from htcgrid_local.grid import LocalGrid

from .conftest import built, run_agent

HANDLER = "example.handle"


@pytest.fixture(scope="module")
def cpp_agent(runtime_grid: LocalGrid) -> Iterator[None]:
    """One agent with one slot running the C++ bootstrap: with one slot, a task that follows a
    timeout can only succeed on a restarted runtime."""
    bootstrap = built("cpp") / "bootstrap"
    with run_agent(runtime_grid, "--bootstrap", str(bootstrap), "--handler", HANDLER):
        yield


@pytest.mark.usefixtures("cpp_agent")
def test_results_are_computed_by_the_runtime_from_each_event_and_its_headers(
    client: Grid,
) -> None:
    events: list[dict[str, Any]] = [
        {"op": "stats", "values": [i, i + 1.5, -2 * i]} for i in range(6)
    ]
    with client.open_session() as session:
        task_ids = session.submit(events, timeout_s=60)
        results = {done.task_id: done for done in session.wait(timeout=60)}
    assert set(results) == set(task_ids)
    for task_id, event in zip(task_ids, events, strict=True):
        done = results[task_id]
        assert done.ok, done.error
        value: Any = done.value
        values = event["values"]
        assert value["count"] == 3
        assert value["sum"] == pytest.approx(sum(values))
        assert value["min"] == min(values)
        assert value["max"] == max(values)
        # THEN the runtime read every header the agent sends with the invocation
        context = value["context"]
        assert context["request_id"] == task_id
        assert context["client_context"] == {"custom": {"session_id": session.id, "attempt": "1"}}
        assert context["function_arn"].startswith("arn:aws:lambda:")
        assert context["trace_id"]
        assert 0 < context["remaining_ms"] <= 60_000


@pytest.mark.usefixtures("cpp_agent")
def test_a_handler_error_is_recorded_with_its_type_message_and_stack_trace(
    client: Grid,
) -> None:
    # GIVEN a message that needs JSON escaping: quotes, backslash, newline, tab, non-ASCII
    message = 'no "price" for C:\\book\n\tline 2: caf\u00e9 \U0001f4b8'
    with client.open_session() as session:
        session.submit([{"op": "fail", "type": "ExampleError", "message": message}], max_attempts=1)
        [done] = session.wait(timeout=60)
    assert not done.ok
    assert done.error is not None
    assert done.error.type == "ExampleError"
    # THEN the message keeps the runtime's stack trace (the handler's frame by name), then the
    # message exactly as the handler made it
    assert done.error.message.endswith(message)
    assert "example::handle" in done.error.message


@pytest.mark.usefixtures("cpp_agent")
def test_a_bad_event_fails_once_as_a_permanent_error_naming_the_field(client: Grid) -> None:
    with client.open_session() as session:
        session.submit([{"op": "stats", "values": [1, "two"]}], max_attempts=3)
        [done] = session.wait(timeout=60)
    assert done.error is not None
    assert done.error.type == "PermanentTaskError"
    assert done.error.message.endswith("values[1]: not a number")
    assert done.error.attempt == 1  # not retried


@pytest.mark.usefixtures("cpp_agent")
def test_a_deadline_overrun_is_a_task_timeout_and_the_restarted_runtime_runs_the_next_task(
    client: Grid,
) -> None:
    with client.open_session() as session:
        # GIVEN a task that sleeps far past its 2 s deadline, on the agent's only slot
        session.submit([{"op": "sleep", "seconds": 120}], timeout_s=2, max_attempts=1)
        [overrun] = session.wait(timeout=60)
        # WHEN the next task comes
        session.submit([{"op": "stats", "values": [4.0]}], timeout_s=60)
        [after] = session.wait(timeout=60)
    assert overrun.error is not None
    assert overrun.error.type == "TaskTimeout"
    # THEN a runtime serves it: the agent killed the sleeping one and started another
    assert after.ok, after.error
    result: Any = after.value
    assert result["sum"] == 4.0
