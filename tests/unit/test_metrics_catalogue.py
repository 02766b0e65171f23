"""The metrics catalogue is the one list of the grid's metrics: the agent exports exactly its
Prometheus metrics with the label values it lists, the Lambdas name theirs from it, throttled
replies are counted, and docs/monitoring.md shows it as it is."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client import REGISTRY

from htcgrid_agent import metrics as agent_metrics
from htcgrid_core import faults, throttles
from htcgrid_core.metrics_catalogue import CATALOGUE, Source, render_markdown

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "compute" / "eks" / "agent" / "htcgrid_agent"


def test_the_monitoring_page_lists_the_catalogue_as_it_is() -> None:
    script = runpy.run_path(str(REPO / "scripts" / "render-monitoring-doc.py"))
    page = (REPO / "docs" / "monitoring.md").read_text()
    begin, end = page.index(script["BEGIN"]) + len(script["BEGIN"]), page.index(script["END"])
    assert page[begin:end] == render_markdown(), (
        "docs/monitoring.md is out of date: run scripts/render-monitoring-doc.py"
    )


def test_the_agent_exports_every_prometheus_metric_of_the_catalogue_and_no_other() -> None:
    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in REGISTRY.collect()
        if family.name.startswith("htcgrid_")
    }
    listed = {metric.name for metric in CATALOGUE if metric.source is Source.PROMETHEUS}
    assert exported == listed


def test_every_label_value_the_agent_uses_is_one_the_catalogue_lists() -> None:
    by_object = {
        "TASKS": "htcgrid_agent_tasks_total",
        "CLAIM_CONFLICTS": "htcgrid_agent_claim_conflicts_total",
        "NOTICES": "htcgrid_agent_notices_total",
        "RUNTIME_RESTARTS": "htcgrid_agent_runtime_restarts_total",
    }
    closed = {metric.name: metric for metric in CATALOGUE if metric.values}
    source = "\n".join(path.read_text() for path in AGENT.glob("*.py"))
    used = {
        (by_object[name], value)
        for name, value in re.findall(r"\b(\w+)\.labels\(\"(\w+)\"\)", source)
        if name in by_object
    }
    # The runtime's restarts are labelled through a table, by the failure that caused them.
    restart_reasons = re.search(r"_RESTART_REASONS = \{(.*?)\}", source, re.S)
    assert restart_reasons is not None
    used |= {
        ("htcgrid_agent_runtime_restarts_total", value)
        for value in re.findall(r":\s*\"(\w+)\"", restart_reasons.group(1))
    }
    assert {metric for metric, _ in used} == set(by_object.values())
    for metric, value in used:
        (label,) = closed[metric].labels
        assert value in closed[metric].values[label], f"{metric}: {value}"


def test_no_function_names_a_metric_outside_the_catalogue() -> None:
    for app in (REPO / "functions").glob("*/app.py"):
        assert "add_metric" not in app.read_text(), f"{app}: use observability.emit"


def sqs_client_answering(kind: str) -> object:
    """An SQS client whose every request is answered with ``kind`` (the grid's own fault
    injection, as AWS answers), and not retried."""
    client = boto3.session.Session().client(
        "sqs",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    faults.install(client, [faults.Fault("sqs", kind, 1.0)])
    throttles.watch(client)
    return client


@pytest.mark.parametrize(("kind", "counted"), [("throttle", 1), ("error", 0)])
def test_a_throttled_reply_is_counted_once_per_reply_and_other_errors_not(
    kind: str, counted: int
) -> None:
    client = sqs_client_answering(kind)
    before = REGISTRY.get_sample_value("htcgrid_agent_throttles_total", {"service": "sqs"}) or 0
    throttles.listen(agent_metrics.count_throttle)

    with pytest.raises(ClientError):
        client.list_queues()  # type: ignore[attr-defined]

    after = REGISTRY.get_sample_value("htcgrid_agent_throttles_total", {"service": "sqs"}) or 0
    assert after - before == counted
