"""The worker agent against moto: success, failures, duplicates and SIGTERM mid-task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from htcgrid_agent.config import AgentConfig
from htcgrid_agent.worker import Worker
from htcgrid_core import aws, result_queues
from htcgrid_core.models import (
    InlineData,
    ResultNotice,
    StoredData,
    Submission,
    TaskSpec,
    TaskState,
)
from htcgrid_core.resources import GridResources
from htcgrid_core.settings import GridSettings
from htcgrid_core.submissions import dispatch_submission, persist_submission
from tests.integration.builders import persist, submit
from tests.waiting import wait_for

HANDLER = "htcgrid_examples.scripted:handler"


def run_burst(grid: GridResources, slots: int = 2, **config: Any) -> int:
    """Run an agent until the queues are empty."""
    return Worker(AgentConfig(handler=HANDLER, slots=slots, burst=True, **config), grid).work()


@pytest.fixture
def result_queue(grid_settings: GridSettings, session_id: str) -> Iterator[str]:
    """The session's result queue, as the session function would open it."""
    sqs = aws.sqs(grid_settings.endpoint_url, grid_settings.region)
    name = result_queues.queue_name(grid_settings.queue_prefix, session_id)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


def notices(grid_settings: GridSettings, url: str) -> list[ResultNotice]:
    sqs = aws.sqs(grid_settings.endpoint_url, grid_settings.region)
    found = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(ResultNotice.model_validate_json(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def sample_count(histogram: str) -> float:
    return REGISTRY.get_sample_value(f"{histogram}_count") or 0.0


def states(grid: GridResources, session_id: str, task_ids: list[str]) -> dict[str, TaskState]:
    return {t: r.state for t, r in grid.table.get_records(session_id, task_ids).items()}


def test_agent_runs_tasks_records_results_and_notifies_the_session(
    grid: GridResources, grid_settings: GridSettings, session_id: str, result_queue: str
) -> None:
    batch = submit(
        grid, session_id, [{"value": i} for i in range(12)], result_queue_url=result_queue
    )
    run_burst(grid, slots=3)
    records = grid.table.get_records(session_id, batch.task_ids)
    assert {r.state for r in records.values()} == {TaskState.SUCCEEDED}
    for i, task_id in enumerate(batch.task_ids):
        result = records[task_id].result
        assert isinstance(result, InlineData)
        assert result.inline["value"] == i
        assert result.inline["task_id"] == task_id
    notified = [r.task_id for n in notices(grid_settings, result_queue) for r in n.results]
    assert sorted(notified) == sorted(batch.task_ids)


def test_results_carry_where_the_attempt_spent_its_time(
    grid: GridResources, grid_settings: GridSettings, session_id: str, result_queue: str
) -> None:
    waits_before = sample_count("htcgrid_agent_queue_wait_seconds")
    delays_before = sample_count("htcgrid_agent_start_delay_seconds")
    began = time.time()
    batch = submit(
        grid, session_id, [{"value": i} for i in range(5)], result_queue_url=result_queue
    )
    run_burst(grid, slots=2)
    # The agent's metrics saw each first delivery's queue wait and each handler's start delay.
    assert sample_count("htcgrid_agent_queue_wait_seconds") - waits_before == 5
    assert sample_count("htcgrid_agent_start_delay_seconds") - delays_before == 5
    sent = notices(grid_settings, result_queue)
    results = [r for n in sent for r in n.results]
    assert sorted(r.task_id for r in results) == sorted(batch.task_ids)
    for notice in sent:
        assert notice.sent_at is not None
        for result in notice.results:
            # SQS stamps the send in whole milliseconds: allow for its rounding down.
            assert result.queued_at is not None
            assert result.received_at is not None
            assert result.started_at is not None
            assert result.finished_at is not None
            assert began - 0.001 <= result.queued_at
            assert result.queued_at - 0.001 <= result.received_at <= result.started_at
            assert result.started_at <= result.finished_at <= notice.sent_at


def test_handler_exception_is_a_failed_attempt_then_retried(
    grid: GridResources, session_id: str
) -> None:
    batch = submit(grid, session_id, [{"value": "v", "fail_attempts": 1}], max_attempts=3)
    run_burst(grid)
    record = grid.table.get_records(session_id, batch.task_ids)[batch.task_ids[0]]
    assert record.state is TaskState.SUCCEEDED
    assert record.attempt == 2
    assert [(e.type, e.attempt) for e in record.errors] == [("TransientTaskError", 1)]


def test_permanent_failures_and_spent_budgets_end_failed_with_their_errors(
    grid: GridResources, session_id: str
) -> None:
    batch = submit(
        grid,
        session_id,
        [{"fail": "permanent"}, {"fail": "always"}, {"unserializable": True}],
        max_attempts=2,
    )
    run_burst(grid)
    records = grid.table.get_records(session_id, batch.task_ids)
    permanent, always, unserialisable = (records[t] for t in batch.task_ids)
    assert permanent.state is TaskState.FAILED
    assert len(permanent.errors) == 1
    assert always.state is TaskState.FAILED
    assert [e.attempt for e in always.errors] == [1, 2]
    assert unserialisable.errors[-1].type == "ResultNotSerializable"


def test_duplicate_delivery_records_one_result(
    grid: GridResources, grid_settings: GridSettings, session_id: str, result_queue: str
) -> None:
    batch = persist(
        grid, session_id, [{"value": "once", "sleep": 0.5}], result_queue_url=result_queue
    )
    for _ in range(3):  # the same message delivered three times
        dispatch_submission(batch, grid)
    run_burst(grid, slots=3)
    record = grid.table.get_records(session_id, batch.task_ids)[batch.task_ids[0]]
    assert record.state is TaskState.SUCCEEDED
    assert record.errors == []
    received = notices(grid_settings, result_queue)
    assert len([r for n in received for r in n.results]) == 1
    assert len([t for n in received for t in n.changed]) == 2


def test_long_tasks_are_claimed_with_a_lease_released_on_success(
    grid: GridResources, session_id: str
) -> None:
    batch = submit(grid, session_id, [{"value": 1}], timeout_s=600)  # above the lease threshold
    run_burst(grid)
    record = grid.table.get_records(session_id, batch.task_ids)[batch.task_ids[0]]
    assert record.state is TaskState.SUCCEEDED
    assert record.started_at is not None
    assert record.lease_token is None


def agent_process(grid_settings: GridSettings, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **grid_settings.as_environment()}
    return subprocess.Popen(
        [sys.executable, "-m", "htcgrid_agent", "--handler", HANDLER, "--long-poll", "1", *args],
        env=env,
    )


def test_sigterm_mid_task_finishes_held_tasks_and_loses_nothing(
    grid: GridResources, grid_settings: GridSettings, session_id: str
) -> None:
    # GIVEN long tasks (leased, so RUNNING shows which ones the agent holds)
    batch = submit(grid, session_id, [{"value": i, "sleep": 2} for i in range(6)], timeout_s=600)
    agent = agent_process(grid_settings, "--slots", "2")
    try:
        held = wait_for(
            lambda: [
                t
                for t, s in states(grid, session_id, batch.task_ids).items()
                if s is TaskState.RUNNING
            ],
            timeout_s=60,
            what="the agent to start tasks",
        )
        # WHEN it is told to stop mid-task
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0
    finally:
        agent.kill()
    # THEN what it held finished, and it took nothing it did not finish
    after = states(grid, session_id, batch.task_ids)
    assert all(after[t] is TaskState.SUCCEEDED for t in held)
    assert set(after.values()) <= {TaskState.SUCCEEDED, TaskState.PENDING}
    # AND the rest are still queued: another agent completes every task
    run_burst(grid, slots=3)
    assert set(states(grid, session_id, batch.task_ids).values()) == {TaskState.SUCCEEDED}


def test_a_message_that_is_not_a_task_ends_in_the_dlq_and_nothing_else_is_lost(
    grid: GridResources, grid_settings: GridSettings, session_id: str
) -> None:
    sqs = aws.sqs(grid_settings.endpoint_url, grid_settings.region)
    url = grid.queues.task_queue_url(1)
    sqs.send_message(QueueUrl=url, MessageBody='{"hello": "world"}')
    batch = submit(grid, session_id, [{"value": i} for i in range(5)])
    run_burst(grid)
    dlq = sqs.get_queue_url(QueueName=f"{grid_settings.queue_prefix}-p1-dlq")["QueueUrl"]
    (dead,) = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert dead["Body"] == '{"hello": "world"}'
    assert set(states(grid, session_id, batch.task_ids).values()) == {TaskState.SUCCEEDED}


def test_a_missing_or_altered_stored_payload_fails_its_task_with_the_reason(
    grid: GridResources, grid_settings: GridSettings, session_id: str
) -> None:
    prefix = f"sessions/{session_id}/payloads"
    altered = grid.payloads.encode({"value": "x" * 40_000}, f"{prefix}/altered.json")
    assert isinstance(altered, StoredData)
    aws.s3(grid_settings.endpoint_url, grid_settings.region).put_object(
        Bucket=grid_settings.bucket_name, Key=altered.s3_key, Body=b'{"value": "swapped"}'
    )
    missing = StoredData(s3_key=f"{prefix}/missing.json", size=10, sha256="0" * 64)
    submission = Submission(
        session_id=session_id,
        submission_token="stored",
        tasks=[TaskSpec(payload=missing), TaskSpec(payload=altered)],
    )
    batch = persist_submission(submission, grid)
    dispatch_submission(batch, grid)
    run_burst(grid)
    records = grid.table.get_records(session_id, batch.task_ids)
    gone, swapped = (records[t] for t in batch.task_ids)
    assert gone.state is swapped.state is TaskState.FAILED
    assert [e.type for e in gone.errors] == ["PayloadMissing"]
    assert [e.type for e in swapped.errors] == ["PayloadIntegrityError"]


def test_a_task_past_its_timeout_is_stopped_and_counts_as_a_failed_attempt(
    grid: GridResources, session_id: str, tmp_path: Path
) -> None:
    marker = tmp_path / "attempts"
    batch = submit(
        grid,
        session_id,
        [{"sleep": 30, "touch": str(marker)}],
        timeout_s=1,
        max_attempts=2,
    )
    run_burst(grid)
    record = grid.table.get_records(session_id, batch.task_ids)[batch.task_ids[0]]
    assert record.state is TaskState.FAILED
    assert [(e.type, e.attempt) for e in record.errors] == [("TaskTimeout", 1), ("TaskTimeout", 2)]
    assert len(marker.read_text().splitlines()) == 2  # both attempts started, both were stopped
