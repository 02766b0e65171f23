"""The bench's task handler: it reports when it ran and the CPU it used, so the bench can split
a task's latency (handler start and end) and subtract the handler's own CPU from the agent's."""

from __future__ import annotations

import time
from typing import Any


def timed(event: dict[str, Any], context: Any) -> dict[str, float]:
    """Sleep ``event["sleep"]`` seconds (if given); return wall-clock start and end and the
    process CPU seconds the call took."""
    started_at, cpu_started = time.time(), time.process_time()
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    return {
        "started_at": started_at,
        "finished_at": time.time(),
        "cpu_s": time.process_time() - cpu_started,
    }
