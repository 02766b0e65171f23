"""What a sweep is: two parameter axes, the pendulum's damping and the points per task.

The definition is the sweep's identity. Its session id is a digest of it, and batch ``i`` is
always the same points with the same submission token (``b<i>``), so a client started again on
the same definition finds the same session and submits a batch at most once: the grid takes a
token it has seen as the same submission and creates no second task.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Most values on one axis, points in one sweep, and points in one task: bounds on what a
#: payload can ask an agent to compute (a task of MAX_BATCH_POINTS runs for seconds).
MAX_AXIS_VALUES = 4000
MAX_SWEEP_POINTS = 4_000_000
MAX_BATCH_POINTS = 20_000

Finite = Annotated[float, Field(allow_inf_nan=False)]


class Axis(BaseModel):
    """``count`` values evenly spaced from ``start`` to ``stop``, both included."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: Finite
    stop: Finite
    count: int = Field(ge=1, le=MAX_AXIS_VALUES)

    def values(self) -> np.ndarray:
        return np.linspace(self.start, self.stop, self.count)


class Sweep(BaseModel):
    """A sweep of the damped driven pendulum over drive amplitude x drive frequency, in
    ``batch_points`` points per task. Points are numbered row-major (amplitude, frequency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Part of the identity: the same grid under another name is another sweep, run afresh.
    name: str = Field(default="pendulum", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    amplitude: Axis
    #: Drive frequencies, in units of the pendulum's small-oscillation frequency; positive.
    frequency: Axis
    damping: Finite = Field(ge=0.0, le=10.0)
    batch_points: int = Field(ge=1, le=MAX_BATCH_POINTS)

    @model_validator(mode="after")
    def _bounded(self) -> Sweep:
        if min(self.frequency.start, self.frequency.stop) <= 0:
            raise ValueError("frequency: every drive frequency must be above 0")
        if self.points > MAX_SWEEP_POINTS:
            raise ValueError(
                f"amplitude.count x frequency.count: {self.points} points; at most "
                f"{MAX_SWEEP_POINTS}"
            )
        return self

    @property
    def points(self) -> int:
        return self.amplitude.count * self.frequency.count

    @property
    def batches(self) -> int:
        return math.ceil(self.points / self.batch_points)

    @property
    def session_id(self) -> str:
        """``sweep-`` and 24 hex digits of the definition's SHA-256: the same sweep, the same
        session; any change (an axis, the damping, the batch size) is another sweep."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return "sweep-" + hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def token(self, batch: int) -> str:
        """Batch ``batch``'s submission token (unique within the session)."""
        return f"b{batch}"

    def span(self, batch: int) -> range:
        """The point numbers of batch ``batch``."""
        if not 0 <= batch < self.batches:
            raise ValueError(
                f"batch: {batch} is not a batch of this sweep (0 to {self.batches - 1})"
            )
        first = batch * self.batch_points
        return range(first, min(first + self.batch_points, self.points))

    def parameters(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """The drive amplitudes and frequencies of batch ``batch``'s points, in point order."""
        numbers = np.arange(self.span(batch).start, self.span(batch).stop)
        rows, columns = np.divmod(numbers, self.frequency.count)
        return self.amplitude.values()[rows], self.frequency.values()[columns]


class BatchRequest(BaseModel):
    """A task's payload: the sweep and which of its batches to compute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sweep: Sweep
    batch: int = Field(ge=0)

    @model_validator(mode="after")
    def _in_sweep(self) -> BatchRequest:
        self.sweep.span(self.batch)  # raises, naming the field, for a batch outside the sweep
        return self


#: The full-size sweep: 500 x 500 = 250,000 points, 5,000 per task (README: the measurement).
FULL = Sweep(
    amplitude=Axis(start=0.0, stop=2.0, count=500),
    frequency=Axis(start=0.4, stop=1.6, count=500),
    damping=0.5,
    batch_points=5000,
)
