"""The worker agent against moto: success, failures, duplicates and SIGTERM mid-task."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from htcgrid_agent import worker as worker_module
from htcgrid_agent.config import AgentConfig
from htcgrid_agent.health import Probes
from htcgrid_agent.worker import Worker
from htcgrid_core import aws, deadletters, result_queues
from htcgrid_core.errors import RetryableError
from htcgrid_core.models import (
    InlineData,
    ResultNotice,
    StoredData,
    Submission,
    TaskMessage,
    TaskSpec,
    TaskState,
)
from htcgrid_core.resources import GridResources
from htcgrid_core.settings import GridSettings
from htcgrid_core.submissions import dispatch_submission, persist_submission
from tests.integration.builders import persist, submit
from tests.waiting import wait_for

HANDLER = "htcgrid_examples.scripted:handler"
HOSTILE = "tests.unit.agent.hostile:handler"


def run_burst(grid: GridResources, slots: int = 2, **config: Any) -> int:
    """Run an agent until the queues are empty."""
    return Worker(AgentConfig(handler=HANDLER, slots=slots, burst=True, **config), grid).work()


class AgentThread:
    """An agent running in a thread of the test, stopped (and checked) with a deadline."""

    def __init__(self, grid: GridResources, handler: str = HANDLER, **config: Any) -> None:
        self.worker = Worker(AgentConfig(handler=handler, **config), grid)
        self._thread = threading.Thread(target=self.worker.work, daemon=True)
        self._thread.start()

    def join(self, timeout_s: float = 60) -> None:
        """Wait for a burst agent to finish; fail, saying what is wrong with it, if it does not."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            problems = self.worker.problems()
            self.stop()
            pytest.fail(f"the agent did not finish within {timeout_s} s: {problems}")

    def stop(self) -> None:
        self.worker.request_stop()
        self._thread.join(60)


def leasing(grid: GridResources, **settings: Any) -> GridResources:
    """The same grid, with short leases and heartbeats so a test sees several of them."""
    update = {"lease_duration_s": 3, "heartbeat_interval_s": 0.2, "lease_threshold_s": 0}
    return GridResources.from_settings(grid.settings.model_copy(update={**update, **settings}))


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


def test_a_slot_runs_its_next_task_while_the_last_ones_outcome_is_recorded(
    grid: GridResources, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one slot, two tasks, and a table whose first completion write waits until the
    # slot has started its next task (or 10 s, if it never does)
    batch = submit(grid, session_id, [{"value": 1}, {"value": 2}])
    agent = Worker(AgentConfig(handler=HANDLER, slots=1, burst=True), grid)
    next_started, first_recorded = threading.Event(), threading.Event()
    handlers: list[bool] = []  # per handler started: whether the first outcome was recorded
    run_handler = agent._run_handler
    record_success = grid.table.record_success

    def running(*args: Any, **kwargs: Any) -> Any:
        handlers.append(first_recorded.is_set())
        if len(handlers) == 2:
            next_started.set()
        return run_handler(*args, **kwargs)

    def recording(*args: Any, **kwargs: Any) -> None:
        if not first_recorded.is_set():
            next_started.wait(10)
            record_success(*args, **kwargs)
            first_recorded.set()
        else:
            record_success(*args, **kwargs)

    monkeypatch.setattr(agent, "_run_handler", running)
    monkeypatch.setattr(grid.table, "record_success", recording)
    assert agent.work() == 2
    # THEN the second task started before the first's outcome was recorded, and both stand
    assert handlers == [False, False]
    records = grid.table.get_records(session_id, batch.task_ids)
    assert {r.state for r in records.values()} == {TaskState.SUCCEEDED}


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
    assert set(states(grid, session_id, batch.task_ids).values()) == {TaskState.SUCCEEDED}
    # AND the DLQ listing (`htcgrid dlq list`) shows the body with why it is not a task
    (dead,) = deadletters.peek(grid.queues, grid.table, [1])
    assert (dead.message, dead.task) == (None, None)
    assert dead.problem is not None
    assert dead.problem.startswith("not a task message: ")


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
    assert "missing or unreadable" in gone.errors[0].message
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


def test_a_stored_payload_that_is_not_json_fails_its_task_and_the_slot_goes_on(
    grid: GridResources, grid_settings: GridSettings, session_id: str
) -> None:
    # GIVEN a client's stored payload whose bytes match their size and SHA-256 but are not JSON
    body = b"\x00 not JSON at all"
    key = f"sessions/{session_id}/payloads/garbage.json"
    aws.s3(grid_settings.endpoint_url, grid_settings.region).put_object(
        Bucket=grid_settings.bucket_name, Key=key, Body=body
    )
    garbage = StoredData(s3_key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest())
    submission = Submission(
        session_id=session_id,
        submission_token="garbage",
        tasks=[
            TaskSpec(payload=garbage),
            TaskSpec(payload=InlineData(inline={"value": 1})),
            TaskSpec(payload=InlineData(inline={"value": 2})),
        ],
    )
    batch = persist_submission(submission, grid)
    dispatch_submission(batch, grid)
    # WHEN one agent with one slot runs them
    AgentThread(grid, slots=1, burst=True).join()
    # THEN that task failed for good, saying why, and the slot ran the others
    records = grid.table.get_records(session_id, batch.task_ids)
    bad, *good = (records[t] for t in batch.task_ids)
    assert bad.state is TaskState.FAILED
    assert [(e.type, e.retryable) for e in bad.errors] == [("PayloadNotJsonError", False)]
    assert "not JSON" in bad.errors[0].message
    assert {r.state for r in good} == {TaskState.SUCCEEDED}


def test_lone_surrogates_and_overlong_class_names_fail_their_tasks_and_the_slot_goes_on(
    grid: GridResources, session_id: str
) -> None:
    batch = submit(
        grid,
        session_id,
        [{"surrogate_error": 1}, {"long_type": 300}, {"surrogate_result": 1}, {"value": "ok"}],
        max_attempts=1,
    )
    AgentThread(grid, handler=HOSTILE, slots=1, burst=True).join()
    records = grid.table.get_records(session_id, batch.task_ids)
    surrogate_error, long_type, surrogate_result, fine = (records[t] for t in batch.task_ids)
    assert surrogate_error.state is TaskState.FAILED
    (error,) = surrogate_error.errors
    assert error.type == "FileNotFoundError"
    assert "caf\\udce9.txt" in error.message  # escaped, not lost
    assert long_type.state is TaskState.FAILED
    assert long_type.errors[0].type == "E" * 256
    assert surrogate_result.state is TaskState.FAILED
    assert [(e.type, e.retryable) for e in surrogate_result.errors] == [
        ("ResultNotSerializable", False)
    ]
    assert fine.state is TaskState.SUCCEEDED


def test_a_handler_that_cannot_be_reimported_after_a_timeout_fails_liveness_not_the_slot(
    grid: GridResources,
    session_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "MAX_SLOT_RESTART_DELAY_S", 0.2)
    broken, started = tmp_path / "broken", tmp_path / "started"
    monkeypatch.setenv("HTCGRID_TEST_BROKEN_IMPORT", str(broken))
    batch = submit(
        grid,
        session_id,
        [{"sleep": 30, "touch": str(started)}, {"value": "after"}],
        timeout_s=2,
        max_attempts=1,
    )
    agent = AgentThread(grid, handler=HOSTILE, slots=1, prefetch=0, burst=True)
    try:
        # GIVEN a task that overruns while its handler's module becomes unimportable
        wait_for(started.exists, timeout_s=30, what="the first task to start")
        broken.touch()
        # THEN the slot cannot restart: the agent says so on its liveness probe
        wait_for(
            lambda: any("cannot load the handler" in p for p in agent.worker.problems()),
            timeout_s=30,
            what="the slot to report it cannot load the handler",
        )
        alive, reason = Probes(agent.worker).alive()
        assert not alive
        assert "slot 0 cannot load the handler" in reason
        # WHEN the handler loads again, the same slot runs the next task
        broken.unlink()
        agent.join()
    finally:
        broken.unlink(missing_ok=True)
    records = grid.table.get_records(session_id, batch.task_ids)
    overrun, after = (records[t] for t in batch.task_ids)
    assert [e.type for e in overrun.errors] == ["TaskTimeout"]
    assert after.state is TaskState.SUCCEEDED


def test_the_heartbeat_renews_leases_while_its_cancellation_checks_fail(
    grid: GridResources, session_id: str
) -> None:
    # GIVEN a long (leased) task, and cancellation checks that keep failing (throttled reads)
    short_leases = leasing(grid)
    batch = submit(short_leases, session_id, [{"value": 1, "sleep": 4}], timeout_s=60)
    (task_id,) = batch.task_ids
    agent = AgentThread(short_leases, slots=1, burst=True)

    def throttled() -> None:
        raise RetryableError("task reads still unprocessed (throttled)")

    agent.worker._stop_cancelled = throttled  # type: ignore[method-assign]
    claimed = wait_for(
        lambda: grid.table.get_records(session_id, [task_id])[task_id].lease_expires_at,
        timeout_s=30,
        what="the task to be claimed",
    )
    # THEN its lease is still renewed, beat after beat, and the agent stays healthy
    wait_for(
        lambda: (
            (grid.table.get_records(session_id, [task_id])[task_id].lease_expires_at or 0)
            > claimed + 1
        ),
        timeout_s=10,
        what="the lease to be renewed",
    )
    assert agent.worker.problems() == []
    agent.join()
    assert grid.table.get_records(session_id, [task_id])[task_id].state is TaskState.SUCCEEDED


# The thread is killed on purpose; pytest would report its SystemExit as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_heartbeat_thread_fails_liveness(grid: GridResources) -> None:
    agent = AgentThread(grid, slots=1, long_poll_s=1)
    try:

        def die() -> None:
            raise SystemExit  # ends a thread, as nothing a task does can

        agent.worker._extend_due_leases = die  # type: ignore[method-assign]
        wait_for(
            lambda: agent.worker.problems() == ["heartbeat thread died"],
            timeout_s=30,
            what="the dead heartbeat to be reported",
        )
        assert Probes(agent.worker).alive() == (False, "heartbeat thread died")
    finally:
        agent.stop()


def test_a_late_duplicate_run_never_replaces_the_recorded_stored_result(
    grid: GridResources, session_id: str
) -> None:
    # GIVEN a task whose result goes to S3 and differs on every run, run and recorded once
    batch = persist(grid, session_id, [{"random": 40_000}])
    (task_id,) = batch.task_ids
    dispatch_submission(batch, grid)
    AgentThread(grid, handler=HOSTILE, slots=1, burst=True).join()
    recorded = grid.table.get_records(session_id, [task_id])[task_id].result
    assert isinstance(recorded, StoredData)
    value = grid.payloads.decode(recorded)
    # WHEN a duplicate of its message runs it again (its own result is rejected)
    dispatch_submission(batch, grid)
    AgentThread(grid, handler=HOSTILE, slots=1, burst=True).join()
    # THEN the recorded result still reads back, unchanged and intact
    assert grid.table.get_records(session_id, [task_id])[task_id].result == recorded
    assert grid.payloads.decode(recorded) == value
    assert recorded.s3_key.startswith(f"sessions/{session_id}/results/{task_id}/1-")


def test_held_messages_stay_hidden_past_the_queues_visibility_timeout(
    grid: GridResources, grid_settings: GridSettings, session_id: str, tmp_path: Path
) -> None:
    # GIVEN task queues whose messages hide for 3 s, and short (unleased) tasks of 1.5 s each
    sqs = aws.sqs(grid_settings.endpoint_url, grid_settings.region)
    for priority in range(grid.queues.priority_levels):
        sqs.set_queue_attributes(
            QueueUrl=grid.queues.task_queue_url(priority), Attributes={"VisibilityTimeout": "3"}
        )
    fast_beats = leasing(grid, lease_threshold_s=None)
    runs = tmp_path / "runs"
    batch = submit(
        fast_beats, session_id, [{"sleep": 1.5, "touch": str(runs)} for _ in range(4)], timeout_s=2
    )
    # WHEN one slot takes them all at once, so the last waits 4.5 s for it
    AgentThread(fast_beats, handler=HOSTILE, slots=1, prefetch=3, burst=True).join()
    # THEN no message came back to run a second time
    assert set(states(grid, session_id, batch.task_ids).values()) == {TaskState.SUCCEEDED}
    started = runs.read_text().split()[::2]
    assert sorted(started) == sorted(batch.task_ids)


def waiting_messages(grid_settings: GridSettings, url: str) -> dict[str, int]:
    """The task messages waiting in a queue: each one's task id and receive count so far."""
    sqs = aws.sqs(grid_settings.endpoint_url, grid_settings.region)
    found: dict[str, int] = {}
    while messages := sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,  # the queues long-poll 20 s by default
        VisibilityTimeout=60,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    ).get("Messages", []):
        for message in messages:
            task_id = TaskMessage.model_validate_json(message["Body"]).task_id
            found[task_id] = int(message["Attributes"]["ApproximateReceiveCount"])
    return found


def test_messages_handed_back_on_scale_in_keep_their_receive_count(
    grid: GridResources, grid_settings: GridSettings, session_id: str, tmp_path: Path
) -> None:
    # GIVEN an agent holding three tasks: one running, two waiting for its one slot
    runs = tmp_path / "runs"
    batch = submit(grid, session_id, [{"sleep": 1, "touch": str(runs)} for _ in range(3)])
    url = grid.queues.task_queue_url(1)
    agent = AgentThread(grid, handler=HOSTILE, slots=1, prefetch=2)
    wait_for(lambda: grid.queues.depth(url) == (0, 3), timeout_s=30, what="3 messages held")
    wait_for(runs.exists, timeout_s=30, what="the first task to start")
    # WHEN it is scaled in (the first SIGTERM)
    agent.stop()
    # THEN the two it never started wait for other agents, as never received
    (ran,) = runs.read_text().split()[::2]
    left = waiting_messages(grid_settings, url)
    assert sorted(left) == sorted(set(batch.task_ids) - {ran})
    assert set(left.values()) == {1}  # this receive is their first


def test_a_task_handed_back_by_an_abort_keeps_its_receive_count_and_its_attempt(
    grid: GridResources, grid_settings: GridSettings, session_id: str, tmp_path: Path
) -> None:
    # GIVEN a long (leased) task running
    runs = tmp_path / "runs"
    batch = submit(grid, session_id, [{"sleep": 60, "touch": str(runs)}], timeout_s=600)
    (task_id,) = batch.task_ids
    agent = AgentThread(grid, handler=HOSTILE, slots=1, prefetch=0)
    wait_for(runs.exists, timeout_s=30, what="the task to start")
    # WHEN the agent is told to stop, then to abort (the preStop hook's two signals)
    agent.worker.request_stop()
    agent.stop()
    # THEN the task is back to PENDING at the same attempt, its lease released, and its
    # message waits for another agent as never received
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert (record.state, record.attempt, record.lease_token) == (TaskState.PENDING, 1, None)
    assert waiting_messages(grid_settings, grid.queues.task_queue_url(1)) == {task_id: 1}


def test_a_task_over_its_slots_memory_fails_out_of_memory_and_the_agent_goes_on(
    grid: GridResources, session_id: str
) -> None:
    # GIVEN slots of 256 MiB, a task that needs a gigabyte, a payload declared bigger than a
    # slot, and a task that fits
    huge = StoredData(
        s3_key=f"sessions/{session_id}/payloads/huge.json", size=300 * 2**20, sha256="0" * 64
    )
    submission = Submission(
        session_id=session_id,
        submission_token="memory",
        tasks=[
            TaskSpec(payload=InlineData(inline={"allocate_mb": 1024})),
            TaskSpec(payload=huge),
            TaskSpec(payload=InlineData(inline={"memory": 1})),
        ],
    )
    batch = persist_submission(submission, grid)
    dispatch_submission(batch, grid)
    AgentThread(grid, handler=HOSTILE, slots=1, slot_memory_mb=256, burst=True).join()
    records = grid.table.get_records(session_id, batch.task_ids)
    hungry, too_big, fits = (records[t] for t in batch.task_ids)
    # THEN the first two failed for good, saying why, and the third ran, told its limit
    assert [(e.type, e.retryable) for e in hungry.errors] == [("OutOfMemory", False)]
    assert [(e.type, e.retryable) for e in too_big.errors] == [("PayloadTooLarge", False)]
    assert fits.state is TaskState.SUCCEEDED
    assert fits.result == InlineData(inline={"memory_limit_in_mb": 256})


def test_a_result_above_the_grids_largest_object_fails_its_task_for_good(
    grid: GridResources, session_id: str
) -> None:
    # GIVEN a grid whose largest stored object is 2 MiB (5 GiB on a real one), and a task
    # whose handler returns 3 MiB
    small = GridResources.from_settings(
        grid.settings.model_copy(update={"max_payload_bytes": 2 * 2**20})
    )
    batch = submit(small, session_id, [{"result_mb": 3}, {"value": "fits"}])
    AgentThread(small, handler=HOSTILE, slots=1, burst=True).join()
    too_big, fits = (small.table.get_records(session_id, batch.task_ids)[t] for t in batch.task_ids)
    # THEN that task failed for good, saying why, unread and unstored; the next one ran
    assert too_big.state is TaskState.FAILED
    assert [(e.type, e.retryable) for e in too_big.errors] == [("ResultTooLarge", False)]
    assert "the limit is 2097152 bytes" in too_big.errors[0].message
    assert fits.state is TaskState.SUCCEEDED
