"""Full revaluation of every position under a block of scenarios, vectorised over scenarios.

A scenario is a market: one spot per equity factor and one zero rate per key tenor (a column
each). Zero rates between key tenors are interpolated linearly, and held flat beyond them.
Valuation is instantaneous: the horizon sets the size of the shock, not the valuation date
(no coupon falls due and no option decays within it), so P&L is market risk alone.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from htcgrid_examples.risk.portfolio import (
    Bond,
    EquityFactor,
    Option,
    Portfolio,
    RateFactor,
    Stock,
    Swap,
)

Array = npt.NDArray[np.float64]

# Hart's double-precision approximation of the standard normal distribution (as given by
# Graeme West, "Better approximations to cumulative normal functions", 2005): numpy has no
# erf, and the agent image carries numpy alone. Accurate to about 1e-15 (tests/unit check it
# against math.erf).
_HART_NUMERATOR = (
    3.52624965998911e-02,
    0.700383064443688,
    6.37396220353165,
    33.912866078383,
    112.079291497871,
    221.213596169931,
    220.206867912376,
)
_HART_DENOMINATOR = (
    8.83883476483184e-02,
    1.75566716318264,
    16.064177579207,
    86.7807322029461,
    296.564248779674,
    637.333633378831,
    793.826512519948,
    440.413735824752,
)
_HART_SWITCH = 7.07106781186547
_SQRT_2PI = math.sqrt(2 * math.pi)


def normal_cdf(x: Array) -> Array:
    """The standard normal distribution function, elementwise."""
    a = np.abs(x)
    exponential = np.exp(-0.5 * a * a)
    numerator = np.full_like(a, _HART_NUMERATOR[0])
    for c in _HART_NUMERATOR[1:]:
        numerator = numerator * a + c
    denominator = np.full_like(a, _HART_DENOMINATOR[0])
    for c in _HART_DENOMINATOR[1:]:
        denominator = denominator * a + c
    fraction = a + 0.65
    for c in (4.0, 3.0, 2.0, 1.0):
        fraction = a + c / fraction
    # Far in the tails the rational function is the worse of the two: a continued fraction.
    lower = np.where(
        a < _HART_SWITCH, exponential * numerator / denominator, exponential / fraction / _SQRT_2PI
    )
    lower = np.where(a > 37.0, 0.0, lower)
    return np.where(x > 0, 1.0 - lower, lower)


@dataclass(frozen=True)
class Curve:
    """Where each cash-flow time sits between the key tenors: ``rate(t)`` is
    ``(1 - w) * rates[:, i] + w * rates[:, i + 1]``."""

    tenors: tuple[float, ...]

    def rate(self, rates: Array, time: float) -> Array:
        """The zero rate at ``time`` in every scenario (``rates``: scenarios x key tenors)."""
        if time <= self.tenors[0]:
            return rates[:, 0]
        if time >= self.tenors[-1]:
            return rates[:, -1]
        i = bisect.bisect_left(self.tenors, time) - 1
        w = (time - self.tenors[i]) / (self.tenors[i + 1] - self.tenors[i])
        return (1 - w) * rates[:, i] + w * rates[:, i + 1]

    def discount(self, rates: Array, time: float) -> Array:
        return np.exp(-self.rate(rates, time) * time)


def black_scholes(spot: Array, option: Option, rate: Array) -> Array:
    """The Black-Scholes price of one ``option`` per scenario (no dividends)."""
    sd = option.implied_vol * math.sqrt(option.maturity)
    d1 = (np.log(spot / option.strike) + rate * option.maturity) / sd + 0.5 * sd
    d2 = d1 - sd
    discounted_strike = option.strike * np.exp(-rate * option.maturity)
    if option.type == "call":
        return spot * normal_cdf(d1) - discounted_strike * normal_cdf(d2)
    return discounted_strike * normal_cdf(-d2) - spot * normal_cdf(-d1)


def _payment_times(maturity: float, frequency: int) -> list[float]:
    """Payment times back from ``maturity`` every ``1 / frequency`` years, earliest first."""
    count = max(1, round(maturity * frequency))
    return [maturity - k / frequency for k in range(count - 1, -1, -1)]


@dataclass(frozen=True)
class Book:
    """A portfolio ready to revalue: factor columns by name, and the curve."""

    portfolio: Portfolio
    equity_column: dict[str, int]
    curve: Curve

    @classmethod
    def of(cls, portfolio: Portfolio) -> Book:
        equities = [f.name for f in portfolio.factors if isinstance(f, EquityFactor)]
        tenors = sorted(f.tenor for f in portfolio.factors if isinstance(f, RateFactor))
        return cls(portfolio, {name: i for i, name in enumerate(equities)}, Curve(tuple(tenors)))

    def value(self, spots: Array, rates: Array) -> Array:
        """The portfolio's value in each scenario (``spots``: scenarios x equities, ``rates``:
        scenarios x key tenors, ascending). Positions are summed in file order."""
        total = np.zeros(spots.shape[0])
        for position in self.portfolio.positions:
            total = total + self._value_of(position, spots, rates)
        return total

    def _value_of(
        self, position: Stock | Option | Bond | Swap, spots: Array, rates: Array
    ) -> Array:
        if isinstance(position, Stock):
            return position.quantity * spots[:, self.equity_column[position.underlying]]
        if isinstance(position, Option):
            spot = spots[:, self.equity_column[position.underlying]]
            rate = self.curve.rate(rates, position.maturity)
            return position.quantity * black_scholes(spot, position, rate)
        times = _payment_times(position.maturity, position.frequency)
        annuity = np.zeros(rates.shape[0])
        for time in times:
            annuity = annuity + self.curve.discount(rates, time)
        annuity = annuity / position.frequency
        final = self.curve.discount(rates, position.maturity)
        if isinstance(position, Bond):
            return position.notional * (position.coupon * annuity + final)
        receive_fixed = position.notional * (position.fixed_rate * annuity - (1 - final))
        return -receive_fixed if position.pay_fixed else receive_fixed
