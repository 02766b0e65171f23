"""The one percentile every report uses (``htcgrid top``, the bench, the demo): nearest rank,
always one of the measured values."""

from __future__ import annotations

import pytest

from htcgrid.cli.top import percentiles
from htcgrid_core.percentiles import percentile


def test_nearest_rank_picks_a_measured_value_never_an_interpolation() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, in any order
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.9) == 90.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([1.0, 10.0], 0.5) == 1.0  # not 5.5


def test_a_fraction_past_either_end_is_the_first_or_the_last_value() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 1.0) == 3.0
    assert percentile([7.0], 0.99) == 7.0


def test_no_values_have_no_percentile() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_top_reports_the_same_percentiles_as_the_bench() -> None:
    sample = [0.2, 0.1, 0.4, 0.3]
    assert percentiles(sample) == {
        "p50": percentile(sample, 0.5),
        "p90": percentile(sample, 0.9),
        "p99": percentile(sample, 0.99),
    }
    assert percentiles([]) is None
