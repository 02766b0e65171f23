"""The task handler: one shard of a risk run, a range of seeds, returns its largest losses.

Payload (``ShardRequest``): the portfolio, the run's seed, the shard's first seed and number of
seeds, the scenarios per seed, and how many of its largest losses to keep per horizon. Result:
``{"scenarios": n, "losses": {"1": [...], "10": [...]}}``, each list largest first.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from htcgrid_examples.risk.portfolio import Portfolio
from htcgrid_examples.risk.scenarios import ScenarioModel, shard_losses

#: A block of this many scenarios holds about 100 MB of arrays at most (11 factors).
MAX_SCENARIOS_PER_SEED = 200_000
MAX_SEEDS_PER_SHARD = 10_000
MAX_KEEP = 1_000_000
Count = Annotated[int, Field(ge=0, lt=2**63)]


class ShardRequest(BaseModel):
    """One task's share of a run: seeds ``first_seed`` .. ``first_seed + seeds - 1``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    portfolio: Portfolio
    run_seed: Count
    first_seed: Count
    seeds: Annotated[int, Field(ge=1, le=MAX_SEEDS_PER_SHARD)]
    scenarios_per_seed: Annotated[int, Field(ge=1, le=MAX_SCENARIOS_PER_SEED)]
    keep: Annotated[int, Field(ge=1, le=MAX_KEEP)]


class InvalidShardError(ValueError):
    """A payload that is not a ``ShardRequest``: running it again cannot help."""

    retryable = False  # the agent's convention: the task fails at once, with this error


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the shard ``event`` describes (a ``ShardRequest``) and return its largest losses."""
    try:
        request = ShardRequest.model_validate(event)
    except ValidationError as error:
        raise InvalidShardError(str(error)) from None
    losses = shard_losses(
        ScenarioModel.of(request.portfolio),
        request.run_seed,
        request.first_seed,
        request.seeds,
        request.scenarios_per_seed,
        request.keep,
    )
    return {
        "scenarios": request.seeds * request.scenarios_per_seed,
        "losses": {str(days): tail for days, tail in losses.items()},
    }
