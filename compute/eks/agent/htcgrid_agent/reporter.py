"""The reporter: batches what finished tasks owe SQS.

Slots hand it two things per finished task: a result notice for the session's result queue (if
the session has one) and the message to delete. It sends all notices first, then deletes, each
batched: a message is only acknowledged once its notice is out, so a crash in between
re-delivers the message and its notice is sent again. It flushes every ``flush_interval_s``, as
soon as a queue has ``FLUSH_AT_DELETES`` acknowledgements pending (a busy agent: full batches,
and one notice per session for many results), or when the agent falls idle (a lone task's
result goes out at once).
"""

from __future__ import annotations

import threading
from collections import defaultdict

from botocore.exceptions import BotoCoreError, ClientError

from htcgrid_agent.log import logger
from htcgrid_core.errors import RetryableError
from htcgrid_core.models import ResultNotice, TaskResult
from htcgrid_core.queues import MAX_BATCH_ENTRIES, Queues

#: Acknowledgements pending for one queue that trigger a flush: three full delete batches.
FLUSH_AT_DELETES = 3 * MAX_BATCH_ENTRIES
#: Keep each notice well under SQS's 256 KiB message size.
MAX_NOTICE_BYTES = 200 * 1024


def pack_notices(results: list[TaskResult], changed: list[str]) -> list[ResultNotice]:
    """Group results into as few notices as fit SQS's message size."""
    notices: list[ResultNotice] = []
    batch: list[TaskResult] = []
    size = 0
    for result in results:
        length = len(result.model_dump_json())
        if batch and size + length > MAX_NOTICE_BYTES:
            notices.append(ResultNotice(results=batch))
            batch, size = [], 0
        batch.append(result)
        size += length
    if batch or changed:
        notices.append(ResultNotice(results=batch, changed=changed))
    return notices


class Reporter:
    """Collects notices and acknowledgements from slot threads; a thread of its own sends them."""

    def __init__(self, queues: Queues, flush_interval_s: float) -> None:
        self._queues = queues
        self._interval = flush_interval_s
        self._lock = threading.Lock()
        self._results: defaultdict[str, list[TaskResult]] = defaultdict(list)
        self._changed: defaultdict[str, list[str]] = defaultdict(list)
        self._deletes: defaultdict[str, list[str]] = defaultdict(list)
        self._stop = threading.Event()
        self._flush_now = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

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
            if result_queue_url and result is not None:
                self._results[result_queue_url].append(result)
            if result_queue_url and changed_task_id is not None:
                self._changed[result_queue_url].append(changed_task_id)
            self._deletes[queue_url].append(receipt_handle)
            if len(self._deletes[queue_url]) >= FLUSH_AT_DELETES:
                self._flush_now.set()

    def flush_soon(self) -> None:
        """Flush without waiting for the interval (the agent has nothing else running)."""
        self._flush_now.set()

    def flush(self) -> None:
        """Send everything collected so far: notices first, then deletes."""
        with self._lock:
            results, self._results = self._results, defaultdict(list)
            changed, self._changed = self._changed, defaultdict(list)
            deletes, self._deletes = self._deletes, defaultdict(list)
        for url in set(results) | set(changed):
            try:
                self._queues.notify(url, pack_notices(results[url], changed[url]))
            except (ClientError, BotoCoreError, RetryableError) as error:
                # The session's result queue is gone (its client closed it) or unreachable:
                # the results are recorded in the table, so the client can still read them.
                logger.warning("result notice not sent", extra={"queue": url, "error": str(error)})
        for url, handles in deletes.items():
            try:
                self._queues.delete(url, handles)
            except (ClientError, BotoCoreError) as error:
                # Undeleted messages come back after their visibility timeout; their tasks are
                # recorded, so the redelivery is a harmless duplicate. The reporter keeps going.
                logger.warning(
                    "acknowledgements not sent", extra={"queue": url, "error": str(error)}
                )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._flush_now.wait(self._interval)
            self._flush_now.clear()
            self.flush()

    def stop(self) -> None:
        """Flush what is left and stop the thread."""
        self._stop.set()
        self._flush_now.set()
        self._thread.join()
        self.flush()
