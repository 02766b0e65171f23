"""A risk run: its plan (seed ranges per task), the run on a grid, and the same run in one
process, which the grid's result must equal bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from htcgrid import Grid
from htcgrid_examples.risk.portfolio import Portfolio
from htcgrid_examples.risk.scenarios import HORIZONS_DAYS, ScenarioModel
from htcgrid_examples.risk.tail import (
    IncompleteTailError,
    RiskMeasures,
    ShardTail,
    merge_tails,
    risk_measures,
    shard_keep,
    tail_size,
)


@dataclass(frozen=True)
class Plan:
    """``seeds`` blocks of ``scenarios_per_seed`` scenarios, ``seeds_per_task`` blocks a task
    (the last task takes what is left)."""

    run_seed: int
    seeds: int
    scenarios_per_seed: int
    seeds_per_task: int

    def __post_init__(self) -> None:
        for field in ("seeds", "scenarios_per_seed", "seeds_per_task"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}: {getattr(self, field)}; at least 1")

    @property
    def scenarios(self) -> int:
        return self.seeds * self.scenarios_per_seed

    def shards(self) -> list[tuple[int, int]]:
        """Each task's (first seed, number of seeds)."""
        return [
            (first, min(self.seeds_per_task, self.seeds - first))
            for first in range(0, self.seeds, self.seeds_per_task)
        ]

    def payload(self, portfolio: Portfolio, first: int, seeds: int, keep: int | None = None) -> Any:
        """The task for seeds ``first`` .. ``first + seeds - 1`` (a ``ShardRequest``)."""
        shard = seeds * self.scenarios_per_seed
        return {
            "portfolio": portfolio.model_dump(mode="json"),
            "run_seed": self.run_seed,
            "first_seed": first,
            "seeds": seeds,
            "scenarios_per_seed": self.scenarios_per_seed,
            "keep": keep or shard_keep(shard, self.scenarios),
        }


@dataclass(frozen=True)
class GridRun:
    """What the grid computed: the measures per horizon, how long it took, how many tasks ran
    (``refetched`` of them again, keeping more losses)."""

    measures: dict[int, RiskMeasures]
    elapsed_s: float
    tasks: int
    refetched: int


class ShardResult(BaseModel):
    """A task's result as the client reads it (``handler`` makes it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenarios: int
    losses: dict[str, list[Annotated[float, Field(allow_inf_nan=False)]]]


class ShardFailedError(RuntimeError):
    """A task of the run failed: its error, as the grid recorded it."""


def run_on_grid(
    grid: Grid,
    portfolio: Portfolio,
    plan: Plan,
    on_result: Callable[[int], None] = lambda scenarios: None,
    timeout_s: float = 900,
) -> GridRun:
    """Submit one task per shard of ``plan``, merge the tails the tasks return, and run again
    (keeping the whole tail) any shard the merge cannot prove it has every tail loss of.
    ``on_result`` is called with each finished task's number of scenarios."""
    shards = plan.shards()
    began = time.monotonic()
    tails = _run_shards(grid, portfolio, plan, shards, None, on_result, timeout_s)
    refetched = 0
    measures = {}
    for days in HORIZONS_DAYS:
        while True:
            try:
                largest = merge_tails(tails[days])
                break
            except IncompleteTailError as error:
                # Rare by construction (shard_keep's margin); the shards run again, whole tail.
                again = [shards[index] for index in error.shards]
                refetched += len(again)
                rerun = _run_shards(grid, portfolio, plan, again, error.keep, on_result, timeout_s)
                for horizon in HORIZONS_DAYS:
                    for index, tail in zip(error.shards, rerun[horizon], strict=True):
                        tails[horizon][index] = tail
        measures[days] = risk_measures(largest, plan.scenarios)
    return GridRun(measures, time.monotonic() - began, len(shards) + refetched, refetched)


def _run_shards(
    grid: Grid,
    portfolio: Portfolio,
    plan: Plan,
    shards: list[tuple[int, int]],
    keep: int | None,
    on_result: Callable[[int], None],
    timeout_s: float,
) -> dict[int, list[ShardTail]]:
    """Each horizon's tails of ``shards``, in their order."""
    with grid.open_session() as session:
        task_ids = session.submit(
            plan.payload(portfolio, first, seeds, keep) for first, seeds in shards
        )
        position = {task_id: index for index, task_id in enumerate(task_ids)}
        found: dict[int, list[ShardTail | None]] = {
            days: [None] * len(shards) for days in HORIZONS_DAYS
        }
        for done in session.results(timeout=timeout_s):
            if not done.ok or not isinstance(done.value, dict):
                raise ShardFailedError(f"task {done.task_id} failed: {done.error}")
            index = position[done.task_id]
            first, seeds = shards[index]
            # A result is checked, not trusted: the right count, finite losses, largest first.
            try:
                result = ShardResult.model_validate(done.value)
            except ValidationError as error:
                raise ShardFailedError(
                    f"task {done.task_id}: not a shard's result: {error}"
                ) from None
            expected = seeds * plan.scenarios_per_seed
            if result.scenarios != expected:
                raise ShardFailedError(
                    f"task {done.task_id}: {result.scenarios} scenarios; seeds {first} to "
                    f"{first + seeds - 1} are {expected}"
                )
            for days in HORIZONS_DAYS:
                losses = result.losses.get(str(days), [])
                if not 1 <= len(losses) <= expected or losses != sorted(losses, reverse=True):
                    raise ShardFailedError(
                        f"task {done.task_id}: its {days}-day losses are not its largest, "
                        "largest first"
                    )
                found[days][index] = ShardTail(result.scenarios, losses)
            on_result(result.scenarios)
    missing = [index for index, tail in enumerate(found[HORIZONS_DAYS[0]]) if tail is None]
    if missing:
        raise ShardFailedError(f"no result for shards {missing} within {timeout_s} s")
    return {days: [tail for tail in tails if tail is not None] for days, tails in found.items()}


def single_process(
    portfolio: Portfolio, plan: Plan, on_seed: Callable[[int], None] = lambda scenarios: None
) -> dict[int, RiskMeasures]:
    """The same run in this process: every seed's block, every loss sorted, no sharding."""
    model = ScenarioModel.of(portfolio)
    blocks: dict[int, list[np.ndarray]] = {days: [] for days in HORIZONS_DAYS}
    for seed in range(plan.seeds):
        for days, losses in model.block_losses(
            plan.run_seed, seed, plan.scenarios_per_seed
        ).items():
            blocks[days].append(losses)
        on_seed(plan.scenarios_per_seed)
    k = tail_size(plan.scenarios)
    measures = {}
    for days, parts in blocks.items():
        every = np.sort(np.concatenate(parts))[::-1]
        measures[days] = risk_measures(every[:k].tolist(), plan.scenarios)
    return measures
