"""The agent's structured logger (JSON lines). Every line a slot thread logs while it works on
a task carries the task's ``session_id``, ``task_id`` and ``attempt`` (``task_keys``), the keys
the Lambdas log too, so one CloudWatch Logs Insights query follows a task across both
(docs/monitoring.md). Lines logged elsewhere about a task name it with ``task_fields``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger

from htcgrid_core.models import TaskMessage

logger = Logger(service="htcgrid-agent")

#: The keys that name a task's attempt on every line about it.
TASK_KEYS = ("session_id", "task_id", "attempt")


def task_fields(session_id: str, task_id: str, attempt: int) -> dict[str, Any]:
    """The keys naming one attempt, for a line logged off its slot's thread."""
    return {"session_id": session_id, "task_id": task_id, "attempt": attempt}


@contextmanager
def task_keys(message: TaskMessage | None) -> Iterator[None]:
    """Every line this thread logs meanwhile names ``message``'s attempt (nothing is added for
    a message that is not a task). The keys are the thread's own: slots log side by side."""
    if message is None:
        yield
        return
    logger.thread_safe_append_keys(
        **task_fields(message.session_id, message.task_id, message.attempt)
    )
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(list(TASK_KEYS))


def log_attempt_succeeded(
    handler_s: float, queue_wait_s: float | None, start_delay_s: float | None
) -> None:
    """One line per attempt that succeeded, with its timings (seconds): slowest tasks, waits."""
    logger.info(
        "attempt succeeded",
        extra={
            "handler_s": round(handler_s, 3),
            "queue_wait_s": None if queue_wait_s is None else round(queue_wait_s, 3),
            "start_delay_s": None if start_delay_s is None else round(start_delay_s, 3),
        },
    )


def log_attempt_failed(error_type: str, error_message: str, retryable: bool) -> None:
    """One line per attempt that failed, with its error: why a task failed."""
    logger.warning(
        "attempt failed",
        extra={
            "error_type": error_type,
            "error_message": error_message,
            "retryable": retryable,
        },
    )
