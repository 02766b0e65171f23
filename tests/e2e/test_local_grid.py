"""End to end on the local grid: the client, the submit workflow, agents, results."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from htcgrid import Grid, SubmissionFailedError
from htcgrid_core import aws, keys
from htcgrid_core.models import InlineData, StoredData, Submission, TaskSpec, TaskState
from htcgrid_local.grid import LocalGrid


def test_submit_workflow_persists_and_dispatches_synchronously(client: Grid) -> None:
    session_id = f"wf-{uuid.uuid4().hex[:8]}"
    submission = Submission(
        session_id=session_id,
        submission_token="tok-1",
        tasks=[TaskSpec(payload=InlineData(inline={"value": i})) for i in range(5)],
    )
    receipt = client.submit_batch(submission)
    assert receipt.task_ids == [keys.task_id_for(session_id, "tok-1", i) for i in range(5)]
    again = client.submit_batch(submission)  # a retried submission creates nothing new
    assert again.task_ids == receipt.task_ids
    assert client.status(session_id).total == 5


def test_submit_workflow_records_why_a_submission_failed(
    client: Grid, local_grid: LocalGrid
) -> None:
    session_id = f"wf-{uuid.uuid4().hex[:8]}"
    submission = Submission(
        session_id=session_id,
        submission_token="bad-priority",
        tasks=[TaskSpec(payload=InlineData(inline=1), priority=4)],
    )
    with pytest.raises(SubmissionFailedError) as failed:
        client.submit_batch(submission)
    assert failed.value.error == "InvalidSubmissionError"
    assert "tasks.0.priority: 4" in failed.value.cause
    dynamodb = aws.dynamodb(local_grid.endpoint_url, "us-east-1")
    record = dynamodb.get_item(
        TableName=local_grid.outputs["TaskTableName"],
        Key=keys.submission_key(session_id, "bad-priority"),
    )["Item"]
    assert record["failed_error"]["S"] == "InvalidSubmissionError"
    assert "tasks.0.priority" in record["failed_cause"]["S"]
    assert int(record["expires_at"]["N"]) > time.time()  # it does not outlive the session


def test_a_submission_with_ids_the_grid_refuses_leaves_no_record(
    client: Grid, local_grid: LocalGrid
) -> None:
    # GIVEN a document from another SDK whose ids break the grid's rules
    document = {"session_id": "bad id!", "submission_token": "t" * 500, "tasks": []}
    execution = client.endpoints.client("stepfunctions").start_sync_execution(
        stateMachineArn=local_grid.outputs["SubmitWorkflowArn"], input=json.dumps(document)
    )
    # THEN the workflow fails with the validation error and writes nothing under those ids
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidSubmissionError"
    dynamodb = aws.dynamodb(local_grid.endpoint_url, "us-east-1")
    found = dynamodb.get_item(
        TableName=local_grid.outputs["TaskTableName"], Key=keys.submission_key("bad id!", "t" * 500)
    )
    assert "Item" not in found


def test_a_thousand_tasks_come_back_once_each_and_correct(client: Grid) -> None:
    with client.open_session() as session:
        task_ids = session.submit([{"value": i} for i in range(1000)])
        expected = dict(zip(task_ids, range(1000), strict=True))
        results = session.wait(timeout=300)
        status = session.status(exact=True)  # counters may trail the results by a second
    assert len(results) == 1000
    assert {r.task_id for r in results} == set(task_ids)
    assert all(r.ok for r in results)
    assert all(r.value["value"] == expected[r.task_id] for r in results)  # type: ignore[index]
    assert status.counts[TaskState.SUCCEEDED] == 1000
    assert status.total == 1000


def test_large_payloads_and_results_travel_through_s3(client: Grid) -> None:
    big = {"value": "v", "blob": "p" * 40_000, "bytes": 30_000}
    with client.open_session() as session:
        (task_id,) = session.submit([big])
        (done,) = session.wait(timeout=120)
    assert done.task_id == task_id
    assert done.ok
    assert isinstance(done.result.result, StoredData)
    assert done.result.result.s3_key.startswith(f"sessions/{session.id}/results/")
    assert len(done.value["padding"]) == 30_000  # type: ignore[index]


def test_unicode_payloads_and_results_come_back_unchanged_inline_and_through_s3(
    client: Grid,
) -> None:
    small = "café ☃ 𝄞 Ω"
    large = "ünïcödé ☃ 𝄞 ∑ " * 2000  # above the inline threshold however it is counted
    with client.open_session() as session:
        task_ids = session.submit([{"value": small}, {"value": large}])
        results = {done.task_id: done for done in session.wait(timeout=120)}
        again = {result.task_id: result for result in client.iter_results(session.id)}
    inline, stored = (results[t] for t in task_ids)
    assert inline.ok
    assert stored.ok
    assert inline.value["value"] == small  # type: ignore[index,call-overload]
    assert isinstance(inline.result.result, InlineData)
    assert stored.value["value"] == large  # type: ignore[index,call-overload]
    assert isinstance(stored.result.result, StoredData)
    # AND the table holds the same, read back through the status function
    assert again[task_ids[0]].result == inline.result.result
    assert client.payloads.decode(again[task_ids[1]].result) == stored.value  # type: ignore[arg-type]


def test_failed_tasks_are_reported_with_their_error(client: Grid) -> None:
    with client.open_session() as session:
        session.submit([{"fail": "permanent"}])
        (done,) = session.wait(timeout=120)
    assert done.state is TaskState.FAILED
    assert not done.ok
    assert done.error is not None
    assert done.error.type == "PermanentScriptedError"


def test_results_can_be_read_again_after_the_session_closes(client: Grid) -> None:
    with client.open_session() as session:
        task_ids = session.submit([{"value": i} for i in range(30)])
        session.wait(timeout=120)
    again = list(client.iter_results(session.id, page_size=7))
    assert sorted(r.task_id for r in again) == sorted(task_ids)


def run_cli(local_grid: LocalGrid, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "htcgrid.cli",
            "--stack",
            local_grid.stack_name,
            "--endpoint-url",
            local_grid.endpoint_url,
            "--region",
            "us-east-1",
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_submits_waits_and_reads_status_and_results(local_grid: LocalGrid) -> None:
    submitted = run_cli(local_grid, "submit", '{"value": 1}', '{"value": 2}', "--wait")
    assert submitted.returncode == 0, submitted.stderr
    lines = [json.loads(line) for line in submitted.stdout.splitlines()]
    assert sorted(line["value"]["value"] for line in lines) == [1, 2]
    session_id = lines[0]["session_id"]
    status = run_cli(local_grid, "status", session_id, "--exact")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"]["SUCCEEDED"] == 2
    results = run_cli(local_grid, "results", session_id)
    assert len(results.stdout.splitlines()) == 2


def test_cli_refuses_a_priority_the_grid_has_not_with_exit_code_2(local_grid: LocalGrid) -> None:
    rejected = run_cli(local_grid, "submit", "--priority", "7", '{"value": 1}')
    assert rejected.returncode == 2  # input the client refuses, naming the field
    assert rejected.stderr.splitlines() == [
        "invalid input: priority: 7 is not a priority level of this grid (0 to 2)"
    ]


def test_cli_rejects_a_payload_that_is_not_json_with_exit_code_2(local_grid: LocalGrid) -> None:
    rejected = run_cli(local_grid, "submit", "{not json")
    assert rejected.returncode == 2
    assert "payload 1 is not JSON" in rejected.stderr


def test_a_large_list_is_split_into_submissions_within_the_workflows_limits(client: Grid) -> None:
    payloads = [{"value": i, "pad": "x" * 900} for i in range(1200)]  # ~1.1 MB in all
    with client.open_session(stream_results=False) as session:
        task_ids = session.submit(payloads, submission_token="big")
        tokens = {f"big.{n}" for n in range(10)}
        derived = {keys.task_id_for(session.id, t, i) for t in tokens for i in range(1200)}
        assert len(task_ids) == len(set(task_ids)) == 1200
        assert set(task_ids) <= derived
        assert len({t for t in tokens if keys.task_id_for(session.id, t, 0) in task_ids}) > 4


def test_resubmitting_with_the_same_token_creates_no_duplicates(client: Grid) -> None:
    with client.open_session() as session:
        first = session.submit([{"value": i} for i in range(20)], submission_token="retry-me")
        again = session.submit([{"value": i} for i in range(20)], submission_token="retry-me")
        results = session.wait(timeout=120)
        status = session.status()
    assert again == first
    assert sorted(r.task_id for r in results) == sorted(first)
    assert status.total == 20


def test_cancelling_a_session_ends_its_unfinished_tasks_cancelled(client: Grid) -> None:
    with client.open_session() as session:
        task_ids = session.submit([{"value": i, "sleep": 30} for i in range(6)], timeout_s=600)
        report = session.cancel()
        results = session.wait(timeout=120)
    assert report.cancelled + report.already_finished <= 6
    assert sorted(r.task_id for r in results) == sorted(task_ids)
    assert {r.state for r in results} == {TaskState.CANCELLED}


def test_cli_cancels_named_tasks(client: Grid, local_grid: LocalGrid) -> None:
    with client.open_session(stream_results=False) as session:
        task_ids = session.submit([{"value": 1, "sleep": 30}], timeout_s=600)
    cancelled = run_cli(local_grid, "cancel", session.id, "--task-id", task_ids[0])
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["cancelled"] == 1
    (result,) = client.fetch_results(session.id, task_ids).results
    assert result.state is TaskState.CANCELLED
