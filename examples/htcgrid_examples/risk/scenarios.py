"""Correlated scenarios, one block per seed, and the P&L of each block at each horizon.

Seed ``s`` of a run with ``run_seed`` draws its block of standard normals from numpy's PCG64
seeded with ``[run_seed, s]`` (independent streams), correlates them with the Cholesky factor of
the correlation matrix, and scales them per factor by ``vol * sqrt(days / 252)``. The same normals
serve both horizons: a 10-day Gaussian shock is distributed as sqrt(10) times a 1-day one, and
each horizon is revalued in full (not scaled by sqrt(10) afterwards, which is wrong for options).
A block is a pure function of (portfolio, run_seed, seed, size), computed the same way whether
one process runs every seed or a task runs a range of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from htcgrid_examples.risk.portfolio import EquityFactor, Portfolio, RateFactor, cholesky_factor
from htcgrid_examples.risk.revaluation import Array, Book

TRADING_DAYS_PER_YEAR = 252
HORIZONS_DAYS = (1, 10)


@dataclass(frozen=True)
class ScenarioModel:
    """A portfolio ready for scenarios: its book, Cholesky factor and today's value."""

    book: Book
    cholesky: Array
    equities: Array  # indices of the equity factors, in factor order
    rates: Array  # indices of the rate factors, by ascending tenor
    spots: Array
    zero_rates: Array
    vols: Array
    base_value: float

    @classmethod
    def of(cls, portfolio: Portfolio) -> ScenarioModel:
        factors = portfolio.factors
        equities = [i for i, f in enumerate(factors) if isinstance(f, EquityFactor)]
        rates = sorted(
            (i for i, f in enumerate(factors) if isinstance(f, RateFactor)),
            key=lambda i: factors[i].tenor,  # type: ignore[union-attr]
        )
        spots = np.array([factors[i].spot for i in equities])  # type: ignore[union-attr]
        zero_rates = np.array([factors[i].zero_rate for i in rates])  # type: ignore[union-attr]
        book = Book.of(portfolio)
        base = book.value(spots[np.newaxis, :], zero_rates[np.newaxis, :])
        return cls(
            book=book,
            cholesky=cholesky_factor(
                portfolio.correlation, [f.name for f in factors], portfolio.name
            ),
            equities=np.array(equities, dtype=int),
            rates=np.array(rates, dtype=int),
            spots=spots,
            zero_rates=zero_rates,
            vols=np.array([f.vol for f in factors]),
            base_value=float(base[0]),
        )

    def block_losses(self, run_seed: int, seed: int, size: int) -> dict[int, Array]:
        """The losses (``-P&L``) of seed ``seed``'s ``size`` scenarios at each horizon."""
        rng = np.random.default_rng([run_seed, seed])
        correlated = rng.standard_normal((size, self.vols.size)) @ self.cholesky.T
        losses = {}
        for days in HORIZONS_DAYS:
            shocks = correlated * (self.vols * math.sqrt(days / TRADING_DAYS_PER_YEAR))
            equity_vols = self.vols[self.equities]
            spots = self.spots * np.exp(
                shocks[:, self.equities] - 0.5 * equity_vols**2 * (days / TRADING_DAYS_PER_YEAR)
            )
            rates = self.zero_rates + shocks[:, self.rates]
            losses[days] = self.base_value - self.book.value(spots, rates)
        return losses


def largest(values: Array, count: int) -> list[float]:
    """The ``count`` largest of ``values``, largest first (all of them if fewer)."""
    if count >= values.size:
        return sorted(values.tolist(), reverse=True)
    top = np.partition(values, values.size - count)[values.size - count :]
    return sorted(top.tolist(), reverse=True)


def shard_losses(
    model: ScenarioModel, run_seed: int, first_seed: int, seeds: int, size: int, keep: int
) -> dict[int, list[float]]:
    """The ``keep`` largest losses at each horizon over seeds ``first_seed`` to
    ``first_seed + seeds - 1``, largest first."""
    kept: dict[int, list[float]] = {days: [] for days in HORIZONS_DAYS}
    for seed in range(first_seed, first_seed + seeds):
        for days, losses in model.block_losses(run_seed, seed, size).items():
            # The shard's running tail joins each block: at most keep + size values at once.
            kept[days] = largest(np.concatenate([np.array(kept[days]), losses]), keep)
    return kept
