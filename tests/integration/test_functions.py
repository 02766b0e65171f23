"""Every Lambda function invoked in-process with its sample event from events/, on moto.

These are the same events `sam local invoke <Function> -e events/<name>.json` takes.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from htcgrid_core import aws, keys
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    CancelReport,
    DeleteReport,
    DispatchBatch,
    FailureCause,
    InlineData,
    ReaperReport,
    ResultsPage,
    RetryReport,
    SessionQueue,
    SessionStatus,
    SubmissionReceipt,
    TaskMessage,
    TaskState,
)
from htcgrid_core.ports import SubmissionStage
from htcgrid_core.resources import GridResources
from htcgrid_core.submissions import DISPATCH_AT_ONCE_MAX_TASKS
from htcgrid_core.table import Completion
from tests.integration.builders import persist

REPO = Path(__file__).resolve().parents[2]


class LambdaContext:
    """What the Lambda runtime passes; Powertools reads these attributes."""

    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py under a name of its own (every function's module is app)."""
    spec = importlib.util.spec_from_file_location(
        f"fn_{name}", REPO / "functions" / name / "app.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def event(name: str, **overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((REPO / "events" / f"{name}.json").read_text())
    document.update(overrides)
    return document


Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture
def invoke(grid_env: Callable[[], None]) -> Invoke:
    def call(function: str, payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = load_function(function).handler(payload, LambdaContext())
        return result

    return call


def test_submission_persists_and_dispatches_the_small_sample_submission(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    sample = event("submission", session_id=session_id)
    batch = DispatchBatch.model_validate(invoke("submission", sample))
    # A submission of one batch of messages is dispatched by the submission function itself:
    # the workflow ends with its receipt, without the dispatch step.
    assert batch.dispatched
    assert batch.messages == []
    assert len(batch.task_ids) == 2
    records = grid.table.get_records(session_id, batch.task_ids)
    assert {r.state for r in records.values()} == {TaskState.PENDING}
    record = grid.table.submission(session_id, sample["submission_token"])
    assert record is not None
    assert record.stage is SubmissionStage.DISPATCHED
    sent = [
        r.message
        for priority in (1, 2)  # the default is the middle level
        for r in grid.queues.receive_tasks(priority=priority, max_messages=10, wait_s=1)
    ]
    assert [m.task_id for m in sent] == batch.task_ids
    assert [m.priority for m in sent] == [1, 2]
    assert sent[1].max_attempts == 5
    assert sent[1].timeout_s == 30


def test_submission_leaves_a_larger_submission_to_the_dispatch_step(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    sample = event("submission", session_id=session_id)
    sample["tasks"] = [sample["tasks"][0]] * (DISPATCH_AT_ONCE_MAX_TASKS + 1)
    batch = DispatchBatch.model_validate(invoke("submission", sample))
    assert not batch.dispatched
    assert len(batch.messages) == len(batch.task_ids) == DISPATCH_AT_ONCE_MAX_TASKS + 1
    record = grid.table.submission(session_id, sample["submission_token"])
    assert record is not None
    assert record.stage is SubmissionStage.PERSISTED
    assert grid.queues.receive_tasks(priority=1, max_messages=10, wait_s=0) == []


def test_submission_rejects_bad_input_naming_the_field(invoke: Invoke, session_id: str) -> None:
    bad = event("submission", session_id=session_id)
    bad["tasks"][0]["timeout_s"] = -1
    with pytest.raises(InvalidSubmissionError, match=r"tasks\.0\.timeout_s"):
        invoke("submission", bad)


def test_dispatch_sends_the_sample_batch_to_its_priority_queue(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    sample = event("dispatch")
    # GIVEN the submission the sample dispatches was persisted (as the workflow's first step does)
    grid.table.begin_submission(sample["session_id"], sample["submission_token"], 1, time.time())
    receipt = SubmissionReceipt.model_validate(invoke("dispatch", sample))
    assert receipt.task_ids == sample["task_ids"]
    received = grid.queues.receive_tasks(priority=1, max_messages=10, wait_s=1)
    assert [r.message for r in received] == [TaskMessage.model_validate(sample["messages"][0])]


def test_status_counts_a_sessions_tasks(invoke: Invoke, session_id: str) -> None:
    invoke("submission", event("submission", session_id=session_id))
    status = SessionStatus.model_validate(invoke("status", event("status", session_id=session_id)))
    assert status.counts[TaskState.PENDING] == 2
    assert status.total == 2


def test_results_returns_finished_tasks(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    batch = DispatchBatch.model_validate(
        invoke("submission", event("submission", session_id=session_id))
    )
    grid.table.record_success(
        Completion(session_id, batch.task_ids[0], 1, None),
        InlineData(inline={"price": 1.0}),
        time.time(),
    )
    page = ResultsPage.model_validate(invoke("status", event("results", session_id=session_id)))
    assert [r.task_id for r in page.results] == [batch.task_ids[0]]
    assert page.results[0].result == InlineData(inline={"price": 1.0})
    named = ResultsPage.model_validate(
        invoke(
            "status", {"action": "results", "session_id": session_id, "task_ids": batch.task_ids}
        )
    )
    assert named.missing == [batch.task_ids[1]]


def test_status_rejects_an_unknown_action(invoke: Invoke, session_id: str) -> None:
    with pytest.raises(InvalidSubmissionError, match="action"):
        invoke("status", {"action": "explode", "session_id": session_id})


def forged_token(key: object) -> str:
    """A next_token made by hand, well formed (base64 JSON of a shard and a key)."""
    return base64.urlsafe_b64encode(json.dumps({"shard": 3, "key": key}).encode()).decode()


@pytest.mark.shared_stack
@pytest.mark.parametrize(
    "key",
    [
        {"pk": {"S": "another-session#03"}, "sk": {"S": "t"}},
        {"pk": {"S": "x"}},
        {"partition": {"S": "x"}, "sk": {"S": "t"}},
    ],
    ids=["another session's key", "a key without its sort key", "a key of other attributes"],
)
@pytest.mark.parametrize(
    ("function", "query"),
    [("status", {"action": "results"}), ("status", {"action": "tasks"}), ("cancel", {})],
    ids=["results", "tasks", "cancel"],
)
def test_a_forged_next_token_is_refused_naming_the_field_not_by_dynamodb(
    invoke: Invoke, session_id: str, function: str, query: dict[str, Any], key: object
) -> None:
    # GIVEN a session with tasks, and a well-formed token whose key is not one of its pages'
    invoke("submission", event("submission", session_id=session_id))
    request = {**query, "session_id": session_id, "next_token": forged_token(key)}
    # THEN the function refuses it as bad input naming the field (no DynamoDB error, no page)
    with pytest.raises(InvalidSubmissionError, match=r"^next_token: "):
        invoke(function, request)


def test_cancel_cancels_the_sample_session(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    batch = DispatchBatch.model_validate(
        invoke("submission", event("submission", session_id=session_id))
    )
    report = CancelReport.model_validate(invoke("cancel", event("cancel", session_id=session_id)))
    assert report.cancelled == 2
    assert report.next_token is None
    records = grid.table.get_records(session_id, batch.task_ids)
    assert {r.state for r in records.values()} == {TaskState.CANCELLED}


def test_delete_deletes_the_sample_session(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    batch = DispatchBatch.model_validate(
        invoke("submission", event("submission", session_id=session_id))
    )
    report = DeleteReport.model_validate(invoke("delete", event("delete", session_id=session_id)))
    assert report.done
    assert report.records_deleted == 3  # 2 tasks and the submission record
    assert grid.table.get_records(session_id, batch.task_ids) == {}
    assert grid.table.session_flags(session_id).cancelled


def test_retry_decides_the_sample_failure(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    batch = persist(grid, session_id, ["x"], max_attempts=3)
    (task_id,) = batch.task_ids
    sample = event("retry")
    failure = {**sample["failures"][0], "session_id": session_id, "task_id": task_id}
    report = RetryReport.model_validate(invoke("retry", {"failures": [failure]}))
    assert report.retried == [task_id]
    record = grid.table.get_records(session_id, [task_id])[task_id]
    assert (record.state, record.attempt) == (TaskState.PENDING, 2)
    assert record.errors[0].message == "the handler raised on its first attempt"
    with pytest.raises(InvalidSubmissionError, match="failures"):
        invoke("retry", {"failures": []})


def test_reaper_reports_expired_leases_in_retry_batches(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    (task_id,) = persist(grid, session_id, ["x"], timeout_s=600).task_ids
    now = time.time()
    grid.table.claim(session_id, task_id, 1, "gone", now - 1, now - 61)
    report = ReaperReport.model_validate(invoke("reaper", event("reaper")))
    mine = [f for b in report.batches for f in b.failures if f.task_id == task_id]
    assert [(f.cause, f.lease_token, f.error.type) for f in mine] == [
        (FailureCause.LEASE_EXPIRED, "gone", "LeaseExpired")
    ]
    swept = ReaperReport.model_validate(invoke("reaper", {"sweep": "dead_letters"}))
    assert all(f.session_id != session_id for b in swept.batches for f in b.failures)
    with pytest.raises(InvalidSubmissionError, match="sweep"):
        invoke("reaper", {"sweep": "everything"})


def test_session_opens_and_closes_the_sample_sessions_result_queue(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    # WHEN the sample session is opened
    opened = SessionQueue.model_validate(invoke("session", event("session", session_id=session_id)))
    # THEN its queue is this stack's, named after the whole session id, encrypted and TLS-only
    url = opened.result_queue_url
    assert url is not None
    assert url.endswith(f"/{grid.settings.queue_prefix}_s_{session_id}")
    sqs = aws.sqs(grid.settings.endpoint_url, grid.settings.region)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true"
    (statement,) = json.loads(attributes["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"].endswith(f":{grid.settings.queue_prefix}_s_{session_id}")
    # AND opening it again keeps the one queue
    again = invoke("session", event("session", session_id=session_id))
    assert again["result_queue_url"] == url
    # AND closing it deletes it (twice is harmless)
    for _ in range(2):
        closed = SessionQueue.model_validate(
            invoke("session", event("session", action="close", session_id=session_id))
        )
        assert closed.result_queue_url is None
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=url)


def test_a_queue_opened_earlier_with_other_attributes_is_made_tls_only(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    # GIVEN the session's queue exists without a policy (an older client made it)
    sqs = aws.sqs(grid.settings.endpoint_url, grid.settings.region)
    url = sqs.create_queue(QueueName=f"{grid.settings.queue_prefix}_s_{session_id}")["QueueUrl"]
    # WHEN the session is opened
    invoke("session", event("session", session_id=session_id))
    # THEN the queue has the policy and the encryption every result queue has
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert "aws:SecureTransport" in attributes["Policy"]
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_a_submission_may_name_only_its_own_sessions_result_queue(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    own = invoke("session", event("session", session_id=session_id))["result_queue_url"]
    other = invoke("session", event("session", session_id=f"{session_id}-other"))[
        "result_queue_url"
    ]
    task_queue = grid.queues.task_queue_url(2)
    foreign_account = own.replace("/123456789012/", "/210987654321/")
    for url in (task_queue, other, foreign_account, "https://example.com/q", own + "x"):
        with pytest.raises(
            InvalidSubmissionError, match=r"result_queue_url: must be .*" + session_id
        ):
            invoke("submission", event("submission", session_id=session_id, result_queue_url=url))
    # AND nothing was written for the refused submissions
    assert (
        grid.table.get_records(session_id, [keys.task_id_for(session_id, "sample-token-1", 0)])
        == {}
    )
    invoke("submission", event("submission", session_id=session_id, result_queue_url=own))
    sent = [
        r.message
        for priority in (1, 2)
        for r in grid.queues.receive_tasks(priority=priority, max_messages=10, wait_s=1)
    ]
    assert {m.result_queue_url for m in sent} == {own}
    assert len(sent) == 2


def test_a_submission_too_large_for_the_workflow_is_refused_and_nothing_is_written(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    # GIVEN 1,000 small tasks: a valid document, but its task messages exceed the state limit
    url = invoke("session", event("session", session_id=session_id))["result_queue_url"]
    tasks = [{"payload": {"inline": {"x": i}}} for i in range(1000)]
    big = event("submission", session_id=session_id, tasks=tasks, result_queue_url=url)
    with pytest.raises(InvalidSubmissionError, match=r"tasks: 1000 tasks make \d+ bytes"):
        invoke("submission", big)
    # THEN no task was written, and the submission's record says only why it was refused
    ids = [keys.task_id_for(session_id, "sample-token-1", i) for i in range(1000)]
    assert grid.table.get_records(session_id, ids) == {}
    (record,) = grid.table.get_items([keys.submission_key(session_id, "sample-token-1")])
    assert "stage" not in record
    assert record["failed_error"]["S"] == "InvalidSubmissionError"
    assert "expires_at" in record


def test_reaper_dispatches_a_stranded_submission(
    invoke: Invoke, grid: GridResources, session_id: str
) -> None:
    # GIVEN a submission persisted long ago whose dispatch never ran
    batch = persist(grid, session_id, ["a", "b"], token="stranded")
    aws.dynamodb(grid.settings.endpoint_url, grid.settings.region).update_item(
        TableName=grid.settings.table_name,
        Key=keys.submission_key(session_id, "stranded"),
        UpdateExpression="SET lease_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )
    # WHEN the reaper sweeps submissions
    report = ReaperReport.model_validate(invoke("reaper", {"sweep": "submissions"}))
    # THEN it sent the tasks' messages
    assert report.found == 2
    received = grid.queues.receive_tasks(priority=1, max_messages=10, wait_s=1)
    mine = sorted(
        r.message.task_id for r in received if r.message and r.message.session_id == session_id
    )
    assert mine == sorted(batch.task_ids)
