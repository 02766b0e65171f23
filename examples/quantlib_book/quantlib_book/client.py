"""Prices the book on the grid, checks every price, and aggregates the book's value and Greeks.

    python -m quantlib_book                 # a local grid of its own: 2 agents, 1 slot each
    python -m quantlib_book --stack htcgrid # a deployed grid whose agents run the handler

The book goes in tasks of ``--bucket`` trades; each result is checked in this process against
QuantLib pricing the same task, and each European option against the Black-Scholes closed form
(checks.py). The last line says how many prices were correct and how fast the grid priced them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from htcgrid import Grid
from htcgrid.connection import GridEndpoints

from .book import BOOK, SEED, buckets, load_book, make_book
from .checks import check_price, closed_form_of
from .market import QuantLibMarket
from .pricing import price_task
from .trades import Option, parse_task

HANDLER = "quantlib_book.handler:handler"
#: Trades per task: the fastest on the local grid (README.md, "One trade a task, or a bucket").
BUCKET = 10
OPTION_GREEKS = ("delta", "gamma", "vega", "theta", "rho")


@dataclass
class BookRun:
    """A book priced on the grid: the grid's price of each trade, the tasks that failed, how
    long the grid took, and (once checked) what is wrong with each wrong or missing price."""

    book: dict[str, Any]
    payloads: dict[str, dict[str, Any]]
    prices: dict[str, Any] = field(default_factory=dict)
    failed_tasks: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    wrong: dict[str, list[str]] = field(default_factory=dict)

    @property
    def trades(self) -> int:
        return len(self.book["trades"])

    @property
    def correct(self) -> int:
        return self.trades - len(self.wrong)

    def summary(self) -> str:
        rate = self.trades / self.elapsed_s if self.elapsed_s > 0 else float("inf")
        return f"book: {self.correct}/{self.trades} prices correct, {rate:,.0f} trades/s"


def _progress(console: Console, label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} trades/s"),
        TimeElapsedColumn(),
        console=console,
    )


def price_on_grid(
    grid: Grid, book: dict[str, Any], bucket: int, console: Console, timeout_s: float = 600
) -> BookRun:
    """Submits the book, ``bucket`` trades to a task, and collects every trade's price."""
    payloads = buckets(book, bucket)
    with grid.open_session() as session, _progress(console, "pricing") as progress:
        bar = progress.add_task("trades", total=len(book["trades"]), rate="-")
        began = time.monotonic()
        task_ids = session.submit(payloads)
        run = BookRun(book, dict(zip(task_ids, payloads, strict=True)))
        for done in session.results(timeout=timeout_s):
            trades = len(run.payloads[done.task_id]["trades"])
            if not done.ok:
                error = done.error
                run.failed_tasks.append(
                    f"{done.task_id}: {error.type + ': ' + error.message if error else done.state}"
                )
            else:
                # A result is checked, not trusted: anything unexpected leaves trades unpriced.
                value: Any = done.value
                listed = value.get("prices") if isinstance(value, dict) else None
                for priced in listed if isinstance(listed, list) else []:
                    if isinstance(priced, dict) and isinstance(priced.get("id"), str):
                        run.prices[priced["id"]] = priced
            elapsed = time.monotonic() - began
            progress.update(bar, advance=trades, rate=f"{len(run.prices) / elapsed:,.0f}")
        run.elapsed_s = time.monotonic() - began
    return run


def check_run(run: BookRun, console: Console | None = None) -> None:
    """Checks every trade's price from the grid: QuantLib here prices each task's payload as
    the agent did, and the European options get the closed form too."""
    progress = _progress(console or Console(quiet=True), "checking")
    with progress:
        bar = progress.add_task("trades", total=run.trades, rate="-")
        began, checked = time.monotonic(), 0
        for payload in run.payloads.values():
            market, trades = parse_task(payload)
            references = price_task(payload)["prices"]
            quantlib = QuantLibMarket(market)
            for trade, reference in zip(trades, references, strict=True):
                priced = run.prices.get(trade.id)
                closed_form = (
                    closed_form_of(trade, market, quantlib)
                    if isinstance(trade, Option) and trade.kind == "european"
                    else None
                )
                problems = (
                    ["no price"]
                    if priced is None
                    else check_price(trade, market, priced, reference, closed_form)
                )
                if problems:
                    run.wrong[trade.id] = problems
            checked += len(trades)
            rate = f"{checked / (time.monotonic() - began):,.0f}"
            progress.update(bar, advance=len(trades), rate=rate)


def aggregate(run: BookRun) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """The book's value and Greeks by underlying (options, times their quantity) and by
    currency (every trade: value; vega and rho of the options, DV01 of swaps and bonds)."""
    market = run.book["market"]
    by_underlying: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    by_currency: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for trade in run.book["trades"]:
        priced = run.prices.get(trade["id"])
        if priced is None or trade["id"] in run.wrong:
            continue
        values = priced["values"]
        if "underlying" in trade:
            quantity = float(trade.get("quantity", 1.0))
            row = by_underlying[trade["underlying"]]
            row["trades"] += 1
            row["value"] += quantity * values["npv"]
            for name in OPTION_GREEKS:
                row[name] += quantity * values[name]
            currency = by_currency[market["underlyings"][trade["underlying"]]["currency"]]
            currency["vega"] += quantity * values["vega"]
            currency["rho"] += quantity * values["rho"]
            currency["value"] += quantity * values["npv"]
        else:
            currency = by_currency[trade["currency"]]
            currency["value"] += values["npv"]
            currency["dv01"] += values["dv01"]
        currency["trades"] += 1
    return by_underlying, by_currency


def show_aggregates(run: BookRun, console: Console) -> None:
    by_underlying, by_currency = aggregate(run)
    options = Table("underlying", "trades", "value", *OPTION_GREEKS, title="options by underlying")
    for name, row in sorted(by_underlying.items()):
        options.add_row(
            name,
            f"{row['trades']:.0f}",
            *(f"{row[column]:,.0f}" for column in ("value", *OPTION_GREEKS)),
        )
    console.print(options)
    currencies = Table("currency", "trades", "value", "vega", "rho", "dv01", title="by currency")
    for name, row in sorted(by_currency.items()):
        currencies.add_row(
            name,
            f"{row['trades']:.0f}",
            *(f"{row[column]:,.0f}" for column in ("value", "vega", "rho", "dv01")),
        )
    console.print(currencies)


@contextmanager
def local_grid(agents: int, slots: int, console: Console) -> Iterator[Grid]:
    """A local grid of its own whose agents run the handler; stopped on exit."""
    from htcgrid_local.grid import LocalGrid

    with console.status(f"starting the local grid with {agents} agents x {slots} slots"):
        local = LocalGrid(agents=agents, handler=HANDLER, slots=slots)
        local.start()
    try:
        yield Grid(GridEndpoints.for_emulator(dict(local.outputs), local.endpoint_url))
    finally:
        with console.status("stopping the local grid"):
            local.stop()


def run_book(grid: Grid, book: dict[str, Any], bucket: int, console: Console) -> BookRun:
    """Prices, checks, reports: what ``python -m quantlib_book`` does on a grid."""
    run = price_on_grid(grid, book, bucket, console)
    check_run(run, console)
    for trade_id, problems in sorted(run.wrong.items()):
        console.print(f"[red]{trade_id}[/]: " + "; ".join(problems))
    for failure in run.failed_tasks:
        console.print(f"[red]task failed[/]: {failure}")
    show_aggregates(run, console)
    console.print(
        f"{run.trades} trades in {len(run.payloads)} tasks of up to {bucket}, priced in "
        f"{run.elapsed_s:.1f} s on the grid"
    )
    return run


def measure(grid: Grid, book: dict[str, Any], sizes: list[int], console: Console) -> None:
    """Prices the book once per bucket size on the same (warm) grid: the README's table."""
    table = Table("trades per task", "tasks", "seconds", "trades/s", "correct")
    for size in sizes:
        run = price_on_grid(grid, book, size, console)
        check_run(run)
        table.add_row(
            str(size),
            str(len(run.payloads)),
            f"{run.elapsed_s:.1f}",
            f"{run.trades / run.elapsed_s:,.0f}",
            f"{run.correct}/{run.trades}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m quantlib_book", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--book", type=Path, help="a book file (default: the sample book.json)")
    parser.add_argument("--bucket", type=int, default=BUCKET, help=f"trades per task ({BUCKET})")
    parser.add_argument("--stack", help="a deployed grid's stack name (default: a local grid)")
    parser.add_argument("--agents", type=int, default=2, help="local grid: agents (2)")
    parser.add_argument("--slots", type=int, default=1, help="local grid: slots per agent (1)")
    parser.add_argument(
        "--measure", metavar="SIZES", help="price the book once per bucket size (1,5,10,...)"
    )
    parser.add_argument(
        "--write-book", type=int, metavar="COUNT", help="write a new book of COUNT trades, exit"
    )
    args = parser.parse_args(argv)
    console = Console()
    if args.write_book:
        target = args.book or BOOK
        target.write_text(json.dumps(make_book(args.write_book, SEED), indent=1) + "\n")
        console.print(f"wrote {args.write_book} trades to {target}")
        return 0
    if args.bucket < 1:
        parser.error("--bucket: must be at least 1")
    sizes = [int(size) for size in args.measure.split(",")] if args.measure else []
    if any(size < 1 for size in sizes):
        parser.error("--measure: every size must be at least 1")
    book = load_book(args.book)
    with (
        _connected(args.stack) if args.stack else local_grid(args.agents, args.slots, console)
    ) as grid:
        if sizes:
            measure(grid, book, sizes, console)
            return 0
        run = run_book(grid, book, args.bucket, console)
    print(run.summary())
    return 0 if run.correct == run.trades else 1


@contextmanager
def _connected(stack: str) -> Iterator[Grid]:
    with Grid.connect(stack) as grid:
        yield grid


if __name__ == "__main__":
    sys.exit(main())
