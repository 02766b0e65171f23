"""``make chaos`` in small: the local grid with agents killed and AWS calls throttled while a
session runs, then every task checked (see ``htcgrid_examples.chaos``)."""

from __future__ import annotations

import pytest
from rich.console import Console

from htcgrid_examples.chaos import ChaosPlan, run

pytestmark = pytest.mark.timeout(600)


def test_killed_agents_and_throttled_calls_lose_double_or_corrupt_nothing() -> None:
    plan = ChaosPlan(tasks=400, agents=3, slots=6, max_duration_s=1.0, kill_period_s=1.5, seed=11)
    report = run(plan, Console(quiet=True))
    assert report.lost == []
    assert report.duplicated == []
    assert report.wrong == [], report.reasons
    assert report.stuck == 0
    assert report.succeeded + report.failed == plan.tasks
    assert report.failed > 0  # the always-failing tasks failed, with their errors (checked)
    assert sum(report.killed.values()) >= 2
