"""Prices a book of equity options on the grid with the C++ QuantLib runtime, and checks every
price.

    python examples/runtimes/quantlib/price_book.py              # a local grid of its own
    python examples/runtimes/quantlib/price_book.py --stack NAME # a deployed grid running it

Each task prices a bucket of ``--bucket`` trades (``{"trades": [...]}``): a trade prices in
well under a millisecond to a few milliseconds, less than a task's own cost on the grid, so a
bucket of a few trades is what keeps the agents busy pricing rather than fetching tasks (the
README gives the measurements). ``--bucket 1`` submits one task per trade.

Every price is checked here, in the client: European options against the Black-Scholes closed
form and against the QuantLib Python package, American ones against the QuantLib Python package
on the same trade with the same engine and grid. The runtime uses Debian's QuantLib 1.29, the
client QuantLib 1.44 from PyPI; ``AGREEMENT`` says how close they must agree, and why. The
last line says how many prices were correct and how fast the book went.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import QuantLib as ql

from htcgrid import Grid
from htcgrid.connection import GridEndpoints

HERE = Path(__file__).resolve().parent
BOOK = HERE / "book.json"
#: Where scripts/build-runtimes.sh puts the runtime.
BOOTSTRAP = HERE.parents[2] / ".tools" / "runtimes" / "quantlib" / "bootstrap"
#: The finite-difference grid a trade gets when it names none (the runtime's trade.hpp).
DEFAULT_GRID = {"time_steps": 200, "space_steps": 200, "damping_steps": 0}
GREEKS = ("delta", "gamma", "vega", "theta", "rho", "dividend_rho")


@dataclass(frozen=True)
class Tolerance:
    """Two numbers agree if they differ by at most ``absolute`` + ``relative`` x |reference|."""

    absolute: float
    relative: float

    def agrees(self, value: float, reference: float) -> bool:
        return abs(value - reference) <= self.absolute + self.relative * abs(reference)


#: How close every number the runtime returns (QuantLib 1.29) must be to QuantLib Python's
#: (1.44) and, for European options, to the closed form. Measured on book.json: the two
#: QuantLib versions agree to the last bit on the analytic, finite-difference and
#: Barone-Adesi-Whaley engines and within 3e-15 (relative) on Bjerksund-Stensland and QdFp;
#: the closed form here (math.erfc) and QuantLib's differ by at most 1.3e-13 (relative, theta).
#: The tolerance sits 80 times above the largest of those, and 36 times below the smallest
#: change a real mistake makes: one space step more on a finite-difference grid moves a price
#: by 3.6e-10 or more, one day more to maturity a European price by 6.5e-6 or more.
AGREEMENT = Tolerance(absolute=1e-12, relative=1e-11)
#: Greeks QuantLib Python 1.44 provides and Debian's 1.29 does not, per engine: 1.29's
#: Bjerksund-Stensland engine gives the NPV only.
GREEKS_SINCE_1_29: dict[str, frozenset[str]] = {
    "bjerksund_stensland": frozenset({"delta", "gamma", "vega", "theta", "rho", "dividend_rho"}),
}


# -- the book -----------------------------------------------------------------------------------


def make_book(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` trades drawn with ``seed``: half European (analytic engine), half American,
    most of those on the finite-difference engine with a few grids, the rest on the
    Barone-Adesi-Whaley, Bjerksund-Stensland and QdFp engines."""
    draw = random.Random(seed)  # noqa: S311 - test data, not cryptography
    valuation = date(2025, 1, 15)
    grids = [
        {"time_steps": 100, "space_steps": 100, "damping_steps": 0},
        {"time_steps": 200, "space_steps": 200, "damping_steps": 0},
        {"time_steps": 400, "space_steps": 200, "damping_steps": 10},
    ]
    american_engines = ["fd"] * 7 + ["baw", "bjerksund_stensland", "qdfp"]
    trades = []
    for index in range(count):
        spot = round(draw.uniform(50, 150), 2)
        trade: dict[str, Any] = {
            "id": f"T{index:04d}",
            "style": "european" if index % 2 == 0 else "american",
            "type": draw.choice(["call", "put"]),
            "spot": spot,
            "strike": round(spot * draw.uniform(0.7, 1.3), 2),
            "rate": round(draw.uniform(0.0, 0.06), 4),
            "dividend": round(draw.uniform(0.0, 0.05), 4),
            "volatility": round(draw.uniform(0.1, 0.6), 3),
            "valuation_date": valuation.isoformat(),
            "maturity": (valuation + timedelta(days=draw.randint(30, 3 * 365))).isoformat(),
        }
        if trade["style"] == "european":
            trade["engine"] = "analytic"
        else:
            trade["engine"] = draw.choice(american_engines)
            if trade["engine"] == "fd":
                trade["grid"] = draw.choice(grids)
        trades.append(trade)
    return trades


def load_book(path: Path) -> list[dict[str, Any]]:
    trades = json.loads(path.read_text(encoding="utf-8"))["trades"]
    if not isinstance(trades, list) or not trades:
        raise ValueError(f"{path}: 'trades' must be a list of at least one trade")
    return trades


def buckets(trades: Sequence[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The tasks' payloads: the trades in order, ``size`` to a task."""
    return [{"trades": list(trades[i : i + size])} for i in range(0, len(trades), size)]


# -- reference prices ---------------------------------------------------------------------------


def _year_fraction(trade: dict[str, Any]) -> float:
    """Actual/365 Fixed, as the runtime's curves count time."""
    days = date.fromisoformat(trade["maturity"]) - date.fromisoformat(trade["valuation_date"])
    return days.days / 365.0


def black_scholes(trade: dict[str, Any]) -> dict[str, float]:
    """The Black-Scholes-Merton price and Greeks of a European option: NPV, delta, gamma, vega,
    theta (per year), rho and dividend rho (per unit of rate)."""
    s, k, sigma = trade["spot"], trade["strike"], trade["volatility"]
    r, q, t = trade["rate"], trade["dividend"], _year_fraction(trade)

    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    def pdf(x: float) -> float:
        return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    d1 = (math.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / (sigma * math.sqrt(t))
    d2 = d1 - sigma * math.sqrt(t)
    sign = 1.0 if trade["type"] == "call" else -1.0
    growth, discount = math.exp(-q * t), math.exp(-r * t)
    return {
        "npv": sign * (s * growth * cdf(sign * d1) - k * discount * cdf(sign * d2)),
        "delta": sign * growth * cdf(sign * d1),
        "gamma": growth * pdf(d1) / (s * sigma * math.sqrt(t)),
        "vega": s * growth * pdf(d1) * math.sqrt(t),
        "theta": -s * growth * pdf(d1) * sigma / (2.0 * math.sqrt(t))
        - sign * r * k * discount * cdf(sign * d2)
        + sign * q * s * growth * cdf(sign * d1),
        "rho": sign * k * t * discount * cdf(sign * d2),
        "dividend_rho": -sign * s * t * growth * cdf(sign * d1),
    }


def _quantlib_date(text: str) -> Any:
    day = date.fromisoformat(text)
    return ql.Date(day.day, day.month, day.year)


def quantlib_price(trade: dict[str, Any]) -> dict[str, float]:
    """The trade priced by the QuantLib Python package, built as the runtime builds it (flat
    curves and volatility, Actual/365 Fixed, the same engine and grid): NPV and the Greeks the
    engine provides."""
    valuation = _quantlib_date(trade["valuation_date"])
    maturity = _quantlib_date(trade["maturity"])
    ql.Settings.instance().evaluationDate = valuation
    day_counter = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(trade["spot"])),
        ql.YieldTermStructureHandle(ql.FlatForward(valuation, trade["dividend"], day_counter)),
        ql.YieldTermStructureHandle(ql.FlatForward(valuation, trade["rate"], day_counter)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(valuation, ql.NullCalendar(), trade["volatility"], day_counter)
        ),
    )
    option_type = ql.Option.Call if trade["type"] == "call" else ql.Option.Put
    exercise = (
        ql.EuropeanExercise(maturity)
        if trade["style"] == "european"
        else ql.AmericanExercise(valuation, maturity)
    )
    option = ql.VanillaOption(ql.PlainVanillaPayoff(option_type, trade["strike"]), exercise)
    engine = engine_of(trade)
    if engine == "analytic":
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    elif engine == "fd":
        grid = {**DEFAULT_GRID, **trade.get("grid", {})}
        option.setPricingEngine(
            ql.FdBlackScholesVanillaEngine(
                process, grid["time_steps"], grid["space_steps"], grid["damping_steps"]
            )
        )
    elif engine == "baw":
        option.setPricingEngine(ql.BaroneAdesiWhaleyApproximationEngine(process))
    elif engine == "bjerksund_stensland":
        option.setPricingEngine(ql.BjerksundStenslandApproximationEngine(process))
    elif engine == "qdfp":
        option.setPricingEngine(
            ql.QdFpAmericanEngine(process, ql.QdFpAmericanEngine.accurateScheme())
        )
    else:
        raise ValueError(f"{trade['id']}: engine {engine!r} is not one the runtime prices with")
    price = {"npv": option.NPV()}
    greeks = {
        "delta": option.delta,
        "gamma": option.gamma,
        "vega": option.vega,
        "theta": option.theta,
        "rho": option.rho,
        "dividend_rho": option.dividendRho,
    }
    for name, greek in greeks.items():
        try:
            price[name] = greek()
        except RuntimeError:
            pass  # QuantLib's "<greek> not provided": the engine does not compute it
    return price


def engine_of(trade: dict[str, Any]) -> str:
    """The engine a trade is priced with: the one it names, else the runtime's default."""
    engine: str = trade.get("engine", "analytic" if trade["style"] == "european" else "fd")
    return engine


def check(trade: dict[str, Any], priced: dict[str, Any]) -> list[str]:
    """What is wrong with the runtime's price of ``trade`` (nothing: it is correct). The NPV and
    every Greek are checked against QuantLib Python, and for European options against the
    closed form too; the runtime must give each Greek QuantLib Python gives (less those 1.29
    does not have)."""
    engine = engine_of(trade)
    problems = []
    if priced.get("engine") != engine:
        problems.append(f"priced with {priced.get('engine')!r}, not {engine!r}")
    if engine == "fd" and priced.get("grid") != {**DEFAULT_GRID, **trade.get("grid", {})}:
        problems.append(f"priced on grid {priced.get('grid')}, not the trade's")
    runtime = {"npv": priced.get("npv"), **priced.get("greeks", {})}
    references = [("QuantLib Python", quantlib_price(trade))]
    if engine == "analytic":
        references.append(("Black-Scholes", black_scholes(trade)))
    expected = set(references[0][1]) - GREEKS_SINCE_1_29.get(engine, frozenset())
    if set(runtime) != expected:
        problems.append(f"gave {sorted(runtime)}, expected {sorted(expected)}")
    for source, reference in references:
        for name in sorted(set(runtime) & set(reference)):
            value = runtime[name]
            if not isinstance(value, float | int) or not AGREEMENT.agrees(value, reference[name]):
                problems.append(f"{name} {value!r} vs {reference[name]!r} ({source})")
    return problems


# -- the grid -----------------------------------------------------------------------------------


@dataclass
class BookReport:
    """How a book went: every trade's price, the trades whose price was wrong or missing (and
    why), and how long pricing took on the grid."""

    trades: int
    tasks: int
    prices: dict[str, dict[str, Any]]
    wrong: dict[str, list[str]]
    failed_tasks: list[str]
    elapsed_s: float

    @property
    def correct(self) -> int:
        return len(self.prices) - len(self.wrong)

    def summary(self) -> str:
        rate = self.trades / self.elapsed_s if self.elapsed_s > 0 else float("inf")
        return (
            f"{self.correct}/{self.trades} prices correct ({self.tasks} tasks of up to "
            f"{math.ceil(self.trades / self.tasks)} trades, {len(self.failed_tasks)} failed) "
            f"in {self.elapsed_s:.1f} s: {rate:,.0f} trades/s"
        )


def price_book(
    grid: Grid, trades: Sequence[dict[str, Any]], bucket: int, timeout_s: float = 600
) -> BookReport:
    """Prices ``trades`` on ``grid``, ``bucket`` trades to a task, and checks every price."""
    payloads = buckets(trades, bucket)
    started = time.monotonic()
    prices: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for done in grid.map(payloads, ordered=False, timeout=timeout_s):
        if not done.ok:
            failed.append(f"{done.task_id}: {done.error.type if done.error else 'no result'}")
            continue
        # A result is checked, not trusted: anything unexpected leaves its trades unpriced.
        value: Any = done.value
        listed = value.get("prices") if isinstance(value, dict) else None
        for priced in listed if isinstance(listed, list) else []:
            if isinstance(priced, dict) and isinstance(priced.get("id"), str):
                prices[priced["id"]] = priced
    elapsed = time.monotonic() - started
    wrong: dict[str, list[str]] = {}
    for trade in trades:
        priced = prices.get(trade["id"])
        problems = ["no price"] if priced is None else check(trade, priced)
        if problems:
            wrong[trade["id"]] = problems
    return BookReport(len(trades), len(payloads), prices, wrong, failed, elapsed)


@contextmanager
def local_grid(agents: int, slots: int) -> Iterator[Grid]:
    """A local grid of its own whose agents run the QuantLib runtime; stopped on exit."""
    from htcgrid_local.grid import LocalGrid

    if not BOOTSTRAP.is_file():
        raise SystemExit(f"{BOOTSTRAP} is missing: build it with `make runtimes`")
    local = LocalGrid(
        agents=agents,
        handler="pricer.price_trades",
        slots=slots,
        agent_args=["--bootstrap", str(BOOTSTRAP)],
    )
    local.start()
    try:
        yield Grid(GridEndpoints.for_emulator(dict(local.outputs), local.endpoint_url))
    finally:
        local.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, default=BOOK, help="the trades (default book.json)")
    parser.add_argument("--bucket", type=int, default=10, help="trades per task (default 10)")
    parser.add_argument("--stack", help="a deployed grid's stack (default: a local grid)")
    parser.add_argument("--agents", type=int, default=2, help="local grid: agents (default 2)")
    parser.add_argument("--slots", type=int, default=1, help="local grid: slots per agent")
    parser.add_argument(
        "--write-book", type=int, metavar="COUNT", help="write a new book of COUNT trades, exit"
    )
    args = parser.parse_args(argv)
    if args.write_book:
        book = {"trades": make_book(args.write_book, seed=12)}
        args.book.write_text(json.dumps(book, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.write_book} trades to {args.book}")
        return 0
    if args.bucket < 1:
        parser.error("--bucket: must be at least 1")
    trades = load_book(args.book)
    if args.stack:
        report = price_book(Grid.connect(args.stack), trades, args.bucket)
    else:
        with local_grid(args.agents, args.slots) as grid:
            report = price_book(grid, trades, args.bucket)
    for trade_id, problems in sorted(report.wrong.items()):
        print(f"{trade_id}: " + "; ".join(problems))
    for failure in report.failed_tasks:
        print(f"task failed: {failure}")
    print(report.summary())
    return 0 if report.correct == report.trades else 1


if __name__ == "__main__":
    sys.exit(main())
