"""The template's IAM, read from the rendered template (moto does not enforce IAM).

tests/e2e/test_policy_coverage.py derives what each code path calls from a counted run of the
grid; these are the quick checks of single findings, and what that run cannot see.
"""

from __future__ import annotations

import pytest

from tests import iam


@pytest.fixture(scope="module")
def principals() -> dict[str, iam.Principal]:
    return iam.principals(iam.render())


def arn(kind: str, name: str) -> str:
    return f"arn:aws:{kind}:{iam.REGION}:{iam.ACCOUNT}:{name}"


TABLE = arn("dynamodb", "table/htcgrid-TaskTable-TESTSUFFIX0001")


def test_an_operator_can_connect_and_list_dead_letters_with_their_tasks(
    principals: dict[str, iam.Principal],
) -> None:
    """`htcgrid dlq list` finds the grid by its stack and reads the tasks of the messages."""
    operator = principals["OperatorPolicy"]
    assert operator.allows("cloudformation:DescribeStacks", iam.Stack().stack_id)
    assert operator.allows("dynamodb:BatchGetItem", TABLE)
    assert operator.allows("dynamodb:UpdateItem", TABLE)
    assert operator.allows("sqs:ReceiveMessage", arn("sqs", "htcgrid-p1-dlq"))
    assert not operator.allows("sqs:ReceiveMessage", arn("sqs", "htcgrid-p1"))


def test_clients_submit_synchronously_and_list_no_stored_data(
    principals: dict[str, iam.Principal],
) -> None:
    """No asynchronous submission, no execution reads (an Express workflow has none to
    read), no listing of the data bucket (other sessions' keys)."""
    client = principals["ClientPolicy"]
    workflow = arn("states", "stateMachine:htcgrid-SubmitWorkflow-TESTSUFFIX0001")
    assert client.allows("states:StartSyncExecution", workflow)
    assert not client.allows("states:StartExecution", workflow)
    assert not any(
        statement.names_action("states:DescribeExecution") for statement in client.statements
    )
    bucket = "arn:aws:s3:::htcgrid-databucket-testsuffix0001"
    assert not client.allows("s3:ListBucket", bucket, {"s3:prefix": "sessions/other/"})
    assert client.allows("s3:GetObject", f"{bucket}/sessions/mine/results/t.json")
