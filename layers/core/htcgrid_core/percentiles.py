"""Percentiles of measured times (latencies, delays), one definition for every report."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.5 is the median, 0.99 the p99): the value
    at rank ``round(fraction * len(values))`` of the sorted values, within the first and the
    last. Always one of the values, never an interpolation; ``values`` must not be empty."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]
