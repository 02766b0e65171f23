"""The grid's entry point: ``handler(event, context)`` prices one task's trades.

The agent runs it in-process (``--handler quantlib_book.handler:handler``), and so would Lambda.
A payload the pricer refuses, or a trade QuantLib cannot price, fails the task for good
(``PermanentTaskError``): the same payload would fail again."""

from __future__ import annotations

from typing import Any

from .pricing import price_task


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"market": {...}, "trades": [...]}`` in; ``{"quantlib": version, "prices": [...]}``
    out, one price per trade in the task's order."""
    return price_task(event)
