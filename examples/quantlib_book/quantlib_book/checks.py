"""How the client checks a price from the grid: against QuantLib run in the client on the same
task, and (European options) against the Black-Scholes closed form.

A number agrees with its reference if ``|value - reference| <= rel * max(|reference|, scale)``,
``scale`` being the trade's size: the underlying's spot for an option's per-unit numbers, the
notional or face for a swap or bond. Why these tolerances: README.md, "How every price is
checked"."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .closed_form import black_scholes
from .market import DAY_COUNTER, QuantLibMarket, qdate
from .trades import Market, Option, Swap, Trade

#: Grid against client. The same payload priced by the same QuantLib on the same machine gives
#: the same bits; on another CPU (an arm64 agent, a client on x86) last-bit differences go
#: through the curve's bootstrap, which solves to 1e-12 and starts from its last solution: the
#: same trade priced after other trades differs by up to 1.3e-9 of its scale (measured on
#: book.json, a bumped-theta barrier). 1e-8 is eight times that.
REPRODUCED = 1e-8
#: QuantLib's analytic engine against the closed form here: they differ by at most 2e-13 of
#: the scale on book.json (rounding in different formulas); 1e-10 is 500 times that.
CLOSED_FORM = 1e-10


@dataclass(frozen=True)
class Disagreement:
    name: str
    value: Any
    reference: float
    source: str

    def __str__(self) -> str:
        return f"{self.name} {self.value!r} vs {self.reference!r} ({self.source})"


def scale_of(trade: Trade, market: Market) -> float:
    if isinstance(trade, Option):
        return market.underlyings[trade.underlying].spot
    if isinstance(trade, Swap):
        return trade.notional
    return trade.face


def agrees(value: Any, reference: float, scale: float, relative: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return abs(value - reference) <= relative * max(abs(reference), scale)


def closed_form_of(trade: Option, market: Market, quantlib: QuantLibMarket) -> dict[str, float]:
    """The closed form's NPV and Greeks of a European option, on the curve's zero rate to its
    maturity."""
    underlying = market.underlyings[trade.underlying]
    maturity = qdate(trade.maturity)
    years = DAY_COUNTER.yearFraction(quantlib.valuation_date, maturity)
    discount = quantlib.curves[underlying.currency].handle.discount(maturity)
    return black_scholes(
        trade.type,
        underlying.spot,
        trade.strike,
        -math.log(discount) / years,
        underlying.dividend,
        underlying.volatility,
        years,
    )


def check_price(
    trade: Trade,
    market: Market,
    priced: Any,
    reference: dict[str, Any],
    closed_form: dict[str, float] | None,
) -> list[str]:
    """What is wrong with the grid's price of ``trade`` (nothing: it is correct). ``reference``
    is the client's own QuantLib price of it; ``closed_form`` the European closed form."""
    if not isinstance(priced, dict) or not isinstance(priced.get("values"), dict):
        return [f"not a price: {priced!r}"[:200]]
    problems = []
    for field in ("id", "engine", "bumped"):
        if priced.get(field) != reference[field]:
            problems.append(f"{field} {priced.get(field)!r}, expected {reference[field]!r}")
    values: dict[str, Any] = priced["values"]
    if set(values) != set(reference["values"]):
        problems.append(f"gave {sorted(values)}, expected {sorted(reference['values'])}")
    scale = scale_of(trade, market)
    sources = [("QuantLib in the client", reference["values"], REPRODUCED)]
    if closed_form is not None:
        sources.append(("Black-Scholes", closed_form, CLOSED_FORM))
    for source, expected, relative in sources:
        for name in sorted(set(values) & set(expected)):
            if not agrees(values[name], expected[name], scale, relative):
                problems.append(str(Disagreement(name, values[name], expected[name], source)))
    return problems
