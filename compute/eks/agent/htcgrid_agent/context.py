"""The context object a handler receives: Lambda's interface, filled from the task."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskContext:
    """Lambda-compatible context. ``aws_request_id`` is the task id; the remaining time counts
    down to the task's timeout."""

    function_name: str
    aws_request_id: str
    session_id: str
    attempt: int
    memory_limit_in_mb: int
    deadline: float
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:htcgrid-agent"
    log_group_name: str = "/htcgrid/agent"
    log_stream_name: str = "htcgrid-agent"
    #: The attempt's X-Ray trace header: the task's own (its submission's trace), or a new one.
    #: Handlers find it where Lambda puts it, in ``_X_AMZN_TRACE_ID`` (``traces.TRACE_HEADER_ENV``).
    trace_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))
