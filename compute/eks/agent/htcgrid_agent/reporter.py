"""The reporter: batches what finished tasks owe SQS.

Slots hand it two things per finished task: a result notice for the session's result queue (if
the session has one) and the message to delete. It sends all notices first, then deletes, each
batched: a message is only acknowledged once its notice is out, so a crash in between
re-delivers the message and its notice is sent again. It flushes every ``flush_interval_s``, as
soon as a queue has ``FLUSH_AT_DELETES`` acknowledgements pending (a busy agent: full batches,
and one notice per session for many results), or when the agent falls idle (a lone task's
result goes out at once).

It also counts the tasks this agent finished, per session and state, and adds them to the
sessions' counters at most every ``COUNTER_FLUSH_S``: one write per session per second per
agent, whatever the throughput, which keeps counters far below 0.1 write unit per task.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

from botocore.exceptions import BotoCoreError, ClientError

from htcgrid_agent.log import logger
from htcgrid_agent.metrics import NOTICES
from htcgrid_core.counters import SessionCounters
from htcgrid_core.errors import RetryableError
from htcgrid_core.models import ResultNotice, TaskResult, TaskState
from htcgrid_core.queues import MAX_BATCH_ENTRIES, Queues

#: Acknowledgements pending for one queue that trigger a flush: three full delete batches.
FLUSH_AT_DELETES = 3 * MAX_BATCH_ENTRIES
#: Keep each notice well under SQS's 256 KiB message size.
MAX_NOTICE_BYTES = 200 * 1024
#: Longest a finished task waits to be counted in its session's counters, in seconds.
COUNTER_FLUSH_S = 1.0


def pack_notices(results: list[TaskResult], changed: list[str]) -> list[ResultNotice]:
    """Group results into as few notices as fit SQS's message size, stamped as sent now."""
    sent_at = time.time()
    notices: list[ResultNotice] = []
    batch: list[TaskResult] = []
    size = 0
    for result in results:
        length = len(result.model_dump_json())
        if batch and size + length > MAX_NOTICE_BYTES:
            notices.append(ResultNotice(results=batch, sent_at=sent_at))
            batch, size = [], 0
        batch.append(result)
        size += length
    if batch or changed:
        notices.append(ResultNotice(results=batch, changed=changed, sent_at=sent_at))
    return notices


class Reporter:
    """Collects notices and acknowledgements from slot threads; a thread of its own sends them."""

    def __init__(
        self, queues: Queues, flush_interval_s: float, counters: SessionCounters | None = None
    ) -> None:
        self._queues = queues
        self._interval = flush_interval_s
        self._counters = counters
        self._counts: defaultdict[str, Counter[TaskState]] = defaultdict(Counter)
        self._counted_at = time.monotonic()
        self._lock = threading.Lock()
        self._results: defaultdict[str, list[TaskResult]] = defaultdict(list)
        self._changed: defaultdict[str, list[str]] = defaultdict(list)
        self._deletes: defaultdict[str, list[str]] = defaultdict(list)
        self._stop = threading.Event()
        self._flush_now = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    @property
    def alive(self) -> bool:
        """Whether its thread runs (liveness: without it nothing is acknowledged or notified)."""
        return self._thread.is_alive()

    def finished(
        self,
        queue_url: str,
        receipt_handle: str,
        result_queue_url: str | None,
        result: TaskResult | None = None,
        changed_task_id: str | None = None,
    ) -> None:
        """A task is done with: notify its session (a full result, or just that it changed) and
        acknowledge its message."""
        with self._lock:
            if result is not None:  # only results of transitions this agent made: count them
                self._counts[result.session_id][result.state] += 1
            if result_queue_url and result is not None:
                self._results[result_queue_url].append(result)
            if result_queue_url and changed_task_id is not None:
                self._changed[result_queue_url].append(changed_task_id)
            self._deletes[queue_url].append(receipt_handle)
            if len(self._deletes[queue_url]) >= FLUSH_AT_DELETES:
                self._flush_now.set()

    def count(self, session_id: str, state: TaskState) -> None:
        """Count a task this agent finished without a result to report (one it cancelled)."""
        with self._lock:
            self._counts[session_id][state] += 1

    def flush_soon(self) -> None:
        """Flush without waiting for the interval (the agent has nothing else running)."""
        self._flush_now.set()

    def flush(self, *, final: bool = False) -> None:
        """Send everything collected so far: notices first, then deletes; then the counts, if
        ``COUNTER_FLUSH_S`` passed since they were last written (or this is the final flush)."""
        with self._lock:
            results, self._results = self._results, defaultdict(list)
            changed, self._changed = self._changed, defaultdict(list)
            deletes, self._deletes = self._deletes, defaultdict(list)
        for url in set(results) | set(changed):
            notices = pack_notices(results[url], changed[url])
            try:
                self._queues.notify(url, notices)
            except (ClientError, BotoCoreError, RetryableError) as error:
                NOTICES.labels("failed").inc(len(notices))
                # The session's result queue is gone (its client closed it) or unreachable:
                # the results are recorded in the table, so the client can still read them.
                logger.warning("result notice not sent", extra={"queue": url, "error": str(error)})
            else:
                NOTICES.labels("sent").inc(len(notices))
        for url, handles in deletes.items():
            try:
                self._queues.delete(url, handles)
            except (ClientError, BotoCoreError) as error:
                # Undeleted messages come back after their visibility timeout; their tasks are
                # recorded, so the redelivery is a harmless duplicate. The reporter keeps going.
                logger.warning(
                    "acknowledgements not sent", extra={"queue": url, "error": str(error)}
                )
        if final or time.monotonic() - self._counted_at >= COUNTER_FLUSH_S:
            self._flush_counts()

    def _flush_counts(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, defaultdict(Counter)
            self._counted_at = time.monotonic()
        if self._counters is None:
            return
        for session_id, finished in counts.items():
            try:
                self._counters.add(session_id, finished)
            except (ClientError, BotoCoreError) as error:
                # Not resent: the write may have landed (ADD is not idempotent), and counters
                # may fall behind but never run ahead. `htcgrid status --exact` recounts.
                logger.warning(
                    "session counts not written",
                    extra={"session_id": session_id, "error": str(error)},
                )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._flush_now.wait(self._interval)
            self._flush_now.clear()
            try:
                self.flush()
            except Exception:
                # Catch-all on purpose: what one flush loses comes back by itself (messages
                # not deleted are redelivered, their tasks already recorded), but a reporter
                # that stops would leave every later task unacknowledged.
                logger.exception("flush failed")

    def stop(self) -> None:
        """Flush what is left and stop the thread."""
        self._stop.set()
        self._flush_now.set()
        self._thread.join()
        self.flush(final=True)
