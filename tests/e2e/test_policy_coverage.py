"""Every AWS call the grid's code makes is allowed to whoever makes it, by the deployed policies.

moto does not enforce IAM, so every other test passes with any policy. This one runs the grid's
code paths on a local grid whose emulator counts every request by caller
(``htcgrid_local.accounting``): the client (submit, results through the session queue and the
status function, payloads and results through S3, status, task pages, sessions, queue depths,
cancel, delete), the agents (success, a retried and a permanent failure, leases and heartbeats,
a cancelled running task, results in S3), the reaper (an expired lease of a killed agent, a
dead-lettered task) and the retry workflow, and an operator's ``htcgrid dlq list`` and
``redrive``. Each caller is a principal of the rendered template (a function's or workflow's
role, the reaper schedule's role, ``ClientPolicy``, ``AgentPolicy``, ``OperatorPolicy``); each
request is an IAM action on a resource ARN. Then:

- every request is allowed to its principal (``tests.iam`` evaluates the statements);
- every grant is used by some request, or is listed in ``KEPT`` with the reason it stays.

What the counters do not say, and how it is judged instead: S3 keys (every key the core builds
is under ``sessions/``, so an object request is judged on a key there and a listing on the
prefix ``sessions/``); which index a Query reads (judged on the table and its indexes); the
partition keys of a DynamoDB write (tests/integration/test_policies.py checks them against the
``dynamodb:LeadingKeys`` conditions).
"""

from __future__ import annotations

import re
import signal
import uuid
from dataclasses import dataclass

import pytest

from htcgrid import Grid
from htcgrid.cli import main as htcgrid_cli
from htcgrid.errors import SubmissionFailedError
from htcgrid_core import keys, result_queues
from htcgrid_core.models import InlineData, Submission, TaskMessage, TaskSpec, TaskState
from htcgrid_core.resources import GridResources
from htcgrid_core.settings import GridSettings
from htcgrid_core.submissions import DISPATCH_AT_ONCE_MAX_TASKS, persist_submission
from htcgrid_local import accounting
from htcgrid_local.accounting import Accounting
from htcgrid_local.clients import client as emulator_client
from htcgrid_local.grid import LocalGrid
from tests import iam
from tests.waiting import wait_for

HANDLER = "htcgrid_examples.scripted:handler"
STACK = "htcgrid-iam"
#: Leases of 5 s, so a killed agent's task is reaped within seconds.
PARAMETERS = {"LeaseDurationSeconds": "5"}
APP_ID_VARIABLE = "AWS_SDK_UA_APP_ID"
#: The app ids the emulator names callers by, and the policy each one holds.
HOLDERS = {
    "htcgrid-client": "ClientPolicy",
    "htcgrid-agent": "AgentPolicy",
    "htcgrid-operator": "OperatorPolicy",
}
#: Calls that are no principal's: provisioning and this test's own reads and moves.
NOT_A_PRINCIPAL = {"external"}

#: Grants no code path of the run uses, each with why it stays.
KEPT: dict[tuple[str, str, str], str] = {
    # (principal, statement Sid, action): reason
    ("AgentPolicy", "WorkTaskQueues", "sqs:SendMessage"): (
        "re-sends a retry message lost between the retry workflow's write and its send "
        "(worker.py _stale): only a crash inside the retry workflow takes that path"
    ),
    ("AgentPolicy", "MovePayloadsAndResults", "s3:AbortMultipartUpload"): (
        "boto3 uploads results above 8 MiB in parts and aborts a failed upload"
    ),
}
#: Statements the services use rather than the code: Step Functions' log delivery.
SERVICE_STATEMENTS = {"DeliverExecutionLogs"}
#: AWS managed policies SAM attaches, used by the Lambda and X-Ray services, not the code.
SERVICE_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": "Lambda writes logs",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": "Tracing: Active sends segments",
}

#: Request operations to IAM actions, where the names differ.
_ACTIONS = {
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    # IAM authorises each action of a transaction as its own operation; the grid's one
    # transaction (a lone task's submission, TaskTable.persist_at_once) is made of Puts.
    ("dynamodb", "TransactWriteItems"): "dynamodb:PutItem",
}
_SERVICE_PREFIXES = {"stepfunctions": "states"}
#: Services whose operation names are their IAM action names.
_SAME_NAMES = {"dynamodb", "sqs", "s3", "stepfunctions", "cloudformation"}
#: The accounting's own row for an execution's states, not a request.
_PSEUDO_OPERATIONS = {("stepfunctions", "AsynchronousExecution")}
_CFN_SUFFIX = re.compile(r"-[A-Z0-9]{10,13}$")


#: A resource ARN and the request's condition keys (``s3:prefix``...).
Target = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Call:
    """One kind of request the run made: who made it, the IAM action, and the resources it
    may have been on (one ARN, or a table and its indexes for a Query: any one must allow)."""

    principal: str
    action: str
    targets: tuple[Target, ...]

    def allowed(self, principals: dict[str, iam.Principal]) -> bool:
        principal = principals[self.principal]
        return any(
            principal.allows(self.action, arn, dict(context)) for arn, context in self.targets
        )

    def __str__(self) -> str:
        arns = " or ".join(f"{arn} {dict(context) or ''}".strip() for arn, context in self.targets)
        return f"{self.principal}: {self.action} on {arns}"


def iam_action(service: str, operation: str) -> str:
    if (service, operation) in _ACTIONS:
        return _ACTIONS[(service, operation)]
    if service not in _SAME_NAMES:
        raise AssertionError(f"no IAM action known for {service} {operation}: add it to _ACTIONS")
    return f"{_SERVICE_PREFIXES.get(service, service)}:{operation}"


class Resolver:
    """Request rows of the counters to principals and resource ARNs of the rendered stack."""

    def __init__(self, rendered: dict[str, object], stack_id: str) -> None:
        self.physical: dict[str, str] = rendered["Physical"]  # type: ignore[assignment]
        resources: dict[str, dict[str, object]] = rendered["Resources"]  # type: ignore[assignment]
        self.types = {logical_id: str(r["Type"]) for logical_id, r in resources.items()}
        self.stack_id = stack_id
        self.by_short_name = {
            _CFN_SUFFIX.sub("", physical.rsplit(":", 1)[-1].rsplit("/", 1)[-1]): logical_id
            for logical_id, physical in self.physical.items()
        }
        (self.bucket,) = [p for k, p in self.physical.items() if self.types[k] == "AWS::S3::Bucket"]
        self.indexes = {
            logical_id: [
                index["IndexName"]
                for index in resource["Properties"].get("GlobalSecondaryIndexes", [])  # type: ignore[attr-defined]
            ]
            for logical_id, resource in resources.items()
            if resource["Type"] == "AWS::DynamoDB::Table"
        }

    def principal(self, caller: str, service: str, operation: str) -> str:
        if caller in HOLDERS:
            return HOLDERS[caller]
        kind, _, name = caller.partition(":")
        if kind in ("lambda", "workflow"):
            return self.by_short_name[name]
        if caller == "in-process" and (service, operation) == ("stepfunctions", "StartExecution"):
            # The emulator fires the reaper's schedule as EventBridge Scheduler would.
            (schedule,) = [k for k, t in self.types.items() if t == "AWS::Scheduler::Schedule"]
            return schedule
        raise AssertionError(f"a request from {caller} ({service} {operation}): whose is it?")

    def targets(self, service: str, operation: str, name: str) -> tuple[Target, ...]:
        """The ARNs a request may have been on, with its condition keys."""
        account = f"{iam.REGION}:{iam.ACCOUNT}"
        if service == "dynamodb":
            table = f"arn:aws:dynamodb:{account}:table/{self._physical(name)}"
            indexes = self.indexes[self.by_short_name[name]] if operation == "Query" else []
            return ((table, ()), *((f"{table}/index/{index}", ()) for index in indexes))
        if service == "sqs":
            # The counters name every session's result queue <prefix>_s_*.
            queue = name.replace(f"{result_queues.INFIX}*", f"{result_queues.INFIX}example")
            return ((f"arn:aws:sqs:{account}:{queue}", ()),)
        if service == "s3":
            assert name == self.bucket, f"S3 request on {name}, not the data bucket"
            if operation in ("ListObjectsV2", "ListObjects"):
                return ((f"arn:aws:s3:::{name}", (("s3:prefix", "sessions/example/"),)),)
            return ((f"arn:aws:s3:::{name}/sessions/example/payloads/example.json", ()),)
        if service == "lambda":
            return ((f"arn:aws:lambda:{account}:function:{self._physical(name)}", ()),)
        if service == "stepfunctions":
            return ((self._physical(name), ()),)
        if service == "cloudformation":
            return ((self.stack_id, ()),)
        raise AssertionError(f"no resource known for {service} {operation} {name}")

    def _physical(self, short_name: str) -> str:
        return self.physical[self.by_short_name[short_name]]


@dataclass
class Run:
    principals: dict[str, iam.Principal]
    calls: list[Call]


def grid_resources(grid: LocalGrid) -> GridResources:
    return GridResources.from_settings(
        GridSettings.from_stack_outputs(
            grid.outputs, endpoint_url=grid.endpoint_url, region=iam.REGION
        )
    )


def state_of(resources: GridResources, session_id: str, task_id: str) -> tuple[TaskState, int]:
    record = resources.table.get_tasks([(session_id, task_id)])[(session_id, task_id)]
    return record.state, record.attempt


def stop_agents(grid: LocalGrid, how: signal.Signals) -> None:
    """Stop every running agent and wait until it is gone: SIGKILL is a crash (its leases
    expire), SIGTERM a drain (it hands back what it holds, so no receive of its is left
    in flight to take a message after it is gone)."""
    for index, agent in enumerate(grid.agents):
        if agent.poll() is None:
            grid.kill_agent(index, how)
            agent.wait(timeout=60)


def client_paths(client: Grid) -> str:
    """Submit, stream results, read payloads and results through S3, and every read path."""
    with client.open_session() as session:
        first = session.submit(
            [
                {"value": 1},
                {"value": 2, "fail_attempts": 1},
                {"fail": "permanent"},
                {"bytes": 20_000},
                {"value": "x" * 20_000},
            ]
        )
        # More tasks than one batch of messages: the dispatch function's step sends these
        # (the five above, the submission function itself).
        larger = session.submit([{"value": v} for v in range(DISPATCH_AT_ONCE_MAX_TASKS + 1)])
        task_ids = [*first, *larger]
        results = session.wait(timeout=120)
    assert sorted(r.state for r in results) == sorted(
        [TaskState.SUCCEEDED] * (4 + DISPATCH_AT_ONCE_MAX_TASKS + 1) + [TaskState.FAILED]
    )
    # A submission Persist rejects (no level 4 on this grid): the workflow records why.
    rejected = Submission(
        session_id=session.id,
        submission_token="rejected",
        tasks=[TaskSpec(payload=InlineData(inline=1), priority=4)],
    )
    with pytest.raises(SubmissionFailedError):
        client.submit_batch(rejected)
    assert client.status(session.id, exact=True).total == len(task_ids)
    assert client.status(session.id).session_id == session.id
    assert len(list(client.iter_tasks(session.id))) == len(task_ids)
    assert len(list(client.iter_results(session.id))) == len(task_ids)
    assert {r.task_id for r in client.fetch_results(session.id, task_ids).results} == set(task_ids)
    assert session.id in {s.session_id for s in client.sessions()}
    assert client.queue_depths()
    assert client.cancel(session.id).cancelled == 0  # a whole session: every task finished
    return session.id


def stranded_paths(client: Grid, grid: LocalGrid, resources: GridResources) -> None:
    """A submission whose workflow died between persisting and dispatching it is dispatched by
    the reaper's sweep once its dispatch deadline has passed, and its task runs. The test plays
    the dead workflow (as "external": its resources carry no app id)."""
    session_id = f"stranded-{uuid.uuid4().hex[:8]}"
    submission = Submission(
        session_id=session_id,
        submission_token="stranded",
        tasks=[TaskSpec(payload=InlineData(inline={"value": 4}))],
    )
    (task_id,) = persist_submission(submission, resources).task_ids
    with pytest.MonkeyPatch.context() as anonymous:
        anonymous.delenv(APP_ID_VARIABLE)
        dynamodb = emulator_client("dynamodb", grid.endpoint_url, iam.REGION)
    dynamodb.update_item(
        TableName=resources.settings.table_name,
        Key=keys.submission_key(session_id, "stranded"),
        UpdateExpression="SET lease_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )
    wait_for(
        lambda: state_of(resources, session_id, task_id) == (TaskState.SUCCEEDED, 1),
        60,
        "the reaper dispatching the stranded submission, and its task run",
    )
    client.delete_session(session_id)


def reopened_queue_paths(client: Grid, grid: LocalGrid) -> None:
    """A result queue that exists with other attributes (an older client's) is brought to the
    session function's when its session opens."""
    session_id = f"reopened-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as anonymous:
        anonymous.delenv(APP_ID_VARIABLE)
        sqs = emulator_client("sqs", grid.endpoint_url, iam.REGION)
    name = result_queues.queue_name(client.settings.queue_prefix, session_id)
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    with client.open_session(session_id):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == str(result_queues.VISIBILITY_TIMEOUT_S)


def lease_paths(client: Grid, grid: LocalGrid, resources: GridResources) -> None:
    """A leased task of a killed agent comes back through the reaper; its next attempt is
    cancelled while it runs."""
    with client.open_session() as session:
        (task_id,) = session.submit([{"sleep": 120}], timeout_s=600)
        wait_for(
            lambda: state_of(resources, session.id, task_id) == (TaskState.RUNNING, 1),
            60,
            "the task running",
        )
        stop_agents(grid, signal.SIGKILL)
        grid.start_agent()
        wait_for(
            lambda: state_of(resources, session.id, task_id) == (TaskState.RUNNING, 2),
            90,
            "the reaper's retry running on the new agent",
        )
        session.cancel([task_id])  # the task alone: agents then read their tasks' records
        (result,) = session.wait(timeout=60)
    assert result.state is TaskState.CANCELLED


def dead_letter_paths(
    client: Grid, grid: LocalGrid, resources: GridResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead-lettered task is failed by the reaper's sweep, listed and redriven by an
    operator, and then runs."""
    stop_agents(grid, signal.SIGTERM)
    with client.open_session(stream_results=False) as session:
        (task_id,) = session.submit([{"value": 3}])
    # SQS moves a message to its DLQ after max_receive_count receives; this test moves it
    # itself (as "external", no principal of the grid's), quicker than crashing agents on it.
    with pytest.MonkeyPatch.context() as anonymous:
        anonymous.delenv(APP_ID_VARIABLE)
        sqs = emulator_client("sqs", grid.endpoint_url, iam.REGION)
    record = resources.table.get_tasks([(session.id, task_id)])[(session.id, task_id)]
    queue_url = resources.queues.task_queue_url(record.priority)

    def task_message() -> dict[str, str] | None:
        # Stale messages of the lease paths' task may come first: they stay hidden.
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for candidate in received.get("Messages", []):
            if TaskMessage.model_validate_json(candidate["Body"]).task_id == task_id:
                return dict(candidate)
        return None

    message = wait_for(task_message, 30, "the task's message")
    sqs.send_message(
        QueueUrl=resources.queues.dead_letter_queue_url(record.priority),
        MessageBody=message["Body"],
    )
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    wait_for(
        lambda: state_of(resources, session.id, task_id)[0] is TaskState.FAILED,
        60,
        "the reaper's sweep failing the dead-lettered task",
    )
    monkeypatch.setenv(APP_ID_VARIABLE, "htcgrid-operator")
    where = ["--stack", STACK, "--endpoint-url", grid.endpoint_url, "--region", iam.REGION]
    assert htcgrid_cli([*where, "--json", "dlq", "list"]) == 0
    assert htcgrid_cli([*where, "--json", "dlq", "redrive"]) == 0
    monkeypatch.setenv(APP_ID_VARIABLE, "htcgrid-client")
    # In burst mode: the agent runs what is queued, then reads the queues' depth and exits.
    grid.agent_args = [*grid.agent_args, "--burst"]
    assert grid.start_agent().wait(timeout=60) == 0
    assert state_of(resources, session.id, task_id) == (TaskState.SUCCEEDED, 2)


def run_code_paths() -> tuple[Accounting, dict[str, str], str]:
    """Every path above on a local grid of its own; its counters, and the stack's physical
    ids and id (to render the template as this stack)."""
    grid = LocalGrid(
        agents=1,
        handler=HANDLER,
        slots=2,
        stack_name=STACK,
        parameters=PARAMETERS,
        # Every task takes a lease (threshold 0) and is checked for cancellation every second.
        agent_env={
            APP_ID_VARIABLE: "htcgrid-agent",
            "HTCGRID_LEASE_THRESHOLD_S": "0",
            "HTCGRID_HEARTBEAT_INTERVAL_S": "1",
        },
        agent_args=["--long-poll", "1"],
        schedule_period_s=1,
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv(accounting.ENV_FLAG, "1")  # the emulator process inherits it
        grid.start()
        try:
            resources = grid_resources(grid)
            env.setenv(APP_ID_VARIABLE, "htcgrid-client")  # read by the boto3 clients made below
            client = Grid.connect(STACK, endpoint_url=grid.endpoint_url, region=iam.REGION)
            session_id = client_paths(client)
            stranded_paths(client, grid, resources)
            reopened_queue_paths(client, grid)
            lease_paths(client, grid, resources)
            dead_letter_paths(client, grid, resources, env)
            client.delete_session(session_id)
            counted = accounting.fetch(grid.endpoint_url)
            env.delenv(APP_ID_VARIABLE)
            cloudformation = emulator_client("cloudformation", grid.endpoint_url, iam.REGION)
            summaries = cloudformation.list_stack_resources(StackName=STACK)
            stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        finally:
            grid.stop()
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries["StackResourceSummaries"]
    }
    return counted, physical, str(stack["StackId"])


@pytest.fixture(scope="module")
def run() -> Run:
    counted, physical, stack_id = run_code_paths()
    rendered = iam.render(PARAMETERS, iam.Stack(STACK, stack_id, physical))
    resolver = Resolver(rendered, stack_id)
    calls = []
    for row in counted.rows:
        if row.caller in NOT_A_PRINCIPAL or (row.service, row.operation) in _PSEUDO_OPERATIONS:
            continue
        if row.caller == "in-process" and row.service == "scheduler":
            continue  # the emulator reading its schedules, as EventBridge Scheduler does
        calls.append(
            Call(
                resolver.principal(row.caller, row.service, row.operation),
                iam_action(row.service, row.operation),
                resolver.targets(row.service, row.operation, row.resource),
            )
        )
    return Run(iam.principals(rendered), calls)


def test_the_run_takes_every_principals_code_paths(run: Run) -> None:
    """The scenario did what it claims: each principal made the calls its paths need."""
    made = {(call.principal, call.action) for call in run.calls}
    expected = {
        ("ClientPolicy", "cloudformation:DescribeStacks"),
        ("ClientPolicy", "states:StartSyncExecution"),
        ("ClientPolicy", "lambda:InvokeFunction"),
        ("ClientPolicy", "s3:PutObject"),
        ("ClientPolicy", "s3:GetObject"),
        ("ClientPolicy", "sqs:ReceiveMessage"),
        ("AgentPolicy", "states:StartSyncExecution"),
        ("AgentPolicy", "dynamodb:UpdateItem"),
        ("AgentPolicy", "s3:PutObject"),
        ("AgentPolicy", "dynamodb:BatchGetItem"),
        ("AgentPolicy", "sqs:GetQueueAttributes"),
        ("SubmitWorkflow", "dynamodb:UpdateItem"),
        ("OperatorPolicy", "cloudformation:DescribeStacks"),
        ("OperatorPolicy", "dynamodb:BatchGetItem"),
        ("OperatorPolicy", "dynamodb:UpdateItem"),
        ("OperatorPolicy", "sqs:SendMessage"),
        ("ReaperFunction", "dynamodb:Query"),
        ("ReaperFunction", "sqs:ReceiveMessage"),
        ("ReapWorkflow", "states:StartExecution"),
        ("ReapWorkflowReap", "states:StartExecution"),
        ("RetryFunction", "sqs:SendMessage"),
        ("CancelFunction", "dynamodb:UpdateItem"),
        ("DeleteFunction", "s3:ListBucket"),
        ("DeleteFunction", "s3:DeleteObject"),
        ("SubmitWorkflow", "lambda:InvokeFunction"),
    }
    assert expected <= made, sorted(expected - made)


def test_every_call_is_allowed_to_the_principal_that_makes_it(run: Run) -> None:
    denied = sorted({str(call) for call in run.calls if not call.allowed(run.principals)})
    assert not denied, "calls no statement allows:\n" + "\n".join(denied)


def test_every_grant_is_used_or_kept_for_a_stated_reason(run: Run) -> None:
    used = [(call.principal, call.action, arn) for call in run.calls for arn, _ in call.targets]
    unused = []
    for name, principal in run.principals.items():
        for statement, action, pattern in principal.grants():
            if statement.sid in SERVICE_STATEMENTS or (name, statement.sid, action) in KEPT:
                continue
            if not any(
                who == name
                and iam.wildcard_match(action.lower(), what.lower())
                and iam.wildcard_match(pattern, arn)
                for who, what, arn in used
            ):
                unused.append(f"{name} {statement.sid or statement.source}: {action} on {pattern}")
        unknown = set(principal.aws_managed) - set(SERVICE_MANAGED_POLICIES)
        assert not unknown, f"{name} holds AWS managed policies nobody explained: {unknown}"
    assert not unused, "grants no code path uses (remove, or add to KEPT why):\n" + "\n".join(
        sorted(unused)
    )


def test_kept_grants_still_exist(run: Run) -> None:
    """A reason for keeping a grant that is gone misleads the next reader."""
    granted = {
        (name, statement.sid, action)
        for name, principal in run.principals.items()
        for statement, action, _ in principal.grants()
    }
    assert set(KEPT) <= granted, sorted(set(KEPT) - granted)
