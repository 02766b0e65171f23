"""The sample book (book.json, next to this module): its market and trades, and how it was made
(``python -m quantlib_book --write-book``), and the tasks it becomes, a bucket of trades each."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

#: The sample book, package data (pyproject.toml).
BOOK = Path(__file__).with_name("book.json")
VALUATION_DATE = date(2025, 1, 15)
#: The seed book.json was drawn with.
SEED = 14
MARKET: dict[str, Any] = {
    "valuation_date": VALUATION_DATE.isoformat(),
    # Deposit rates and par swap rates, as decimals (0.0435 is 4.35 %).
    "curves": {
        "USD": {
            "deposits": {"1M": 0.0433, "3M": 0.0435, "6M": 0.0430},
            "swaps": {
                "1Y": 0.0415,
                "2Y": 0.0395,
                "3Y": 0.0385,
                "5Y": 0.0380,
                "7Y": 0.0385,
                "10Y": 0.0395,
                "15Y": 0.0405,
                "20Y": 0.0408,
                "30Y": 0.0400,
            },
        },
        "EUR": {
            "deposits": {"1M": 0.0290, "3M": 0.0280, "6M": 0.0270},
            "swaps": {
                "1Y": 0.0255,
                "2Y": 0.0235,
                "3Y": 0.0230,
                "5Y": 0.0235,
                "7Y": 0.0245,
                "10Y": 0.0255,
                "15Y": 0.0265,
                "20Y": 0.0262,
                "30Y": 0.0250,
            },
        },
    },
    "underlyings": {
        "ACME": {"currency": "USD", "spot": 182.40, "dividend": 0.006, "volatility": 0.27},
        "GLOBEX": {"currency": "USD", "spot": 96.15, "dividend": 0.021, "volatility": 0.22},
        "INITECH": {"currency": "USD", "spot": 41.80, "dividend": 0.0, "volatility": 0.45},
        "STARK": {"currency": "USD", "spot": 415.00, "dividend": 0.011, "volatility": 0.31},
        "UMBRELLA": {"currency": "EUR", "spot": 73.55, "dividend": 0.032, "volatility": 0.19},
        "TYRELL": {"currency": "EUR", "spot": 128.90, "dividend": 0.014, "volatility": 0.25},
        "SOYLENT": {"currency": "EUR", "spot": 22.35, "dividend": 0.045, "volatility": 0.17},
        "WAYSTAR": {"currency": "EUR", "spot": 310.20, "dividend": 0.008, "volatility": 0.35},
    },
}
#: How many trades of each kind a book of ``count`` holds, as shares of it.
MIX = {"european": 30, "american": 20, "bermudan": 16, "barrier": 26, "swap": 4, "bond": 4}
GRIDS = [{"time_steps": 100, "space_steps": 100}, {"time_steps": 200, "space_steps": 200}]


def make_book(count: int, seed: int = SEED) -> dict[str, Any]:
    """A book of ``count`` trades in the proportions of ``MIX``, drawn with ``seed``."""
    draw = random.Random(seed)  # noqa: S311 - sample data, not cryptography
    kinds = [kind for kind, share in MIX.items() for _ in range(share)]
    trades = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        trade_id = f"{kind}-{index:04d}"
        if kind == "swap":
            trades.append(_swap(draw, trade_id))
        elif kind == "bond":
            trades.append(_bond(draw, trade_id))
        else:
            trades.append(_option(draw, trade_id, kind))
    return {"market": MARKET, "trades": trades}


def _option(draw: random.Random, trade_id: str, kind: str) -> dict[str, Any]:
    underlying = draw.choice(sorted(MARKET["underlyings"]))
    spot = MARKET["underlyings"][underlying]["spot"]
    maturity = VALUATION_DATE + timedelta(days=draw.randint(30, 3 * 365))
    trade: dict[str, Any] = {
        "id": trade_id,
        "kind": kind,
        "underlying": underlying,
        "type": draw.choice(["call", "put"]),
        "strike": round(spot * draw.uniform(0.8, 1.2), 2),
        "maturity": maturity.isoformat(),
        "quantity": draw.choice([-1, 1]) * draw.randint(1, 20) * 100,
    }
    if kind in ("american", "bermudan"):
        trade["grid"] = draw.choice(GRIDS)
    if kind == "bermudan":
        # Quarterly, back from the maturity: the exercise dates a callable structure has.
        dates, day, months = [], maturity, 0
        while day > VALUATION_DATE + timedelta(days=14):
            dates.append(day)
            months += 3
            year, month = divmod(maturity.month - 1 - months, 12)
            day = maturity.replace(
                year=maturity.year + year, month=month + 1, day=min(maturity.day, 28)
            )
        trade["exercise_dates"] = [d.isoformat() for d in reversed(dates)]
    if kind == "barrier":
        trade["barrier_type"] = draw.choice(
            ["down_and_out", "down_and_in", "up_and_out", "up_and_in"]
        )
        down = trade["barrier_type"].startswith("down")
        trade["barrier"] = round(
            spot * (draw.uniform(0.7, 0.92) if down else draw.uniform(1.08, 1.35)), 2
        )
        trade["rebate"] = draw.choice([0.0, 0.0, 0.0, 1.0])
    return trade


def _swap(draw: random.Random, trade_id: str) -> dict[str, Any]:
    currency = draw.choice(["USD", "EUR"])
    tenor = draw.choice([2, 3, 5, 7, 10, 20, 30])
    par = MARKET["curves"][currency]["swaps"][f"{tenor}Y"]
    return {
        "id": trade_id,
        "kind": "swap",
        "currency": currency,
        "notional": draw.randint(1, 50) * 1_000_000,
        "fixed_rate": round(par + draw.uniform(-0.005, 0.005), 5),
        "tenor_years": tenor,
        "side": draw.choice(["payer", "receiver"]),
    }


def _bond(draw: random.Random, trade_id: str) -> dict[str, Any]:
    issue = date(draw.randint(2015, 2024), draw.randint(1, 12), 15)
    return {
        "id": trade_id,
        "kind": "bond",
        "currency": draw.choice(["USD", "EUR"]),
        "face": draw.randint(1, 20) * 1_000_000,
        "coupon": round(draw.uniform(0.01, 0.06), 4),
        "issue": issue.isoformat(),
        "maturity": issue.replace(year=issue.year + draw.choice([5, 10, 20, 30])).isoformat()
        if issue.year >= 2021
        else issue.replace(year=issue.year + 30).isoformat(),
    }


def load_book(path: Path | None = None) -> dict[str, Any]:
    """The book at ``path``, or the sample book.json."""
    if path is None:
        path = BOOK
    text = path.read_text(encoding="utf-8")
    book: dict[str, Any] = json.loads(text)
    if not isinstance(book.get("trades"), list) or not book["trades"]:
        raise ValueError(f"{path}: 'trades' must list at least one trade")
    if not isinstance(book.get("market"), dict):
        raise ValueError(f"{path}: 'market' must be an object")
    return book


def buckets(book: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """The tasks' payloads: the book's trades in order, ``size`` to a task, each with the
    market (a couple of kilobytes: a task carries all it needs)."""
    trades = book["trades"]
    return [
        {"market": book["market"], "trades": trades[i : i + size]}
        for i in range(0, len(trades), size)
    ]
