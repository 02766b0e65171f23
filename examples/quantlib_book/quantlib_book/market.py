"""The market as QuantLib objects: a discount curve per currency bootstrapped from its deposit
and swap quotes, and a Black-Scholes-Merton process per underlying on its currency's curve.

Every input is a ``SimpleQuote`` and every term structure floats with QuantLib's evaluation
date, so a Greek QuantLib's engine does not give is one ``bump`` away: change a quote (or move
the evaluation date a day), reprice, put it back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import QuantLib as ql

from .trades import Market

#: Curves, dividends and volatilities count time on Actual/365 Fixed, so the closed form's
#: year fraction (closed_form.py) is QuantLib's.
DAY_COUNTER = ql.Actual365Fixed()


@dataclass(frozen=True)
class Conventions:
    """How a currency's deposits, swaps and bonds are quoted and scheduled."""

    calendar: ql.Calendar
    settlement_days: int
    fixed_frequency: int
    fixed_day_counter: ql.DayCounter
    floating_months: int
    floating_day_counter: ql.DayCounter


CONVENTIONS = {
    "USD": Conventions(
        ql.UnitedStates(ql.UnitedStates.FederalReserve),
        2,
        ql.Semiannual,
        ql.Thirty360(ql.Thirty360.BondBasis),
        3,
        ql.Actual360(),
    ),
    "EUR": Conventions(
        ql.TARGET(), 2, ql.Annual, ql.Thirty360(ql.Thirty360.BondBasis), 6, ql.Actual360()
    ),
}


def qdate(day: date) -> ql.Date:
    return ql.Date(day.day, day.month, day.year)


def tenor(text: str) -> ql.Period:
    return ql.Period(int(text[:-1]), ql.Months if text[-1] == "M" else ql.Years)


class CurrencyCurve:
    """A single-curve setup: one curve both forecasts the floating index and discounts (the
    textbook vanilla setup; a production book would discount on an OIS curve)."""

    def __init__(self, currency: str, deposits: dict[str, float], swaps: dict[str, float]):
        self.conventions = conventions = CONVENTIONS[currency]
        self.quotes: list[ql.SimpleQuote] = []
        helpers = []
        # The index the swap quotes fix on; it forecasts on the curve being built.
        quoted_index = self._index(currency, ql.YieldTermStructureHandle())
        for period, rate in deposits.items():
            quote = self._quote(rate)
            helpers.append(
                ql.DepositRateHelper(
                    ql.QuoteHandle(quote),
                    tenor(period),
                    conventions.settlement_days,
                    conventions.calendar,
                    ql.ModifiedFollowing,
                    False,
                    conventions.floating_day_counter,
                )
            )
        for period, rate in swaps.items():
            quote = self._quote(rate)
            helpers.append(
                ql.SwapRateHelper(
                    ql.QuoteHandle(quote),
                    tenor(period),
                    conventions.calendar,
                    conventions.fixed_frequency,
                    ql.ModifiedFollowing,
                    conventions.fixed_day_counter,
                    quoted_index,
                )
            )
        # Settlement days 0 on the null calendar: the curve starts on the evaluation date,
        # whatever day of the week it is, and moves with it (theta by bumping the date).
        curve = ql.PiecewiseLogCubicDiscount(0, ql.NullCalendar(), helpers, DAY_COUNTER)
        curve.enableExtrapolation()
        self.handle = ql.YieldTermStructureHandle(curve)
        self.index = self._index(currency, self.handle)

    def _quote(self, rate: float) -> ql.SimpleQuote:
        quote = ql.SimpleQuote(rate)
        self.quotes.append(quote)
        return quote

    def _index(self, currency: str, handle: ql.YieldTermStructureHandle) -> ql.IborIndex:
        conventions = self.conventions
        return ql.IborIndex(
            f"{currency}-{conventions.floating_months}M",
            ql.Period(conventions.floating_months, ql.Months),
            conventions.settlement_days,
            ql.Currency(),
            conventions.calendar,
            ql.ModifiedFollowing,
            False,
            conventions.floating_day_counter,
            handle,
        )


class EquityProcess:
    """An underlying's spot, dividend yield and volatility, on its currency's curve shifted by
    ``rate_shift`` (a continuously compounded zero spread: what rho bumps)."""

    def __init__(self, spot: float, dividend: float, volatility: float, curve: CurrencyCurve):
        self.spot = ql.SimpleQuote(spot)
        self.volatility = ql.SimpleQuote(volatility)
        self.rate_shift = ql.SimpleQuote(0.0)
        self.dividend = ql.FlatForward(0, ql.NullCalendar(), dividend, DAY_COUNTER)
        self.risk_free = ql.YieldTermStructureHandle(
            ql.ZeroSpreadedTermStructure(curve.handle, ql.QuoteHandle(self.rate_shift))
        )
        self.process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(self.spot),
            ql.YieldTermStructureHandle(self.dividend),
            self.risk_free,
            ql.BlackVolTermStructureHandle(
                ql.BlackConstantVol(
                    0, ql.NullCalendar(), ql.QuoteHandle(self.volatility), DAY_COUNTER
                )
            ),
        )


class QuantLibMarket:
    """The task's market, built once per task and shared by its trades."""

    def __init__(self, market: Market) -> None:
        self.valuation_date = qdate(market.valuation_date)
        set_evaluation_date(self.valuation_date)
        self.curves = {
            currency: CurrencyCurve(currency, curve.deposits, curve.swaps)
            for currency, curve in market.curves.items()
        }
        self.underlyings = {
            name: EquityProcess(one.spot, one.dividend, one.volatility, self.curves[one.currency])
            for name, one in market.underlyings.items()
        }


def set_evaluation_date(day: ql.Date) -> None:
    # QuantLib's evaluation date is the process's: an agent's slot prices one task at a time,
    # and every task sets its own.
    ql.Settings.instance().evaluationDate = day


@contextmanager
def bumped(quotes: list[ql.SimpleQuote], shift: float) -> Iterator[None]:
    """The quotes moved by ``shift``, then put back to their exact values."""
    saved = [quote.value() for quote in quotes]
    try:
        for quote, value in zip(quotes, saved, strict=True):
            quote.setValue(value + shift)
        yield
    finally:
        for quote, value in zip(quotes, saved, strict=True):
            quote.setValue(value)


@contextmanager
def days_later(market: QuantLibMarket, days: int) -> Iterator[None]:
    """The evaluation date moved ``days`` forward, the market's quotes unchanged."""
    set_evaluation_date(market.valuation_date + days)
    try:
        yield
    finally:
        set_evaluation_date(market.valuation_date)
