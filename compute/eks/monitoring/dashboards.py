"""The compute plane's Grafana dashboards, as code: a global view of the grid's agents and a
per-agent view, built with grafana-foundation-sdk and written as JSON into the kustomize
component that ships them (compute/eks/manifests/components/monitoring/dashboards/).

Every query reads what the agents export (htcgrid_agent.metrics, scraped through the
component's PodMonitor) except the queue depth, which is KEDA's: the operator already reads
every priority queue's depth for scaling and exports it as ``keda_scaler_metrics_value``, so no
exporter of ours polls SQS a second time. tests/unit/test_grafana_dashboards.py checks that the
committed JSON is this module's output and that every metric a query names is exported.

Regenerate after a change:  .venv/bin/python compute/eks/monitoring/dashboards.py
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import heatmap as heatmap_models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

#: Where the component's configMapGenerator reads the dashboards from.
OUTPUT_DIR = Path(__file__).resolve().parents[1] / "manifests/components/monitoring/dashboards"
#: The Prometheus data source, chosen in the dashboard (kube-prometheus-stack provisions one).
DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Which grid: the namespace its agents run in (one grid per namespace, see the base).
AGENTS = 'namespace=~"$namespace"'
#: One agent or several, in the per-agent view.
AGENT = f'{AGENTS}, pod=~"$pod"'
#: Metrics the dashboards read that the agents do not export, and who does.
EXTERNAL_METRICS = {
    "keda_scaler_metrics_value": "KEDA's operator: each trigger's last reading (queue depth)",
}
#: The scaler KEDA runs for the agents' Deployment (compute/eks/manifests/base/scaledobject.yaml).
SCALED_OBJECT = "htcgrid-agent"


def query(expr: str, legend: str = "", ref_id: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref_id)


def series(
    title: str, description: str, unit: str, *queries: prometheus.Dataquery, stacked: bool = False
) -> timeseries.Panel:
    """A time series panel, half the dashboard's width."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .fill_opacity(10)
        .height(8)
        .span(12)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max"])
        )
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    for target in queries:
        panel = panel.with_target(target)
    return panel


def histogram_heatmap(title: str, description: str, metric: str, matcher: str) -> heatmap.Panel:
    """A heatmap of a histogram's buckets: how many observations fell in each, over time."""
    buckets = query(
        f"sum by (le) (increase({metric}_bucket{{{matcher}}}[$__rate_interval]))", "{{le}}"
    ).format(PromQueryFormat.HEATMAP)
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(buckets)
        # Prometheus already bucketed the values: show its buckets, do not re-bucket them.
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s"))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(heatmap_models.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(heatmap_models.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
        )
        .cell_gap(1)
        .show_tooltip()
        .height(8)
        .span(12)
    )


def big_number(title: str, description: str, expr: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr))
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(4)
        .span(6)
    )


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    variable = dashboard_builders.DatasourceVariable("datasource").label("Prometheus")
    return variable.type("prometheus")


def label_variable(
    name: str, label: str, values: str, *, multi: bool
) -> dashboard_builders.QueryVariable:
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({values})")
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )


def namespace_variable() -> dashboard_builders.QueryVariable:
    return label_variable(
        "namespace", "Grid (namespace)", "htcgrid_agent_busy_slots, namespace", multi=False
    )


def base(uid: str, title: str, description: str) -> dashboard_builders.Dashboard:
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["htcgrid"])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable())
        .with_variable(namespace_variable())
    )


def global_dashboard() -> dashboard_builders.Dashboard:
    """The grid at a glance: throughput, queues, agents, waits, handler times, errors."""
    return (
        base(
            "htcgrid-global",
            "htcgrid: grid",
            "One grid's compute plane: tasks finished, queue depth, agents, waits and errors.",
        )
        .with_panel(
            big_number(
                "Tasks/s",
                "Attempts finished per second by all agents, whatever the outcome.",
                f"sum(rate(htcgrid_agent_tasks_total{{{AGENTS}}}[$__rate_interval]))",
            ).unit("reqps")
        )
        .with_panel(
            big_number(
                "Agents",
                "Agents whose metrics Prometheus scrapes now.",
                f"count(htcgrid_agent_busy_slots{{{AGENTS}}})",
            )
        )
        .with_panel(
            big_number(
                "Busy slots",
                "Slots running a task now, over all agents.",
                f"sum(htcgrid_agent_busy_slots{{{AGENTS}}})",
            )
        )
        .with_panel(
            big_number(
                "Queued (KEDA)",
                "Messages visible or in flight over every priority queue, as KEDA last read them.",
                f'sum(keda_scaler_metrics_value{{{AGENTS}, scaledObject="{SCALED_OBJECT}"}})',
            )
        )
        .with_panel(
            series(
                "Tasks/s by outcome",
                "Attempts finished per second, by outcome (succeeded, failed, cancelled...).",
                "reqps",
                query(
                    "sum by (outcome) "
                    f"(rate(htcgrid_agent_tasks_total{{{AGENTS}}}[$__rate_interval]))",
                    "{{outcome}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            series(
                "Queue depth by priority (KEDA)",
                "Each priority queue's messages, visible plus in flight, read by KEDA every "
                "pollingInterval for scaling (keda_scaler_metrics_value; needs KEDA's metrics "
                "scraped: docs/monitoring.md).",
                "short",
                query(
                    "sum by (scaler, metric) (keda_scaler_metrics_value"
                    f'{{{AGENTS}, scaledObject="{SCALED_OBJECT}"}})',
                    "{{metric}}",
                ),
            )
        )
        .with_panel(
            series(
                "Agents and busy slots",
                "Agents scraped, and their slots running a task: busy slots well below the "
                "agents' slots means the agents wait for work.",
                "short",
                query(f"count(htcgrid_agent_busy_slots{{{AGENTS}}})", "agents", "A"),
                query(f"sum(htcgrid_agent_busy_slots{{{AGENTS}}})", "busy slots", "B"),
            )
        )
        .with_panel(
            series(
                "Errors by type",
                "Attempts per second that did not succeed, by outcome.",
                "reqps",
                query(
                    "sum by (outcome) (rate(htcgrid_agent_tasks_total"
                    f'{{{AGENTS}, outcome!="succeeded"}}[$__rate_interval]))',
                    "{{outcome}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            histogram_heatmap(
                "Queue wait",
                "From a task message's send to an agent receiving it: rising waits mean the "
                "agents do not keep up with the queues.",
                "htcgrid_agent_queue_wait_seconds",
                AGENTS,
            )
        )
        .with_panel(
            histogram_heatmap(
                "Handler duration",
                "Time spent in the handler per attempt.",
                "htcgrid_agent_handler_seconds",
                AGENTS,
            )
        )
        .with_panel(
            series(
                "Waits and handler time (p50, p99)",
                "Percentiles of the queue wait, the start delay (received to started) and "
                "the handler's time, from the agents' histograms.",
                "s",
                *(
                    query(
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate({metric}_bucket{{{AGENTS}}}[$__rate_interval])))",
                        f"{name} p{round(q * 100)}",
                        ref_id,
                    )
                    for ref_id, (metric, name, q) in zip(
                        "ABCDEF",
                        [
                            (metric, name, q)
                            for metric, name in (
                                ("htcgrid_agent_queue_wait_seconds", "queue wait"),
                                ("htcgrid_agent_start_delay_seconds", "start delay"),
                                ("htcgrid_agent_handler_seconds", "handler"),
                            )
                            for q in (0.5, 0.99)
                        ],
                        strict=True,
                    )
                ),
            )
        )
        .with_panel(
            histogram_heatmap(
                "Start delay",
                "From an agent receiving a task to its handler starting: prefetched tasks "
                "wait here for a free slot.",
                "htcgrid_agent_start_delay_seconds",
                AGENTS,
            )
        )
    )


def agent_dashboard() -> dashboard_builders.Dashboard:
    """One agent (or a few) at a time: its slots, throughput, errors, times and process."""
    return (
        base(
            "htcgrid-agent",
            "htcgrid: agents",
            "Per agent (pod): busy slots, tasks/s, errors, handler time, CPU and memory.",
        )
        .with_variable(
            label_variable(
                "pod",
                "Agent (pod)",
                'htcgrid_agent_busy_slots{namespace=~"$namespace"}, pod',
                multi=True,
            )
        )
        .with_panel(
            series(
                "Busy slots",
                "Slots running a task now, per agent.",
                "short",
                query(f"htcgrid_agent_busy_slots{{{AGENT}}}", "{{pod}}"),
            )
        )
        .with_panel(
            series(
                "Tasks/s",
                "Attempts finished per second, per agent, whatever the outcome.",
                "reqps",
                query(
                    f"sum by (pod) (rate(htcgrid_agent_tasks_total{{{AGENT}}}[$__rate_interval]))",
                    "{{pod}}",
                ),
            )
        )
        .with_panel(
            series(
                "Errors by type",
                "Attempts per second that did not succeed, per agent and outcome.",
                "reqps",
                query(
                    "sum by (pod, outcome) (rate(htcgrid_agent_tasks_total"
                    f'{{{AGENT}, outcome!="succeeded"}}[$__rate_interval]))',
                    "{{pod}} {{outcome}}",
                ),
            )
        )
        .with_panel(
            series(
                "Handler time p50, p99",
                "Percentiles of the time in the handler, per agent.",
                "s",
                *(
                    query(
                        f"histogram_quantile({q}, sum by (pod, le) "
                        f"(rate(htcgrid_agent_handler_seconds_bucket{{{AGENT}}}"
                        "[$__rate_interval])))",
                        f"{{{{pod}}}} p{round(q * 100)}",
                        ref_id,
                    )
                    for ref_id, q in (("A", 0.5), ("B", 0.99))
                ),
            )
        )
        .with_panel(
            histogram_heatmap(
                "Handler duration",
                "Time spent in the handler per attempt, over the agents chosen.",
                "htcgrid_agent_handler_seconds",
                AGENT,
            )
        )
        .with_panel(
            series(
                "Agent CPU and memory",
                "The agent process's CPU (cores) and resident memory; handler processes it "
                "starts are children and count in the pod's cgroup, not here.",
                "short",
                query(
                    f"rate(process_cpu_seconds_total{{{AGENT}}}[$__rate_interval])",
                    "{{pod}} CPU",
                    "A",
                ),
                query(f"process_resident_memory_bytes{{{AGENT}}} / 2^30", "{{pod}} RSS GiB", "B"),
            )
        )
    )


#: File name in OUTPUT_DIR -> the dashboard written there.
DASHBOARDS: dict[str, Callable[[], dashboard_builders.Dashboard]] = {
    "htcgrid-global.json": global_dashboard,
    "htcgrid-agent.json": agent_dashboard,
}


def dashboard_json(build: Callable[[], dashboard_builders.Dashboard]) -> str:
    """The dashboard as Grafana's JSON model, stable from run to run (sorted keys)."""
    return json.dumps(build().build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        (args.output / name).write_text(dashboard_json(build), encoding="utf-8")
        print(f"wrote {args.output / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
