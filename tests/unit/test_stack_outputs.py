"""One map from a stack's outputs to the grid's settings (``STACK_OUTPUTS``), checked against
``template.yaml``, and the settings and environment it makes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from htcgrid_core.settings import (
    REQUIRED_STACK_OUTPUTS,
    STACK_OUTPUTS,
    EnvironmentSettings,
    GridSettings,
    MissingStackOutputsError,
)
from htcgrid_core.stack import settings_environment, task_queue_urls
from htcgrid_local.template import load_template
from tests.conftest import TEMPLATE

#: Outputs no setting needs, each with the reason: a new output must be put here or mapped.
OUTPUTS_NO_SETTING_NEEDS = {
    # The client calls these, by name from the outputs (htcgrid.connection); no setting names them.
    "SubmitWorkflowArn",
    "StatusFunctionName",
    "StatusFunctionArn",
    "SessionFunctionName",
    "CancelFunctionName",
    "DeleteFunctionName",
    # For operators and tests: the Lambdas behind the workflows, the reaper's workflow.
    "ReapWorkflowArn",
    "ReaperFunctionName",
    "RetryFunctionName",
    "SubmissionFunctionName",
    "DispatchFunctionName",
    # IAM, attached to roles outside the stack.
    "OperatorPolicyArn",
    "ClientPolicyArn",
    "AgentPolicyArn",
    # KEDA's queue URLs (stack.task_queue_urls); the grid derives them from QueuePrefix.
    "TaskQueueUrlP0",
    "TaskQueueUrlP1",
    "TaskQueueUrlP2",
    "TaskQueueUrlP3",
    "TaskQueueUrlP4",
}

#: A stack's outputs as the local grid's provisioning returns them (three levels).
OUTPUTS = {
    "TaskTableName": "htcgrid-TaskTable-1",
    "DataBucketName": "htcgrid-databucket-1",
    "QueuePrefix": "htcgrid",
    "PriorityLevels": "3",
    "InlinePayloadThresholdBytes": "8192",
    "MaxAttempts": "4",
    "LeaseDurationSeconds": "120",
    "MaxReceiveCount": "6",
    "ResultRetentionDays": "7",
    "RetryWorkflowArn": "arn:aws:states:us-east-1:123456789012:stateMachine:retry",
    "SubmitWorkflowArn": "arn:aws:states:us-east-1:123456789012:stateMachine:submit",
    "TaskQueueUrlP0": "https://sqs.us-east-1.amazonaws.com/123456789012/htcgrid-p0",
    "TaskQueueUrlP1": "https://sqs.us-east-1.amazonaws.com/123456789012/htcgrid-p1",
    "TaskQueueUrlP2": "https://sqs.us-east-1.amazonaws.com/123456789012/htcgrid-p2",
}


def template_outputs() -> dict[str, Any]:
    outputs: dict[str, Any] = load_template(TEMPLATE)["Outputs"]
    return outputs


def test_every_output_the_template_declares_is_mapped_to_a_setting_or_needed_by_none() -> None:
    declared = set(template_outputs())

    assert set(STACK_OUTPUTS) <= declared, "STACK_OUTPUTS names outputs the template lacks"
    assert set(STACK_OUTPUTS).isdisjoint(OUTPUTS_NO_SETTING_NEEDS)
    assert declared - set(STACK_OUTPUTS) - OUTPUTS_NO_SETTING_NEEDS == set()
    assert set(STACK_OUTPUTS.values()) <= set(GridSettings.model_fields)
    assert set(REQUIRED_STACK_OUTPUTS) <= set(STACK_OUTPUTS)


def test_every_setting_the_lambdas_get_from_the_template_is_in_an_output_mapped_to_it() -> None:
    # GIVEN the HTCGRID_* variables the template gives every Lambda, and the value each holds
    template = load_template(TEMPLATE)
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    settings = {
        name.removeprefix("HTCGRID_").lower(): value
        for name, value in variables.items()
        if name.startswith("HTCGRID_")
    }
    outputs = template_outputs()
    for setting, value in settings.items():
        # THEN an output with the same value exists, and it is mapped to that setting: an
        # agent gets the same setting as the Lambdas
        carrying = [name for name, output in outputs.items() if output["Value"] == value]
        assert carrying, f"no output carries {setting} ({value})"
        assert [STACK_OUTPUTS.get(name) for name in carrying] == [setting] * len(carrying)


def test_settings_from_outputs_take_each_mapped_value_and_defaults_for_the_rest() -> None:
    settings = GridSettings.from_stack_outputs(
        OUTPUTS, endpoint_url="http://127.0.0.1:9", region="eu-west-1"
    )

    assert settings.table_name == "htcgrid-TaskTable-1"
    assert settings.bucket_name == "htcgrid-databucket-1"
    assert settings.queue_prefix == "htcgrid"
    assert settings.priority_levels == 3
    assert settings.inline_threshold_bytes == 8192
    assert settings.max_attempts == 4
    assert settings.lease_duration_s == 120
    assert settings.max_receive_count == 6
    assert settings.result_retention_days == 7
    assert settings.retry_workflow_arn.endswith(":retry")
    assert (settings.endpoint_url, settings.region) == ("http://127.0.0.1:9", "eu-west-1")
    assert settings.default_timeout_s == GridSettings().default_timeout_s
    # Outputs a caller leaves out (or an older stack lacks) keep their defaults.
    required = {name: OUTPUTS[name] for name in REQUIRED_STACK_OUTPUTS}
    assert GridSettings.from_stack_outputs(required).max_attempts == GridSettings().max_attempts


def test_missing_required_outputs_are_named() -> None:
    outputs = {k: v for k, v in OUTPUTS.items() if k not in ("QueuePrefix", "PriorityLevels")}
    with pytest.raises(MissingStackOutputsError, match=r"lack QueuePrefix, PriorityLevels$"):
        GridSettings.from_stack_outputs(outputs)


def test_an_output_out_of_its_settings_limits_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="priority_levels"):
        GridSettings.from_stack_outputs({**OUTPUTS, "PriorityLevels": "9"})


def test_the_environment_from_outputs_recreates_their_settings_and_only_those() -> None:
    # WHEN the outputs become an agent's HTCGRID_* variables
    environment = settings_environment(OUTPUTS, region="eu-west-1", endpoint_url="http://e:1")

    # THEN they carry what the outputs say, the region and endpoint, and no default or
    # derived value (an agent's own HTCGRID_HEARTBEAT_INTERVAL_S must not meet a stale one)
    assert set(environment) == {
        f"HTCGRID_{setting.upper()}" for setting in STACK_OUTPUTS.values()
    } | {"HTCGRID_REGION", "HTCGRID_ENDPOINT_URL"}
    with pytest.MonkeyPatch.context() as env:
        for name, value in environment.items():
            env.setenv(name, value)
        read_back = EnvironmentSettings().model_dump()
    given = GridSettings.from_stack_outputs(OUTPUTS, region="eu-west-1", endpoint_url="http://e:1")
    assert read_back == given.model_dump()


def test_the_task_queue_urls_keda_watches_are_one_per_level() -> None:
    assert task_queue_urls(OUTPUTS) == {
        "HTCGRID_TASK_QUEUE_URL_P0": OUTPUTS["TaskQueueUrlP0"],
        "HTCGRID_TASK_QUEUE_URL_P1": OUTPUTS["TaskQueueUrlP1"],
        "HTCGRID_TASK_QUEUE_URL_P2": OUTPUTS["TaskQueueUrlP2"],
    }
