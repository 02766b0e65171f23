"""The template's IAM, read from the rendered template (moto does not enforce IAM).

tests/e2e/test_policy_coverage.py derives what each code path calls from a counted run of the
grid; these are the quick checks of single findings, and what that run cannot see.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.client import BaseClient

from htcgrid_core import keys
from htcgrid_core.resources import GridResources
from htcgrid_local.template import load_template
from tests import iam
from tests.integration.test_functions import LambdaContext, event, load_function


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


@pytest.fixture
def dynamodb_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(operation, partition key) of every DynamoDB write made while the test runs: the keys a
    request carries, which request accounting does not see."""
    writes: list[tuple[str, str]] = []
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            if "Key" in params:
                writes.append((operation, params["Key"]["pk"]["S"]))
            for table_requests in params.get("RequestItems", {}).values():
                for request in table_requests:
                    item = request.get("PutRequest", {}).get("Item") or request.get(
                        "DeleteRequest", {}
                    ).get("Key")
                    writes.append((operation, item["pk"]["S"]))
        return make_api_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return writes


def test_dispatch_writes_only_submission_records_as_its_leading_keys_allow(
    grid_env: Callable[[], None],
    grid: GridResources,
    principals: dict[str, iam.Principal],
    dynamodb_writes: list[tuple[str, str]],
) -> None:
    """The dispatch role may update only session-level partitions (session#...); what the
    function writes when it dispatches the sample submission is allowed by that condition."""
    sample = event("dispatch")
    grid.table.begin_submission(sample["session_id"], sample["submission_token"], 1, time.time())
    dynamodb_writes.clear()
    load_function("dispatch").handler(sample, LambdaContext())
    dispatch = principals["DispatchFunction"]
    assert dynamodb_writes  # it marks the submission dispatched
    for operation, partition in dynamodb_writes:
        assert dispatch.allows(
            f"dynamodb:{operation}", TABLE, {"dynamodb:LeadingKeys": partition}
        ), partition
    task_partition = keys.task_partition(sample["session_id"], sample["task_ids"][0])
    assert not dispatch.allows(
        "dynamodb:UpdateItem", TABLE, {"dynamodb:LeadingKeys": task_partition}
    )


@pytest.mark.parametrize(
    ("role", "namespace", "service_account"),
    [
        ("WorkerRole", "Namespace", "ServiceAccount"),
        ("KedaRole", "KedaNamespace", "KedaServiceAccount"),
    ],
)
def test_compute_roles_trust_only_their_service_account_in_their_cluster(
    role: str, namespace: str, service_account: str
) -> None:
    """EKS Pod Identity tags each session with the pod's cluster, namespace and service
    account; the trust policy accepts only this account's cluster and the role's own service
    account, so a Pod Identity association elsewhere cannot take the role."""
    template = load_template(iam.REPO / "compute" / "eks" / "worker-role.yaml")
    (trust,) = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"},
            "aws:RequestTag/eks-cluster-arn": {
                "Fn::Sub": "arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}"
                ":cluster/${ClusterName}"
            },
            "aws:RequestTag/kubernetes-namespace": {"Ref": namespace},
            "aws:RequestTag/kubernetes-service-account": {"Ref": service_account},
        }
    }


def test_the_data_bucket_refuses_plain_http_and_tls_below_1_2() -> None:
    statements = iam.render()["Resources"]["DataBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    denials = {
        json.dumps(s["Condition"], sort_keys=True)
        for s in statements
        if s["Effect"] == "Deny" and s["Principal"] == "*" and s["Action"] == "s3:*"
    }
    assert denials == {
        json.dumps({"Bool": {"aws:SecureTransport": "false"}}),
        json.dumps({"NumericLessThan": {"s3:TlsVersion": "1.2"}}),
    }
