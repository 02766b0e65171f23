"""The one back-off formula: capped exponential, with or without full jitter."""

from __future__ import annotations

from htcgrid_core.backoff import backoff_s
from htcgrid_core.lifecycle import retry_delay_s


def test_without_jitter_it_doubles_up_to_its_cap() -> None:
    delays = [backoff_s(n, base_s=1.0, cap_s=60.0, jitter=False) for n in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_s(10_000, base_s=1.0, cap_s=60.0, jitter=False) == 60.0  # no overflow


def test_full_jitter_spreads_below_the_bound() -> None:
    draws = [backoff_s(3, base_s=0.5, cap_s=30.0) for _ in range(500)]
    assert all(0.0 <= d < 4.0 for d in draws)
    assert min(draws) < 1.0 < 3.0 < max(draws)  # spread over the range, not one value


def test_a_tasks_retry_delay_is_whole_seconds_of_the_same_formula() -> None:
    assert {retry_delay_s(1, base_s=2.0, cap_s=900) for _ in range(300)} <= {0, 1}
    assert max(retry_delay_s(30, base_s=2.0, cap_s=900) for _ in range(300)) <= 900
