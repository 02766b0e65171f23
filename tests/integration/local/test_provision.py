"""Provisioning template.yaml itself on the emulator: every resource of the contract exists."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from htcgrid_local.emulator import Emulator
from htcgrid_local.provision import StackOutputs, provision_stack
from tests.integration.local.conftest import REPO_TEMPLATE

pytestmark = pytest.mark.timeout(120)

#: The Outputs every client and agent relies on (TaskQueueUrlP<N> only for existing levels).
CONTRACT_OUTPUTS = {
    "TaskTableName",
    "DataBucketName",
    "QueuePrefix",
    "PriorityLevels",
    "SubmitWorkflowArn",
    "StatusFunctionName",
    "StatusFunctionArn",
    "DeleteFunctionName",
    "SubmissionFunctionName",
    "DispatchFunctionName",
    "ClientPolicyArn",
    "AgentPolicyArn",
    "InlinePayloadThresholdBytes",
    "MaxAttempts",
    "LeaseDurationSeconds",
}


@pytest.fixture(scope="module")
def grid_stack(local_emulator: Emulator) -> StackOutputs:
    return provision_stack(local_emulator.endpoint_url, REPO_TEMPLATE, "grid")


def queue_names(aws: Callable[[str], Any], prefix: str) -> set[str]:
    urls = aws("sqs").list_queues(QueueNamePrefix=f"{prefix}-p").get("QueueUrls", [])
    return {url.rsplit("/", 1)[-1] for url in urls}


def test_template_creates_table_queues_bucket_and_express_workflow(
    aws: Callable[[str], Any], grid_stack: StackOutputs
) -> None:
    assert set(grid_stack) >= CONTRACT_OUTPUTS
    assert grid_stack["PriorityLevels"] == "3"
    assert {"TaskQueueUrlP0", "TaskQueueUrlP1", "TaskQueueUrlP2"} <= set(grid_stack)
    assert "TaskQueueUrlP3" not in grid_stack

    table = aws("dynamodb").describe_table(TableName=grid_stack["TaskTableName"])["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]

    prefix = grid_stack["QueuePrefix"]
    assert queue_names(aws, prefix) == {f"{prefix}-p{n}{s}" for n in range(3) for s in ("", "-dlq")}
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=f"{prefix}-p1")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{prefix}-p1-dlq")
    assert int(redrive["maxReceiveCount"]) == 5
    assert attributes["VisibilityTimeout"] == "300"

    aws("s3").head_bucket(Bucket=grid_stack["DataBucketName"])

    machine = aws("stepfunctions").describe_state_machine(
        stateMachineArn=grid_stack["SubmitWorkflowArn"]
    )
    assert machine["type"] == "EXPRESS"
    assert "${" not in machine["definition"]


@pytest.mark.parametrize(("levels", "expected"), [("1", 1), ("4", 4), ("5", 5)])
def test_priority_levels_parameter_selects_the_queue_pairs(
    local_emulator: Emulator, aws: Callable[[str], Any], levels: str, expected: int
) -> None:
    # The HasLevel<N> conditions (Fn::Not / Fn::Or / Fn::Equals) resolve on moto.
    stack = f"lv{levels}-{uuid.uuid4().hex[:6]}"

    outputs = provision_stack(
        local_emulator.endpoint_url, REPO_TEMPLATE, stack, {"PriorityLevels": levels}
    )

    assert queue_names(aws, stack) == {
        f"{stack}-p{n}{s}" for n in range(expected) for s in ("", "-dlq")
    }
    assert {key for key in outputs if key.startswith("TaskQueueUrlP")} == {
        f"TaskQueueUrlP{n}" for n in range(expected)
    }


def test_submit_workflow_persists_and_dispatches_with_the_real_handlers(
    aws: Callable[[str], Any], grid_stack: StackOutputs
) -> None:
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    submission = {
        "session_id": session_id,
        "submission_token": "token-1",
        "tasks": [{"payload": {"inline": {"x": 1}}}, {"payload": {"inline": {"x": 2}}}],
    }

    reply = aws("stepfunctions").start_sync_execution(
        stateMachineArn=grid_stack["SubmitWorkflowArn"], input=json.dumps(submission)
    )

    assert reply["status"] == "SUCCEEDED", reply
    receipt = json.loads(reply["output"])
    assert receipt["session_id"] == session_id
    assert len(receipt["task_ids"]) == 2
    # The dispatch handler sent both task messages to the middle priority's queue.
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=f"{grid_stack['QueuePrefix']}-p1")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert {json.loads(m["Body"])["task_id"] for m in messages} == set(receipt["task_ids"])


def test_provisioning_an_existing_stack_again_keeps_its_outputs(
    local_emulator: Emulator, grid_stack: StackOutputs
) -> None:
    again = provision_stack(local_emulator.endpoint_url, REPO_TEMPLATE, "grid")

    assert dict(again) == dict(grid_stack)
