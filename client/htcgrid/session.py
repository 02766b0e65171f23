"""A session: a group of tasks submitted together and whose results come back together.

Results stream from the session's own SQS result queue, which agents notify in batches as
tasks finish: no per-task polling, and a waiting client costs one long poll per 20 s. If
notices stop while tasks are outstanding (a notice lost with a crashed agent), the session
reconciles by reading the outstanding tasks from the status function.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pydantic import JsonValue, ValidationError

from htcgrid.errors import ResultsTimeoutError
from htcgrid.grid import Grid
from htcgrid_core import keys
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    MAX_TASKS_PER_SUBMISSION,
    CancelReport,
    Data,
    InlineData,
    ResultNotice,
    SessionStatus,
    Submission,
    TaskError,
    TaskResult,
    TaskSpec,
    TaskState,
)
from htcgrid_core.payloads import payload_key, to_json_bytes

#: Keep each submission's workflow state well inside Step Functions' 256 KiB payload limit;
#: a task costs its payload plus this much of task message around it.
SUBMISSION_BUDGET_BYTES = 200 * 1024
TASK_OVERHEAD_BYTES = 450
#: Submissions of one ``submit`` call in flight at once. Each is a synchronous Express execution
#: of some 100-300 ms on AWS whatever its size, so a client's submit rate grows with this.
SUBMIT_CONCURRENCY = 8
#: With tasks outstanding and no notice for this long, read them from the table.
RECONCILE_AFTER_S = 15.0
#: Long-poll wait on the result queue (SQS's maximum).
RESULT_POLL_S = 20


@dataclass(frozen=True)
class Completed:
    """A finished task as the client hands it over: the result document and its value."""

    result: TaskResult
    value: JsonValue
    #: When this client saw the result, and when it submitted the task (its own clock).
    received_at: float
    submitted_at: float
    #: When the agent sent the notice that carried the result (None if read from the table).
    notified_at: float | None = None

    @property
    def task_id(self) -> str:
        return self.result.task_id

    @property
    def state(self) -> TaskState:
        return self.result.state

    @property
    def ok(self) -> bool:
        return self.result.state is TaskState.SUCCEEDED

    @property
    def error(self) -> TaskError | None:
        return self.result.error

    @property
    def latency_s(self) -> float:
        """Submit to result, as this client saw it."""
        return self.received_at - self.submitted_at


class Session:
    """Submit tasks, then iterate their results as they complete. Use as a context manager so
    the result queue is removed when done."""

    def __init__(self, grid: Grid, session_id: str, result_queue_url: str | None) -> None:
        self.grid = grid
        self.id = session_id
        self.result_queue_url = result_queue_url
        self._outstanding: dict[str, float] = {}
        self._seen: set[str] = set()
        self._reconcile_due = False

    @classmethod
    def open(cls, grid: Grid, session_id: str, stream_results: bool) -> Session:
        """Create the session's result queue (TLS-only, encrypted) if it streams results."""
        url = None
        if stream_results:
            sqs = grid.endpoints.client("sqs")
            name = f"{grid.settings.queue_prefix}-session-{session_id}"[:80]
            url = sqs.create_queue(
                QueueName=name,
                Attributes={
                    "SqsManagedSseEnabled": "true",
                    "VisibilityTimeout": "60",
                    "MessageRetentionPeriod": str(grid.settings.session_queue_retention_s),
                },
            )["QueueUrl"]
        return cls(grid, session_id, url)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the result queue. Results stay readable through the status function."""
        if self.result_queue_url:
            self.grid.endpoints.client("sqs").delete_queue(QueueUrl=self.result_queue_url)
            self.result_queue_url = None

    # -- submitting -----------------------------------------------------------------------------

    def submit(
        self,
        payloads: Iterable[JsonValue],
        *,
        priority: int | None = None,
        timeout_s: int | None = None,
        max_attempts: int | None = None,
        submission_token: str | None = None,
    ) -> list[str]:
        """Submit one task per payload; returns their task ids in order.

        Payloads above the grid's inline threshold are uploaded to S3 first. Large lists are
        split into several submissions, each idempotent on its token: resubmitting with the same
        ``submission_token`` returns the same ids and creates no duplicate tasks.
        """
        levels = self.grid.settings.priority_levels
        if priority is not None and not 0 <= priority < levels:
            raise InvalidSubmissionError(
                f"priority: {priority} is not a priority level of this grid (0 to {levels - 1})"
            )
        token = submission_token or uuid.uuid4().hex
        payload_list = list(payloads)
        bodies = [to_json_bytes(p, what=f"payloads[{i}]") for i, p in enumerate(payload_list)]
        threshold = self.grid.settings.inline_threshold_bytes
        chunks: list[list[int]] = [[]]
        size = 0
        for index, body in enumerate(bodies):
            cost = (len(body) if len(body) <= threshold else 300) + TASK_OVERHEAD_BYTES
            if chunks[-1] and (
                size + cost > SUBMISSION_BUDGET_BYTES or len(chunks[-1]) == MAX_TASKS_PER_SUBMISSION
            ):
                chunks.append([])
                size = 0
            chunks[-1].append(index)
            size += cost
        submissions = [
            self._submission(
                f"{token}.{n}",
                [payload_list[i] for i in chunk],
                bodies,
                chunk,
                priority,
                timeout_s,
                max_attempts,
            )
            for n, chunk in enumerate(chunks)
            if chunk
        ]

        def send(submission: Submission) -> tuple[float, list[str]]:
            sent_at = time.time()
            return sent_at, self.grid.submit_batch(submission).task_ids

        with ThreadPoolExecutor(max_workers=min(SUBMIT_CONCURRENCY, len(submissions) or 1)) as pool:
            receipts = list(pool.map(send, submissions))
        task_ids: list[str] = []
        for sent_at, ids in receipts:
            task_ids.extend(ids)
            for task_id in ids:
                if task_id not in self._seen:
                    self._outstanding.setdefault(task_id, sent_at)
        return task_ids

    def _submission(
        self,
        token: str,
        payloads: list[JsonValue],
        bodies: list[bytes],
        indices: list[int],
        priority: int | None,
        timeout_s: int | None,
        max_attempts: int | None,
    ) -> Submission:
        specs = []
        for position, (payload, index) in enumerate(zip(payloads, indices, strict=True)):
            data: Data
            if len(bodies[index]) <= self.grid.settings.inline_threshold_bytes:
                data = InlineData(inline=payload)
            else:
                task_id = keys.task_id_for(self.id, token, position)
                data = self.grid.payloads.encode(payload, payload_key(self.id, task_id))
            specs.append(
                TaskSpec(
                    payload=data, priority=priority, timeout_s=timeout_s, max_attempts=max_attempts
                )
            )
        return Submission(
            session_id=self.id,
            submission_token=token,
            tasks=specs,
            result_queue_url=self.result_queue_url,
        )

    # -- results --------------------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        """Tasks submitted through this object whose results it has not yet yielded."""
        return len(self._outstanding)

    def status(self, *, exact: bool = False) -> SessionStatus:
        """Counts per state, from the grid (see ``Grid.status``)."""
        return self.grid.status(self.id, exact=exact)

    def cancel(self, task_ids: list[str] | None = None) -> CancelReport:
        """Cancel the named tasks, or all of this session's unfinished tasks. Their results
        (state CANCELLED) still come out of ``results()``."""
        report = self.grid.cancel(self.id, task_ids)
        self._reconcile_due = True  # no agent reports a task it never ran
        return report

    def results(self, timeout: float | None = None) -> Iterator[Completed]:
        """Yield each submitted task's result once, in completion order, until none is
        outstanding. Raises ``ResultsTimeoutError`` if ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_progress = time.monotonic()
        while self._outstanding:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise ResultsTimeoutError(f"{len(self._outstanding)} tasks still unfinished")
            if self.result_queue_url:
                wait = RESULT_POLL_S if remaining is None else int(min(RESULT_POLL_S, remaining))
                wait = min(
                    wait, max(0, int(RECONCILE_AFTER_S - (time.monotonic() - last_progress)))
                )
                batch = list(self._receive(wait))
            else:
                batch = []
                time.sleep(min(1.0, remaining if remaining is not None else 1.0))
            if self._reconcile_due or (
                not batch
                and time.monotonic() - last_progress
                >= (RECONCILE_AFTER_S if self.result_queue_url else 1.0)
            ):
                self._reconcile_due = False
                batch += self._reconcile()
                last_progress = time.monotonic()
            for completed in batch:
                last_progress = time.monotonic()
                yield completed

    def wait(self, timeout: float | None = None) -> list[Completed]:
        """Block until every submitted task has finished; their results, in completion order."""
        return list(self.results(timeout))

    async def aresults(self, timeout: float | None = None) -> AsyncIterator[Completed]:
        """``results()`` for asyncio: ``async for done in session.aresults(): ...``.

        Each blocking step (a long poll of the result queue, at most 20 s) runs in a worker
        thread, so the event loop stays free while the session waits. Use one consumer per
        session: the session's bookkeeping is not shared between concurrent iterators.
        """
        iterator = self.results(timeout)
        while True:
            done = await asyncio.to_thread(next, iterator, None)
            if done is None:
                return
            yield done

    async def wait_async(self, timeout: float | None = None) -> list[Completed]:
        """``wait()`` for asyncio."""
        return [done async for done in self.aresults(timeout)]

    def _receive(self, wait_s: int) -> Iterator[Completed]:
        sqs = self.grid.endpoints.client("sqs")
        response = sqs.receive_message(
            QueueUrl=self.result_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
        )
        messages = response.get("Messages", [])
        changed: list[str] = []
        completed: list[Completed] = []
        for message in messages:
            try:
                notice = ResultNotice.model_validate_json(message["Body"])
            except ValidationError:
                continue  # not ours to read; deleted below like every other message
            completed.extend(self._accept(notice.results, notice.sent_at))
            changed.extend(t for t in notice.changed if t in self._outstanding)
        if changed:
            completed.extend(self._fetch(changed))
        if messages:
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            sqs.delete_message_batch(QueueUrl=self.result_queue_url, Entries=entries)
        return iter(completed)

    def _reconcile(self) -> list[Completed]:
        return self._fetch(list(self._outstanding))

    def _fetch(self, task_ids: list[str]) -> list[Completed]:
        completed: list[Completed] = []
        for start in range(0, len(task_ids), 100):
            page = self.grid.fetch_results(self.id, task_ids[start : start + 100])
            completed.extend(self._accept(page.results))
        return completed

    def _accept(
        self, results: Iterable[TaskResult], notified_at: float | None = None
    ) -> list[Completed]:
        """Each outstanding task's result, once: notices are at-least-once, so results of tasks
        already yielded (or not submitted here) are dropped."""
        accepted = []
        for result in results:
            submitted_at = self._outstanding.pop(result.task_id, None)
            if submitted_at is None:
                continue
            self._seen.add(result.task_id)
            value = self.grid.payloads.decode(result.result) if result.result is not None else None
            accepted.append(Completed(result, value, time.time(), submitted_at, notified_at))
        return accepted
