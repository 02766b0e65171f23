"""The book's documents: the market (curve quotes, underlyings) and the trades, parsed from the
JSON a task carries and checked field by field. A task's payload may be hostile: every number
is bounded and every error names the field and the limit."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

#: The currencies the pricer knows conventions for (market.CONVENTIONS).
CURRENCIES = ("USD", "EUR")
OPTION_KINDS = ("european", "american", "bermudan", "barrier")
KINDS = (*OPTION_KINDS, "swap", "bond")
BARRIER_TYPES = ("down_and_out", "down_and_in", "up_and_out", "up_and_in")
#: A task prices at most this many trades: a bucket is meant to take seconds, not hours.
MAX_TRADES_PER_TASK = 1_000
MAX_AMOUNT = 1e12
MAX_PRICE = 1e9
MAX_YEARS = 50
#: Finite-difference grids: at most this many steps either way, and points in all.
MAX_GRID_STEPS = 5_000
MAX_GRID_POINTS = 4_000_000
TENOR = re.compile(r"^([1-9][0-9]?)([MY])$")


class PermanentTaskError(ValueError):
    """A task the pricer refuses or QuantLib cannot price: the same task would fail the same
    way, so the agent fails it at once (it matches the class by name; ``retryable`` says the
    same to any agent that looks for that instead)."""

    retryable = False


@dataclass(frozen=True)
class Curve:
    """A currency's curve quotes: deposit rates and par swap rates by tenor (``3M``, ``5Y``)."""

    deposits: dict[str, float]
    swaps: dict[str, float]


@dataclass(frozen=True)
class Underlying:
    currency: str
    spot: float
    dividend: float
    volatility: float


@dataclass(frozen=True)
class Market:
    valuation_date: date
    curves: dict[str, Curve]
    underlyings: dict[str, Underlying]


@dataclass(frozen=True)
class Grid:
    """A finite-difference grid: time steps by space (asset price) steps."""

    time_steps: int = 200
    space_steps: int = 200


@dataclass(frozen=True)
class Option:
    id: str
    kind: Literal["european", "american", "bermudan", "barrier"]
    underlying: str
    type: Literal["call", "put"]
    strike: float
    maturity: date
    quantity: float
    exercise_dates: tuple[date, ...] = ()
    barrier_type: str = ""
    barrier: float = 0.0
    rebate: float = 0.0
    grid: Grid = Grid()


@dataclass(frozen=True)
class Swap:
    """A vanilla fixed-for-floating swap starting at spot; ``side`` is the fixed leg's."""

    id: str
    currency: str
    notional: float
    fixed_rate: float
    tenor_years: int
    side: Literal["payer", "receiver"]
    kind: Literal["swap"] = "swap"


@dataclass(frozen=True)
class Bond:
    id: str
    currency: str
    face: float
    coupon: float
    issue: date
    maturity: date
    kind: Literal["bond"] = "bond"


Trade = Option | Swap | Bond


class _Fields:
    """Reads one JSON object's fields, each error naming ``where.field``."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise PermanentTaskError(f"{where}: must be an object, not {type(value).__name__}")
        self.value, self.where = value, where

    def name(self, field: str) -> str:
        return f"{self.where}.{field}"

    def raw(self, field: str, default: Any = None) -> Any:
        if field not in self.value:
            if default is not None:
                return default
            raise PermanentTaskError(f"{self.name(field)}: missing")
        return self.value[field]

    def number(self, field: str, low: float, high: float, *, default: float | None = None) -> float:
        """A number in [low, high] (low excluded if it is 0 and the range is of prices)."""
        value = self.raw(field, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PermanentTaskError(f"{self.name(field)}: must be a number, not {value!r}")
        number = float(value)
        if not math.isfinite(number) or not low <= number <= high:
            raise PermanentTaskError(f"{self.name(field)}: {value!r} is not in [{low}, {high}]")
        return number

    def positive(self, field: str, high: float) -> float:
        number = self.number(field, 0.0, high)
        if number == 0.0:
            raise PermanentTaskError(f"{self.name(field)}: must be above 0")
        return number

    def integer(self, field: str, low: int, high: int, *, default: int | None = None) -> int:
        value = self.raw(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PermanentTaskError(
                f"{self.name(field)}: {value!r} is not an integer in [{low}, {high}]"
            )
        return value

    def choice(self, field: str, choices: tuple[str, ...], *, default: str | None = None) -> str:
        value = self.raw(field, default)
        if value not in choices:
            raise PermanentTaskError(f"{self.name(field)}: {value!r} is not one of {choices}")
        return str(value)

    def text(self, field: str, pattern: str = r"^[A-Za-z0-9_.:-]{1,64}$") -> str:
        value = self.raw(field)
        if not isinstance(value, str) or not re.match(pattern, value):
            raise PermanentTaskError(
                f"{self.name(field)}: {value!r} is not an id of 1 to 64 letters, digits and _.:-"
            )
        return value

    def day(self, field: str) -> date:
        return _day(self.raw(field), self.name(field))


def _day(value: Any, name: str) -> date:
    """A date as QuantLib takes it: ISO ``YYYY-MM-DD``, 1901 to 2199."""
    try:
        day = date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        day = None
    if day is None or not 1901 <= day.year <= 2199:
        raise PermanentTaskError(f"{name}: {value!r} is not a date (YYYY-MM-DD, 1901 to 2199)")
    return day


def _rates(value: Any, where: str) -> dict[str, float]:
    fields = _Fields(value, where)
    rates = {}
    for tenor in fields.value:
        if not TENOR.match(str(tenor)):
            raise PermanentTaskError(f"{where}: {tenor!r} is not a tenor like 3M or 10Y")
        rates[str(tenor)] = fields.number(tenor, -1.0, 1.0)
    return rates


def parse_market(value: Any) -> Market:
    """The market a task prices in: its valuation date, curves and underlyings."""
    fields = _Fields(value, "market")
    curves_in = _Fields(fields.raw("curves"), "market.curves")
    curves = {}
    for currency in curves_in.value:
        if currency not in CURRENCIES:
            raise PermanentTaskError(f"market.curves: {currency!r} is not one of {CURRENCIES}")
        curve = _Fields(curves_in.value[currency], f"market.curves.{currency}")
        deposits = _rates(curve.raw("deposits"), curve.name("deposits"))
        swaps = _rates(curve.raw("swaps"), curve.name("swaps"))
        if not deposits or not swaps:
            raise PermanentTaskError(f"market.curves.{currency}: needs deposits and swaps")
        curves[currency] = Curve(deposits, swaps)
    underlyings_in = _Fields(fields.raw("underlyings"), "market.underlyings")
    underlyings = {}
    for name in underlyings_in.value:
        one = _Fields(underlyings_in.value[name], f"market.underlyings.{name}")
        currency = one.choice("currency", tuple(curves))
        underlyings[str(name)] = Underlying(
            currency=currency,
            spot=one.positive("spot", MAX_PRICE),
            dividend=one.number("dividend", -1.0, 1.0),
            volatility=one.positive("volatility", 5.0),
        )
    return Market(fields.day("valuation_date"), curves, underlyings)


def parse_trade(value: Any, where: str, market: Market) -> Trade:
    """One trade, checked against the market it is priced in."""
    fields = _Fields(value, where)
    trade_id = fields.text("id")
    kind = fields.choice("kind", KINDS)
    valuation = market.valuation_date
    if kind == "swap":
        currency = fields.choice("currency", tuple(market.curves))
        return Swap(
            id=trade_id,
            currency=currency,
            notional=fields.positive("notional", MAX_AMOUNT),
            fixed_rate=fields.number("fixed_rate", -1.0, 1.0),
            tenor_years=fields.integer("tenor_years", 1, MAX_YEARS),
            side=fields.choice("side", ("payer", "receiver")),  # type: ignore[arg-type]
        )
    if kind == "bond":
        issue, maturity = fields.day("issue"), fields.day("maturity")
        _check_maturity(fields, maturity, valuation)
        if issue >= maturity:
            raise PermanentTaskError(f"{fields.name('issue')}: must be before the maturity")
        return Bond(
            id=trade_id,
            currency=fields.choice("currency", tuple(market.curves)),
            face=fields.positive("face", MAX_AMOUNT),
            coupon=fields.number("coupon", 0.0, 1.0),
            issue=issue,
            maturity=maturity,
        )
    maturity = fields.day("maturity")
    _check_maturity(fields, maturity, valuation)
    option: dict[str, Any] = {
        "id": trade_id,
        "kind": kind,
        "underlying": fields.choice("underlying", tuple(market.underlyings)),
        "type": fields.choice("type", ("call", "put")),
        "strike": fields.positive("strike", MAX_PRICE),
        "maturity": maturity,
        "quantity": fields.number("quantity", -MAX_AMOUNT, MAX_AMOUNT, default=1.0),
    }
    if kind in ("american", "bermudan"):
        grid = _Fields(fields.raw("grid", {}), fields.name("grid"))
        time_steps = grid.integer("time_steps", 10, MAX_GRID_STEPS, default=Grid.time_steps)
        space_steps = grid.integer("space_steps", 10, MAX_GRID_STEPS, default=Grid.space_steps)
        if time_steps * space_steps > MAX_GRID_POINTS:
            raise PermanentTaskError(
                f"{fields.name('grid')}: {time_steps} x {space_steps} is above "
                f"{MAX_GRID_POINTS:,} points"
            )
        option["grid"] = Grid(time_steps, space_steps)
    if kind == "bermudan":
        option["exercise_dates"] = _exercise_dates(fields, valuation, maturity)
    if kind == "barrier":
        option["barrier_type"] = fields.choice("barrier_type", BARRIER_TYPES)
        option["barrier"] = fields.positive("barrier", MAX_PRICE)
        option["rebate"] = fields.number("rebate", 0.0, MAX_PRICE, default=0.0)
        spot = market.underlyings[option["underlying"]].spot
        down = option["barrier_type"].startswith("down")
        if (down and option["barrier"] >= spot) or (not down and option["barrier"] <= spot):
            raise PermanentTaskError(
                f"{fields.name('barrier')}: {option['barrier']} is already touched at spot {spot}"
            )
    return Option(**option)


def _check_maturity(fields: _Fields, maturity: date, valuation: date) -> None:
    if not valuation < maturity <= valuation.replace(year=valuation.year + MAX_YEARS):
        raise PermanentTaskError(
            f"{fields.name('maturity')}: {maturity} is not after the valuation date "
            f"{valuation} by at most {MAX_YEARS} years"
        )


def _exercise_dates(fields: _Fields, valuation: date, maturity: date) -> tuple[date, ...]:
    listed = fields.raw("exercise_dates")
    if not isinstance(listed, list) or not 1 <= len(listed) <= 400:
        raise PermanentTaskError(f"{fields.name('exercise_dates')}: must list 1 to 400 dates")
    days = tuple(_day(day, fields.name(f"exercise_dates[{i}]")) for i, day in enumerate(listed))
    if list(days) != sorted(set(days)) or days[0] <= valuation or days[-1] != maturity:
        raise PermanentTaskError(
            f"{fields.name('exercise_dates')}: must rise strictly, after the valuation date, "
            "to the maturity"
        )
    return days


def parse_task(event: Any) -> tuple[Market, list[Trade]]:
    """A task's payload, ``{"market": {...}, "trades": [...]}``, parsed and checked."""
    fields = _Fields(event, "task")
    market = parse_market(fields.raw("market"))
    listed = fields.raw("trades")
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_TRADES_PER_TASK:
        raise PermanentTaskError(f"trades: must list 1 to {MAX_TRADES_PER_TASK} trades")
    return market, [parse_trade(one, f"trades[{i}]", market) for i, one in enumerate(listed)]
