"""Draws the Grafana dashboard's main panels from a real local run, for docs/monitoring*.md.

Starts a local grid with Prometheus, runs a few waves of tasks (some slow, some failing), then
evaluates each chosen panel's own PromQL (read from the committed dashboard JSON, so the
picture shows what the dashboard queries) over the run with Prometheus' range API, and draws
them with matplotlib, heatmaps as Grafana draws them from bucket counts. Grafana itself is not
installable here; KEDA's queue-depth panel has no KEDA to read locally and is left out.

    .venv/bin/pip install -r requirements-bench.txt     # matplotlib
    .venv/bin/python -m htcgrid_local.monitoring.render  # writes docs/img/monitoring-grafana.png
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_local.grid import LocalGrid
from htcgrid_local.monitoring.prometheus import SCRAPE_INTERVAL_S, LocalPrometheus

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "compute/eks/manifests/components/monitoring/dashboards/htcgrid-global.json"
#: The panels drawn, by title, in this order (two columns).
PANELS = (
    "Tasks/s by outcome",
    "Agents and busy slots",
    "Queue wait",
    "Handler duration",
    "Errors by type",
    "Waits and handler time (p50, p99)",
)
HANDLER = "htcgrid_examples.scripted:handler"
STACK = "htcgrid-render"


def workload(wave: int, tasks: int, rng: random.Random) -> list[dict[str, Any]]:
    """One wave's payloads: short and long sleeps, a few transient and permanent failures."""
    payloads: list[dict[str, Any]] = []
    for _ in range(tasks):
        roll = rng.random()
        if roll < 0.03:
            payloads.append({"fail": "permanent"})
        elif roll < 0.08:
            payloads.append({"fail_attempts": 1, "sleep": 0.05})
        else:
            payloads.append({"sleep": round(rng.lognormvariate(math.log(0.08 * wave), 0.6), 3)})
    return payloads


def run(grid: LocalGrid, waves: int, tasks: int) -> tuple[float, float]:
    """Runs the waves one after another; returns the run's start and end (epoch seconds)."""
    rng = random.Random(13)  # noqa: S311 - a repeatable workload, not a secret
    start = time.time()
    client = Grid(GridEndpoints.for_emulator(dict(grid.outputs), grid.endpoint_url))
    for wave in range(1, waves + 1):
        with client.open_session() as session:
            session.submit(workload(wave, tasks, rng))
            session.wait(timeout=600)
        print(f"wave {wave}: {tasks} tasks done")
    time.sleep(5 * SCRAPE_INTERVAL_S)  # let the last scrapes in, so the graphs end at rest
    return start, time.time()


def panel_queries(dashboard: dict[str, Any], namespace: str) -> dict[str, dict[str, Any]]:
    """The chosen panels, their variables replaced as Grafana would for this grid."""
    rate_interval = f"{4 * SCRAPE_INTERVAL_S}s"  # Grafana's $__rate_interval: 4 scrapes
    panels = {}
    for panel in dashboard["panels"]:
        if panel["title"] not in PANELS:
            continue
        for target in panel["targets"]:
            target["expr"] = (
                target["expr"]
                .replace("$__rate_interval", rate_interval)
                .replace("$namespace", namespace)
                .replace("$pod", ".*")
            )
        panels[panel["title"]] = panel
    return panels


def legend(template: str, metric: dict[str, str]) -> str:
    if template in ("", "__auto"):
        return ",".join(f"{k}={v}" for k, v in sorted(metric.items())) or "value"
    for key, value in metric.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def draw(prometheus: LocalPrometheus, start: float, end: float, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = panel_queries(dashboard, prometheus.namespace)
    step = float(SCRAPE_INTERVAL_S * 2)
    figure, axes = plt.subplots(3, 2, figsize=(14, 11), constrained_layout=True)
    for ax, title in zip(axes.flat, PANELS, strict=True):
        panel = panels[title]
        ax.set_title(title, loc="left", fontsize=11)
        if panel["type"] == "heatmap":
            target = panel["targets"][0]
            result = prometheus.query_range(target["expr"], start, end, step)
            bounds = sorted({float(s["metric"]["le"]) for s in result})
            by_le = {float(s["metric"]["le"]): s["values"] for s in result}
            times = [float(t) for t, _ in result[0]["values"]] if result else []
            # Cumulative bucket counts -> observations per bucket, as Grafana's heatmap does.
            cumulative = np.array([[float(v) for _, v in by_le[le]] for le in bounds])
            cells = np.diff(cumulative, axis=0, prepend=0)
            labels = [f"{le:g}" for le in bounds]
            span = (times[0] - start, times[-1] - start) if times else (0.0, 1.0)
            # Square-root colours, like the dashboard's exponential scale (exponent 0.5).
            ax.imshow(np.maximum(cells, 0) ** 0.5, aspect="auto", origin="lower", cmap="Oranges",
                      extent=(span[0], span[1], 0, len(bounds)))  # fmt: skip
            ticks = range(0, len(bounds), max(1, len(bounds) // 8))
            ax.set_yticks([i + 0.5 for i in ticks], [f"≤{labels[i]} s" for i in ticks])
        else:
            for target in panel["targets"]:
                for series in prometheus.query_range(target["expr"], start, end, step):
                    xs = [float(t) - start for t, _ in series["values"]]
                    ys = [float(v) for _, v in series["values"]]
                    label = legend(target.get("legendFormat", ""), series["metric"])
                    ax.plot(xs, ys, label=label, linewidth=1.2)
            unit = panel["fieldConfig"]["defaults"].get("unit", "")
            ax.set_ylabel({"reqps": "per second", "s": "seconds"}.get(unit, ""))
            ax.set_ylim(bottom=0)
            if ax.lines:
                ax.legend(fontsize=8, loc="upper right")
        ax.set_xlabel("seconds into the run")
        ax.grid(alpha=0.3)
    figure.suptitle(
        f"{dashboard['title']} (Grafana dashboard's panels, from a local run's Prometheus)"
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "monitoring-grafana.png"
    figure.savefig(path, dpi=90)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs/img")
    parser.add_argument("--waves", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=150, help="tasks per wave")
    parser.add_argument("--agents", type=int, default=2)
    args = parser.parse_args(argv)
    with LocalGrid(
        agents=args.agents, handler=HANDLER, slots=2, stack_name=STACK, monitoring=True
    ) as grid:
        assert grid.prometheus is not None
        start, end = run(grid, args.waves, args.tasks)
        print(f"wrote {draw(grid.prometheus, start, end, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
