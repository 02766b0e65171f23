"""The QuantLib pricing engine (examples/quantlib_book) prices a book of every product kind on
the local grid and every price checks out; a bad trade fails its task for good; and the
client's checks catch a wrong price."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from htcgrid import Grid
from htcgrid_local.grid import LocalGrid
from quantlib_book.book import buckets, load_book
from quantlib_book.checks import REPRODUCED, check_price, closed_form_of
from quantlib_book.client import aggregate, check_run, price_on_grid
from quantlib_book.market import QuantLibMarket
from quantlib_book.pricing import bumped_greeks, option_instrument, price_task
from quantlib_book.trades import KINDS, parse_task

from .conftest import run_agent

HANDLER = "quantlib_book.handler:handler"


@pytest.fixture(scope="module")
def small_book() -> dict[str, Any]:
    """Thirty-two trades of the sample book: every kind (the fast grids for the FD engines)."""
    book = load_book()
    chosen: list[dict[str, Any]] = []
    for kind in KINDS:
        of_kind = [
            t
            for t in book["trades"]
            if t["kind"] == kind and t.get("grid", {}).get("space_steps", 100) == 100
        ]
        chosen += of_kind[: 4 if kind in ("swap", "bond") else 6]
    return {"market": book["market"], "trades": chosen}


@pytest.fixture(scope="module")
def pricing_agent(examples_grid: LocalGrid) -> Iterator[None]:
    with run_agent(examples_grid, "--handler", HANDLER, slots=2):
        yield


@pytest.mark.usefixtures("pricing_agent")
def test_the_grid_prices_every_kind_of_trade_and_every_price_checks_out(
    examples_client: Grid, small_book: dict[str, Any]
) -> None:
    run = price_on_grid(examples_client, small_book, 4, Console(quiet=True), timeout_s=120)
    check_run(run)
    assert run.failed_tasks == []
    assert run.wrong == {}
    assert run.correct == run.trades == 32
    assert {p["kind"] for p in run.prices.values()} == set(KINDS)
    by_underlying, by_currency = aggregate(run)
    assert sum(row["trades"] for row in by_currency.values()) == 32
    options = [t for t in small_book["trades"] if "underlying" in t]
    assert sum(row["trades"] for row in by_underlying.values()) == len(options)
    assert run.summary() == f"book: 32/32 prices correct, {32 / run.elapsed_s:,.0f} trades/s"


@pytest.mark.usefixtures("pricing_agent")
def test_a_bad_trade_fails_its_task_once_naming_the_field(
    examples_client: Grid, small_book: dict[str, Any]
) -> None:
    bad = {**small_book["trades"][0], "strike": -5.0}
    payload = {"market": small_book["market"], "trades": [small_book["trades"][1], bad]}
    with examples_client.open_session() as session:
        session.submit([payload], max_attempts=3)
        [done] = session.wait(timeout=60)
    assert done.error is not None
    assert done.error.type.endswith("PermanentTaskError")
    assert done.error.message.endswith("trades[1].strike: -5.0 is not in [0.0, 1000000000.0]")
    assert done.error.attempt == 1  # not retried


def test_the_check_flags_a_price_that_is_off_missing_or_another_trades(
    small_book: dict[str, Any],
) -> None:
    # GIVEN a task's prices as the grid returns them, and the client's references
    [payload] = buckets({**small_book, "trades": small_book["trades"][:8]}, 8)
    market, trades = parse_task(payload)
    returned = price_task(payload)["prices"]
    references = copy.deepcopy(returned)
    european = next(i for i, t in enumerate(trades) if t.kind == "european")
    closed_form = closed_form_of(trades[european], market, QuantLibMarket(market))

    def problems(index: int, priced: dict[str, Any]) -> list[str]:
        form = closed_form if index == european else None
        return check_price(trades[index], market, priced, references[index], form)

    assert all(problems(i, p) == [] for i, p in enumerate(returned))
    # WHEN a number is off by ten times the tolerance, a Greek is missing, or a price is
    # another trade's
    off = copy.deepcopy(returned[european])
    off["values"]["npv"] *= 1 + 10 * REPRODUCED
    missing = copy.deepcopy(returned[european])
    del missing["values"]["vega"]
    other = returned[european + 1]
    # THEN the check says what is wrong, and the closed form alone catches the first
    assert any(p.startswith("npv ") and "Black-Scholes" in p for p in problems(european, off))
    assert any(p.startswith("gave ") for p in problems(european, missing))
    assert any(p.startswith("id ") for p in problems(european, other))
    assert problems(european, {"values": "nan"}) != []


def test_bumped_greeks_of_a_european_option_match_the_analytic_engines(
    small_book: dict[str, Any],
) -> None:
    # The bump-and-reprice code (for the engines without Greeks) on an option whose Greeks the
    # analytic engine knows exactly: central differences agree to the bumps' accuracy.
    market, trades = parse_task(small_book)
    quantlib = QuantLibMarket(market)
    for trade in [t for t in trades if t.kind == "european"]:
        option = option_instrument(trade, quantlib)
        spot = market.underlyings[trade.underlying].spot
        bumped = bumped_greeks(option, trade, quantlib, ["delta", "gamma", "vega", "rho"])
        for name, value in bumped.items():
            exact = getattr(option, name)()
            assert abs(value - exact) <= 1e-5 * max(abs(exact), spot), (trade.id, name)
        # Theta is one day forward along a curve that rolls with the date (not the engine's
        # instantaneous Black-Scholes theta): the same as a market built a day later.
        before = option.NPV()
        [theta] = bumped_greeks(option, trade, quantlib, ["theta"]).values()
        # The evaluation date is put back (the curve re-bootstraps, to its 1e-12 accuracy).
        assert option.NPV() == pytest.approx(before, rel=1e-10)
        later = {**small_book["market"], "valuation_date": "2025-01-16"}
        tomorrow = option_instrument(
            trade,
            QuantLibMarket(parse_task({"market": later, "trades": [small_book["trades"][0]]})[0]),
        ).NPV()
        QuantLibMarket(market)  # back to the book's valuation date
        assert theta == pytest.approx((tomorrow - before) * 365, rel=1e-6, abs=1e-6), trade.id
