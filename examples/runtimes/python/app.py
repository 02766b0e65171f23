"""A Lambda Python handler as any Lambda function has it: nothing in it knows about htcgrid.

awslambdaric (the runtime interface client of AWS's Python images) runs it unmodified, on Lambda
or as an htcgrid worker. The event's ``action`` picks what it does, so one handler shows each
outcome the grid records: a result computed from the event, an error (retried, or permanent),
a deadline overrun, and what the context carries.
"""

from __future__ import annotations

import os
import time
from typing import Any


class PermanentTaskError(Exception):
    """An error no retry can help: the grid fails the task at once when a runtime reports an
    error of this name."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action", "square")
    if action == "square":
        value = event["value"]
        return {"value": value, "square": value * value, "runtime": "python"}
    if action == "fail":
        raise ValueError(event.get("message", "the handler failed"))
    if action == "fail_permanently":
        raise PermanentTaskError(event.get("message", "the handler failed for good"))
    if action == "sleep":
        time.sleep(event["seconds"])
        return {"slept_s": event["seconds"]}
    if action == "context":
        client_context = context.client_context
        return {
            "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "custom": client_context.custom if client_context is not None else None,
            "function_name": context.function_name,
            "invoked_function_arn": context.invoked_function_arn,
            "pid": os.getpid(),
        }
    raise ValueError(
        f"action: {action!r} is not one of square, fail, fail_permanently, sleep, context"
    )
