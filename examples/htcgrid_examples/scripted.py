"""A scripted handler for testing a grid: the payload says what the task should do.

{"value": 42}                        -> returns {"value": 42, "attempt": n, "task_id": ...}
{"sleep": 0.5}                       -> sleeps first
{"fail_attempts": 1}                 -> raises a transient error on attempts 1..n
{"fail": "permanent"}                -> raises an error that fails the task at once
{"fail": "always"}                   -> raises a transient error on every attempt
{"unserializable": true}             -> returns something JSON cannot hold
{"crash": true}                      -> kills its own process
{"bytes": 20000}                     -> returns a result of about that many bytes
{"trace": true}                      -> adds the trace header it runs in (_X_AMZN_TRACE_ID)
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any


class TransientTaskError(RuntimeError):
    """A failure the grid should retry."""


class PermanentScriptedError(RuntimeError):
    """A failure the grid must not retry (``retryable = False`` is the agent's convention)."""

    retryable = False


def handler(event: dict[str, Any], context: Any) -> Any:
    attempt = int(getattr(context, "attempt", 1))
    if event.get("touch"):
        with open(event["touch"], "a", encoding="utf-8") as marker:
            marker.write(f"{context.aws_request_id} {attempt}\n")
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if event.get("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    if event.get("fail") == "permanent":
        raise PermanentScriptedError(f"scripted permanent failure of {context.aws_request_id}")
    if event.get("fail") == "always" or attempt <= int(event.get("fail_attempts", 0)):
        raise TransientTaskError(f"scripted failure on attempt {attempt}")
    if event.get("unserializable"):
        return {"value": object()}
    result: dict[str, Any] = {
        "value": event.get("value"),
        "attempt": attempt,
        "task_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    if event.get("trace"):
        result["trace_id"] = os.environ.get("_X_AMZN_TRACE_ID")
    if event.get("bytes"):
        result["padding"] = "x" * int(event["bytes"])
    return result
