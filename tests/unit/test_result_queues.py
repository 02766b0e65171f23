"""Sessions' result queues: who may do what to them (template.yaml's policies, read without
AWS, since the emulator does not enforce IAM), and their names."""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from htcgrid_core import result_queues
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_local.template import load_template

REPO = Path(__file__).resolve().parents[2]
STACK = "grid"
ACCOUNT = "123456789012"


def arn(queue: str) -> str:
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}"


def rendered(resource: Any) -> str:
    """A policy resource as IAM would see it for stack ``grid`` (Sub strings only; other
    intrinsics name resources that are not queues)."""
    text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else str(resource)
    for name, value in {
        "${AWS::Partition}": "aws",
        "${AWS::Region}": "us-east-1",
        "${AWS::AccountId}": ACCOUNT,
        "${AWS::StackName}": STACK,
    }.items():
        text = text.replace(name, value)
    return text


def statements(policy: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from policy.get("Statement", [])


def all_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of the template: managed policies and functions' inline ones."""
    for name, resource in load_template(REPO / "template.yaml")["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            for statement in statements(properties["PolicyDocument"]):
                yield name, statement
        for policy in properties.get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                for statement in statements(policy):
                    yield name, statement


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(statement: dict[str, Any], queue: str) -> set[str]:
    """The SQS actions ``statement`` allows on ``queue`` of this account."""
    if statement.get("Effect") != "Allow":
        return set()
    resources = [rendered(r) for r in listed(statement.get("Resource", []))]
    if not any(fnmatchcase(arn(queue), pattern) for pattern in resources):
        return set()
    return {a for a in listed(statement["Action"]) if a.startswith("sqs:") or a == "*"}


def test_clients_may_only_read_and_acknowledge_notices_on_result_queues() -> None:
    victim = result_queues.queue_name(STACK, "victim-session")
    granted = {
        action
        for name, statement in all_statements()
        if name == "ClientPolicy"
        for action in grants(statement, victim)
    }
    # No CreateQueue (re-creating a deleted queue), SetQueueAttributes (a policy letting
    # anyone send), SendMessage (forged notices) or DeleteQueue: the session function does that.
    assert granted == {"sqs:ReceiveMessage", "sqs:DeleteMessage"}


def test_only_the_session_function_creates_or_deletes_result_queues() -> None:
    queue = result_queues.queue_name(STACK, "s1")
    managers = {
        name
        for name, statement in all_statements()
        if grants(statement, queue)
        & {"sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes"}
    }
    senders = {
        name
        for name, statement in all_statements()
        if "sqs:SendMessage" in grants(statement, queue)
    }
    assert managers == {"SessionFunction"}
    assert senders == {"AgentPolicy", "RetryFunction"}


@pytest.mark.parametrize(
    "other_stack", ["grid-session", "grid-session-7", "grid-s", "grid-p", "grid2", "grid-"]
)
def test_no_grant_on_result_queues_reaches_another_stacks_queues(other_stack: str) -> None:
    # GIVEN another stack whose name starts with this one's
    others = [
        f"{other_stack}-p0",
        f"{other_stack}-p0-dlq",
        result_queues.queue_name(other_stack, "s1"),
    ]
    mine = result_queues.queue_name(STACK, "s1")
    # THEN no statement that reaches this stack's result queues reaches any of its queues
    checked = 0
    for name, statement in all_statements():
        if grants(statement, mine) and "*" not in listed(statement.get("Resource")):
            checked += 1
            reached = [q for q in others if grants(statement, q)]
            assert reached == [], f"{name} {statement.get('Sid')} also grants {reached}"
    assert checked >= 4  # the client's, the agents', the retry and the session function's


def test_a_result_queue_name_holds_the_whole_session_id() -> None:
    longest = "s" * 48
    assert result_queues.queue_name(STACK, longest) == f"{STACK}_s_{longest}"


def test_a_name_sqs_cannot_hold_is_refused_naming_the_field_and_the_room_left() -> None:
    stack = "a-long-stack-name-for-a-grid-of-many-teams"  # 42 characters
    with pytest.raises(InvalidSubmissionError, match=r"session_id: 48 characters.* room for 35"):
        result_queues.queue_name(stack, "s" * 48)


def test_result_queues_are_tls_only() -> None:
    policy = result_queues.tls_only_policy(arn("grid_s_s1"))
    assert '"aws:SecureTransport": "false"' in policy
    assert '"Effect": "Deny"' in policy
    assert (
        result_queues.queue_arn(
            "arn:aws-cn:lambda:cn-north-1:111122223333:function:grid-SessionFunction-x", "grid_s_s1"
        )
        == "arn:aws-cn:sqs:cn-north-1:111122223333:grid_s_s1"
    )
