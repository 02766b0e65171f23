"""PNG plots of a bench run (docs/img/): throughput against agents, the latency distribution and
where the latency goes. matplotlib comes from requirements-bench.txt, not the dev environment."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from htcgrid_bench.runs import STAGES


def draw(results: dict[str, Any], directory: Path) -> list[Path]:
    """Write the plots the results allow; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if results.get("scaling"):
        written.append(_scaling(results["scaling"], directory / "bench-throughput-agents.png"))
    samples = [sample for repeat in results["latencies"] for sample in repeat]
    written.append(_latency(samples, directory / "bench-latency.png"))
    return written


def _scaling(scaling: dict[str, list[float]], path: Path) -> Path:
    counts = sorted(scaling, key=int)
    medians = [statistics.median(scaling[c]) for c in counts]
    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.plot([int(c) for c in counts], medians, marker="o")
    for count in counts:
        axes.scatter([int(count)] * len(scaling[count]), scaling[count], color="grey", s=8)
    axes.set_xticks([int(c) for c in counts])
    axes.set_xlabel("agents (4 slots each)")
    axes.set_ylabel("no-op tasks/s, end to end")
    axes.set_ylim(bottom=0)
    axes.set_title("Local grid throughput (one emulator process, 2 cores)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _latency(samples: list[list[float]], path: Path) -> Path:
    totals = sorted(1000 * sum(sample) for sample in samples)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.hist(totals, bins=40, color="tab:blue")
    left.set_xlabel("submit to result, ms")
    left.set_ylabel("tasks")
    left.set_title(f"{len(totals)} sequential single tasks")
    medians = [
        1000 * statistics.median(sample[i] for sample in samples) for i in range(len(STAGES))
    ]
    bottom = 0.0
    for stage, value in zip(STAGES, medians, strict=True):
        right.bar(["median"], [value], bottom=bottom, label=f"{stage} ({value:.1f} ms)")
        bottom += value
    right.set_ylabel("ms")
    right.set_title("where the time goes (median of each stage)")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
