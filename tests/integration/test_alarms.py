"""The template's alarms: one per priority level's DLQ and queue age, and on the grid's own
machinery (the retry and reaper workflows, every function), each on a metric AWS publishes."""

from __future__ import annotations

from typing import Any

import pytest

from htcgrid_core import aws
from htcgrid_core.settings import GridSettings
from tests import iam


@pytest.mark.shared_stack
def test_every_priority_level_has_a_dlq_alarm_and_a_queue_age_alarm(
    grid_settings: GridSettings,
) -> None:
    cloudwatch = aws.client("cloudwatch", grid_settings.endpoint_url, grid_settings.region)
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    prefix = grid_settings.queue_prefix
    watched = {
        (alarm["MetricName"], dimension["Value"])
        for alarm in alarms
        for dimension in alarm["Dimensions"]
        if dimension["Value"].startswith(f"{prefix}-p")
    }
    levels = range(grid_settings.priority_levels)
    assert watched == {
        ("ApproximateNumberOfMessagesVisible", f"{prefix}-p{n}-dlq") for n in levels
    } | {("ApproximateAgeOfOldestMessage", f"{prefix}-p{n}") for n in levels}


# --- the alarms as the template renders them ---------------------------------------------------

#: The metrics AWS publishes that the grid's alarms may watch: (namespace, metric) to the
#: dimension it is published per and the resource type that dimension names. Sources: "Step
#: Functions metrics for CloudWatch" (execution metrics, per StateMachineArn, Express workflows
#: included), "Monitoring functions: types of metrics" (Lambda, per FunctionName) and "Available
#: CloudWatch metrics for Amazon SQS" (per QueueName).
PUBLISHED: dict[tuple[str, str], tuple[str, str]] = {
    ("AWS/States", "ExecutionsFailed"): ("StateMachineArn", "AWS::StepFunctions::StateMachine"),
    ("AWS/States", "ExecutionThrottled"): ("StateMachineArn", "AWS::StepFunctions::StateMachine"),
    ("AWS/States", "ExecutionsTimedOut"): ("StateMachineArn", "AWS::StepFunctions::StateMachine"),
    ("AWS/States", "ExecutionsSucceeded"): ("StateMachineArn", "AWS::StepFunctions::StateMachine"),
    ("AWS/Lambda", "Errors"): ("FunctionName", "AWS::Lambda::Function"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): ("QueueName", "AWS::SQS::Queue"),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"): ("QueueName", "AWS::SQS::Queue"),
}
TOPIC = "arn:aws:sns:us-east-1:123456789012:grid-alarms"


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    return iam.render({"PriorityLevels": "5", "AlarmTopicArn": TOPIC})


def alarms_of(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in rendered["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def watched(rendered: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(metric, resource type, logical id) of every alarm."""
    identity = identities(rendered)
    return {
        (alarm["MetricName"], *identity[alarm["Dimensions"][0]["Value"]])
        for alarm in alarms_of(rendered).values()
    }


def identities(rendered: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """What each resource's CloudWatch dimension value is (a state machine's ARN, a function's
    or queue's name), to its type and logical id."""
    found = {}
    for logical_id, physical in rendered["Physical"].items():
        kind = rendered["Resources"][logical_id]["Type"]
        value = physical.rsplit("/", 1)[-1] if kind == "AWS::SQS::Queue" else physical
        found[value] = (kind, logical_id)
    return found


def test_every_alarm_watches_a_metric_aws_publishes_for_that_kind_of_resource(
    rendered: dict[str, Any],
) -> None:
    identity = identities(rendered)
    for name, alarm in alarms_of(rendered).items():
        key = (alarm["Namespace"], alarm["MetricName"])
        assert key in PUBLISHED, f"{name}: AWS publishes no {key}"
        dimension, kind = PUBLISHED[key]
        (only,) = alarm["Dimensions"]
        assert only["Name"] == dimension, name
        assert identity.get(only["Value"], ("?", "?"))[0] == kind, f"{name}: {only['Value']}"
        assert alarm["AlarmActions"] == [TOPIC], name


def test_the_retry_and_reaper_workflows_alarm_when_executions_fail_throttle_or_time_out(
    rendered: dict[str, Any],
) -> None:
    machine = "AWS::StepFunctions::StateMachine"
    for workflow in ("RetryWorkflow", "ReapWorkflow"):
        for metric in ("ExecutionsFailed", "ExecutionThrottled", "ExecutionsTimedOut"):
            assert (metric, machine, workflow) in watched(rendered)


def test_every_function_alarms_on_its_errors(rendered: dict[str, Any]) -> None:
    functions = {
        logical_id
        for logical_id, resource in rendered["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert functions  # the seven of the grid, and any added later
    alarmed = {
        logical_id
        for metric, kind, logical_id in watched(rendered)
        if (metric, kind) == ("Errors", "AWS::Lambda::Function")
    }
    assert alarmed == functions


def test_a_reaper_that_has_not_succeeded_for_minutes_alarms_even_if_it_never_ran() -> None:
    """No successful run in ReaperSilenceAlarmMinutes one-minute periods: a schedule that
    stopped starting the workflow publishes no data at all, which must alarm too."""
    rendered = iam.render({"ReaperSilenceAlarmMinutes": "7"})
    (silence,) = [
        alarm
        for alarm in alarms_of(rendered).values()
        if alarm["MetricName"] == "ExecutionsSucceeded"
    ]
    assert silence["Dimensions"] == [
        {"Name": "StateMachineArn", "Value": rendered["Physical"]["ReapWorkflow"]}
    ]
    assert (silence["Statistic"], silence["Period"]) == ("Sum", 60)
    assert silence["EvaluationPeriods"] == silence["DatapointsToAlarm"] == "7"
    assert (silence["ComparisonOperator"], silence["Threshold"]) == ("LessThanThreshold", 1)
    assert silence["TreatMissingData"] == "breaching"


def test_the_submit_workflow_alarms_when_executions_fail_or_time_out(
    rendered: dict[str, Any],
) -> None:
    machine = "AWS::StepFunctions::StateMachine"
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        assert (metric, machine, "SubmitWorkflow") in watched(rendered)
