"""A session: a group of tasks submitted together and whose results come back together.

Results stream from the session's own SQS result queue, which agents notify in batches as
tasks finish: no per-task polling, and a waiting client costs one long poll per 20 s. If
notices stop while tasks are outstanding (a notice lost with a crashed agent, taken by
someone else, or the queue gone), the session reads them back from the status function in
bounded turns (``reconcile``). Its bookkeeping is about a bit per task (``ledger``), and it
submits its input in chunks as it reads it (``batches``).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import math
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import JsonValue, ValidationError

from htcgrid import batches, reconcile
from htcgrid._transport import Transport
from htcgrid.errors import (
    InvalidRequestError,
    PartialSubmissionError,
    ResultsIncompleteError,
    ResultsTimeoutError,
    SubmissionFailedError,
    mapped,
    raises_grid_errors,
)
from htcgrid.ledger import Ledger, TaskIds
from htcgrid_core import aws, keys
from htcgrid_core.errors import PayloadIntegrityError
from htcgrid_core.models import (
    MAX_ERROR_MESSAGE_CHARS,
    SESSION_ID_PATTERN,
    SUBMISSION_TOKEN_PATTERN,
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

#: Longest ``submission_token`` a caller may give: ``.<n>`` is appended for each submission
#: of the call, and the grid takes 64 characters (room for 10^7 submissions).
MAX_TOKEN_CHARS = 56
#: Submissions of one ``submit`` call in flight at once. Each is a synchronous Express execution
#: of some 100-300 ms on AWS whatever its size, so a client's submit rate grows with this.
SUBMIT_CONCURRENCY = 8
#: Long-poll wait on the result queue (SQS's maximum).
RESULT_POLL_S = 20
#: Reads of a stored result before it is handed over as unreadable: a transient S3 failure
#: (which botocore has already retried) may clear, a corrupted or missing object will not.
DECODE_ATTEMPTS = 3
#: Why a stored result cannot be read: its bytes do not match the record (size or SHA-256),
#: S3 refused or failed the read, or the bytes are not JSON (``json.JSONDecodeError`` is a
#: ``ValueError``).
UNREADABLE = (PayloadIntegrityError, ClientError, BotoCoreError, ValueError)


@dataclass(frozen=True)
class Receipt:
    """A submission the grid accepted: its tasks are ``<digest>-0`` .. ``<digest>-<count-1>``,
    the first at input position ``first`` of its ``submit`` call."""

    digest: str
    count: int
    sent_at: float
    first: int


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
    #: Why the result's value could not be read (``value`` is then None), after
    #: ``DECODE_ATTEMPTS`` tries: the task finished, but its stored result is unreadable.
    read_error: TaskError | None = None

    @property
    def task_id(self) -> str:
        return self.result.task_id

    @property
    def state(self) -> TaskState:
        return self.result.state

    @property
    def ok(self) -> bool:
        """The task succeeded and its result was read."""
        return self.result.state is TaskState.SUCCEEDED and self.read_error is None

    @property
    def error(self) -> TaskError | None:
        """Why the task failed, or why its result could not be read."""
        return self.read_error or self.result.error

    @property
    def latency_s(self) -> float:
        """Submit to result, as this client saw it."""
        return self.received_at - self.submitted_at


class Session:
    """Submit tasks, then iterate their results as they complete. Use as a context manager so
    the result queue is removed when done. Every error it raises is a ``GridError``."""

    def __init__(self, transport: Transport, session_id: str, result_queue_url: str | None) -> None:
        check_session_id(session_id)
        self.transport = transport
        self.id = session_id
        self.result_queue_url = result_queue_url
        #: Whether this session opened a result queue (closed with the session). The queue
        #: may vanish before that (``result_queue_url`` is then None: results are read back
        #: from the table instead).
        self.streams_results = result_queue_url is not None
        #: What this object submitted and has yet to yield: about a bit per task.
        self._ledger = Ledger()
        self._reconcile_due = False
        #: Results accepted (their tasks no longer outstanding) and not yet handed over. They
        #: survive an error raised out of ``results()``: the next call hands them over first.
        self._ready: deque[Completed] = deque()
        #: Tasks a notice said changed, to read from the status function on the next turn.
        self._changed: list[str] = []
        #: When and how much to read back from the table (``reconcile``).
        self._reconciliation = reconcile.Reconciliation.start(
            time.monotonic(), streaming=result_queue_url is not None
        )
        #: Results accepted in all.
        self._yielded = 0
        #: Deletes of received notices, in flight on a thread of their own (``_acknowledge``).
        self._acknowledger: ThreadPoolExecutor | None = None
        self._acknowledging: list[Future[None]] = []

    @classmethod
    def open(cls, transport: Transport, session_id: str, stream_results: bool) -> Session:
        """Have the session function create the session's result queue (encrypted, TLS-only:
        clients cannot create queues) if it streams results."""
        check_session_id(session_id)
        url = transport.open_result_queue(session_id) if stream_results else None
        return cls(transport, session_id, url)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @raises_grid_errors
    def close(self) -> None:
        """Have the session function delete the result queue. Results stay readable through
        the status function."""
        self._stop_acknowledging()
        if self.streams_results:
            self.transport.close_result_queue(self.id)
            self.streams_results = False
            self.result_queue_url = None

    # -- submitting -----------------------------------------------------------------------------

    @raises_grid_errors
    def submit(
        self,
        payloads: Iterable[JsonValue],
        *,
        priority: int | None = None,
        timeout_s: int | None = None,
        max_attempts: int | None = None,
        submission_token: str | None = None,
    ) -> TaskIds:
        """Submit one task per payload; returns their task ids in order (a sequence that
        makes each id when asked, a few bytes per submission however many tasks).

        ``payloads`` may be any iterable, a generator included: it is read as the submissions
        go out, ``SUBMIT_CONCURRENCY`` of them in flight, so a large input is never held whole.
        Payloads above the grid's inline threshold are uploaded to S3 first. The tasks go in
        submissions of ``<token>.<n>``, each idempotent on its token: resubmitting the same
        payloads with the same ``submission_token`` returns the same ids and creates no
        duplicate tasks.

        If the grid refuses or fails a submission, or a payload cannot be submitted, after
        other submissions of the call went out, ``PartialSubmissionError`` says which tasks
        were accepted (they run; ``results()`` yields them) and the token to resubmit with.
        """
        levels = self.transport.settings.priority_levels
        if priority is not None and not 0 <= priority < levels:
            raise InvalidRequestError(
                f"priority: {priority} is not a priority level of this grid (0 to {levels - 1})",
                "priority",
            )
        token = submission_token or uuid.uuid4().hex
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidRequestError(
                f"submission_token: {len(token)} characters; at most {MAX_TOKEN_CHARS} (the "
                "client appends '.<n>' to name each submission of the call)",
                "submission_token",
            )
        if not re.fullmatch(SUBMISSION_TOKEN_PATTERN, token):
            raise InvalidRequestError(
                f"submission_token: {token!r} is not a token (ASCII letters, digits, '_', '.', "
                "':' and '-', the first a letter or digit)",
                "submission_token",
            )
        # The overrides every task of the call gets are checked once, up front: a value the
        # grid refuses (pydantic's error, naming the field) stops the call before any
        # submission goes out, rather than the first one in flight.
        TaskSpec(
            payload=InlineData(inline=None),
            priority=priority,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
        )
        stream = batches.chunks(
            payloads,
            inline_threshold_bytes=self.transport.settings.inline_threshold_bytes,
            result_queue_url=self.result_queue_url,
            max_payload_bytes=self.transport.payloads.max_bytes,
        )
        receipts: dict[int, Receipt] = {}
        sent = 0
        failure: BaseException | None = None

        def send(chunk: batches.Chunk) -> Receipt:
            return self._send(token, chunk, priority, timeout_s, max_attempts)

        # The first chunk waits for the second before it goes to the pool: a call of one
        # submission (a lone task's, say) is sent on this thread, with no thread to start and
        # hand the answer back (a millisecond or more of a lone task's latency).
        first: batches.Chunk | None = None
        pool: ThreadPoolExecutor | None = None
        in_flight: dict[Future[Receipt], int] = {}

        def submit(chunk: batches.Chunk) -> None:
            nonlocal sent
            assert pool is not None
            # Each submission runs in a copy of the caller's context, as ``aws.in_parallel``
            # does, so context-local state (a request's tracing or accounting) follows it.
            in_flight[pool.submit(contextvars.copy_context().run, send, chunk)] = chunk.number
            sent += 1

        try:
            try:
                for chunk in stream:
                    if pool is None and first is None:
                        first = chunk
                        continue
                    if pool is None:
                        pool = ThreadPoolExecutor(max_workers=SUBMIT_CONCURRENCY)
                        assert first is not None
                        submit(first)
                        first = None
                    if len(in_flight) >= SUBMIT_CONCURRENCY:
                        failure = _settle(in_flight, receipts, FIRST_COMPLETED)
                        if failure is not None:
                            break
                    submit(chunk)
            # Whatever stops the stream (a payload JSON cannot hold, the caller's own iterator
            # raising), the submissions already sent must be reported with the token.
            except Exception as error:
                failure = error
            if first is not None:  # the call's one submission, or the one before the stream broke
                sent += 1
                try:
                    receipts[first.number] = send(first)
                except Exception as error:
                    failure = error
            if pool is not None:
                failure = _settle(in_flight, receipts, ALL_COMPLETED) or failure
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        task_ids = TaskIds()
        for number in sorted(receipts):
            receipt = receipts[number]
            task_ids.append(receipt.digest, receipt.count)
            self._ledger.add(receipt.digest, receipt.count, receipt.sent_at, receipt.first)
        if failure is not None:
            failure = mapped(failure)
            if sent == 0:
                raise failure  # nothing reached the grid
            raise PartialSubmissionError(token, task_ids, failure) from failure
        return task_ids

    def _send(
        self,
        token: str,
        chunk: batches.Chunk,
        priority: int | None,
        timeout_s: int | None,
        max_attempts: int | None,
    ) -> Receipt:
        """Upload a chunk's large payloads and submit it."""
        chunk_token = f"{token}.{chunk.number}"
        specs = []
        for payload, stored in zip(chunk.payloads, chunk.stored, strict=True):
            data: Data = InlineData(inline=payload)
            if stored:
                data = self._store(payload)
            specs.append(
                TaskSpec(
                    payload=data, priority=priority, timeout_s=timeout_s, max_attempts=max_attempts
                )
            )
        submission = Submission(
            session_id=self.id,
            submission_token=chunk_token,
            tasks=specs,
            result_queue_url=self.result_queue_url,
        )
        sent_at = time.time()
        task_ids = self.transport.submit_batch(submission).task_ids
        digest = keys.submission_digest(self.id, chunk_token)
        if task_ids != [keys.task_id_for(self.id, chunk_token, i) for i in range(len(chunk))]:
            raise SubmissionFailedError(
                "UnexpectedTaskIds",
                f"the grid named the tasks of submission {chunk_token} otherwise than this "
                "client expects: client and grid are of different versions",
            )
        return Receipt(digest, len(chunk), sent_at, chunk.first)

    def _store(self, payload: JsonValue) -> Data:
        """Upload a large payload under a name of its content, its SHA-256: an upload never
        changes the object a submitted task reads (a resubmission of other content gets
        another object; one of the same content writes the same bytes), and equal payloads
        of a session share one object."""
        body = to_json_bytes(payload, what="payload")
        name = hashlib.sha256(body).hexdigest()
        return self.transport.payloads.encode(payload, payload_key(self.id, name))

    # -- results --------------------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        """Tasks submitted through this object whose results it has not yet yielded."""
        return self._ledger.outstanding + len(self._ready)

    @raises_grid_errors
    def status(self, *, exact: bool = False) -> SessionStatus:
        """Counts per state, from the grid (see ``Grid.status``)."""
        return self.transport.status(self.id, exact=exact)

    @raises_grid_errors
    def cancel(self, task_ids: list[str] | None = None) -> CancelReport:
        """Cancel the named tasks, or all of this session's unfinished tasks. Their results
        (state CANCELLED) still come out of ``results()``."""
        report = self.transport.cancel(self.id, task_ids)
        self._reconcile_due = True  # no agent reports a task it never ran
        return report

    @raises_grid_errors
    def results(self, timeout: float | None = None) -> Iterator[Completed]:
        """Yield each submitted task's result once, in completion order, until none is
        outstanding. Raises ``ResultsTimeoutError`` if ``timeout`` seconds pass first.

        A result is yielded only once its value was read; one that cannot be read (its stored
        object is missing or corrupt) is yielded with ``read_error`` set, never dropped. If an
        error ends the iteration (the grid unreachable, say), nothing accepted is lost: call
        ``results()`` again to go on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._ready or self._ledger.outstanding:
            while self._ready:
                yield self._ready.popleft()
            if not self._ledger.outstanding:
                return
            now = time.monotonic()
            remaining = math.inf if deadline is None else deadline - now
            if remaining <= 0:
                raise ResultsTimeoutError(f"{self._ledger.outstanding} tasks still unfinished")
            until_turn = max(0.0, self._reconciliation.due_at - now)
            if self.result_queue_url:
                wait = math.ceil(min(RESULT_POLL_S, remaining, until_turn))
                received = self._receive(wait)
                if received:
                    self._reconciliation.notified(time.monotonic(), received)
                elif self.result_queue_url is None:  # the queue is gone
                    self._reconciliation.stream_lost(time.monotonic())
            else:
                time.sleep(min(remaining, until_turn))
            if self._changed:
                changed, self._changed = self._changed, []
                found = self._fetch([t for t in changed if t in self._ledger])
                if found:
                    self._reconciliation.notified(time.monotonic(), found)
            if self._reconcile_due or self._reconciliation.is_due(time.monotonic()):
                self._reconcile(forced=self._reconcile_due)
                self._reconcile_due = False

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

    def _receive(self, wait_s: int) -> int:
        """Take one long poll's notices: their results join the ready results, their changed
        tasks are read on this turn. Returns how many results were accepted."""
        assert self.result_queue_url is not None  # results() polls only a queue it has
        self._raise_acknowledgement_error()
        messages = self.transport.receive_notices(self.result_queue_url, wait_s)
        if messages is None:
            # Deleted under us (by anyone holding the client policy and calling the session
            # function): no notice can come any more, so read the results back from the table.
            self.result_queue_url = None
            self._reconcile_due = True
            return 0
        accepted = 0
        for message in messages:
            try:
                notice = ResultNotice.model_validate_json(message["Body"])
            except ValidationError:
                continue  # not ours to read; deleted below like every other message
            # Only agents and the retry function can send here (IAM), and only for tasks
            # submitted with this queue; a result naming another session is still never ours.
            mine = [r for r in notice.results if r.session_id == self.id]
            accepted += self._accept(mine, notice.sent_at)
            self._changed.extend(t for t in notice.changed if t in self._ledger)
        if messages:
            # Everything these notices carried is now in ``_ready`` or ``_changed``.
            self._acknowledge(self.result_queue_url, [m["ReceiptHandle"] for m in messages])
        return accepted

    def _acknowledge(self, queue_url: str, handles: list[str]) -> None:
        """Delete received notices on a thread of their own, so their results are handed
        over without waiting for SQS (a round trip per receive, on a lone task's path). A
        notice whose delete is late or lost comes back after its visibility timeout and is
        dropped as a duplicate (``_accept``). A delete's error is raised by the next receive."""
        if self._acknowledger is None:
            self._acknowledger = ThreadPoolExecutor(1, thread_name_prefix="htcgrid-acknowledge")
        self._acknowledging.append(
            self._acknowledger.submit(
                contextvars.copy_context().run, self.transport.delete_notices, queue_url, handles
            )
        )

    def _raise_acknowledgement_error(self) -> None:
        """Raise the error of the first delete that failed since the last receive."""
        done = [future for future in self._acknowledging if future.done()]
        self._acknowledging = [future for future in self._acknowledging if not future.done()]
        for future in done:
            future.result()

    def _stop_acknowledging(self) -> None:
        """Wait for the deletes in flight. Their errors are not raised: a notice left in the
        queue dies with it, or is dropped as a duplicate by a later reader."""
        if self._acknowledger is not None:
            self._acknowledger.shutdown(wait=True)
            self._acknowledger = None
            self._acknowledging = []

    def _reconcile(self, *, forced: bool) -> None:
        """One turn of reading outstanding tasks back from the table: as many as the counters
        say are missing, a bounded number (``reconcile``)."""
        finished = self.transport.status(self.id).finished
        pages = self._reconciliation.pages(finished, self._yielded, forced=forced)
        found = self._fetch(self._ledger.next_outstanding(pages * reconcile.PAGE))
        self._reconciliation.turned(time.monotonic(), found)

    def position_of(self, task_id: str) -> int | None:
        """Where a task submitted through this object stands in its ``submit`` call's input."""
        return self._ledger.position(task_id)

    @raises_grid_errors
    def read_back(self, task_ids: list[str]) -> list[Completed]:
        """Results of tasks already yielded, read again from the grid (100 at most), in the
        order given. Raises ``ResultsIncompleteError`` if one has none."""
        page = self.transport.fetch_results(self.id, task_ids)
        by_id = {result.task_id: result for result in page.results}
        missing = [t for t in task_ids if t not in by_id]
        if missing:
            raise ResultsIncompleteError(f"no result in the grid for task {missing[0]}")
        read = []
        for task_id in task_ids:
            result = by_id[task_id]
            value, read_error = self._read(result)
            read.append(
                Completed(result, value, time.time(), result.submitted_at, None, read_error)
            )
        return read

    def _fetch(self, task_ids: list[str]) -> int:
        """Read the named tasks; accept the finished ones. Returns how many were accepted."""
        accepted = 0
        for start in range(0, len(task_ids), reconcile.PAGE):
            page = self.transport.fetch_results(self.id, task_ids[start : start + reconcile.PAGE])
            accepted += self._accept(page.results)
        return accepted

    def _accept(self, results: Iterable[TaskResult], notified_at: float | None = None) -> int:
        """Make each outstanding task's result ready, once: notices are at-least-once, so
        results of tasks already accepted (or not submitted here) are dropped. A task stops
        being outstanding only once its result was read (or found unreadable)."""
        accepted = 0
        for result in results:
            submitted_at = self._ledger.submitted_at(result.task_id)
            if submitted_at is None:
                continue
            value, read_error = self._read(result)
            self._ledger.settle(result.task_id)
            self._yielded += 1
            self._ready.append(
                Completed(result, value, time.time(), submitted_at, notified_at, read_error)
            )
            accepted += 1
        return accepted

    def _read(self, result: TaskResult) -> tuple[JsonValue, TaskError | None]:
        """The result's value, or why it cannot be read after ``DECODE_ATTEMPTS`` tries."""
        if result.result is None:
            return None, None
        for attempt in range(1, DECODE_ATTEMPTS + 1):
            try:
                return self.transport.payloads.decode(result.result), None
            except UNREADABLE as error:
                if attempt == DECODE_ATTEMPTS:
                    return None, TaskError(
                        type=type(error).__name__,
                        message=f"the task's result could not be read: {error}"[
                            :MAX_ERROR_MESSAGE_CHARS
                        ],
                        attempt=result.attempt,
                        at=time.time(),
                        retryable=False,
                    )
                aws.back_off(attempt, base_s=0.2, cap_s=2.0)
        raise AssertionError("unreachable")  # pragma: no cover


def check_session_id(session_id: str) -> None:
    """Refuse, naming the field, a session id the grid would refuse, before the client names
    a result queue or an S3 key with it or makes any call."""
    if not re.fullmatch(SESSION_ID_PATTERN, session_id):
        raise InvalidRequestError(
            f"session_id: {session_id[:60]!r} is not a session id (1 to 48 ASCII letters, "
            "digits, '_' and '-', the first a letter or digit)",
            "session_id",
        )


def _settle(
    in_flight: dict[Future[Receipt], int],
    receipts: dict[int, Receipt],
    return_when: str,
) -> BaseException | None:
    """Wait for in-flight submissions (the first to finish, or all), file the receipts of the
    ones that succeeded by chunk number, and return the first error among them, if any."""
    done, _ = wait(in_flight, return_when=return_when)
    failure: BaseException | None = None
    for future in done:
        number = in_flight.pop(future)
        error = future.exception()
        if error is None:
            receipts[number] = future.result()
        elif failure is None:
            failure = error
    return failure
