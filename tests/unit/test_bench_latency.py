"""The bench's latency breakdown: one result's timestamps split into its stages."""

from __future__ import annotations

import pytest

from htcgrid.session import Completed
from htcgrid_bench.runs import STAGES, latency_of
from htcgrid_core.models import InlineData, TaskResult, TaskState


def completed(**timings: float) -> Completed:
    result = TaskResult(
        session_id="s",
        task_id="t",
        state=TaskState.SUCCEEDED,
        attempt=1,
        result=InlineData(inline={"started_at": 100.030, "finished_at": 100.040, "cpu_s": 0}),
        submitted_at=100.010,
        finished_at=100.041,
        **timings,
    )
    value = {"started_at": 100.030, "finished_at": 100.040, "cpu_s": 0.0}
    return Completed(result, value, received_at=100.070, submitted_at=100.0, notified_at=100.050)


def test_a_results_latency_is_split_at_each_timestamp() -> None:
    done = completed(queued_at=100.020, received_at=100.025, started_at=100.029)
    latency = latency_of(done, began=100.0, returned=100.035)
    split = dict(zip(STAGES, (round(1000 * s, 3) for s in latency.stages_s), strict=True))
    assert split == {
        "submit workflow": 20.0,
        "queue wait": 5.0,
        "agent pick-up": 5.0,
        "handler": 10.0,
        "completion": 10.0,
        "client notification": 20.0,
    }
    assert latency.total_s == pytest.approx(0.070)
    assert latency.submit_call_s == pytest.approx(0.035)


def test_a_result_without_the_agents_timings_is_refused() -> None:
    with pytest.raises(RuntimeError, match="without the agent's timings"):
        latency_of(completed(), began=100.0, returned=100.035)
