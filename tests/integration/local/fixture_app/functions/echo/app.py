"""Fixture function: returns its input with values only the Lambda environment can supply."""

from __future__ import annotations

import os
from typing import Any

import fixture_layer


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        **event.get("input", {}),
        "table": event.get("table"),
        "greeting": os.environ["FIXTURE_GREETING"],
        "layer": fixture_layer.MARKER,
        "function_name": context.function_name,
        "remaining_ms_positive": context.get_remaining_time_in_millis() > 0,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
    }
