"""The agents' entry point: ``htcgrid_sweep.handler:handler`` computes one batch of a sweep."""

from __future__ import annotations

from typing import Any

from htcgrid_sweep.definition import BatchRequest
from htcgrid_sweep.model import simulate


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Integrate the points of batch ``event["batch"]`` of sweep ``event["sweep"]``; a payload
    that is not a batch of a valid sweep fails the task with pydantic's error naming the field."""
    request = BatchRequest.model_validate(event)
    amplitude, frequency = request.sweep.parameters(request.batch)
    motion = simulate(amplitude, frequency, request.sweep.damping)
    return {
        "batch": request.batch,
        "winding": motion.winding.tolist(),
        "period": motion.period.tolist(),
        "velocity_amplitude": motion.velocity_amplitude.tolist(),
    }
