"""Prices a trade with the QuantLib engine suited to it, with its Greeks.

| kind | engine | from the engine | by bump-and-reprice |
|---|---|---|---|
| european | AnalyticEuropeanEngine | npv, delta, gamma, vega, theta, rho, dividend_rho | none |
| american, bermudan | FdBlackScholesVanillaEngine | npv, delta, gamma, theta | vega, rho |
| barrier | AnalyticBarrierEngine | npv | delta, gamma, vega, theta, rho |
| swap | DiscountingSwapEngine | npv, fair_rate | dv01 |
| bond | DiscountingBondEngine | npv, clean_price, dirty_price | dv01 |

Units are QuantLib's: theta per year, vega and rho per unit of volatility and rate (not per
point), all per option (the client multiplies by the quantity). DV01 is the value gained when
every quote of the currency's curve falls by one basis point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import QuantLib as ql

from .market import CONVENTIONS, QuantLibMarket, bumped, days_later, qdate
from .trades import Bond, Option, PermanentTaskError, Swap, Trade, parse_task

#: Bump sizes, central differences: spot by 0.1 % of itself, volatility and rates by one basis
#: point; theta is one day forward (annualised: x 365).
SPOT_BUMP = 1e-3
VOLATILITY_BUMP = 1e-4
RATE_BUMP = 1e-4
DAYS_PER_YEAR = 365.0

ENGINES = {
    "european": "AnalyticEuropeanEngine",
    "american": "FdBlackScholesVanillaEngine",
    "bermudan": "FdBlackScholesVanillaEngine",
    "barrier": "AnalyticBarrierEngine",
    "swap": "DiscountingSwapEngine",
    "bond": "DiscountingBondEngine",
}
#: The Greeks each kind of option gets from its engine; the rest of OPTION_GREEKS are bumped.
ENGINE_GREEKS = {
    "european": ("delta", "gamma", "vega", "theta", "rho", "dividend_rho"),
    "american": ("delta", "gamma", "theta"),
    "bermudan": ("delta", "gamma", "theta"),
    "barrier": (),
}
OPTION_GREEKS = ("delta", "gamma", "vega", "theta", "rho")
BARRIER_TYPES = {
    "down_and_out": ql.Barrier.DownOut,
    "down_and_in": ql.Barrier.DownIn,
    "up_and_out": ql.Barrier.UpOut,
    "up_and_in": ql.Barrier.UpIn,
}


def price_trade(trade: Trade, market: QuantLibMarket) -> dict[str, Any]:
    """The trade's NPV and Greeks, and which Greeks were bumped rather than given by the
    engine. A trade QuantLib cannot price fails as a ``PermanentTaskError`` with its message."""
    try:
        if isinstance(trade, Option):
            values, bumped_names = _price_option(trade, market)
        elif isinstance(trade, Swap):
            values, bumped_names = _price_swap(trade, market), ["dv01"]
        else:
            values, bumped_names = _price_bond(trade, market), ["dv01"]
    except RuntimeError as error:  # QuantLib's errors are RuntimeErrors carrying its message
        raise PermanentTaskError(f"{trade.id}: QuantLib: {error}") from error
    return {
        "id": trade.id,
        "kind": trade.kind,
        "engine": ENGINES[trade.kind],
        "values": values,
        "bumped": bumped_names,
    }


# -- options ------------------------------------------------------------------------------------


def option_instrument(trade: Option, market: QuantLibMarket) -> ql.OneAssetOption:
    """The option as a QuantLib instrument, with its engine set."""
    process = market.underlyings[trade.underlying].process
    payoff = ql.PlainVanillaPayoff(
        ql.Option.Call if trade.type == "call" else ql.Option.Put, trade.strike
    )
    maturity = qdate(trade.maturity)
    if trade.kind == "european":
        option = ql.VanillaOption(payoff, ql.EuropeanExercise(maturity))
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    elif trade.kind == "barrier":
        option = ql.BarrierOption(
            BARRIER_TYPES[trade.barrier_type],
            trade.barrier,
            trade.rebate,
            payoff,
            ql.EuropeanExercise(maturity),
        )
        option.setPricingEngine(ql.AnalyticBarrierEngine(process))
    else:
        exercise = (
            ql.AmericanExercise(market.valuation_date, maturity)
            if trade.kind == "american"
            else ql.BermudanExercise([qdate(day) for day in trade.exercise_dates])
        )
        option = ql.VanillaOption(payoff, exercise)
        option.setPricingEngine(
            ql.FdBlackScholesVanillaEngine(process, trade.grid.time_steps, trade.grid.space_steps)
        )
    return option


def _price_option(trade: Option, market: QuantLibMarket) -> tuple[dict[str, float], list[str]]:
    option = option_instrument(trade, market)
    values = {"npv": option.NPV()}
    from_engine = ENGINE_GREEKS[trade.kind]
    for name in from_engine:
        values[name] = getattr(option, "dividendRho" if name == "dividend_rho" else name)()
    bumped_names = [name for name in OPTION_GREEKS if name not in from_engine]
    values.update(bumped_greeks(option, trade, market, bumped_names))
    return values, bumped_names


def bumped_greeks(
    option: ql.Instrument, trade: Option, market: QuantLibMarket, names: list[str]
) -> dict[str, float]:
    """The named Greeks of ``option`` by bump-and-reprice (central differences but theta)."""
    equity = market.underlyings[trade.underlying]
    greeks: dict[str, float] = {}

    def central(quote: ql.SimpleQuote, shift: float) -> tuple[float, float]:
        with bumped([quote], shift):
            up = option.NPV()
        with bumped([quote], -shift):
            down = option.NPV()
        return up, down

    if "delta" in names or "gamma" in names:
        shift = SPOT_BUMP * equity.spot.value()
        up, down = central(equity.spot, shift)
        greeks["delta"] = (up - down) / (2 * shift)
        greeks["gamma"] = (up - 2 * option.NPV() + down) / (shift * shift)
    if "vega" in names:
        up, down = central(equity.volatility, VOLATILITY_BUMP)
        greeks["vega"] = (up - down) / (2 * VOLATILITY_BUMP)
    if "rho" in names:
        up, down = central(equity.rate_shift, RATE_BUMP)
        greeks["rho"] = (up - down) / (2 * RATE_BUMP)
    if "theta" in names:
        today = option.NPV()
        with days_later(market, 1):
            tomorrow = option.NPV()
        greeks["theta"] = (tomorrow - today) * DAYS_PER_YEAR
    return {name: greeks[name] for name in names}


# -- rates --------------------------------------------------------------------------------------


def dv01(instrument: ql.Instrument, quotes: list[ql.SimpleQuote]) -> float:
    """The value gained when every quote falls one basis point (central difference)."""
    with bumped(quotes, -RATE_BUMP):
        down = instrument.NPV()
    with bumped(quotes, RATE_BUMP):
        up = instrument.NPV()
    return float(down - up) / 2


def _with_dv01(
    instrument: ql.Instrument, quotes: list[ql.SimpleQuote], values: Callable[[], dict[str, float]]
) -> dict[str, float]:
    priced = values()
    priced["dv01"] = dv01(instrument, quotes)
    return priced


def _price_swap(trade: Swap, market: QuantLibMarket) -> dict[str, float]:
    curve = market.curves[trade.currency]
    conventions = curve.conventions
    calendar = conventions.calendar
    start = calendar.advance(market.valuation_date, conventions.settlement_days, ql.Days)
    end = start + ql.Period(trade.tenor_years, ql.Years)

    def schedule(frequency: ql.Period) -> ql.Schedule:
        return ql.Schedule(
            start,
            end,
            frequency,
            calendar,
            ql.ModifiedFollowing,
            ql.ModifiedFollowing,
            ql.DateGeneration.Forward,
            False,
        )

    swap = ql.VanillaSwap(
        ql.Swap.Payer if trade.side == "payer" else ql.Swap.Receiver,
        trade.notional,
        schedule(ql.Period(conventions.fixed_frequency)),
        trade.fixed_rate,
        conventions.fixed_day_counter,
        schedule(ql.Period(conventions.floating_months, ql.Months)),
        curve.index,
        0.0,
        conventions.floating_day_counter,
    )
    swap.setPricingEngine(ql.DiscountingSwapEngine(curve.handle))
    return _with_dv01(swap, curve.quotes, lambda: {"npv": swap.NPV(), "fair_rate": swap.fairRate()})


def _price_bond(trade: Bond, market: QuantLibMarket) -> dict[str, float]:
    curve = market.curves[trade.currency]
    conventions = CONVENTIONS[trade.currency]
    schedule = ql.Schedule(
        qdate(trade.issue),
        qdate(trade.maturity),
        ql.Period(conventions.fixed_frequency),
        conventions.calendar,
        ql.Unadjusted,
        ql.Unadjusted,
        ql.DateGeneration.Backward,
        False,
    )
    bond = ql.FixedRateBond(
        conventions.settlement_days,
        trade.face,
        schedule,
        [trade.coupon],
        conventions.fixed_day_counter,
    )
    bond.setPricingEngine(ql.DiscountingBondEngine(curve.handle))
    return _with_dv01(
        bond,
        curve.quotes,
        lambda: {
            "npv": bond.NPV(),
            "clean_price": bond.cleanPrice(),
            "dirty_price": bond.dirtyPrice(),
        },
    )


def price_task(event: Any) -> dict[str, Any]:
    """Prices every trade of a task's payload (``{"market": ..., "trades": [...]}``)."""
    market, trades = parse_task(event)
    quantlib_market = QuantLibMarket(market)
    return {
        "quantlib": ql.__version__,
        "prices": [price_trade(trade, quantlib_market) for trade in trades],
    }
