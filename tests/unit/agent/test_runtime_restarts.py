"""A Runtime API slot counts each runtime it kills or loses, by reason
(``htcgrid_agent_runtime_restarts_total``): a runtime that misbehaves on request shows each."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from htcgrid_agent.context import TaskContext
from htcgrid_agent.runtime_api import RuntimeApiSlot
from htcgrid_agent.slots import HandlerLoadError

RUNTIME = Path(__file__).resolve().parents[2] / "e2e" / "runtimes" / "misbehaving_runtime.py"


def restarts(reason: str) -> float:
    value = REGISTRY.get_sample_value("htcgrid_agent_runtime_restarts_total", {"reason": reason})
    return value or 0.0


def slot_running(handler: str) -> RuntimeApiSlot:
    return RuntimeApiSlot(
        bootstrap=f"{sys.executable} {RUNTIME}",
        environment={},
        handler=handler,
        task_root=str(RUNTIME.parent),
        function_name="restarts",
        memory_mb=128,
        region="us-east-1",
        init_timeout_s=10,
    )


@pytest.fixture
def slot() -> Iterator[RuntimeApiSlot]:
    started = slot_running("serve")
    started.start()
    yield started
    started.close()


def invoke(slot: RuntimeApiSlot, event: dict[str, object], timeout_s: float) -> str | None:
    context = TaskContext("restarts", "task-1", "session-1", 1, 128, time.time() + timeout_s)
    outcome = slot.run(json.dumps(event).encode(), context, timeout_s, threading.Event())
    return outcome.error_type


@pytest.mark.parametrize(
    ("event", "error_type", "reason"),
    [
        ({"do": "sleep", "seconds": 30}, "TaskTimeout", "timeout"),
        ({"do": "exit", "code": 2}, "Runtime.ExitError", "exit"),
    ],
)
def test_a_runtime_killed_for_its_attempt_counts_one_restart_of_that_reason(
    slot: RuntimeApiSlot, event: dict[str, object], error_type: str, reason: str
) -> None:
    before = restarts(reason)
    assert invoke(slot, event, timeout_s=1.0) == error_type
    assert restarts(reason) - before == 1
    assert invoke(slot, {"do": "echo"}, timeout_s=10) is None  # its replacement serves


def test_a_runtime_that_fails_its_init_counts_an_init_error_restart() -> None:
    slot = slot_running("init-error")
    before = restarts("init_error")
    try:
        with pytest.raises(HandlerLoadError):
            slot.start()
    finally:
        slot.close()
    assert restarts("init_error") - before == 1
