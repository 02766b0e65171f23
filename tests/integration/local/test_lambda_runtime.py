"""The emulator runs the template's real handlers: Express workflows and direct invocations."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from htcgrid_core.traces import trace_header, trace_root
from htcgrid_local.provision import StackOutputs
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


def run_workflow(aws: Callable[[str], Any], arn: str, document: dict[str, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = aws("stepfunctions").start_sync_execution(
        stateMachineArn=arn, input=json.dumps(document)
    )
    return reply


def attempts_of(aws: Callable[[str], Any], outputs: StackOutputs, key: str) -> int:
    item = (
        aws("dynamodb")
        .get_item(TableName=outputs["TableName"], Key={"pk": {"S": key}, "sk": {"S": "attempts"}})
        .get("Item")
    )
    return int(item["attempts"]["N"]) if item else 0


def test_sync_execution_returns_the_output_of_both_real_handlers(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"

    reply = run_workflow(aws, fixture_stack["WorkflowArn"], {"key": key})

    assert reply["status"] == "SUCCEEDED", reply
    output = json.loads(reply["output"])
    # The execution's trace, as a traced workflow's Lambdas see it.
    trace = output.pop("trace_id")
    assert trace_header(trace) == trace
    assert output == {
        "key": key,
        # DefinitionSubstitutions reached the definition: ${TableName} became the table.
        "table": fixture_stack["TableName"],
        # The function's own environment, its layer, and its context.
        "greeting": "hello",
        "layer": "fixture-layer",
        "function_name": fixture_stack["EchoFunctionName"],
        "remaining_ms_positive": True,
        # The second handler wrote to DynamoDB on the emulator through plain boto3.
        "attempts": 1,
    }
    assert json.loads(reply["input"]) == {"key": key}
    assert reply["stateMachineArn"] == fixture_stack["WorkflowArn"]
    assert ":express:" in reply["executionArn"]
    assert reply["stopDate"] >= reply["startDate"]


def test_retry_on_a_python_exception_name_reruns_the_handler(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    # GIVEN a task whose handler raises FlakyError twice, and a Retry on "FlakyError"
    key = f"k-{uuid.uuid4().hex[:8]}"

    reply = run_workflow(aws, fixture_stack["WorkflowArn"], {"key": key, "fail_times": 2})

    assert reply["status"] == "SUCCEEDED", reply
    assert json.loads(reply["output"])["attempts"] == 3
    assert attempts_of(aws, fixture_stack, key) == 3


def test_catch_on_a_python_exception_name_takes_the_catch_branch(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"

    reply = run_workflow(
        aws,
        fixture_stack["WorkflowArn"],
        {"key": key, "fail_times": 1, "error": "PermanentFixtureError"},
    )

    assert reply["status"] == "SUCCEEDED", reply
    caught = json.loads(reply["output"])["caught"]
    assert caught["Error"] == "PermanentFixtureError"
    cause = json.loads(caught["Cause"])
    assert cause["errorType"] == "PermanentFixtureError"
    assert cause["errorMessage"] == f"attempt 1 of {key}"
    # Not retried: the Retry names only FlakyError.
    assert attempts_of(aws, fixture_stack, key) == 1


def test_an_unhandled_error_fails_the_sync_execution_with_its_name(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    # FlakyError more often than the Retry allows (3 attempts) ends the execution.
    reply = run_workflow(
        aws, fixture_stack["WorkflowArn"], {"key": f"k-{uuid.uuid4().hex[:8]}", "fail_times": 9}
    )

    assert reply["status"] == "FAILED"
    assert reply["error"] == "FlakyError"
    assert json.loads(reply["cause"])["errorType"] == "FlakyError"
    assert "output" not in reply


def test_direct_invoke_answers_with_lambdas_error_shape(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"

    reply = aws("lambda").invoke(
        FunctionName=fixture_stack["CounterFunctionName"],
        Payload=json.dumps({"key": key, "fail_times": 1, "error": "PermanentFixtureError"}),
    )

    assert reply["StatusCode"] == 200
    assert reply["FunctionError"] == "Unhandled"
    body = json.loads(reply["Payload"].read())
    assert body["errorType"] == "PermanentFixtureError"
    assert body["errorMessage"] == f"attempt 1 of {key}"
    assert any("counter/app.py" in frame for frame in body["stackTrace"])


def test_direct_invoke_by_arn_returns_the_handlers_result(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    reply = aws("lambda").invoke(
        FunctionName=fixture_stack["EchoFunctionArn"], Payload=json.dumps({"input": {"a": 1}})
    )

    assert "FunctionError" not in reply
    assert json.loads(reply["Payload"].read())["a"] == 1


def test_each_direct_invoke_runs_in_a_trace_of_its_own(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    """As Lambda does: an invocation without a trace header starts one (which handlers find in
    _X_AMZN_TRACE_ID); one with a header runs in it."""

    def trace_of(header: str | None = None) -> str:
        client = aws("lambda")
        if header:

            def send_header(request: Any, **kwargs: Any) -> None:
                request.headers["X-Amzn-Trace-Id"] = header

            client.meta.events.register("before-sign.lambda.Invoke", send_header)
        reply = client.invoke(FunctionName=fixture_stack["EchoFunctionArn"], Payload="{}")
        return str(json.loads(reply["Payload"].read())["trace_id"])

    first, second = trace_of(), trace_of()
    assert trace_header(first) == first
    assert trace_root(first) != trace_root(second)
    traced = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    assert trace_of(traced) == traced


def test_event_invocation_is_accepted_and_runs_in_the_background(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"

    reply = aws("lambda").invoke(
        FunctionName=fixture_stack["CounterFunctionName"],
        InvocationType="Event",
        Payload=json.dumps({"key": key}),
    )

    assert reply["StatusCode"] == 202
    wait_for(lambda: attempts_of(aws, fixture_stack, key) == 1)


def test_sync_execution_of_a_standard_machine_is_refused(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    sfn = aws("stepfunctions")
    arn = sfn.create_state_machine(
        name=f"standard-{uuid.uuid4().hex[:8]}",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/unused",
        type="STANDARD",
    )["stateMachineArn"]

    with pytest.raises(sfn.exceptions.ClientError) as raised:
        sfn.start_sync_execution(stateMachineArn=arn, input="{}")

    assert raised.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"
