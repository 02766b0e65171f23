"""The Grafana dashboards (compute/eks/monitoring/dashboards.py): the committed JSON is the
generator's output, and every metric a query names is one the agents export (read from the
agent's prometheus_client registry, so a metric added there is known here at once) or one of
the few listed external metrics (KEDA's)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "compute/eks/monitoring/dashboards.py"

#: Quoted strings, label matchers and range selectors: never metric names.
_NOT_NAMES = re.compile(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]')
#: Label lists of aggregations and vector matching: label names, not metric names.
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers not called as functions)."""
    text = _LABEL_LISTS.sub(" ", _NOT_NAMES.sub(" ", expr))
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("(") or match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def exported_names() -> set[str]:
    """Every series name the agent process exports: its families with their suffixes (a
    labelled counter has no sample until first used, so names come from the families)."""
    import htcgrid_agent.__main__  # noqa: F401 - registers every metric the agent process has

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("htcgrid_dashboards", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panels' targets and query variables."""
    found = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(<selector>, <label>): the selector is the query.
            found.append(variable["query"].removeprefix("label_values(").rsplit(",", 1)[0])
    return found


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


def test_metric_names_skip_functions_labels_ranges_and_numbers() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (pod, le) (rate(a_seconds_bucket{outcome!="x y",'
        ' pod=~"$pod"}[$__rate_interval]))) / b_bytes / 2^30 + on (pod) c:recorded offset 1e3'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_bytes", "c:recorded"}


def test_committed_dashboards_are_the_generators_output(generator: ModuleType) -> None:
    committed = sorted(p.name for p in generator.OUTPUT_DIR.glob("*.json"))
    assert committed == sorted(generator.DASHBOARDS)
    for name, build in generator.DASHBOARDS.items():
        assert (generator.OUTPUT_DIR / name).read_text(encoding="utf-8") == (
            generator.dashboard_json(build)
        ), f"{name} is stale: run .venv/bin/python {GENERATOR.relative_to(ROOT)}"


def test_every_query_names_a_metric_the_agents_export(generator: ModuleType) -> None:
    exported = exported_names()
    external_used = set()
    for name in generator.DASHBOARDS:
        dashboard = json.loads((generator.OUTPUT_DIR / name).read_text(encoding="utf-8"))
        exprs = queries(dashboard)
        assert len(exprs) >= 6, f"{name}: too few queries found to check ({exprs})"
        for expr in exprs:
            names = metric_names(expr)
            assert names, f"{name}: no metric in {expr!r}"
            unknown = names - exported - set(generator.EXTERNAL_METRICS)
            assert not unknown, f"{name}: {sorted(unknown)} not exported by the agents: {expr!r}"
            external_used |= names & set(generator.EXTERNAL_METRICS)
    # The external list says why each name is not the agents': none listed without a use.
    assert external_used == set(generator.EXTERNAL_METRICS)


def test_the_dashboards_show_each_agent_metric_family(generator: ModuleType) -> None:
    """The agents' own histograms and gauges this issue names all have a panel."""
    text = "".join(
        (generator.OUTPUT_DIR / name).read_text(encoding="utf-8") for name in generator.DASHBOARDS
    )
    for metric in (
        "htcgrid_agent_tasks_total",
        "htcgrid_agent_busy_slots",
        "htcgrid_agent_queue_wait_seconds_bucket",
        "htcgrid_agent_handler_seconds_bucket",
    ):
        assert metric in text


def test_dashboards_fit_a_configmap_applied_client_side(generator: ModuleType) -> None:
    """kubectl apply (client side) copies the ConfigMap into an annotation of 256 KiB at most."""
    total = sum((generator.OUTPUT_DIR / name).stat().st_size for name in generator.DASHBOARDS)
    assert total < 200 * 1024
