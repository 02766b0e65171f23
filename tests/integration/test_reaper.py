"""Failures nobody reports: dead workers (TTL reaper), dead letters (DLQ sweep, dlq list and
redrive), and the retry decision itself when it is retried or AWS throttles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from htcgrid.cli import main as htcgrid_cli
from htcgrid_core import aws, faults, keys
from htcgrid_core.cancellation import cancel
from htcgrid_core.models import CancelRequest, InlineData, TaskState
from htcgrid_core.reaper import find_expired_leases, redispatch_stranded_submissions
from htcgrid_core.resources import GridResources
from htcgrid_core.sessions import DISPATCH_DEADLINE_S
from htcgrid_core.settings import GridSettings, get_settings
from htcgrid_local.provision import read_stack_outputs
from tests.integration.builders import persist, submit
from tests.integration.test_agent import HANDLER, run_burst
from tests.unit.core.test_reaper import (  # noqa: F401 - collected here, against moto
    test_a_retried_retry_request_resends_what_its_first_try_may_have_lost,
    test_one_reaper_run_is_bounded_and_runs_drain_every_expired_lease,
)
from tests.waiting import wait_for


def run_reaper(grid_settings: GridSettings) -> None:
    """One run of the stack's reaper workflow, as its schedule starts it."""
    endpoint = str(grid_settings.endpoint_url)
    outputs = read_stack_outputs(endpoint, grid_settings.queue_prefix)
    execution = aws.client("stepfunctions", endpoint, grid_settings.region).start_sync_execution(
        stateMachineArn=outputs["ReapWorkflowArn"], input="{}"
    )
    assert execution["status"] == "SUCCEEDED", execution.get("cause")


def queue_depth(grid: GridResources, priority: int) -> tuple[int, int]:
    return grid.queues.depth(grid.queues.task_queue_url(priority))


def test_a_dead_workers_leased_task_is_retried_by_the_reaper_and_nothing_is_left_behind(
    grid: GridResources, grid_settings: GridSettings, session_id: str, tmp_path: Path
) -> None:
    # GIVEN a long (leased) task whose agent dies mid-task, its lease short for the test
    started = tmp_path / "started"
    payload = {"value": "v", "sleep": 1, "touch": str(started)}
    (task_id,) = submit(grid, session_id, [payload], timeout_s=600).task_ids
    env = {
        **os.environ,
        **grid_settings.as_environment(),
        "HTCGRID_LEASE_DURATION_S": "5",
        "HTCGRID_HEARTBEAT_INTERVAL_S": "0.5",
    }
    agent = subprocess.Popen(
        [sys.executable, "-m", "htcgrid_agent", "--handler", HANDLER, "--long-poll", "1"], env=env
    )
    try:
        # Killed once its handler runs: by then the agent has claimed the task and tied its
        # message's visibility to the lease (killed between the two, the message would stay
        # hidden for the queue's whole visibility timeout, which this test does not wait out).
        wait_for(started.exists, timeout_s=60, what="the agent to start the task")
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    lease = grid.table.get_records(session_id, [task_id])[task_id].lease_expires_at
    assert lease is not None
    # WHEN the lease has expired (the reaper's own query finds it) and the reaper runs
    wait_for(
        lambda: any(
            f.task_id == task_id
            for b in find_expired_leases(grid, time.time(), 1000).batches
            for f in b.failures
        ),
        timeout_s=lease - time.time() + 30,
        what="the lease to expire",
    )
    run_reaper(grid_settings)
    # THEN the retry workflow gave the task a new attempt, with the reason kept
    retried = wait_for(
        lambda: (r := grid.table.get_records(session_id, [task_id])[task_id]).attempt == 2 and r,
        timeout_s=30,
        what="the reaper's retry",
    )
    assert retried.state is TaskState.PENDING
    assert [e.type for e in retried.errors] == ["LeaseExpired"]
    run_reaper(grid_settings)  # a second run finds nothing more to do
    # AND the next agent finishes it; the dead worker's message, back after its visibility,
    # is recognised as stale and removed
    run_burst(grid)
    done = grid.table.get_records(session_id, [task_id])[task_id]
    assert (done.state, done.attempt) == (TaskState.SUCCEEDED, 2)
    # The dead worker's heartbeat hid its message for 2 x 5 s (the burst above may have met it
    # already): once nothing is hidden, the next burst finds it stale, if it is still there.
    wait_for(lambda: queue_depth(grid, 1)[1] == 0, timeout_s=30, what="the stale message")
    run_burst(grid)
    assert queue_depth(grid, 1) == (0, 0)
    assert grid.table.get_records(session_id, [task_id])[task_id].attempt == 2


def cli(capsys: pytest.CaptureFixture[str], grid_settings: GridSettings, *args: str) -> list[dict]:  # type: ignore[type-arg]
    code = htcgrid_cli(
        [
            "--stack",
            grid_settings.queue_prefix,
            "--endpoint-url",
            str(grid_settings.endpoint_url),
            "--region",
            "us-east-1",
            "--json",
            *args,
        ]
    )
    assert code == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def test_a_dead_lettered_task_is_failed_with_the_reason_listed_and_redriven(
    grid: GridResources,
    grid_settings: GridSettings,
    session_id: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a task whose message was delivered MaxReceiveCount times without an outcome
    (task_id,) = submit(grid, session_id, [{"value": "second life"}]).task_ids
    sqs = aws.sqs(grid_settings.endpoint_url, grid_settings.region)
    url = grid.queues.task_queue_url(1)
    for _ in range(grid_settings.max_receive_count + 1):
        sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
    dlq = grid.queues.dead_letter_queue_url(1)
    assert grid.queues.depth(dlq) == (1, 0)
    # WHEN the reaper runs
    run_reaper(grid_settings)
    # THEN the task is FAILED with the reason, and the message stays in the DLQ for operators
    failed = wait_for(
        lambda: (
            (r := grid.table.get_records(session_id, [task_id])[task_id]).state.is_terminal and r
        ),
        timeout_s=30,
        what="the sweep to fail the task",
    )
    assert failed.state is TaskState.FAILED
    assert [e.type for e in failed.errors] == ["DeadLettered"]
    assert not failed.errors[0].retryable
    assert grid.queues.depth(dlq) == (1, 0)
    run_reaper(grid_settings)  # sweeping again changes nothing
    assert len(grid.table.get_records(session_id, [task_id])[task_id].errors) == 1
    # AND `htcgrid dlq list` shows it with its task's state and reason
    listed = cli(capsys, grid_settings, "dlq", "list", "--priority", "1")
    depth, letter = listed
    assert depth == {"priority": 1, "visible": 1, "in_flight": 0}
    assert (letter["task_id"], letter["state"]) == (task_id, "FAILED")
    assert letter["last_error"]["type"] == "DeadLettered"
    # AND `htcgrid dlq redrive` gives it one more attempt, which succeeds
    (report,) = cli(capsys, grid_settings, "dlq", "redrive", "--session", session_id)
    assert report["redriven"] == [task_id]
    assert grid.queues.depth(dlq) == (0, 0)
    run_burst(grid)
    done = grid.table.get_records(session_id, [task_id])[task_id]
    assert (done.state, done.attempt) == (TaskState.SUCCEEDED, 2)
    assert isinstance(done.result, InlineData)
    assert done.result.inline["value"] == "second life"  # type: ignore[index,call-overload]


@pytest.fixture
def faulty(grid_settings: GridSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[GridResources]:
    """The grid's resources through clients that see 20 % throttling and 5 % HTTP 500s."""
    monkeypatch.setenv(
        "HTCGRID_FAULTS",
        "dynamodb:throttle=0.2,dynamodb:error=0.05,sqs:throttle=0.2,sqs:error=0.05",
    )
    get_settings.cache_clear()
    aws.client.cache_clear()
    faults.injected.clear()
    yield GridResources.from_settings(grid_settings)
    monkeypatch.delenv("HTCGRID_FAULTS")
    get_settings.cache_clear()
    aws.client.cache_clear()


def test_throttling_and_server_errors_are_retried_and_lose_nothing(
    faulty: GridResources, session_id: str
) -> None:
    payloads = [{"value": i} for i in range(20)] + [{"value": "again", "fail_attempts": 1}]
    batch = submit(faulty, session_id, payloads)
    run_burst(faulty, slots=4)
    records = faulty.table.get_records(session_id, batch.task_ids)
    assert {r.state for r in records.values()} == {TaskState.SUCCEEDED}
    assert [r.attempt for r in records.values()].count(2) == 1
    injected = {service for service, _ in faults.injected}
    assert injected == {"dynamodb", "sqs"}
    assert sum(faults.injected.values()) > 10


def test_a_submission_persisted_but_never_dispatched_is_dispatched_once_by_the_reaper(
    grid: GridResources, session_id: str
) -> None:
    # GIVEN a submission whose workflow wrote its tasks and died before dispatching them, one
    # of them cancelled since
    task_ids = persist(grid, session_id, [{"value": i} for i in range(3)], token="tok").task_ids
    cancel(CancelRequest(session_id=session_id, task_ids=task_ids[:1]), grid.table)
    # WHEN the reaper sweeps before the dispatch deadline, it leaves it alone
    assert redispatch_stranded_submissions(grid, time.time(), 1000).found == 0
    assert queue_depth(grid, 1) == (0, 0)
    # WHEN it sweeps after the deadline
    later = time.time() + DISPATCH_DEADLINE_S + 1
    report = redispatch_stranded_submissions(grid, later, 1000)
    # THEN the tasks still PENDING got their messages, once: the next sweep sends nothing
    assert report.found == 2
    assert redispatch_stranded_submissions(grid, later, 1000).found == 0
    assert queue_depth(grid, 1) == (2, 0)
    # AND an agent runs them
    run_burst(grid)
    records = grid.table.get_records(session_id, task_ids)
    assert [records[t].state for t in task_ids] == [
        TaskState.CANCELLED,
        TaskState.SUCCEEDED,
        TaskState.SUCCEEDED,
    ]


def test_the_reaper_workflow_runs_the_stranded_submissions_sweep(
    grid: GridResources, grid_settings: GridSettings, session_id: str
) -> None:
    # GIVEN a stranded submission past its dispatch deadline
    persist(grid, session_id, ["a", "b"], token="tok")
    aws.dynamodb(grid.settings.endpoint_url, grid.settings.region).update_item(
        TableName=grid.settings.table_name,
        Key=keys.submission_key(session_id, "tok"),
        UpdateExpression="SET lease_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )
    # WHEN the reaper's workflow runs, as its schedule starts it
    run_reaper(grid_settings)
    # THEN the tasks are on their queue
    assert queue_depth(grid, 1) == (2, 0)
