"""In-memory ``TaskQueues``: task queues by priority, their DLQs, and result queues by URL.

Messages received stay hidden until deleted or made visible again (no clock: a test that
wants a message back hands it back). Delays are recorded, not waited for.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from htcgrid_core.errors import QueueMissingError
from htcgrid_core.models import ResultNotice, TaskMessage
from htcgrid_core.queues import ReceivedTask

#: Where the fake's queues live: an SQS-shaped URL, so result-queue URLs derive as on AWS.
BASE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012"


@dataclass
class _Message:
    message_id: str
    body: str
    delay_s: int = 0
    receive_count: int = 0
    receipt_handle: str | None = None


class FakeQueues:
    """Task queues, dead-letter queues and result queues, in memory. Thread-safe."""

    def __init__(self, queue_prefix: str = "grid", priority_levels: int = 3) -> None:
        self.priority_levels = priority_levels
        self._prefix = queue_prefix
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._queues: dict[str, list[_Message]] = {}
        for priority in range(priority_levels):
            self._queues[self.task_queue_url(priority)] = []
            self._queues[self.dead_letter_queue_url(priority)] = []
        #: Notices sent to each result queue that exists (``open_result_queue``).
        self.notices: dict[str, list[ResultNotice]] = {}

    def task_queue_url(self, priority: int) -> str:
        return f"{BASE_URL}/{self._prefix}-p{priority}"

    def dead_letter_queue_url(self, priority: int) -> str:
        return f"{BASE_URL}/{self._prefix}-p{priority}-dlq"

    def dispatch(self, messages: Sequence[TaskMessage], delay_s: int | Sequence[int] = 0) -> None:
        delays = [delay_s] * len(messages) if isinstance(delay_s, int) else list(delay_s)
        for message, delay in zip(messages, delays, strict=True):
            self.send(self.task_queue_url(message.priority), message.model_dump_json(), delay)

    def receive_from(
        self,
        url: str,
        max_messages: int,
        wait_s: int = 0,
        visibility_timeout_s: int | None = None,
    ) -> list[ReceivedTask]:
        received = []
        with self._lock:
            visible = [m for m in self._queues[url] if m.receipt_handle is None]
            for message in visible[: max(1, min(max_messages, 10))]:
                message.receive_count += 1
                message.receipt_handle = f"{message.message_id}/{next(self._ids)}"
                received.append((message, message.receipt_handle, message.receive_count))
        return [_received(url, *entry) for entry in received]

    def make_visible(self, queue_url: str, receipt_handles: Sequence[str]) -> None:
        with self._lock:
            for message in self._queues[queue_url]:
                if message.receipt_handle in receipt_handles:
                    message.receipt_handle = None

    def delete(self, queue_url: str, receipt_handles: Sequence[str]) -> None:
        with self._lock:
            self._queues[queue_url] = [
                m for m in self._queues[queue_url] if m.receipt_handle not in receipt_handles
            ]

    def depth(self, url: str) -> tuple[int, int]:
        with self._lock:
            messages = self._queues[url]
            hidden = sum(m.receipt_handle is not None or m.delay_s > 0 for m in messages)
            return len(messages) - hidden, hidden

    def notify(self, queue_url: str, notices: Sequence[ResultNotice]) -> None:
        with self._lock:
            if queue_url not in self.notices:
                raise QueueMissingError(f"{queue_url} does not exist")
            self.notices[queue_url].extend(notices)

    # -- for tests ---------------------------------------------------------------------------

    def send(self, url: str, body: str, delay_s: int = 0) -> None:
        """Put a message body on the queue at ``url`` (a DLQ's, to dead-letter it)."""
        with self._lock:
            self._queues[url].append(_Message(f"m{next(self._ids)}", body, delay_s))

    def open_result_queue(self, session_id: str) -> str:
        """Create a session's result queue, as the session function does; its URL."""
        url = f"{BASE_URL}/{self._prefix}_s_{session_id}"
        with self._lock:
            self.notices.setdefault(url, [])
        return url

    def messages(self, url: str) -> list[tuple[TaskMessage, int]]:
        """The task messages on the queue at ``url``, each with its delay, oldest first."""
        with self._lock:
            return [(TaskMessage.model_validate_json(m.body), m.delay_s) for m in self._queues[url]]


def _received(url: str, message: _Message, handle: str, count: int) -> ReceivedTask:
    task: TaskMessage | None = None
    problem: str | None = None
    try:
        task = TaskMessage.model_validate_json(message.body)
    except ValidationError as error:
        problem = f"not a task message: {error.errors()[0]['msg']}"
    return ReceivedTask(
        message=task,
        body=message.body,
        problem=problem,
        queue_url=url,
        receipt_handle=handle,
        receive_count=count,
        message_id=message.message_id,
    )
