"""Cancellation, without AWS: which tasks a cancel reaches, the flags agents read, and the
counts."""

from __future__ import annotations

from htcgrid_core import keys
from htcgrid_core.cancellation import cancel
from htcgrid_core.counters import SessionCounters
from htcgrid_core.models import CancelRequest, InlineData, TaskState
from htcgrid_core.table import Completion
from tests.fakes import FakeGrid
from tests.integration.builders import persist


def cancelled_count(grid: FakeGrid, session_id: str) -> int:
    counts = SessionCounters.from_resources(grid).read([session_id])[session_id]
    return counts.finished[TaskState.CANCELLED]


def test_cancelling_named_tasks_spares_finished_ones_and_counts_the_rest_once(
    grid: FakeGrid, session_id: str
) -> None:
    task_ids = persist(grid, session_id, [1, 2, 3]).task_ids
    grid.table.record_success(Completion(session_id, task_ids[0], 1, None), InlineData(inline=0), 1)
    counters = SessionCounters.from_resources(grid)
    request = CancelRequest(session_id=session_id, task_ids=[*task_ids, task_ids[1]])
    report = cancel(request, grid.table, counters)
    assert (report.cancelled, report.already_finished) == (2, 1)  # a repeated id counts once
    again = cancel(request, grid.table, counters)
    assert (again.cancelled, again.already_finished) == (0, 3)
    assert cancelled_count(grid, session_id) == 2
    flags = grid.table.session_flags(session_id)
    assert flags.has_cancelled_tasks
    assert not flags.cancelled


def test_cancelling_a_session_pages_through_every_unfinished_task(
    grid: FakeGrid, session_id: str
) -> None:
    task_ids = persist(grid, session_id, list(range(40))).task_ids
    grid.table.record_success(Completion(session_id, task_ids[0], 1, None), InlineData(inline=0), 1)
    counters = SessionCounters.from_resources(grid)
    calls, token, cancelled = 0, None, 0
    while True:
        request = CancelRequest(session_id=session_id, next_token=token, limit=7)
        report = cancel(request, grid.table, counters)
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
    assert (counts[TaskState.CANCELLED], counts[TaskState.SUCCEEDED]) == (39, 1)
    assert cancelled_count(grid, session_id) == 39


def test_a_running_leased_task_is_cancelled_and_its_holder_cannot_finish_it(
    grid: FakeGrid, session_id: str
) -> None:
    (task_id,) = persist(grid, session_id, ["x"], timeout_s=600).task_ids
    grid.table.claim(session_id, task_id, 1, "lease", 100.0, 1.0)
    cancel(CancelRequest(session_id=session_id, task_ids=[task_id]), grid.table)
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert (record.state, record.lease_token) == (TaskState.CANCELLED, None)
    leases = [grid.table.expired_leases(s, 1e12, None, 100)[0] for s in range(keys.LEASE_SHARDS)]
    assert leases == [[]] * keys.LEASE_SHARDS  # out of the leases index
