"""The QuantLib pricer (examples/runtimes/quantlib), a C++ custom runtime, prices a book on the
local grid, and its client's checks catch a wrong price.

The client's module (price_book.py) is an example script, not a package: it is loaded from its
file, as a user runs it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from htcgrid import Grid
from htcgrid_local.grid import LocalGrid

from .conftest import EXAMPLES, built, run_agent

HANDLER = "pricer.price_trades"


@pytest.fixture(scope="module")
def price_book() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "price_book", EXAMPLES / "quantlib" / "price_book.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small_book(price_book: ModuleType) -> list[dict[str, Any]]:
    """Forty trades of the sample book: every engine, European and American, calls and puts."""
    trades: list[dict[str, Any]] = price_book.load_book(price_book.BOOK)
    chosen = [t for t in trades if t["engine"] in ("analytic", "fd")][:28]
    for engine in ("baw", "bjerksund_stensland", "qdfp"):
        chosen += [t for t in trades if t["engine"] == engine][:4]
    return chosen


@pytest.fixture(scope="module")
def quantlib_agent(runtime_grid: LocalGrid) -> Iterator[None]:
    bootstrap = built("quantlib") / "bootstrap"
    with run_agent(runtime_grid, "--bootstrap", str(bootstrap), "--handler", HANDLER, slots=2):
        yield


@pytest.mark.usefixtures("quantlib_agent")
def test_the_runtime_prices_a_book_and_every_price_checks_out(
    client: Grid, price_book: ModuleType, small_book: list[dict[str, Any]]
) -> None:
    report = price_book.price_book(client, small_book, bucket=4, timeout_s=120)
    assert report.failed_tasks == []
    assert report.wrong == {}
    assert report.correct == len(small_book) == 40
    assert {p["engine"] for p in report.prices.values()} == {
        "analytic",
        "fd",
        "baw",
        "bjerksund_stensland",
        "qdfp",
    }


@pytest.mark.usefixtures("quantlib_agent")
def test_a_bad_trade_fails_its_task_once_naming_the_field(
    client: Grid, small_book: list[dict[str, Any]]
) -> None:
    bad = {**small_book[0], "volatility": -0.2}
    with client.open_session() as session:
        session.submit([{"trades": [small_book[1], bad]}], max_attempts=3)
        [done] = session.wait(timeout=60)
    assert done.error is not None
    assert done.error.type == "PermanentTaskError"
    assert done.error.message.endswith("trades[1].volatility: -0.2 is not in (0, 5]")
    assert done.error.attempt == 1  # not retried


def test_the_check_flags_a_price_that_is_off_or_priced_another_way(
    price_book: ModuleType, small_book: list[dict[str, Any]]
) -> None:
    # GIVEN what the runtime would return for a European and an American trade
    european = next(t for t in small_book if t["engine"] == "analytic")
    american = next(t for t in small_book if t["engine"] == "fd")

    def priced(trade: dict[str, Any]) -> dict[str, Any]:
        reference = price_book.quantlib_price(trade)
        result = {
            "id": trade["id"],
            "engine": trade["engine"],
            "npv": reference.pop("npv"),
            "greeks": reference,
        }
        if trade["engine"] == "fd":
            result["grid"] = {**price_book.DEFAULT_GRID, **trade.get("grid", {})}
        return result

    assert price_book.check(european, priced(european)) == []
    assert price_book.check(american, priced(american)) == []
    # WHEN a number is off by ten times the tolerance, a Greek is missing, or the grid differs
    off = priced(european)
    off["npv"] *= 1 + 10 * price_book.AGREEMENT.relative
    missing = priced(european)
    del missing["greeks"]["vega"]
    regridded = priced(american)
    regridded["grid"] = {**regridded["grid"], "space_steps": regridded["grid"]["space_steps"] + 1}
    # THEN the check says what is wrong
    assert any(p.startswith("npv ") for p in price_book.check(european, off))
    assert price_book.check(european, missing) != []
    assert any("grid" in p for p in price_book.check(american, regridded))
    # AND a price made on another grid is caught by its numbers, even under the right echo
    misled = {**priced({**american, "grid": regridded["grid"]}), "grid": priced(american)["grid"]}
    assert any(p.startswith("npv ") for p in price_book.check(american, misled))
