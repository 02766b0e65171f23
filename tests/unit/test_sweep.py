"""The sweep example's pure logic (examples/sweep): its definition, its model, its results."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from htcgrid_sweep.definition import FULL, Axis, BatchRequest, Sweep
from htcgrid_sweep.handler import handler
from htcgrid_sweep.model import linear_velocity_amplitude, simulate
from htcgrid_sweep.table import BadResultError, check_batch

SMALL = Sweep(
    amplitude=Axis(start=0.0, stop=1.0, count=7),
    frequency=Axis(start=0.5, stop=1.5, count=5),
    damping=0.5,
    batch_points=4,
)


def test_batches_cover_every_point_once_in_order() -> None:
    spans = [SMALL.span(b) for b in range(SMALL.batches)]
    assert [p for span in spans for p in span] == list(range(SMALL.points))
    amplitude, frequency = SMALL.parameters(SMALL.batches - 1)  # the short last batch
    assert amplitude.tolist() == [1.0, 1.0, 1.0]
    assert frequency.tolist() == [1.0, 1.25, 1.5]


def test_the_session_is_the_definition() -> None:
    same = Sweep.model_validate(SMALL.model_dump())
    assert same.session_id == SMALL.session_id
    assert SMALL.model_copy(update={"batch_points": 5}).session_id != SMALL.session_id
    assert len(FULL.session_id) <= 48


def test_a_payload_outside_the_sweep_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="batch: 9 is not a batch"):
        BatchRequest.model_validate({"sweep": SMALL.model_dump(), "batch": 9})
    with pytest.raises(ValidationError, match=r"amplitude\.count x frequency\.count"):
        Sweep(
            amplitude=Axis(start=0, stop=1, count=4000),
            frequency=Axis(start=0.5, stop=1, count=4000),
            damping=0.5,
            batch_points=100,
        )


def test_small_drives_follow_the_linear_pendulum() -> None:
    # The sampled amplitude is the true one or up to cos(pi/16) (2 %) below it.
    amplitude, frequency = np.full(3, 0.01), np.array([0.5, 1.0, 1.4])
    motion = simulate(amplitude, frequency, 0.5)
    expected = [linear_velocity_amplitude(0.01, f, 0.5) for f in frequency]
    assert np.all(motion.velocity_amplitude <= np.array(expected) * 1.001)
    assert np.all(motion.velocity_amplitude >= np.array(expected) * np.cos(np.pi / 16))
    assert motion.period.tolist() == [1, 1, 1]
    assert np.all(np.abs(motion.winding) < 1e-6)


def test_a_result_must_be_the_whole_batch_it_names() -> None:
    value = handler({"sweep": SMALL.model_dump(), "batch": 2}, None)
    batch, columns = check_batch(SMALL, value)
    assert batch == 2
    assert columns["period"].dtype == np.int64
    with pytest.raises(BadResultError, match=r"result\.winding: \(3,\), not the batch's 4 points"):
        check_batch(SMALL, {**value, "winding": value["winding"][:3]})
    with pytest.raises(BadResultError, match=r"result\.batch"):
        check_batch(SMALL, {**value, "batch": 99})
