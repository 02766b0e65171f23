"""The task queues (one per priority level) and the sessions' result queues, on SQS.

Sends, receives and deletes are batched ten at a time and split so a batch never exceeds
SQS's 256 KiB request size; entries SQS reports as failed are re-sent with backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from htcgrid_core import aws
from htcgrid_core.errors import QueueMissingError, RetryableError
from htcgrid_core.models import ResultNotice, TaskMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: SQS batch limits: 10 entries and 256 KiB per request (we keep a margin for the envelope).
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 250 * 1024
_RESEND_ATTEMPTS = 8


@dataclass(frozen=True)
class ReceivedTask:
    """A task message as an agent receives it. ``message`` is None for a body that is not a
    task message; ``problem`` then says why (the agent leaves it to the queue's DLQ)."""

    message: TaskMessage | None
    body: str
    problem: str | None
    queue_url: str
    receipt_handle: str
    receive_count: int
    message_id: str = ""
    #: When the message was first sent (epoch seconds), as SQS says.
    sent_at: float = 0.0
    #: When this receive returned it (epoch seconds, the receiver's clock).
    received_at: float = 0.0


def _batches(bodies: Sequence[str]) -> list[list[tuple[int, str]]]:
    """Group bodies into batches within SQS's entry and byte limits, keeping their indices."""
    batches: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    size = 0
    for index, body in enumerate(bodies):
        length = len(body.encode())
        if current and (len(current) == MAX_BATCH_ENTRIES or size + length > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append((index, body))
        size += length
    if current:
        batches.append(current)
    return batches


class Queues:
    """SQS access for the grid: task queues by priority, and any queue by URL."""

    def __init__(self, client: SQSClient, queue_prefix: str, priority_levels: int) -> None:
        self._client = client
        self._prefix = queue_prefix
        self.priority_levels = priority_levels
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def task_queue_url(self, priority: int) -> str:
        """URL of the task queue for ``priority`` (looked up once, then cached)."""
        return self._url(f"{self._prefix}-p{priority}")

    def dead_letter_queue_url(self, priority: int) -> str:
        """URL of the DLQ of ``priority``'s task queue."""
        return self._url(f"{self._prefix}-p{priority}-dlq")

    def _url(self, name: str) -> str:
        with self._lock:
            if name not in self._urls:
                self._urls[name] = self._client.get_queue_url(QueueName=name)["QueueUrl"]
            return self._urls[name]

    def send_bodies(
        self, queue_url: str, bodies: Sequence[str], delay_s: int | Sequence[int] = 0
    ) -> None:
        """Send message bodies in as few batched requests as SQS allows, after ``delay_s``
        (one delay for all, or one per body)."""
        delays = [delay_s] * len(bodies) if isinstance(delay_s, int) else list(delay_s)

        def send(batch: list[tuple[int, str]]) -> None:
            entries: list[Any] = [
                {"Id": str(index), "MessageBody": body, "DelaySeconds": delays[index]}
                for index, body in batch
            ]
            for attempt in range(_RESEND_ATTEMPTS):
                response = self._client.send_message_batch(QueueUrl=queue_url, Entries=entries)
                failed = {f["Id"] for f in response.get("Failed", [])}
                permanent = [f for f in response.get("Failed", []) if f.get("SenderFault")]
                if permanent:
                    raise RetryableError(f"SQS rejected messages: {permanent[0].get('Message')}")
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    return
                aws.pause_before_resend(attempt)
            raise RetryableError(f"{len(entries)} messages still unsent to {queue_url}")

        aws.in_parallel(send, _batches(bodies))

    def dispatch(self, messages: Sequence[TaskMessage], delay_s: int | Sequence[int] = 0) -> None:
        """Enqueue task messages on the queue of each one's priority (after ``delay_s``: one
        delay for all, or one per message)."""
        delays = [delay_s] * len(messages) if isinstance(delay_s, int) else list(delay_s)
        by_priority: dict[int, tuple[list[str], list[int]]] = {}
        for message, delay in zip(messages, delays, strict=True):
            bodies, waits = by_priority.setdefault(message.priority, ([], []))
            bodies.append(message.model_dump_json())
            waits.append(delay)
        for priority in sorted(by_priority, reverse=True):
            bodies, waits = by_priority[priority]
            self.send_bodies(self.task_queue_url(priority), bodies, waits)

    def receive_tasks(self, priority: int, max_messages: int, wait_s: int) -> list[ReceivedTask]:
        """Up to ``max_messages`` task messages from one priority's queue (long poll ``wait_s``).

        A body that is not a valid task message comes back with ``message=None`` and the
        parse error, so one bad message never loses the others received with it.
        """
        return self.receive_from(self.task_queue_url(priority), max_messages, wait_s)

    def receive_from(
        self,
        url: str,
        max_messages: int,
        wait_s: int = 0,
        visibility_timeout_s: int | None = None,
    ) -> list[ReceivedTask]:
        """Up to ``max_messages`` (at most 10) task messages from the queue at ``url``."""
        extra: dict[str, Any] = {}
        if visibility_timeout_s is not None:
            extra["VisibilityTimeout"] = visibility_timeout_s
        response = self._client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(max_messages, MAX_BATCH_ENTRIES)),
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            **extra,
        )
        received = []
        received_at = time.time()
        for raw in response.get("Messages", []):
            message: TaskMessage | None = None
            problem: str | None = None
            try:
                message = TaskMessage.model_validate_json(raw["Body"])
            except ValidationError as error:
                problem = f"not a task message: {error.errors()[0]['msg']}"
            received.append(
                ReceivedTask(
                    message=message,
                    body=raw["Body"],
                    problem=problem,
                    queue_url=url,
                    receipt_handle=raw["ReceiptHandle"],
                    receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                    message_id=raw.get("MessageId", ""),
                    sent_at=int(raw.get("Attributes", {}).get("SentTimestamp", 0)) / 1000,
                    received_at=received_at,
                )
            )
        return received

    def delete(self, queue_url: str, receipt_handles: Sequence[str]) -> None:
        """Acknowledge messages, ten per request; entries that fail transiently are retried."""
        for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": handle}
                for i, handle in enumerate(receipt_handles[start : start + MAX_BATCH_ENTRIES])
            ]
            for attempt in range(_RESEND_ATTEMPTS):
                response = self._client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
                # A receipt handle SQS calls invalid belongs to a message already deleted or
                # re-received elsewhere: nothing left to acknowledge.
                retry = {f["Id"] for f in response.get("Failed", []) if not f.get("SenderFault")}
                entries = [e for e in entries if e["Id"] in retry]
                if not entries:
                    break
                aws.pause_before_resend(attempt)

    def waiting(self, priority: int) -> int:
        """Messages in a task queue that some agent can still receive: visible now, or
        delayed (a retry's backoff). Approximate, as SQS says."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.task_queue_url(priority),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesDelayed", 0)
        )

    def depth(self, url: str) -> tuple[int, int]:
        """Messages in a queue: (visible, in flight or delayed). Approximate, as SQS says."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        hidden = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesDelayed", 0)
        )
        return int(attributes.get("ApproximateNumberOfMessages", 0)), hidden

    def make_visible(self, queue_url: str, receipt_handles: Sequence[str]) -> None:
        """Hand messages back at once, ten per request (best effort: a handle that fails comes
        back by itself when its visibility timeout ends)."""
        self.set_visibility(queue_url, receipt_handles, 0)

    def set_visibility(
        self, queue_url: str, receipt_handles: Sequence[str], timeout_s: int
    ) -> list[str]:
        """Keep held messages invisible for ``timeout_s`` more seconds (0: visible at once),
        ten per request.
        Returns the handles SQS refused: a message no longer held (deleted, or visible again
        and perhaps received elsewhere), or a transient failure the caller may try again."""
        refused: list[str] = []
        for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
            chunk = receipt_handles[start : start + MAX_BATCH_ENTRIES]
            response = self._client.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": timeout_s}
                    for i, handle in enumerate(chunk)
                ],
            )
            refused.extend(chunk[int(failed["Id"])] for failed in response.get("Failed", []))
        return refused

    def visibility_timeout(self, priority: int) -> int:
        """The visibility timeout of a priority's task queue, in seconds: how long a received
        message stays hidden before another agent may receive it."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.task_queue_url(priority), AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        return int(attributes["VisibilityTimeout"])

    def change_visibility(self, queue_url: str, receipt_handle: str, timeout_s: int) -> None:
        """Keep a held message invisible for ``timeout_s`` more seconds (0 hands it back)."""
        self._client.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=timeout_s
        )

    # -- result queues -------------------------------------------------------------------------

    def notify(self, queue_url: str, notices: Sequence[ResultNotice]) -> None:
        """Send result notices to a session's result queue. Raises ``QueueMissingError`` if
        the queue is gone (the session was closed)."""
        try:
            self.send_bodies(queue_url, [n.model_dump_json(exclude_defaults=True) for n in notices])
        except self._client.exceptions.QueueDoesNotExist:
            raise QueueMissingError(f"{queue_url} does not exist") from None
