"""One test per patch in ``htcgrid_local.moto_patches``: the behaviour each one exists for.

Step Functions and CloudFormation patches are observed through the emulator (which applies
them all); SQS, Lambda-layer and server patches are checked on moto's objects in this process,
after ``apply_all()``, which is what the emulator runs at start.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from htcgrid_local import moto_patches
from htcgrid_local.emulator import Emulator
from htcgrid_local.provision import StackOutputs, provision_stack
from htcgrid_local.schedules import fire_all
from tests.integration.local.conftest import FIXTURE_TEMPLATE

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", autouse=True)
def patched() -> None:
    moto_patches.apply_all()


@pytest.fixture
def sqs_backend() -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import SQSBackend

    return SQSBackend("us-east-1", DEFAULT_ACCOUNT_ID)


def send_batch(backend: Any, queue: str, count: int, **entry: Any) -> None:
    for start in range(0, count, 10):
        backend.send_message_batch(
            queue,
            {
                str(i): {
                    "Id": str(i),
                    "MessageBody": f"m{i}",
                    "MessageAttributes": {},
                    "DelaySeconds": None,
                    **entry,
                }
                for i in range(start, min(count, start + 10))
            },
        )


# --- Step Functions and CloudFormation, through the emulator --------------------------------


def test_start_sync_execution_runs_the_workflow_and_answers_like_aws(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    reply = aws("stepfunctions").start_sync_execution(
        stateMachineArn=fixture_stack["WorkflowArn"],
        name="named-execution",
        input=json.dumps({"key": f"k-{uuid.uuid4().hex[:8]}"}),
    )

    assert reply["status"] == "SUCCEEDED"
    assert reply["name"] == "named-execution"
    assert set(reply) >= {"executionArn", "stateMachineArn", "startDate", "stopDate", "input"}
    assert json.loads(reply["output"])["attempts"] == 1


def test_stack_state_machine_is_express_substituted_and_executable(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    sfn = aws("stepfunctions")

    machine = sfn.describe_state_machine(stateMachineArn=fixture_stack["WorkflowArn"])

    assert machine["type"] == "EXPRESS"
    definition = json.loads(machine["definition"])
    echo = definition["States"]["Echo"]["Parameters"]
    assert echo["FunctionName"] == fixture_stack["EchoFunctionArn"]
    assert echo["Payload"]["table"] == fixture_stack["TableName"]
    # Created in the executing backend: the API lists it.
    listed = {m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    assert fixture_stack["WorkflowArn"] in listed


def test_deleting_the_stack_deletes_its_state_machine(
    local_emulator: Emulator, aws: Callable[[str], Any]
) -> None:
    stack = f"gone-{uuid.uuid4().hex[:6]}"
    outputs = provision_stack(local_emulator.endpoint_url, FIXTURE_TEMPLATE, stack)
    from htcgrid_local.provision import delete_stack

    delete_stack(local_emulator.endpoint_url, stack)

    listed = {
        m["stateMachineArn"] for m in aws("stepfunctions").list_state_machines()["stateMachines"]
    }
    assert outputs["WorkflowArn"] not in listed


def test_number_parameter_equals_its_string_literal_in_conditions(
    local_emulator: Emulator, aws: Callable[[str], Any]
) -> None:
    # GIVEN the fixture's HasLevel1: !Not [!Equals [!Ref Levels, 1]] with Levels passed as "1"
    stack = f"eq-{uuid.uuid4().hex[:6]}"

    outputs = provision_stack(local_emulator.endpoint_url, FIXTURE_TEMPLATE, stack, {"Levels": "1"})

    assert "QueueUrlP1" not in outputs
    urls = aws("sqs").list_queues(QueueNamePrefix=f"{stack}-p").get("QueueUrls", [])
    assert sorted(url.rsplit("/", 1)[-1] for url in urls) == [f"{stack}-p0", f"{stack}-p0-dlq"]


def test_layer_version_ref_is_its_version_arn(fixture_stack: StackOutputs) -> None:
    assert fixture_stack["LayerArn"].startswith("arn:aws:lambda:us-east-1:123456789012:layer:")
    assert fixture_stack["LayerArn"].endswith(":1")


def test_interpreter_reuses_one_client_per_service() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client

    first = boto_client.boto_client_for("us-east-1", "lambda")
    again = lambda_eval_utils.boto_client_for(  # type: ignore[attr-defined]
        region="us-east-1", service="lambda"
    )

    assert again is first
    assert boto_client.boto_client_for("us-east-1", "sqs") is not first


def test_definition_is_parsed_once_per_text_with_heap_keys_ready() -> None:
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    definition = (FIXTURE_TEMPLATE.parent / "statemachines" / "workflow.asl.json").read_text()

    class Details:  # the one attribute the entry point reads
        class state_machine_details:
            pass

    Details.state_machine_details.definition = definition  # type: ignore[attr-defined]
    worker = ExecutionWorker.__new__(ExecutionWorker)
    worker._evaluation_details = Details  # type: ignore[assignment,misc]

    program = worker._get_evaluation_entrypoint()

    assert worker._get_evaluation_entrypoint() is program
    states = program.states.states  # type: ignore[attr-defined]
    retrier = states["Count"].retry.retriers[0]
    # Created before sharing: the private slot is set, so no execution creates it later.
    assert isinstance(retrier.max_attempts, EvalComponent)
    assert getattr(retrier.max_attempts, "_EvalComponent__heap_key", None) is not None


# --- Server ---------------------------------------------------------------------------------


def test_module_listing_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import backends

    def no_listing(path: str) -> list[str]:
        raise AssertionError("listed the moto package again")

    listing = backends.list_of_moto_modules()
    monkeypatch.setattr(os, "listdir", no_listing)

    assert "sqs" in backends.list_of_moto_modules()
    assert backends.list_of_moto_modules() == listing


# --- SQS ------------------------------------------------------------------------------------


def test_receive_drops_messages_past_retention_and_delivers_fresh_ones(sqs_backend: Any) -> None:
    sqs_backend.create_queue("q", MessageRetentionPeriod="60")
    send_batch(sqs_backend, "q", 2)
    fresh, old = sqs_backend.get_queue("q")._messages
    old.sent_timestamp -= 61_000

    received = sqs_backend.receive_message("q", 10, 0, 30)

    # moto stops at the first expired message (and so does the patch: same answer per message).
    assert [m.body for m in received] == [fresh.body]


def test_visibility_and_delay_follow_the_clock(sqs_backend: Any) -> None:
    sqs_backend.create_queue("q")
    send_batch(sqs_backend, "q", 1)
    send_batch(sqs_backend, "q", 1, DelaySeconds=60)
    visible, delayed = sqs_backend.get_queue("q")._messages

    assert visible.visible
    assert not visible.delayed
    assert delayed.delayed
    (message,) = sqs_backend.receive_message("q", 10, 0, 30)
    assert not visible.visible  # in flight for 30 s
    sqs_backend.change_message_visibility("q", message.receipt_handle, 0)
    assert visible.visible


def test_delete_matches_current_and_earlier_receipt_handles(sqs_backend: Any) -> None:
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    sqs_backend.create_queue("q")
    send_batch(sqs_backend, "q", 2)
    (first,) = sqs_backend.receive_message("q", 1, 0, 0)
    earlier_handle = first.receipt_handle
    sqs_backend.receive_message("q", 10, 0, 30)  # both received again: new handles

    sqs_backend.delete_message("q", earlier_handle)  # moto, unlike AWS, honours a stale handle

    assert len(sqs_backend.get_queue("q")._messages) == 1
    with pytest.raises(ReceiptHandleIsInvalid):
        sqs_backend.delete_message("q", "not-a-handle")


def test_receive_looks_only_as_far_as_the_messages_it_takes(
    sqs_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sqs.models import Message

    sqs_backend.create_queue("q")
    send_batch(sqs_backend, "q", 1000)
    queue = sqs_backend.get_queue("q")
    checks = []
    visible = Message.visible

    def counted(self: Message) -> bool:
        checks.append(self)
        return bool(visible.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(Message, "visible", property(counted))
    (message,) = sqs_backend.receive_message("q", 1, 0, 30)
    monkeypatch.undo()

    assert message.body == "m0"
    assert len(checks) < 10  # not one check per message of the queue
    assert len(queue.messages) == 999  # the other users still see the whole queue
    assert queue.messages


def test_delete_scans_only_up_to_the_message(
    sqs_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sqs.models import Message

    sqs_backend.create_queue("q")
    send_batch(sqs_backend, "q", 1000)
    (first,) = sqs_backend.receive_message("q", 1, 0, 30)
    compared = []
    had = Message.had_receipt_handle

    def counted(self: Message, handle: str) -> bool:
        compared.append(self)
        return had(self, handle)

    monkeypatch.setattr(Message, "had_receipt_handle", counted)
    sqs_backend.delete_message("q", first.receipt_handle)
    monkeypatch.undo()

    assert len(compared) == 1
    queue = sqs_backend.get_queue("q")
    assert len(queue._messages) == 999
    assert "m0" not in {m.body for m in queue._messages}


def test_standard_send_never_builds_queue_attributes(
    sqs_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sqs.models import Queue

    sqs_backend.create_queue("q")
    sqs_backend.create_queue("q.fifo", FifoQueue="true", ContentBasedDeduplication="true")

    def no_attributes(self: Queue) -> dict[str, Any]:
        raise AssertionError("built the attributes of a standard queue")

    monkeypatch.setattr(Queue, "attributes", property(no_attributes))
    message = sqs_backend.send_message(
        "q", "body", {"a": {"DataType": "String", "StringValue": "1"}}, delay_seconds=5
    )
    monkeypatch.undo()

    assert message.message_attributes == {"a": {"DataType": "String", "StringValue": "1"}}
    assert message.delayed
    # FIFO queues still go through moto's own path: content-based deduplication holds.
    sqs_backend.send_message("q.fifo", "same", group_id="g")
    sqs_backend.send_message("q.fifo", "same", group_id="g")
    assert len(sqs_backend.get_queue("q.fifo")._messages) == 1


def test_send_receive_and_delete_stay_fast_at_depth_1000(sqs_backend: Any) -> None:
    # Stock moto: ~200 ms per send_batch(10) and ~650 ms per receive(10) at this depth.
    sqs_backend.create_queue("q")
    send_batch(sqs_backend, "q", 1000)

    started = time.perf_counter()
    send_batch(sqs_backend, "q", 10)
    received = sqs_backend.receive_message("q", 10, 0, 30)
    for message in received:
        sqs_backend.delete_message("q", message.receipt_handle)
    elapsed_ms = (time.perf_counter() - started) * 1000

    assert elapsed_ms < 100


def test_a_state_starts_another_workflow_by_the_apis_parameter_names(
    aws: Callable[[str], Any],
) -> None:
    sfn = aws("stepfunctions")
    role = "arn:aws:iam::123456789012:role/workflow"
    child = sfn.create_state_machine(
        name="child-workflow",
        type="EXPRESS",
        roleArn=role,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    start = {
        "Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution",
        "Parameters": {"StateMachineArn": child, "Input.$": "$"},
        "End": True,
    }
    parent = sfn.create_state_machine(
        name="parent-workflow",
        type="EXPRESS",
        roleArn=role,
        definition=json.dumps({"StartAt": "Start", "States": {"Start": start}}),
    )["stateMachineArn"]
    names = set()
    for _ in range(2):  # unnamed executions get distinct (UUID) names, as on AWS
        execution = sfn.start_sync_execution(stateMachineArn=parent, input='{"a": 1}')
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        names.add(json.loads(execution["output"])["executionArn"].rsplit(":", 1)[1])
    assert len(names) == 2
    assert "None" not in names


def test_a_stacks_schedule_exists_in_the_scheduler_and_is_fired(
    aws: Callable[[str], Any], local_emulator: Emulator, tmp_path: Path
) -> None:
    template = {
        "Resources": {
            "Target": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineType": "EXPRESS",
                    "RoleArn": "arn:aws:iam::123456789012:role/workflow",
                    "DefinitionString": json.dumps(
                        {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
                    ),
                },
            },
            "Every": {
                "Type": "AWS::Scheduler::Schedule",
                "Properties": {
                    "Name": "fixture-every-minute",
                    "ScheduleExpression": "rate(1 minute)",
                    "FlexibleTimeWindow": {"Mode": "OFF"},
                    "Target": {
                        "Arn": {"Ref": "Target"},
                        "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
                        "Input": '{"from": "schedule"}',
                    },
                },
            },
        },
        "Outputs": {"TargetArn": {"Value": {"Ref": "Target"}}},
    }
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    outputs = provision_stack(local_emulator.endpoint_url, path, "scheduled")
    schedule = aws("scheduler").get_schedule(Name="fixture-every-minute")
    assert schedule["Target"]["Arn"] == outputs["TargetArn"]
    sfn = aws("stepfunctions")
    before = len(sfn.list_executions(stateMachineArn=outputs["TargetArn"])["executions"])
    for _ in range(2):  # every firing is an execution of its own
        assert fire_all(aws("scheduler"), sfn) >= 1
    executions = sfn.list_executions(stateMachineArn=outputs["TargetArn"])["executions"]
    assert len(executions) == before + 2


def test_queries_page_in_key_order_without_sorting_the_table_first(
    aws: Callable[[str], Any],
) -> None:
    ddb = aws("dynamodb")
    name = f"query-order-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": t}
            for a, t in (("pk", "S"), ("sk", "S"), ("shard", "S"), ("at", "N"))
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-time",
                "KeySchema": [
                    {"AttributeName": "shard", "KeyType": "HASH"},
                    {"AttributeName": "at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    for i in reversed(range(60)):  # written out of order, a third of them in the index
        item = {"pk": {"S": f"p{i % 3}"}, "sk": {"S": f"s{i:03d}"}}
        if i % 3 == 0:
            item |= {"shard": {"S": "x"}, "at": {"N": str(1000 - i)}}
        ddb.put_item(TableName=name, Item=item)

    def pages(**query: Any) -> list[dict[str, Any]]:
        found, start = [], {}
        while True:
            page = ddb.query(TableName=name, Limit=7, **query, **start)
            found += page["Items"]
            if "LastEvaluatedKey" not in page:
                return found
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    base = pages(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p1"}})
    assert [i["sk"]["S"] for i in base] == [f"s{i:03d}" for i in range(60) if i % 3 == 1]
    index = pages(
        IndexName="by-time",
        KeyConditionExpression="shard = :s AND #at < :t",
        ExpressionAttributeNames={"#at": "at"},
        ExpressionAttributeValues={":s": {"S": "x"}, ":t": {"N": "1000"}},
    )
    assert [int(i["at"]["N"]) for i in index] == sorted(1000 - i for i in range(3, 60, 3))


def test_racing_conditional_writes_let_exactly_one_win(aws: Callable[[str], Any]) -> None:
    ddb = aws("dynamodb")
    name = f"race-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    for round_ in range(5):
        key = {"pk": {"S": f"task-{round_}"}}
        ddb.put_item(TableName=name, Item={**key, "state": {"S": "PENDING"}})
        barrier = threading.Barrier(12)
        wins: list[int] = []

        def complete(
            writer: int, key: dict[str, Any] = key, barrier: Any = barrier, wins: list[int] = wins
        ) -> None:
            barrier.wait()
            try:
                ddb.update_item(
                    TableName=name,
                    Key=key,
                    UpdateExpression="SET #s = :done, winner = :w",
                    ConditionExpression="#s = :pending",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues={
                        ":done": {"S": "SUCCEEDED"},
                        ":pending": {"S": "PENDING"},
                        ":w": {"N": str(writer)},
                    },
                )
                wins.append(writer)
            except ddb.exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=complete, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1
        item = ddb.get_item(TableName=name, Key=key)["Item"]
        assert item["winner"]["N"] == str(wins[0])
