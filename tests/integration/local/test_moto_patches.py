"""One test per patch in ``htcgrid_local.moto_patches``: the behaviour each one exists for.

Step Functions and CloudFormation patches are observed through the emulator (which applies
them all); SQS, Lambda-layer and server patches are checked on moto's objects in this process,
after ``apply_all()``, which is what the emulator runs at start.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from htcgrid_core.traces import trace_header, trace_root
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


def test_a_workflows_lambdas_run_in_the_executions_trace(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    sfn = aws("stepfunctions")
    traced = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

    def trace_of(**trace: str) -> str:
        reply = sfn.start_sync_execution(
            stateMachineArn=fixture_stack["WorkflowArn"],
            input=json.dumps({"key": f"k-{uuid.uuid4().hex[:8]}"}),
            **trace,
        )
        return str(json.loads(reply["output"])["trace_id"])

    # the caller's trace, when it passes one
    assert trace_of(traceHeader=traced) == traced
    # else one the execution starts, which no other execution shares
    first, second = trace_of(), trace_of()
    assert trace_header(first) == first
    assert trace_root(first) != trace_root(second)


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


def test_the_interpreters_copies_are_deepcopys_made_for_json() -> None:
    shared = {"inline": {"x": 1.5, "flags": [True, None]}}

    class Opaque:  # not JSON: left to deepcopy
        def __init__(self) -> None:
            self.items = [1, 2]

    value = {"tasks": [shared, shared], "token": "t", "count": 2, "other": Opaque()}

    copied = moto_patches.copy_json_value(value)
    expected = copy.deepcopy(value)

    assert json.dumps(copied, default=vars) == json.dumps(expected, default=vars)
    assert copied["tasks"][0] is copied["tasks"][1]  # shared in, shared out, as deepcopy does
    assert copied["tasks"][0] is not shared
    assert copied["tasks"][0]["inline"]["flags"] is not shared["inline"]["flags"]
    assert isinstance(copied["other"], Opaque)
    assert copied["other"] is not value["other"]
    assert copied["other"].items is not value["other"].items


def test_states_keep_their_data_to_themselves_without_deepcopy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )
    from moto.stepfunctions.parser.asl.eval import states as states_module

    def no_deepcopy(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("copy.deepcopy was called")

    monkeypatch.setattr(copy, "deepcopy", no_deepcopy)
    submission = {"session_id": "s", "tasks": [{"payload": {"inline": {"x": i}}} for i in range(3)]}
    states = states_module.States(context={"Execution": {"Input": {}}})  # type: ignore[typeddict-item]

    # GIVEN a state's input, set from a value its producer may go on changing
    states.reset(submission)
    submission["tasks"].clear()
    # WHEN a state changes the input it was handed
    handed = states.get_input()
    handed["tasks"][0]["payload"]["inline"]["x"] = 99

    # THEN the next reader sees the input as it was set
    assert states.get_input()["tasks"] == [{"payload": {"inline": {"x": i}}} for i in range(3)]
    # and every module of the interpreter that copies state data does it without deepcopy
    for module in (states_module, result_path, execute_state, state_task_service):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        assert "copy." not in source.replace("copy.deepcopy(", "")  # only deepcopy is used
        assert module.copy.deepcopy is moto_patches.copy_json_value  # type: ignore[attr-defined]


def test_state_event_details_serialise_the_input_without_copying_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
    from moto.stepfunctions.parser.asl.eval import states as states_module

    states = states_module.States(context={"Execution": {"Input": {"n": [1, 2]}}})  # type: ignore[typeddict-item]

    def no_copy(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the input was copied to be serialised")

    monkeypatch.setattr(states, "get_input", no_copy)
    tracing: list[str] = []
    variables = SimpleNamespace(
        get_assigned_variables=dict, reset_tracing=lambda: tracing.append("reset")
    )
    env = SimpleNamespace(states=states, variable_store=variables)
    state = SimpleNamespace(name="Persist")

    entered = CommonStateField._get_state_entered_event_details(state, env)  # type: ignore[arg-type]
    exited = CommonStateField._get_state_exited_event_details(state, env)  # type: ignore[arg-type]

    assert (entered["name"], entered["input"]) == ("Persist", '{"n":[1,2]}')
    assert (exited["name"], exited["output"]) == ("Persist", '{"n":[1,2]}')
    assert tracing == ["reset"]


# --- Server ---------------------------------------------------------------------------------


def test_module_listing_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import backends

    def no_listing(path: str) -> list[str]:
        raise AssertionError("listed the moto package again")

    listing = backends.list_of_moto_modules()
    monkeypatch.setattr(os, "listdir", no_listing)

    assert "sqs" in backends.list_of_moto_modules()
    assert backends.list_of_moto_modules() == listing


def test_each_host_is_matched_against_the_url_patterns_once() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    dispatcher = DomainDispatcherApplication(create_backend_app)
    assert dispatcher.get_backend_for_host("sqs.eu-west-3.amazonaws.com") == "sqs"

    dispatcher.backend_url_patterns = []  # matching again would now find nothing

    assert dispatcher.get_backend_for_host("sqs.eu-west-3.amazonaws.com") == "sqs"
    assert dispatcher.get_backend_for_host("dynamodb") == "dynamodb"  # a module name


def test_a_response_classs_action_names_are_listed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from moto.core import responses
    from moto.sqs.responses import SQSResponse

    def no_listing(*args: Any, **kwargs: Any) -> list[Any]:
        raise AssertionError("listed the class's members again")

    names = responses.method_names_from_class(SQSResponse)  # type: ignore[attr-defined]
    monkeypatch.setattr(inspect, "getmembers", no_listing)

    assert "receive_message" in responses.method_names_from_class(SQSResponse)  # type: ignore[attr-defined]
    assert responses.method_names_from_class(SQSResponse) == names  # type: ignore[attr-defined]


def test_answers_carry_no_cors_headers() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    app = Client(DomainDispatcherApplication(create_backend_app))
    answer = app.post(
        "/",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/sqs/aws4_request",
            "X-Amz-Target": "AmazonSQS.ListQueues",
            "Content-Type": "application/x-amz-json-1.0",
            "Origin": "http://browser.example",
        },
        data="{}",
    )

    assert answer.status_code == 200
    assert not [name for name, _ in answer.headers.items() if name.startswith("Access-Control-")]


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


# --- DynamoDB UpdateItem --------------------------------------------------------------------

UPDATE_TABLE = "update-item"
COMPLETE = (  # what TaskTable.record_success sends
    "SET #state = :succeeded, #result = :result, finished_at = :now "
    "REMOVE lease_token, lease_expires_at, lease_shard"
)
HOLDER = "#state IN (:expect_s0) AND attempt = :expect_attempt AND lease_token = :expect_lease"


def complete(task: str, lease: str, result: str, **request: Any) -> dict[str, Any]:
    return {
        "Key": {"pk": {"S": "s#00"}, "sk": {"S": task}},
        "UpdateExpression": COMPLETE,
        "ConditionExpression": HOLDER,
        "ExpressionAttributeNames": {"#state": "state", "#result": "result"},
        "ExpressionAttributeValues": {
            ":succeeded": {"S": "SUCCEEDED"},
            ":result": {"S": result},
            ":now": {"N": "1700000000.5"},
            ":expect_s0": {"S": "RUNNING"},
            ":expect_attempt": {"N": "1"},
            ":expect_lease": {"S": lease},
        },
        **request,
    }


def running(task: str, lease: str) -> dict[str, Any]:
    return {
        "pk": {"S": "s#00"},
        "sk": {"S": task},
        "state": {"S": "RUNNING"},
        "attempt": {"N": "1"},
        "lease_token": {"S": lease},
        "lease_expires_at": {"N": "1700000060"},
        "lease_shard": {"S": "3"},
        "payload": {"S": '{"inline": 1}'},
    }


def update(key: str, expression: str, values: dict[str, Any] | None = None, **request: Any) -> Any:
    body: dict[str, Any] = {"Key": {"pk": {"S": "s#00"}, "sk": {"S": key}}}
    if expression:
        body["UpdateExpression"] = expression
    if values is not None:
        body["ExpressionAttributeValues"] = values
    return body | request


RICH = {
    "pk": {"S": "s#00"},
    "sk": {"S": "rich"},
    "n": {"N": "5"},
    "s": {"S": "hello"},
    "m": {"M": {"x": {"N": "1"}, "sub": {"M": {"y": {"S": "deep"}}}}},
    "l": {"L": [{"S": "a"}, {"N": "2"}, {"M": {"z": {"BOOL": True}}}]},
    "ss": {"SS": ["p", "q"]},
    "gone": {"S": "soon"},
}
N1 = {":one": {"N": "1"}}

#: Each case: the items a fresh table starts with, and the UpdateItem requests made (twice
#: over, so that the second pass meets every expression already seen).
UPDATE_CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "completions, as the grid makes them": (
        [running(f"t{i}", f"lease-{i}") for i in range(4)],
        [
            complete("t0", "lease-0", "r0"),
            complete("t1", "lease-1", "r1", ReturnValues="ALL_OLD"),
            complete("t2", "lease-2", "r2", ReturnValues="ALL_NEW"),
            complete("t3", "stale", "r3", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
            complete("t3", "stale", "r3"),
            complete("t0", "lease-0", "again", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
            complete("absent", "lease-9", "r9", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
        ],
    ),
    "every ReturnValues": (
        [RICH],
        [
            update(
                "rich",
                "SET n = n + :one, m.x = :v, m.#sub.y = :v, l[0] = :v, s = s "
                "REMOVE gone ADD ss :more",
                {**N1, ":v": {"S": "new"}, ":more": {"SS": ["r"]}},
                ExpressionAttributeNames={"#sub": "sub"},
                ReturnValues=return_values,
            )
            for return_values in ("NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW")
        ]
        + [update("rich", "SET s = :s", {":s": {"S": "hello"}}, ReturnValues="UPDATED_OLD")],
    ),
    "new items": (
        [],
        [
            update("fresh", "SET a = :a", {":a": {"S": "1"}}, ReturnValues="ALL_OLD"),
            update(
                "fresh2",
                "SET a = :a",
                {":a": {"S": "1"}},
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValues="ALL_NEW",
            ),
            update("fresh3", "SET c = c + :one", N1),
            update("fresh4", "SET lease_shard = :e", {":e": {"S": ""}}),
        ],
    ),
    "functions and arithmetic": (
        [RICH],
        [
            update(
                "rich",
                "SET attempt = if_not_exists(attempt, :zero) + :one, "
                "errors = list_append(if_not_exists(errors, :none), :e), l = list_append(l, :e)",
                {**N1, ":zero": {"N": "0"}, ":none": {"L": []}, ":e": {"L": [{"S": "x"}]}},
                ReturnValues="UPDATED_NEW",
            ),
            update("rich", "SET n = n - :one REMOVE l[1], l[0]", N1, ReturnValues="ALL_NEW"),
            update("rich", "DELETE ss :p", {":p": {"SS": ["p"]}}, ReturnValues="UPDATED_OLD"),
        ],
    ),
    "conditions": (
        [RICH],
        [
            update(
                "rich",
                "SET hits = if_not_exists(hits, :zero) + :one",
                {**N1, ":zero": {"N": "0"}, **values},
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            for condition, names, values in [
                ("n BETWEEN :lo AND :hi", None, {":lo": {"N": "1"}, ":hi": {"N": "9"}}),
                ("s IN (:a, :b)", None, {":a": {"S": "x"}, ":b": {"S": "hello"}}),
                ("begins_with(#s, :p)", {"#s": "s"}, {":p": {"S": "he"}}),
                (
                    "size(l) > :two AND attribute_type(m, :map)",
                    None,
                    {":two": {"N": "2"}, ":map": {"S": "M"}},
                ),
                (
                    "NOT (n = :five) OR (#m.#x = :x)",
                    {"#m": "m", "#x": "x"},
                    {":five": {"N": "5"}, ":x": {"N": "1"}},
                ),
                (
                    "l[2].z = :t AND contains(ss, :q)",
                    None,
                    {":t": {"BOOL": True}, ":q": {"S": "q"}},
                ),
                ("n = :five", None, {":five": {"N": "6"}}),
                ("attribute_exists(nothing)", None, {}),
            ]
        ],
    ),
    "legacy parameters": (
        [RICH],
        [
            update(
                "rich",
                "",
                AttributeUpdates={"s": {"Action": "PUT", "Value": {"S": "v"}}},
                Expected={"n": {"Value": {"N": "5"}}},
                ReturnValues="ALL_NEW",
            ),
            update("rich", "SET s = :s", {":s": {"S": "w"}}, Expected={"n": {"Value": {"N": "4"}}}),
        ],
    ),
    "transactions (placeholders may be None there)": (
        [RICH],
        [
            {"TransactItems": [{"Update": {"TableName": UPDATE_TABLE, **request}}]}
            for request in [
                update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="n = :a"),
                update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="n > :a"),
                update("rich", "SET a = :a", {":a": {"N": "1"}}, ConditionExpression="n > :a"),
                update("rich", "SET #a = :a", {":a": {"S": "1"}}),
                update("rich", "SET a = :a REMOVE b", {":a": {"S": "1"}}),
            ]
        ],
    ),
    "invalid requests": (
        [RICH],
        [
            update("rich", "SET a = ", {":a": {"S": "1"}}),
            update("rich", "SET a = :a SET b = :a", {":a": {"S": "1"}}),
            update("rich", "SET a = :a, a = :b", {":a": {"S": "1"}, ":b": {"S": "2"}}),
            update("rich", "SET m.x = :a, m = :a", {":a": {"S": "1"}}),
            update(
                "rich", "SET #k = :a", {":a": {"S": "1"}}, ExpressionAttributeNames={"#k": "sk"}
            ),
            update("rich", "SET result = :a", {":a": {"S": "1"}}),
            update("rich", "SET a = :a, b = :missing", {":a": {"S": "1"}}),
            update("rich", "SET a = :a", {":a": {"S": "1"}, ":unused": {"S": "2"}}),
            update("rich", "SET a = :a, b = #nope", {":a": {"S": "1"}}),
            update("rich", "SET n = n + :s", {":s": {"S": "1"}}),
            update("rich", "SET lease_shard = :n", {":n": {"N": "1"}}),
            update("rich", "SET m.nowhere.deeper = :a", {":a": {"S": "1"}}),
            update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="#s IN ("),
            update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="s IN (:a"),
            update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="n = :missing"),
            update(
                "rich",
                "SET a = :a",
                {":a": {"S": "1"}},
                ConditionExpression="n = :nope OR #nope = :a",
                ExpressionAttributeNames={"#n": "n"},
            ),
            update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="#nope = :a"),
            update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="((n = :a))"),
            update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="m.:a = :a"),
            update("rich", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="name = :a"),
            update("rich", "SET a = :a", None, ConditionExpression="n = :a"),
            update("rich", "   ", {":a": {"S": "1"}}),
            update("rich", "SET a = :a", {":a": {"S": "1"}}, ReturnValues="SOME"),
            update(
                "rich",
                "SET a = :a",
                {":a": {"S": "1"}},
                AttributeUpdates={"s": {"Action": "PUT", "Value": {"S": "v"}}},
            ),
        ],
    ),
}


def update_outcomes(
    seeds: list[dict[str, Any]], requests: list[dict[str, Any]], stream: bool = False
) -> list[Any]:
    """What moto's UpdateItem handler answers to each request (twice over) on a fresh table,
    then the table's items (and stream records): through whichever UpdateItem is installed."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.responses import DynamoHandler

    account = f"{uuid.uuid4().int % 10**12:012d}"
    backend = dynamodb_backends[account]["us-east-1"]
    table = backend.create_table(
        UPDATE_TABLE,
        schema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        throughput=None,
        attr=[
            {"AttributeName": name, "AttributeType": kind}
            for name, kind in (("pk", "S"), ("sk", "S"), ("lease_shard", "S"))
        ],
        global_indexes=[
            {
                "IndexName": "leases",
                "KeySchema": [{"AttributeName": "lease_shard", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        indexes=None,
        streams={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"} if stream else None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    for seed in seeds:  # a copy: moto keeps the lists it is given, and changes them
        backend.put_item(UPDATE_TABLE, copy.deepcopy(seed))
    handler = DynamoHandler()
    handler.current_account = account
    handler.region = "us-east-1"
    outcomes: list[Any] = []
    for _ in range(2):
        for request in requests:
            handler.body = json.loads(json.dumps({"TableName": UPDATE_TABLE, **request}))
            call = (
                handler.transact_write_items if "TransactItems" in request else handler.update_item
            )
            try:
                outcomes.append(("answer", call().result))
            except Exception as error:  # the error, as the server would serialise it
                outcomes.append(
                    (type(error).__name__, str(error), getattr(error, "description", None))
                )
    outcomes.append([item.to_json() for item in table.all_items()])
    if stream:
        outcomes.append(
            [
                {
                    k: v
                    for k, v in record.record["dynamodb"].items()
                    if k.endswith(("Image", "Keys"))
                }
                | {"eventName": record.record["eventName"]}
                for record in table.stream_shard.items
            ]
        )
    return outcomes


def stock_update_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put moto's own UpdateItem (handler and backend) back for the rest of the test."""
    import inspect

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    monkeypatch.setattr(DynamoHandler, "update_item", inspect.unwrap(DynamoHandler.update_item))
    monkeypatch.setattr(DynamoDBBackend, "update_item", inspect.unwrap(DynamoDBBackend.update_item))


@pytest.mark.parametrize("case", sorted(UPDATE_CASES))
def test_update_item_answers_and_writes_exactly_as_moto_does(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds, requests = UPDATE_CASES[case]
    stream = case == "completions, as the grid makes them"

    patched = update_outcomes(seeds, requests, stream)
    stock_update_item(monkeypatch)
    stock = update_outcomes(seeds, requests, stream)

    for index, (ours, theirs) in enumerate(zip(patched, stock, strict=True)):
        assert ours == theirs, f"outcome {index} differs"


def test_completions_record_their_own_values_and_a_conflict_reports_the_item() -> None:
    seeds, requests = UPDATE_CASES["completions, as the grid makes them"]

    first_pass = update_outcomes(seeds, requests, stream=True)[: len(requests)]

    assert first_pass[0] == ("answer", {"ConsumedCapacity": ANY_CAPACITY})
    assert first_pass[1][1]["Attributes"]["state"] == {"S": "RUNNING"}  # ALL_OLD
    assert first_pass[2][1]["Attributes"]["result"] == {"S": "r2"}  # ALL_NEW: its own value
    assert "lease_token" not in first_pass[2][1]["Attributes"]
    stale_with_item, stale, done = first_pass[3], first_pass[4], first_pass[5]
    assert stale_with_item[0] == "ConditionalCheckFailed"
    assert json.loads(stale_with_item[2])["Item"]["lease_token"] == {"S": "lease-3"}
    assert stale[0] == "ConditionalCheckFailed"
    assert "Item" not in json.loads(stale[2])
    assert json.loads(done[2])["Item"]["result"] == {"S": "r0"}  # the first completion stands


ANY_CAPACITY = {"TableName": UPDATE_TABLE, "CapacityUnits": 0.5}


def test_update_item_parses_checks_and_copies_once_per_expression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    calls: dict[str, int] = {"parse update": 0, "parse condition": 0, "copy": 0, "check": 0}

    def counted(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def count(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return count

    make = UpdateExpressionParser.make
    monkeypatch.setattr(UpdateExpressionParser, "make", counted("parse update", make))
    lex = ConditionExpressionParser._lex_condition_expression
    monkeypatch.setattr(
        ConditionExpressionParser, "_lex_condition_expression", counted("parse condition", lex)
    )
    monkeypatch.setattr(Item, "__deepcopy__", counted("copy", Item.__deepcopy__))
    monkeypatch.setattr(validators, "deepcopy", counted("copy", validators.deepcopy))
    checks = validators.ActionCountValidator.verify_action_counts
    monkeypatch.setattr(
        validators.ActionCountValidator, "verify_action_counts", counted("check", checks)
    )
    unique = f"a{uuid.uuid4().hex[:8]}"  # texts no earlier test has parsed
    tasks = [running(f"t{i}", f"lease-{i}") for i in range(3)]
    requests = []
    for i in range(3):
        request = complete(f"t{i}", f"lease-{i}", f"result {i}")
        request["UpdateExpression"] = COMPLETE.replace(":now", f":now, {unique} = :now")
        request["ConditionExpression"] += f" AND attribute_not_exists({unique})"
        requests.append(request)

    outcomes = update_outcomes(tasks, requests)

    assert [o[0] for o in outcomes[:3]] == ["answer"] * 3
    assert [o[0] for o in outcomes[3:6]] == ["ConditionalCheckFailed"] * 3  # second pass
    assert calls["parse update"] == 1  # moto: twice per call (handler and backend)
    assert calls["parse condition"] == 1  # moto: twice per call
    assert calls["copy"] == 0  # moto: the old item twice per call, the expression once
    first_checks = calls["check"]
    assert first_checks > 0
    update_outcomes(tasks, requests)
    assert calls["check"] == first_checks  # passed once for this expression and these names


def test_ast_clone_is_the_deep_copy_moto_makes() -> None:
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    def shape(root: Any) -> list[Any]:
        """Every node in order: its attributes, with nodes named by their position."""
        order: list[Any] = []
        pending = [root]
        while pending:
            node = pending.pop()
            order.append(node)
            pending.extend(c for c in reversed(node.children or []) if isinstance(c, Node))
        position = {id(node): i for i, node in enumerate(order)}
        return [
            {
                name: position.get(id(value), value) if name == "parent" else value
                for name, value in vars(node).items()
                if name != "children"
            }
            | {
                "children": [
                    ("node", position[id(c)]) if isinstance(c, Node) else c
                    for c in node.children or []
                ]
            }
            | {"class": type(node)}
            for node in order
        ]

    for expression in [
        COMPLETE,
        "SET a = if_not_exists(a, :z) + :one, b = list_append(b, :l) REMOVE c[2], d.e",
        "ADD n :one, ss :s DELETE ds :d SET #m.#k[3].x = a - :one",
    ]:
        ast = UpdateExpressionParser.make(expression)
        clone = moto_patches._clone_ast(ast)

        assert shape(clone) == shape(copy.deepcopy(ast))
        original_nodes = {id(node) for node in shape_nodes(ast)}
        assert not original_nodes & {id(node) for node in shape_nodes(clone)}


def shape_nodes(root: Any) -> list[Any]:
    nodes, pending = [], [root]
    while pending:
        node = pending.pop()
        nodes.append(node)
        pending.extend(c for c in node.children or [] if hasattr(c, "children"))
    return nodes


def test_the_emulators_update_item_keeps_conditions_and_return_values(
    aws: Callable[[str], Any],
) -> None:
    ddb = aws("dynamodb")
    name = f"update-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    for i in range(3):
        ddb.put_item(TableName=name, Item=running(f"t{i}", f"lease-{i}"))

    for i in range(3):  # same texts, new values each time
        reply = ddb.update_item(
            TableName=name, **complete(f"t{i}", f"lease-{i}", f"r{i}", ReturnValues="UPDATED_NEW")
        )
        assert reply["Attributes"] == {
            "state": {"S": "SUCCEEDED"},
            "result": {"S": f"r{i}"},
            "finished_at": {"N": "1700000000.5"},
        }
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as conflict:
        ddb.update_item(
            TableName=name,
            **complete("t1", "lease-1", "late", ReturnValuesOnConditionCheckFailure="ALL_OLD"),
        )
    assert conflict.value.response["Item"]["result"] == {"S": "r1"}
    with pytest.raises(ddb.exceptions.ClientError, match='Syntax error; token: "<EOF>"'):
        ddb.update_item(TableName=name, **update("t0", "SET a =", {":a": {"S": "1"}}))


# --- DynamoDB TransactWriteItems -------------------------------------------------------------


def transaction_backend() -> tuple[Any, Any]:
    """A fresh backend (an account of its own) with a task-like table of 200 items."""
    from moto.dynamodb.models import dynamodb_backends

    account = f"{uuid.uuid4().int % 10**12:012d}"
    backend = dynamodb_backends[account]["us-east-1"]
    table = backend.create_table(
        "transactions",
        schema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        throughput=None,
        attr=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        global_indexes=[],
        indexes=[],
        streams=None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    for index in range(200):
        backend.put_item(
            "transactions", {"pk": {"S": "s"}, "sk": {"S": f"task-{index}"}, "v": {"N": "0"}}
        )
    return backend, table


def submission_transaction(sk: str, condition: str) -> list[dict[str, Any]]:
    """A submission record put on a condition, a new task, and an update of an old one."""
    return [
        {
            "Put": {
                "TableName": "transactions",
                "Item": {"pk": {"S": "s"}, "sk": {"S": sk}, "stage": {"S": "PERSISTED"}},
                "ConditionExpression": condition,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {"Put": {"TableName": "transactions", "Item": {"pk": {"S": "s"}, "sk": {"S": "new"}}}},
        {
            "Update": {
                "TableName": "transactions",
                "Key": {"pk": {"S": "s"}, "sk": {"S": "task-7"}},
                "UpdateExpression": "SET v = :v",
                "ExpressionAttributeValues": {":v": {"N": "1"}},
            }
        },
    ]


def test_a_transaction_writes_all_its_items_or_none_without_copying_the_table() -> None:
    from moto.dynamodb.exceptions import TransactionCanceledException

    backend, table = transaction_backend()

    def item(sk: str) -> Any:
        found = backend.get_item("transactions", {"pk": {"S": "s"}, "sk": {"S": sk}})
        return None if found is None else found.to_json()["Attributes"]

    # A transaction whose first condition fails: nothing it names changes, and the table
    # is still the one moto holds (moto's stock rollback swaps in a deep copy of it).
    backend.put_item("transactions", {"pk": {"S": "s"}, "sk": {"S": "sub"}, "stage": {"S": "X"}})
    with pytest.raises(TransactionCanceledException) as cancelled:
        backend.transact_write_items(submission_transaction("sub", "attribute_not_exists(stage)"))
    assert "ConditionalCheckFailed" in str(cancelled.value)
    assert backend.tables["transactions"] is table
    assert item("sub") == {"pk": {"S": "s"}, "sk": {"S": "sub"}, "stage": {"S": "X"}}
    assert item("new") is None
    assert item("task-7")["v"] == {"N": "0"}
    assert sum(len(items) for items in table.items.values()) == 201
    # One whose condition holds: every item is written, as moto writes them.
    backend.transact_write_items(submission_transaction("sub-2", "attribute_not_exists(stage)"))
    assert item("sub-2")["stage"] == {"S": "PERSISTED"}
    assert item("new") == {"pk": {"S": "s"}, "sk": {"S": "new"}}
    assert item("task-7")["v"] == {"N": "1"}
    assert backend.tables["transactions"] is table


def test_a_jsonpath_is_parsed_once_and_reads_as_before() -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    data = {"session_id": "s1", "tasks": [{"a": 1}, {"a": 2}], "dispatched": True}
    # The same text gives the one parsed path, whichever execution or thread asks.
    assert json_path.parse("$.session_id") is json_path.parse("$.session_id")
    assert result_path.parse("$.failure") is result_path.parse("$.failure")
    # And it reads what a freshly parsed one reads.
    assert json_path.extract_json("$.session_id", data) == "s1"
    assert json_path.extract_json("$.tasks[*].a", data) == [1, 2]
    assert json_path.extract_json("$.tasks[1]", data) == {"a": 2}
    with pytest.raises(json_path.NoSuchJsonPathError):
        json_path.extract_json("$.missing", data)


def test_pending_groups_are_read_from_a_copy_of_the_in_flight_set(sqs_backend: Any) -> None:
    queue = sqs_backend.create_queue("groups")
    send_batch(sqs_backend, "groups", 3)
    sqs_backend.receive_message("groups", 3, 0, 30)

    class ChangedMidWalk(set):  # type: ignore[type-arg]
        """The in-flight set as it is while another server thread receives from the queue:
        walking it in Python meets the change, as CPython reports it."""

        def __iter__(self) -> Any:
            yield next(super().__iter__())
            raise RuntimeError("Set changed size during iteration")

    in_flight = queue._pending_messages
    queue._pending_messages = ChangedMidWalk(in_flight)
    assert queue.pending_message_groups == set()  # standard messages: no groups, no error
    queue._pending_messages = in_flight
    assert sqs_backend.receive_message("groups", 10, 0, 30) == []  # all 3 in flight
