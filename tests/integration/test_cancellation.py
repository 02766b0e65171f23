"""Cancelling sessions and tasks: pending tasks never start, running ones are stopped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from htcgrid_agent.config import AgentConfig
from htcgrid_agent.worker import Worker
from htcgrid_core.cancellation import cancel
from htcgrid_core.models import CancelRequest, InlineData, TaskState
from htcgrid_core.resources import GridResources
from htcgrid_core.settings import GridSettings
from htcgrid_core.table import Completion
from tests.integration.builders import persist, submit
from tests.waiting import wait_for

HANDLER = "htcgrid_examples.scripted:handler"


def states(grid: GridResources, session_id: str, task_ids: list[str]) -> list[TaskState]:
    records = grid.table.get_records(session_id, task_ids)
    return [records[t].state for t in task_ids]


@pytest.mark.shared_stack
def test_cancelling_named_tasks_spares_finished_ones(grid: GridResources, session_id: str) -> None:
    task_ids = persist(grid, session_id, [1, 2, 3]).task_ids
    grid.table.record_success(
        Completion(session_id, task_ids[0], 1, None), InlineData(inline="done"), time.time()
    )
    report = cancel(CancelRequest(session_id=session_id, task_ids=task_ids), grid.table)
    assert (report.cancelled, report.already_finished) == (2, 1)
    assert states(grid, session_id, task_ids) == [
        TaskState.SUCCEEDED,
        TaskState.CANCELLED,
        TaskState.CANCELLED,
    ]
    assert grid.table.session_flags(session_id).has_cancelled_tasks


@pytest.mark.shared_stack
def test_cancelling_a_session_pages_through_every_unfinished_task(
    grid: GridResources, session_id: str
) -> None:
    task_ids = persist(grid, session_id, list(range(40))).task_ids
    grid.table.record_success(
        Completion(session_id, task_ids[0], 1, None), InlineData(inline="done"), time.time()
    )
    calls, token, cancelled = 0, None, 0
    while True:
        report = cancel(CancelRequest(session_id=session_id, next_token=token, limit=7), grid.table)
        calls += 1
        cancelled += report.cancelled
        assert report.cancelled <= 7
        token = report.next_token
        if token is None:
            break
    assert cancelled == 39
    assert calls >= 6
    assert grid.table.session_flags(session_id).cancelled
    counts = grid.table.count_states(session_id)
    assert counts[TaskState.CANCELLED] == 39
    assert counts[TaskState.SUCCEEDED] == 1


def test_pending_tasks_of_a_cancelled_session_never_start(
    grid: GridResources, session_id: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    batch = submit(grid, session_id, [{"value": i, "touch": str(marker)} for i in range(5)])
    cancel(CancelRequest(session_id=session_id), grid.table)
    Worker(AgentConfig(handler=HANDLER, slots=2, burst=True), grid).work()
    assert not marker.exists()
    assert set(states(grid, session_id, batch.task_ids)) == {TaskState.CANCELLED}


def test_a_cancelled_task_of_a_live_session_never_starts(
    grid: GridResources, session_id: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    batch = submit(grid, session_id, [{"value": i, "touch": str(marker)} for i in range(3)])
    cancel(CancelRequest(session_id=session_id, task_ids=[batch.task_ids[1]]), grid.table)
    Worker(AgentConfig(handler=HANDLER, slots=2, burst=True), grid).work()
    assert len(marker.read_text().splitlines()) == 2
    assert states(grid, session_id, batch.task_ids) == [
        TaskState.SUCCEEDED,
        TaskState.CANCELLED,
        TaskState.SUCCEEDED,
    ]


@pytest.mark.parametrize("timeout_s", [60, 600], ids=["short-unleased", "long-leased"])
def test_a_running_task_is_stopped_within_a_heartbeat_and_ends_cancelled(
    grid_settings: GridSettings, session_id: str, tmp_path: Path, timeout_s: int
) -> None:
    # GIVEN an agent checking for cancellation every second, running a 60-second task
    grid = GridResources.from_settings(grid_settings.model_copy(update={"heartbeat_interval_s": 1}))
    marker = tmp_path / "started"
    batch = submit(grid, session_id, [{"sleep": 60, "touch": str(marker)}], timeout_s=timeout_s)
    worker = Worker(AgentConfig(handler=HANDLER, slots=1, burst=True), grid)
    thread = threading.Thread(target=worker.work)
    thread.start()
    wait_for(marker.exists, timeout_s=30, what="the task to start")
    # WHEN the task is cancelled
    cancel(CancelRequest(session_id=session_id, task_ids=batch.task_ids), grid.table)
    # THEN the agent stops it long before its 60 s are up, and it stays CANCELLED
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert states(grid, session_id, batch.task_ids) == [TaskState.CANCELLED]
