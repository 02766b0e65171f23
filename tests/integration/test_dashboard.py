"""The stack's CloudWatch dashboard, as the template renders it: valid JSON with the keys each
widget needs, covering every queue, function, workflow and the task table, and showing only
metrics the grid emits (the metrics catalogue) or AWS publishes. The alarms are held to the
same list."""

from __future__ import annotations

import json
from typing import Any

import pytest

from htcgrid_core.metrics_catalogue import CATALOGUE, SERVICE, Source
from tests import iam
from tests.integration.test_alarms import alarms_of, identities

#: What AWS publishes, per namespace: each metric and the dimension it is published per, from
#: "Available CloudWatch metrics for Amazon SQS", "Monitoring functions: types of metrics"
#: (Lambda), "Step Functions metrics for CloudWatch" (execution metrics, Express included) and
#: "DynamoDB Metrics and dimensions".
AWS_PUBLISHED: dict[str, dict[str, str]] = {
    "AWS/SQS": dict.fromkeys(
        [
            "ApproximateAgeOfOldestMessage",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesVisible",
            "NumberOfEmptyReceives",
            "NumberOfMessagesDeleted",
            "NumberOfMessagesReceived",
            "NumberOfMessagesSent",
            "SentMessageSize",
        ],
        "QueueName",
    ),
    "AWS/Lambda": dict.fromkeys(
        ["Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"],
        "FunctionName",
    ),
    "AWS/States": dict.fromkeys(
        [
            "ExecutionTime",
            "ExecutionThrottled",
            "ExecutionsAborted",
            "ExecutionsFailed",
            "ExecutionsStarted",
            "ExecutionsSucceeded",
            "ExecutionsTimedOut",
        ],
        "StateMachineArn",
    ),
    "AWS/DynamoDB": dict.fromkeys(
        [
            "ConsumedReadCapacityUnits",
            "ConsumedWriteCapacityUnits",
            "ReadThrottleEvents",
            "WriteThrottleEvents",
        ],
        "TableName",
    ),
}
#: The kind of resource each namespace's dimension names.
RESOURCE_KIND = {
    "AWS/SQS": "AWS::SQS::Queue",
    "AWS/Lambda": "AWS::Lambda::Function",
    "AWS/States": "AWS::StepFunctions::StateMachine",
    "AWS/DynamoDB": "AWS::DynamoDB::Table",
}
EMF_NAMESPACE = "htcgrid/htcgrid"  # htcgrid/<stack name>, for iam.render's stack "htcgrid"


def dashboard(rendered: dict[str, Any]) -> dict[str, Any]:
    (body,) = [
        resource["Properties"]["DashboardBody"]
        for resource in rendered["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    assert isinstance(body, str)
    document: dict[str, Any] = json.loads(body)
    return document


def shown(rendered: dict[str, Any]) -> list[list[Any]]:
    """Every metric line of every widget: [namespace, name, dimension, value]."""
    return [line for w in dashboard(rendered)["widgets"] for line in w["properties"]["metrics"]]


def services(rendered: dict[str, Any]) -> dict[str, str]:
    """Each function's logical id to its Powertools service name (the EMF dimension)."""
    return {
        logical_id: resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for logical_id, resource in rendered["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


@pytest.fixture(scope="module", params=["1", "5"], ids=["one level", "five levels"])
def rendered(request: pytest.FixtureRequest) -> dict[str, Any]:
    return iam.render({"PriorityLevels": request.param})


def test_the_body_is_json_whose_widgets_have_the_keys_cloudwatch_requires(
    rendered: dict[str, Any],
) -> None:
    widgets = dashboard(rendered)["widgets"]
    assert widgets
    for widget in widgets:
        assert widget["type"] == "metric"
        assert {"x", "y", "width", "height"} <= widget.keys()
        assert 1 <= widget["width"] <= 24
        assert widget["x"] + widget["width"] <= 24
        properties = widget["properties"]
        assert properties["region"] == iam.REGION
        assert properties["title"]
        assert properties["period"] % 60 == 0
        assert properties["metrics"], properties["title"]
        for line in properties["metrics"]:
            assert len(line) == 4, line
            assert all(isinstance(part, str) for part in line), line


def test_every_metric_shown_is_one_the_grid_emits_or_aws_publishes_for_that_resource(
    rendered: dict[str, Any],
) -> None:
    identity = identities(rendered)
    emitters = set(services(rendered).values())
    emf = {metric.name: metric for metric in CATALOGUE if metric.source is Source.EMF}
    for namespace, name, dimension, value in shown(rendered):
        if namespace == EMF_NAMESPACE:
            assert name in emf, f"the grid emits no {name}"
            assert dimension == SERVICE, name
            assert value in emitters, (name, value)
            emitted_by = emf[name].emitter
            assert emitted_by == "every function" or value in emitted_by.split(", "), (name, value)
            continue
        assert AWS_PUBLISHED[namespace].get(name) == dimension, f"AWS publishes no {name}"
        assert identity[value][0] == RESOURCE_KIND[namespace], (name, value)


def test_every_alarm_watches_a_metric_the_grid_emits_or_aws_publishes(
    rendered: dict[str, Any],
) -> None:
    emf = {metric.name for metric in CATALOGUE if metric.source is Source.EMF}
    for name, alarm in alarms_of(rendered).items():
        namespace = alarm["Namespace"]
        if namespace == EMF_NAMESPACE:
            assert alarm["MetricName"] in emf, name
        else:
            (dimension,) = alarm["Dimensions"]
            assert AWS_PUBLISHED[namespace].get(alarm["MetricName"]) == dimension["Name"], name


def test_the_dashboard_covers_every_queue_function_workflow_and_the_table(
    rendered: dict[str, Any],
) -> None:
    identity = identities(rendered)
    covered = {
        (name, identity[value][1])
        for namespace, name, _, value in shown(rendered)
        if namespace != EMF_NAMESPACE
    }
    resources = rendered["Resources"]
    expected: set[tuple[str, str]] = set()
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        if kind == "AWS::SQS::Queue" and logical_id.startswith("TaskQueueP"):
            expected |= {
                (m, logical_id)
                for m in (
                    "ApproximateNumberOfMessagesVisible",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateAgeOfOldestMessage",
                )
            }
        elif kind == "AWS::SQS::Queue" and logical_id.startswith("TaskDlqP"):
            expected.add(("ApproximateNumberOfMessagesVisible", logical_id))
        elif kind == "AWS::Lambda::Function":
            expected |= {
                (m, logical_id) for m in ("Invocations", "Errors", "Duration", "Throttles")
            }
        elif kind == "AWS::StepFunctions::StateMachine":
            expected |= {
                (m, logical_id)
                for m in ("ExecutionsStarted", "ExecutionsFailed", "ExecutionsTimedOut")
            }
        elif kind == "AWS::DynamoDB::Table":
            expected |= {
                (m, logical_id) for m in ("ConsumedWriteCapacityUnits", "WriteThrottleEvents")
            }
    assert covered == expected


def test_the_grid_task_metrics_are_on_the_dashboard(rendered: dict[str, Any]) -> None:
    names = {name for namespace, name, _, _ in shown(rendered) if namespace == EMF_NAMESPACE}
    assert names >= {
        "TasksPersisted",
        "TasksDispatched",
        "AttemptsRetried",
        "TasksFailed",
        "TasksCancelled",
        "TasksDeadLettered",
        "LeasesExpired",
        "ThrottlesSeen",
    }
