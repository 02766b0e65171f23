"""The reduction: VaR and Expected Shortfall from the largest losses of every shard, exactly.

A shard returns its own largest losses; the client merges them into the largest losses of the
whole run. Both risk measures need only the ``tail_size`` largest losses of the run, so a merge
that holds those (as values) gives the same VaR and ES as sorting every scenario in one process.
``merge_tails`` checks that it does, and names the shards to run again when it cannot prove it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

#: The confidence level, exact: 99 %. A Fraction so that the tail's size is an exact integer for
#: every scenario count (0.01 * N in floating point is not always what it says).
CONFIDENCE = Fraction(99, 100)
#: A shard keeps its expected share of the tail plus this many standard deviations of it (and a
#: few more): the merge then has to run a shard again with probability below 1e-9 per shard.
SHARD_MARGIN_STDEVS = 6.0
SHARD_MARGIN_MIN = 16


def beyond_var(scenarios: int, confidence: Fraction = CONFIDENCE) -> int:
    """``j = floor((1 - confidence) * N)``: how many losses lie beyond the VaR."""
    return math.floor((1 - confidence) * scenarios)


def tail_size(scenarios: int, confidence: Fraction = CONFIDENCE) -> int:
    """How many of the largest losses of ``scenarios`` determine VaR and ES: ``j + 1``."""
    return beyond_var(scenarios, confidence) + 1


def shard_keep(shard: int, scenarios: int, confidence: Fraction = CONFIDENCE) -> int:
    """How many of its largest losses a shard of ``shard`` scenarios (of ``scenarios`` in the
    run) returns: never more than the run's tail or the shard itself; otherwise its expected
    share of the tail plus ``SHARD_MARGIN_STDEVS`` standard deviations (binomial)."""
    expected = float(1 - confidence) * shard
    margin = SHARD_MARGIN_STDEVS * math.sqrt(expected * float(confidence)) + SHARD_MARGIN_MIN
    return min(shard, tail_size(scenarios, confidence), math.ceil(expected + margin))


@dataclass(frozen=True)
class ShardTail:
    """What one shard returns: how many scenarios it ran and its largest losses, largest first
    (all of its losses if ``len(losses) == scenarios``)."""

    scenarios: int
    losses: Sequence[float]

    @property
    def complete(self) -> bool:
        return len(self.losses) >= self.scenarios


@dataclass(frozen=True)
class RiskMeasures:
    """VaR and ES at ``confidence`` of ``scenarios`` losses (positive numbers are losses)."""

    var: float
    es: float
    scenarios: int


class IncompleteTailError(Exception):
    """The shards' tails may miss losses of the run's tail: ``shards`` must run again keeping
    ``keep`` losses each."""

    def __init__(self, shards: list[int], keep: int) -> None:
        super().__init__(f"shards {shards} must return {keep} losses each")
        self.shards = shards
        self.keep = keep


def merge_tails(shards: Sequence[ShardTail], confidence: Fraction = CONFIDENCE) -> list[float]:
    """The run's ``tail_size`` largest losses, largest first, from the shards' tails.

    Exact: a loss a shard left out is at most the smallest it returned (its cutoff). If every
    shard that left some out has its cutoff at or below the merged k-th largest loss, no loss
    left out can be above it, so the merged top k are the run's top k as values. Otherwise raises
    ``IncompleteTailError`` naming those shards (by index)."""
    scenarios = sum(shard.scenarios for shard in shards)
    k = tail_size(scenarios, confidence)
    merged = list(heapq.merge(*(shard.losses for shard in shards), reverse=True))[:k]
    kth = merged[-1]
    short = [
        index for index, shard in enumerate(shards) if not shard.complete and shard.losses[-1] > kth
    ]
    if short:
        raise IncompleteTailError(short, k)
    return merged


def risk_measures(
    largest: Sequence[float], scenarios: int, confidence: Fraction = CONFIDENCE
) -> RiskMeasures:
    """VaR and ES of ``scenarios`` losses given their ``tail_size`` largest, largest first.

    With the losses sorted L(1) >= L(2) >= ... >= L(N) and j = floor((1 - c) N):
    VaR = L(j + 1), the empirical c-quantile of the loss (the smallest x with at least c N
    losses at or below it); ES = (L(1) + ... + L(j) + ((1 - c) N - j) L(j + 1)) / ((1 - c) N),
    the average loss in the worst (1 - c) of scenarios (Acerbi and Tasche's estimator; the mean
    of the j largest losses when c N is whole). The sum is ``math.fsum``: correctly rounded,
    so it does not depend on the order the losses arrive in."""
    j = beyond_var(scenarios, confidence)
    if len(largest) < j + 1:
        raise ValueError(f"largest: {len(largest)} losses; VaR and ES need the {j + 1} largest")
    tail_mass = (1 - confidence) * scenarios
    partial = float(tail_mass - j) * largest[j]
    es = math.fsum([*largest[:j], partial]) / float(tail_mass)
    return RiskMeasures(var=largest[j], es=es, scenarios=scenarios)
