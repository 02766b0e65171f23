"""The worker loop: fetch, claim, run, report, acknowledge.

One fetcher (the main thread) long-polls the priority queues highest first, taking only as many
messages as there are free slots. Each slot has a thread that drives its child process, and a
recorder thread that records a task's outcome while the slot runs the next one. A task
whose timeout is within the lease threshold runs without a lease write (the message's
visibility covers it); a longer one is claimed with a lease that a heartbeat keeps alive.

Shutdown is a state, not an exception: the first SIGTERM (or SIGINT) stops fetching, hands back
messages not yet started and lets running tasks finish; a second one aborts, handing back what
is still running. Teardown happens in ``finally``.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError

from htcgrid_agent.config import AgentConfig
from htcgrid_agent.context import TaskContext
from htcgrid_agent.failures import FailureReporter
from htcgrid_agent.log import (
    log_attempt_failed,
    log_attempt_succeeded,
    logger,
    task_fields,
    task_keys,
)
from htcgrid_agent.metrics import (
    BUSY_SLOTS,
    CLAIM_CONFLICTS,
    HANDLER_SECONDS,
    QUEUE_WAIT_SECONDS,
    SLOTS,
    START_DELAY_SECONDS,
    TASKS,
    count_throttle,
)
from htcgrid_agent.process import adopts_orphans, memory_mb, reap_orphans
from htcgrid_agent.reporter import Reporter
from htcgrid_agent.runtime_api import RuntimeApiSlot
from htcgrid_agent.scheduling import FetchOrder
from htcgrid_agent.sessions import SessionWatch
from htcgrid_agent.slots import HandlerLoadError, Outcome, Slot, TaskSlot, handler_environment
from htcgrid_agent.task_errors import unexpected_outcome
from htcgrid_core import aws, throttles
from htcgrid_core.backoff import backoff_s
from htcgrid_core.counters import SessionCounters
from htcgrid_core.errors import (
    InvalidSubmissionError,
    PayloadIntegrityError,
    PayloadMissingError,
    RetryableError,
    TransitionRejected,
)
from htcgrid_core.lifecycle import retry_delay_s
from htcgrid_core.models import (
    AttemptFailure,
    InlineData,
    TaskError,
    TaskMessage,
    TaskRecord,
    TaskState,
)
from htcgrid_core.payloads import result_key
from htcgrid_core.queues import MAX_BATCH_ENTRIES, ReceivedTask
from htcgrid_core.resources import GridResources
from htcgrid_core.results import AttemptTimings, finished_result
from htcgrid_core.table import Completion
from htcgrid_core.traces import new_trace_header

#: Longest back-off between fetch attempts after AWS errors.
MAX_RECONNECT_DELAY_S = 30.0
#: Longest back-off between attempts to restart a slot whose child cannot load the handler.
MAX_SLOT_RESTART_DELAY_S = 60.0
#: Failed starts in a row after which a slot counts as dead (liveness fails, the pod restarts).
SLOT_DEAD_AFTER_LOAD_FAILURES = 3
#: Errors the agent leaves to the message's redelivery: AWS failed past botocore's retries.
_AWS_TRANSIENT = (ClientError, BotoCoreError, RetryableError)


@dataclass
class _Lease:
    completion: Completion
    queue_url: str
    receipt_handle: str
    lost: bool = False
    extended_at: float = field(default_factory=time.monotonic)


@dataclass
class _Held:
    """A received message this agent holds (buffered or running) and when SQS would let
    another agent receive it (monotonic time)."""

    task: ReceivedTask
    visible_at: float
    #: Claimed with a lease: its visibility follows the lease (``_extend``), not this record.
    leased: bool = False


@dataclass
class _Running:
    """A task whose handler is running, and how to stop it."""

    message: TaskMessage
    stop: threading.Event = field(default_factory=threading.Event)
    #: When the handler was handed the task (epoch s).
    started_at: float = 0.0
    #: Why it was stopped: "cancelled" (the task ends CANCELLED) or "abort" (handed back).
    reason: str | None = None

    def halt(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.stop.set()


@dataclass(order=True)
class _Queued:
    """A received message waiting for a slot, ordered highest priority first."""

    sort_key: tuple[int, int]
    task: ReceivedTask = field(compare=False)


class Worker:
    """One agent: ``slots`` tasks at a time from the grid's queues."""

    def __init__(self, config: AgentConfig, grid: GridResources) -> None:
        self.config = config
        self.grid = grid
        self.processed = 0
        self._stopping = threading.Event()
        self._aborting = threading.Event()
        self._heartbeat_stop = threading.Event()
        self._buffer: queue.PriorityQueue[_Queued] = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._held = 0  # received and not yet finished
        self._recording = 0  # finished, with the outcome being recorded (``_record_later``)
        self._capacity = config.slots + config.prefetch  # the most it holds at once
        self._held_changed = threading.Condition()
        # Whether the fetcher sleeps on ``_held_changed``: slots notify only then (a notify on
        # every dequeue and release was 11 % of a busy agent's CPU). Read and written under
        # the condition's lock, so a wake-up cannot fall between the fetcher's check and wait.
        self._fetcher_waiting = False
        self._leases: dict[str, _Lease] = {}
        self._running: dict[str, _Running] = {}
        #: Every message held, by receipt handle: the heartbeat keeps each one hidden.
        self._held_messages: dict[str, _Held] = {}
        #: The task queues' visibility timeout and the lease threshold it implies (read from
        #: the queues when the agent starts).
        self._visibility_s = 0
        self._lease_threshold_s = 0
        #: What each slot may use: its cap, else its share of the agent's memory.
        self._slot_memory_mb = config.slot_memory_mb or max(1, memory_mb() // config.slots)
        self._sessions = SessionWatch(grid.table, grid.settings.heartbeat_interval_s)
        self._leases_lock = threading.Lock()
        self._reporter = Reporter(
            grid.queues, config.flush_interval_s, SessionCounters.from_resources(grid)
        )
        self._failures = FailureReporter(
            aws.client("stepfunctions", grid.settings.endpoint_url, grid.settings.region),
            grid.settings.retry_workflow_arn,
        )
        self._last_work = time.monotonic()
        self._long_polls: dict[int, Future[list[ReceivedTask]]] = {}
        self._fetch_order = FetchOrder(grid.queues.priority_levels, config.starvation_weight)
        #: Monotonic time of the fetch loop's last turn (None before the first): liveness.
        self.last_turn_at: float | None = None
        self._slots: list[TaskSlot] = []
        self._slot_threads: list[threading.Thread] = []
        #: Per slot, the thread that records its last task's outcome while the slot runs the
        #: next (``_record_later``), and that recording, until it is done.
        self._recorders: list[ThreadPoolExecutor] = []
        self._recordings: list[Future[None] | None] = []
        self._heartbeat_thread: threading.Thread | None = None
        self._reaps_orphans = False
        throttles.listen(count_throttle)

    @property
    def draining(self) -> bool:
        """Told to stop: takes no more work (readiness)."""
        return self._stopping.is_set()

    def problems(self) -> list[str]:
        """What keeps this running agent from doing its work (liveness): a slot, heartbeat or
        reporter thread that died, or a slot whose child keeps failing to load the handler.
        Empty while draining, when threads end on purpose."""
        if self._stopping.is_set():
            return []
        found = [
            f"slot {i} thread died" for i, t in enumerate(self._slot_threads) if not t.is_alive()
        ]
        found += [
            f"slot {i} cannot load the handler ({slot.load_error})"
            for i, slot in enumerate(self._slots)
            if slot.load_failures >= SLOT_DEAD_AFTER_LOAD_FAILURES
        ]
        if self._heartbeat_thread is not None and not self._heartbeat_thread.is_alive():
            found.append("heartbeat thread died")
        if self._reporter.started and not self._reporter.alive:
            found.append("reporter thread died")
        return found

    def blocked(self) -> str | None:
        """Why the agent cannot run any task now (readiness): every slot's handler or runtime
        failed its last start. None while one slot can."""
        if not self._slots or any(slot.load_failures == 0 for slot in self._slots):
            return None
        return f"no slot can start its handler: {self._slots[0].load_error}"

    # -- signals ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping.is_set():
            logger.warning("second signal: aborting, handing back running tasks")
            self._aborting.set()
            with self._leases_lock:
                for running in self._running.values():
                    running.halt("abort")
        else:
            logger.info("signal received: finishing held tasks, taking no more")
        self._stopping.set()
        with self._held_changed:
            self._held_changed.notify_all()

    def request_stop(self) -> None:
        """Stop as on a first SIGTERM (for embedding the worker in tests or other programs)."""
        self._on_signal(signal.SIGTERM, None)

    # -- the loop -------------------------------------------------------------------------------

    def work(self) -> int:
        """Run until stopped (signal, burst, max tasks or max idle). Returns tasks processed."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        queues = self.grid.queues
        # The shortest, if an operator changed one queue's: every message must stay covered.
        self._visibility_s = min(
            queues.visibility_timeout(p) for p in range(queues.priority_levels)
        )
        self._lease_threshold_s = self.grid.settings.lease_threshold_for(self._visibility_s)
        self.grid.settings.check_heartbeat_covers(self._visibility_s)
        # PID 1 of its container (or a subreaper): the processes a killed handler left behind
        # become the agent's children, and the heartbeat collects them.
        self._reaps_orphans = adopts_orphans()
        environment = handler_environment(
            os.environ, with_credentials=self.config.handler_credentials
        )
        self._slots = slots = [self._new_slot(i, environment) for i in range(self.config.slots)]
        SLOTS.set(len(slots))
        self._reporter.start()
        self._recorders = [
            ThreadPoolExecutor(1, thread_name_prefix=f"slot-{i}-record") for i in range(len(slots))
        ]
        self._recordings = [None] * len(slots)
        self._slot_threads = slot_threads = [
            threading.Thread(target=self._drive, args=(i, slot), name=f"slot-{i}", daemon=True)
            for i, slot in enumerate(slots)
        ]
        heartbeat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        self._heartbeat_thread = heartbeat
        for thread in [*slot_threads, heartbeat]:
            thread.start()
        logger.info("agent started", extra={"slots": self.config.slots})
        try:
            self._fetch_until_stopped()
        finally:
            self._stopping.set()
            self._hand_back_buffered()
            for thread in slot_threads:
                thread.join()
            for recorder in self._recorders:
                recorder.shutdown(wait=True)  # the last outcomes, recorded and reported
            self._heartbeat_stop.set()
            heartbeat.join()
            self._reporter.stop()
            for slot in slots:
                slot.close()
            logger.info("agent stopped", extra={"processed": self.processed})
        return self.processed

    def _new_slot(self, index: int, environment: dict[str, str]) -> TaskSlot:
        """Slot ``index``: a Python child running the handler (started: ``HandlerLoadError``
        if it cannot load), or a Lambda runtime behind the Runtime API, serving its port but
        not started: its slot's thread starts it, so every slot listens before any runtime
        starts (sidecars may come up in any order) and slow runtimes do not hold up the fetch
        loop."""
        config = self.config
        if not config.uses_runtime_api:
            return Slot(
                config.handler,
                environment,
                memory_limit_mb=config.slot_memory_mb,
                max_result_bytes=self.grid.payloads.max_bytes,
            )
        return RuntimeApiSlot(
            bootstrap=config.bootstrap,
            environment=environment,
            handler=config.handler,
            task_root=os.path.abspath(config.task_root or os.getcwd()),
            function_name=config.name,
            memory_mb=self._slot_memory_mb,
            region=self.grid.settings.region or os.environ.get("AWS_REGION", "us-east-1"),
            port=0 if config.runtime_api_port is None else config.runtime_api_port + index,
            init_timeout_s=config.runtime_init_timeout_s,
            max_result_bytes=self.grid.payloads.max_bytes,
            stopping=self._stopping,
        )

    def _fetch_until_stopped(self) -> None:
        failures = 0  # fetches in a row that AWS failed
        levels = self.grid.queues.priority_levels
        with ThreadPoolExecutor(max_workers=levels, thread_name_prefix="poll") as pollers:
            try:
                while not self._stopping.is_set():
                    free = self._wait_for_free_slots()
                    if free == 0:
                        continue
                    try:
                        received = self._receive(free, pollers)
                    except (ClientError, BotoCoreError) as error:
                        logger.warning("fetch failed, backing off", extra={"error": str(error)})
                        self._stopping.wait(
                            backoff_s(failures, base_s=0.5, cap_s=MAX_RECONNECT_DELAY_S)
                        )
                        failures += 1
                        continue
                    failures = 0
                    if self._stopping.is_set():
                        self._hand_back(received)  # arrived during shutdown: not ours to run
                        break
                    if received:
                        self._last_work = time.monotonic()
                        self._take(received)
                    elif self._should_stop_idle():
                        break
            finally:
                # Long polls still waiting may yet bring messages: those go straight back.
                self._hand_back(self._collect_long_polls(block_for_all=True))

    def _should_stop_idle(self) -> bool:
        if self.config.burst:
            with self._held_changed:
                if self._held:
                    return False
            # Burst mode drains the queues, retries waiting out their backoff included.
            queues = self.grid.queues
            return all(queues.waiting(p) == 0 for p in range(queues.priority_levels))
        idle = time.monotonic() - self._last_work
        return self.config.max_idle_s is not None and idle > self.config.max_idle_s

    def _wait_for_free_slots(self) -> int:
        """Block until the agent should fetch: nothing waits for a slot and fewer than
        ``slots + prefetch`` messages are held. How many to take (0 when stopping)."""
        with self._held_changed:
            while not self._stopping.is_set():
                self.last_turn_at = time.monotonic()  # also each second all slots are busy
                limit = self._capacity - self._held
                if self.config.max_tasks is not None:
                    remaining = self.config.max_tasks - self.processed - self._held
                    if remaining <= 0 and self._held == 0:
                        self._stopping.set()
                        return 0
                    limit = min(limit, remaining)
                if limit > 0 and self._buffer.empty():
                    return min(limit, MAX_BATCH_ENTRIES)
                self._fetcher_waiting = True
                try:
                    self._held_changed.wait(1.0)
                finally:
                    self._fetcher_waiting = False
            return 0

    def _receive(self, free: int, pollers: ThreadPoolExecutor) -> list[ReceivedTask]:
        """Highest priority first. A queue found empty gets a long poll of its own, which
        returns the moment work arrives there; until then the queue is not asked again, so an
        empty high-priority queue costs one request per long-poll period, not one per fetch.
        If every queue is empty, wait for the first long poll that brings work."""
        received = self._collect_long_polls()
        if received:
            return received
        queues = self.grid.queues
        wait_s = 1 if self.config.burst else self.config.long_poll_s
        for priority in self._fetch_order.next_order():  # highest first, or a starved level
            if priority in self._long_polls:
                continue  # a long poll is already waiting on this queue
            received = queues.receive_tasks(priority, free, wait_s=0)
            if received:
                return received
            self._long_polls[priority] = pollers.submit(
                queues.receive_tasks, priority, free, wait_s
            )
        wait(self._long_polls.values(), return_when=FIRST_COMPLETED)
        return self._collect_long_polls()

    def _collect_long_polls(self, block_for_all: bool = False) -> list[ReceivedTask]:
        """Messages from the long polls that have returned (all of them, if told to wait)."""
        if block_for_all:
            wait(self._long_polls.values())
        received: list[ReceivedTask] = []
        for priority, poll in list(self._long_polls.items()):
            if poll.done():
                del self._long_polls[priority]
                try:
                    received.extend(poll.result())
                except (ClientError, BotoCoreError):
                    if not block_for_all:
                        raise
                    # Shutting down: whatever that poll took comes back after its timeout.
        return received

    def _take(self, received: list[ReceivedTask]) -> None:
        self._fetch_order.served({t.message.priority for t in received if t.message})
        with self._held_changed:
            self._held += len(received)
        # SQS started each message's visibility clock when it answered the receive.
        clock_skew = time.monotonic() - time.time()
        with self._leases_lock:
            for task in received:
                visible_at = task.received_at + clock_skew + self._visibility_s
                self._held_messages[task.receipt_handle] = _Held(task, visible_at)
        for task in received:
            if task.receive_count == 1 and task.sent_at:  # a redelivery waited for other reasons
                QUEUE_WAIT_SECONDS.observe(max(0.0, task.received_at - task.sent_at))
            # Prefetched messages wait highest priority first; with a starvation weight the
            # fetch order already decided who goes next, so they keep it (else a low task
            # fetched for its turn would wait behind every urgent one prefetched after it).
            priority = task.message.priority if task.message else 0
            rank = 0 if self.config.starvation_weight else -priority
            self._buffer.put(_Queued((rank, next(self._sequence)), task))

    def _hand_back_buffered(self) -> None:
        """Messages received but not started go straight back to their queue for others."""
        tasks: list[ReceivedTask] = []
        while True:
            try:
                tasks.append(self._buffer.get_nowait().task)
            except queue.Empty:
                break
        self._hand_back(tasks)
        for task in tasks:
            self._forget(task)
            self._release_slot()

    def _hand_back(self, tasks: list[ReceivedTask]) -> None:
        """Give back messages this agent will not run through no fault of theirs (it is
        stopping, or aborting a run): a fresh copy of each is sent and the received one
        deleted, batched per queue. Making the received one visible again would spend one of
        the receives after which SQS dead-letters it, and a long task on agents scaled in five
        times would end FAILED (DeadLettered) without ever failing."""
        by_queue: dict[str, list[ReceivedTask]] = {}
        for task in tasks:
            if task.message is None:  # not a task: its own fault, so on its way to the DLQ
                self._make_visible(task)
            else:
                by_queue.setdefault(task.queue_url, []).append(task)
        for queue_url, batch in by_queue.items():
            try:
                self.grid.queues.send_bodies(queue_url, [task.body for task in batch])
            except _AWS_TRANSIENT as error:
                logger.warning("hand-back copies not sent", extra={"error": str(error)})
                for task in batch:  # as they are, then: spending a receive, losing nothing
                    self._make_visible(task)
                continue
            try:
                self.grid.queues.delete(queue_url, [task.receipt_handle for task in batch])
            except (ClientError, BotoCoreError) as error:
                # The received copies come back after their visibility timeout: duplicates,
                # which the conditional writes make harmless.
                logger.warning("handed-back messages not deleted", extra={"error": str(error)})

    def _make_visible(self, task: ReceivedTask) -> None:
        """Put a received message back as it is, visible at once (its receive counts)."""
        try:
            self.grid.queues.change_visibility(task.queue_url, task.receipt_handle, 0)
        except (ClientError, BotoCoreError) as error:
            # It comes back by itself when its visibility timeout ends.
            logger.warning("hand-back failed", extra={"error": str(error)})

    def _forget(self, task: ReceivedTask) -> None:
        """The message is no longer held (acknowledged, handed back or left to come back)."""
        with self._leases_lock:
            self._held_messages.pop(task.receipt_handle, None)

    def _release_slot(self, processed: bool = False, *, recording: bool = False) -> None:
        """A message no longer takes a slot's share. With ``recording``, its outcome went to its
        slot's recorder, which reports it when done (``_recorded``)."""
        with self._held_changed:
            self._held -= 1
            self._recording += recording
            self.processed += processed
            idle = self._held == 0 and self._recording == 0
            self._wake_fetcher_if_due()
        if idle:
            self._reporter.flush_soon()  # nothing else to batch with: report now

    def _recorded(self) -> None:
        """An outcome handed to a recorder is recorded and reported: flush the reporter now if
        nothing else is held or being recorded to batch with."""
        with self._held_changed:
            self._recording -= 1
            idle = self._held == 0 and self._recording == 0
        if idle:
            self._reporter.flush_soon()

    def _wake_fetcher_if_due(self) -> None:
        """Wake the fetcher if it sleeps and would now fetch (under ``_held_changed``). Waking
        it for nothing (messages still buffered) cost a thread switch per task."""
        if self._fetcher_waiting and self._held < self._capacity and self._buffer.empty():
            self._held_changed.notify()

    # -- one slot -------------------------------------------------------------------------------

    def _drive(self, index: int, slot: TaskSlot) -> None:
        """A slot's thread, for the agent's lifetime: whatever a task does, the slot goes on."""
        restart_at = 0.0
        while True:
            if not slot.started:
                # Its child could not load the handler after a crash or timeout: take no task
                # until it can (other slots take them; liveness fails if it never can). A
                # runtime that inits on invoke takes the next task once its back-off is over,
                # and that task fails with the init error if the runtime still cannot start.
                if self._stopping.is_set():
                    return
                if time.monotonic() < restart_at:
                    self._stopping.wait(min(1.0, restart_at - time.monotonic()))
                    continue
                if not slot.init_on_invoke or slot.load_failures == 0:
                    # A first start (a runtime's, here) happens before any task, warm.
                    try:
                        slot.start()
                    except HandlerLoadError as error:
                        restart_at = time.monotonic() + self._restart_delay(slot)
                        logger.error("slot cannot load the handler", extra={"error": str(error)})
                    continue
            try:
                queued = self._buffer.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            with self._held_changed:  # the buffer may be empty now: time to fetch more
                self._wake_fetcher_if_due()
            with task_keys(queued.task.message):
                restart_at = self._drive_one(index, slot, queued.task, restart_at)

    def _drive_one(
        self, index: int, slot: TaskSlot, task: ReceivedTask, restart_at: float
    ) -> float:
        """Process one message on ``slot``, whatever happens; when the slot may start again.
        The outcome of a handler that ran is recorded while the slot takes its next task."""
        record: Callable[[], None] | None = None
        try:
            if self._stopping.is_set():
                self._hand_back([task])
                return restart_at
            with BUSY_SLOTS.track_inprogress():
                record = self._process(slot, task)
        except _AWS_TRANSIENT as error:
            # AWS failed past botocore's retries: leave the message; it comes back after
            # its visibility timeout and the conditional writes make the retry safe.
            logger.error("task not reported", extra={"error": str(error)})
        except Exception:
            # Catch-all on purpose: _process records any failure a task causes, so what
            # reaches here is a bug of the agent's own; the message comes back after its
            # visibility timeout (and reaches the DLQ if it always fails), and this slot,
            # with every message the agent holds, must go on (a dead slot thread stops
            # the agent taking work while it still looks alive).
            logger.exception("task not processed")
        finally:
            if record is None:
                self._settle(task)
            else:
                # The slot's share is free for the next message now; the message itself stays
                # held (hidden by the heartbeat) until its outcome is recorded and reported.
                self._release_slot(processed=True, recording=True)
                self._record_later(index, task, record)
            if not slot.started:
                restart_at = time.monotonic() + self._restart_delay(slot)
        return restart_at

    def _settle(self, task: ReceivedTask) -> None:
        """A message is done with: no longer held, its slot's share free."""
        self._forget(task)
        self._release_slot(processed=True)

    def _record_later(self, index: int, task: ReceivedTask, record: Callable[[], None]) -> None:
        """Record a task's outcome on its slot's recorder thread, so the slot runs its next task
        meanwhile: a short task's slot would otherwise wait out a round trip to the table after
        each one. One recording per slot at a time (the previous one is waited for first), so
        the outcomes in flight are at most the slots, and each is recorded, reported and
        acknowledged exactly as it would be by the slot itself. A message being recorded takes
        no room of the fetch's (``slots + prefetch``): receives stay full batches."""
        previous = self._recordings[index]
        if previous is not None:
            previous.result()  # never raises: _recorded handles everything

        def recorded() -> None:
            with task_keys(task.message):
                try:
                    record()
                except _AWS_TRANSIENT as error:
                    logger.error("task not reported", extra={"error": str(error)})
                except Exception:
                    # Catch-all on purpose, as _drive_one's: the message comes back after its
                    # visibility timeout, and the recorder must go on.
                    logger.exception("task not processed")
                finally:
                    self._forget(task)
                    self._recorded()

        self._recordings[index] = self._recorders[index].submit(recorded)

    @staticmethod
    def _restart_delay(slot: TaskSlot) -> float:
        """Back-off before a stopped slot's next start: none after one that worked."""
        if slot.load_failures == 0:
            return 0.0
        # No jitter: one slot alone, and the documented 2, 4, ... 60 s are what an operator sees.
        return backoff_s(
            slot.load_failures, base_s=1.0, cap_s=MAX_SLOT_RESTART_DELAY_S, jitter=False
        )

    def _process(self, slot: TaskSlot, task: ReceivedTask) -> Callable[[], None] | None:
        """Run one received message through claim and handler. Returns what is left, recording
        and reporting the handler's outcome (None when nothing is: no handler ran, or the
        message was handed back or acknowledged)."""
        message = task.message
        if message is None:
            # Not a task: put it straight back, spending a receive, so it reaches the DLQ.
            logger.error("not a task message", extra={"problem": task.problem})
            TASKS.labels("poison").inc()
            self._make_visible(task)
            return None
        if self._cancelled_before_start(message):
            TASKS.labels("cancelled").inc()
            self._acknowledge_cancelled(task, message)
            return None
        lease_token: str | None = None
        if message.timeout_s > self._lease_threshold_s:
            lease_token = uuid.uuid4().hex
            if not self._claim(task, message, lease_token):
                return None
        completion = Completion(message.session_id, message.task_id, message.attempt, lease_token)
        running = _Running(message)
        with self._leases_lock:
            self._running[message.task_id] = running
        outcome: tuple[Outcome, AttemptTimings] | None = None
        try:
            outcome = self._run(slot, task, completion, running)
        except _AWS_TRANSIENT:
            self._drop(running)
            raise
        except Exception as error:
            self._failed_in_agent(task, completion, running, error)
            return None
        if outcome is None:
            self._drop(running)
            return None
        result, timings = outcome

        def record() -> None:
            try:
                self._record(task, message, completion, result, timings)
            except _AWS_TRANSIENT:
                self._drop(running)
                raise
            except Exception as error:
                self._failed_in_agent(task, completion, running, error)
            else:
                self._drop(running)

        return record

    def _failed_in_agent(
        self, task: ReceivedTask, completion: Completion, running: _Running, error: Exception
    ) -> None:
        """Whatever else processing a task raised (a stored payload that is not JSON, a result
        no document can carry, a bug) is this attempt's failure, recorded with its cause; the
        slot goes on with the next task."""
        message = running.message
        try:
            logger.exception("task failed in the agent", extra={"task_id": message.task_id})
            self._record(task, message, completion, unexpected_outcome(error))
        finally:
            self._drop(running)

    def _drop(self, running: _Running) -> None:
        """A task is no longer this agent's: no lease to keep, nothing running to stop. A
        duplicate of it that another slot took meanwhile keeps its own entries."""
        task_id = running.message.task_id
        with self._leases_lock:
            if self._running.get(task_id) is running:
                self._running.pop(task_id, None)
                self._leases.pop(task_id, None)

    def _run(
        self, slot: TaskSlot, task: ReceivedTask, completion: Completion, running: _Running
    ) -> tuple[Outcome, AttemptTimings] | None:
        """Run the handler: its outcome to record, or None when there is none (the task was
        cancelled or handed back while it ran: that is dealt with here)."""
        message = running.message
        try:
            outcome = self._run_handler(slot, message, running)
        except PayloadIntegrityError as error:
            # The stored payload is not the one submitted: no retry can fix that.
            outcome = Outcome(
                error_type=type(error).__name__, error_message=str(error), retryable=False
            )
        except PayloadMissingError as error:
            # Deleted with its session, expired, or never uploaded: no retry brings it back.
            outcome = Outcome(
                error_type="PayloadMissing",
                error_message=f"the task's stored payload: {error}",
                retryable=False,
            )
        if outcome.aborted and running.reason == "cancelled":
            TASKS.labels("cancelled").inc()
            self._acknowledge_cancelled(task, message)
            return None
        if outcome.aborted:
            self._hand_back_held(task, completion)
            return None
        timings = AttemptTimings(task.sent_at, task.received_at, running.started_at)
        START_DELAY_SECONDS.observe(max(0.0, running.started_at - task.received_at))
        return outcome, timings

    def _claim(self, task: ReceivedTask, message: TaskMessage, lease_token: str) -> bool:
        now = time.time()
        try:
            self.grid.table.claim(
                message.session_id,
                message.task_id,
                message.attempt,
                lease_token,
                now + self.grid.settings.lease_duration_s,
                now,
            )
        except TransitionRejected as rejected:
            CLAIM_CONFLICTS.labels("claim").inc()
            current: TaskRecord | None = rejected.current
            if (
                current is not None
                and current.state is TaskState.RUNNING
                and current.attempt == message.attempt
            ):
                # Someone holds this attempt: leave the message be. If their lease expired, the
                # reaper retries the task within a run or two; this copy checks back by then.
                TASKS.labels("held_elsewhere").inc()
                expires = current.lease_expires_at
                if expires is not None and expires < now:
                    self._set_visibility(task, self.grid.settings.lease_duration_s)
                return False
            self._stale(task, message, current)
            return False
        completion = Completion(message.session_id, message.task_id, message.attempt, lease_token)
        with self._leases_lock:
            self._leases[message.task_id] = _Lease(completion, task.queue_url, task.receipt_handle)
            held = self._held_messages.get(task.receipt_handle)
            if held is not None:
                held.leased = True
        # From now on the message's visibility follows the lease (heartbeats extend both): if
        # this worker dies, the reaper retries the task and the message, stale by then, comes
        # back within two lease durations to be cleared, not after the queue's long timeout.
        self._set_visibility(task, self.grid.settings.lease_duration_s * 2)
        return True

    def _stale(self, task: ReceivedTask, message: TaskMessage, current: TaskRecord | None) -> None:
        """The message's attempt is over (a duplicate delivery, a lost lease, a cancelled or
        finished task): acknowledge it and tell the session to look.

        One case needs more: the task waits, PENDING, for the retry of exactly this attempt.
        Its retry message is normally on its way, but it is lost if the retry workflow died
        between its write and its send; so send it again (a duplicate is harmless: the
        conditional writes let one attempt count)."""
        TASKS.labels("duplicate").inc()
        if (
            current is not None
            and current.state is TaskState.PENDING
            and current.attempt == message.attempt + 1
        ):
            self.grid.queues.dispatch([current.message()], retry_delay_s(message.attempt))
        self._reporter.finished(
            task.queue_url,
            task.receipt_handle,
            message.result_queue_url,
            changed_task_id=message.task_id,
        )

    def _set_visibility(self, task: ReceivedTask, timeout_s: int) -> None:
        try:
            self.grid.queues.change_visibility(task.queue_url, task.receipt_handle, timeout_s)
        except (ClientError, BotoCoreError) as error:
            logger.warning("visibility change failed", extra={"error": str(error)})

    def _cancelled_before_start(self, message: TaskMessage) -> bool:
        """Whether the task's session, or the task itself, was cancelled: then it never starts.
        The session's flags are cached; a task is read only if its session had cancellations."""
        flags = self._sessions.flags(message.session_id)
        if flags.cancelled:
            return True
        if not flags.has_cancelled_tasks:
            return False
        record = self.grid.table.get_records(message.session_id, [message.task_id]).get(
            message.task_id
        )
        return record is not None and record.state is TaskState.CANCELLED

    def _acknowledge_cancelled(self, task: ReceivedTask, message: TaskMessage) -> None:
        """A cancelled task's message is done with. If the cancel function has not reached the
        task yet, cancel it here (conditionally: an outcome recorded first stands)."""
        try:
            self.grid.table.cancel(message.session_id, message.task_id, time.time())
        except TransitionRejected:
            pass  # already CANCELLED, or finished before the cancel
        else:
            self._reporter.count(message.session_id, TaskState.CANCELLED)
        self._reporter.finished(
            task.queue_url,
            task.receipt_handle,
            message.result_queue_url,
            changed_task_id=message.task_id,
        )

    def _run_handler(self, slot: TaskSlot, message: TaskMessage, running: _Running) -> Outcome:
        # The payload's JSON goes to the slot unparsed: its child parses it, within its own
        # memory limit, and the agent holds the bytes once.
        data = message.payload
        if isinstance(data, InlineData):
            payload = json.dumps(data.inline).encode()
        else:
            if data.size > self._slot_memory_mb * 2**20:
                return Outcome(
                    error_type="PayloadTooLarge",
                    error_message=f"the stored payload is {data.size} bytes; a slot has "
                    f"{self._slot_memory_mb} MiB of memory",
                    retryable=False,
                )
            payload = self.grid.payloads.fetch(data)
        started = running.started_at = time.time()
        context = TaskContext(
            function_name=self.config.name,
            aws_request_id=message.task_id,
            session_id=message.session_id,
            attempt=message.attempt,
            memory_limit_in_mb=self._slot_memory_mb,
            deadline=started + message.timeout_s,
            trace_id=message.trace_header or new_trace_header(started),
        )
        with HANDLER_SECONDS.time():
            return slot.run(payload, context, message.timeout_s, running.stop)

    def _record(
        self,
        task: ReceivedTask,
        message: TaskMessage,
        completion: Completion,
        outcome: Outcome,
        timings: AttemptTimings | None = None,
    ) -> None:
        table, now = self.grid.table, time.time()
        try:
            if outcome.succeeded and outcome.result is not None:
                result = self.grid.payloads.encode_json(
                    outcome.result,
                    # A key of this execution's own: a duplicate or late run of the attempt
                    # can never replace the object a recorded result names.
                    result_key(
                        message.session_id, message.task_id, message.attempt, uuid.uuid4().hex
                    ),
                    what="result",
                )
                table.record_success(completion, result, now)
                TASKS.labels("succeeded").inc()
                if timings is not None:
                    log_attempt_succeeded(
                        now - timings.started_at,
                        timings.received_at - timings.queued_at if timings.queued_at else None,
                        timings.started_at - timings.received_at,
                    )
                finished = finished_result(
                    message, TaskState.SUCCEEDED, now, result=result, timings=timings
                )
            else:
                self._report_failure(task, message, completion, outcome, now)
                return
        except TransitionRejected as rejected:
            # A duplicate delivery, a lost lease or a cancelled task: someone else's outcome
            # stands.
            CLAIM_CONFLICTS.labels("record").inc()
            self._stale(task, message, rejected.current)
            return
        except InvalidSubmissionError as error:
            # The result could not be stored (e.g. too large): that is this attempt's failure.
            logger.error(
                "result not recorded", extra={"task_id": message.task_id, "error": str(error)}
            )
            self._record(
                task,
                message,
                completion,
                Outcome(error_type=type(error).__name__, error_message=str(error), retryable=False),
            )
            return
        self._reporter.finished(
            task.queue_url, task.receipt_handle, message.result_queue_url, result=finished
        )

    def _report_failure(
        self,
        task: ReceivedTask,
        message: TaskMessage,
        completion: Completion,
        outcome: Outcome,
        now: float,
    ) -> None:
        """Hand a failed attempt to the retry workflow; acknowledge the message once it has
        decided. If it could not, the message comes back after its visibility timeout (and a
        leased task's lease, no longer renewed, reaches the reaper)."""
        TASKS.labels("failed_attempt").inc()
        failure = AttemptFailure(
            session_id=message.session_id,
            task_id=message.task_id,
            attempt=message.attempt,
            max_attempts=message.max_attempts,
            lease_token=completion.lease_token,
            error=TaskError.bounded(
                type=outcome.error_type or "Error",
                message=outcome.error_message,
                attempt=message.attempt,
                at=now,
                retryable=outcome.retryable,
            ),
        )
        log_attempt_failed(failure.error.type, failure.error.message, failure.error.retryable)
        if self._failures.report(failure, message.trace_header):
            self._reporter.finished(task.queue_url, task.receipt_handle, None)

    def _hand_back_held(self, task: ReceivedTask, completion: Completion) -> None:
        """Abort path: give a running task back, lease released, a fresh copy of its message
        queued for another agent."""
        if completion.lease_token is not None:
            try:
                self.grid.table.release(completion)
            except TransitionRejected:
                pass  # the lease was already lost: whoever holds the task now decides
        self._hand_back([task])

    # -- leases -------------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Every heartbeat interval, until teardown: stop running tasks that were cancelled, and
        extend each lease (and its message's visibility) once a third of it is spent."""
        interval = self.grid.settings.heartbeat_interval_s
        while not self._heartbeat_stop.wait(interval):
            try:
                self._stop_cancelled()
            except Exception as error:
                # Catch-all on purpose: a cancellation check that fails (throttled reads
                # raise RetryableError) is tried again next beat; the leases below must still
                # be renewed, or every long task this agent runs is lost.
                logger.warning("cancellation check failed", extra={"error": str(error)})
            try:
                self._extend_due_leases()
                self._extend_held_messages()
                if self._reaps_orphans:
                    reap_orphans({slot.pid for slot in self._slots if slot.pid is not None})
            except Exception:
                # Catch-all on purpose: whatever one beat meets, the next one must come.
                logger.exception("heartbeat failed")

    def _extend_due_leases(self) -> None:
        due = time.monotonic() - self.grid.settings.lease_duration_s / 3
        with self._leases_lock:
            leases = [
                lease
                for lease in self._leases.values()
                if not lease.lost and lease.extended_at <= due
            ]
        for lease in leases:
            self._extend(lease)

    def _extend_held_messages(self) -> None:
        """Keep every held message without a lease hidden (buffered ones too: their clock runs
        from the receive), once a third of its visibility is spent. Else a task that waited
        for a slot, or runs close to its timeout, is received and run again by another agent."""
        now = time.monotonic()
        timeout = self._visibility_s
        with self._leases_lock:
            due = [
                held
                for held in self._held_messages.values()
                if not held.leased and held.visible_at - now < timeout * 2 / 3
            ]
        by_queue: dict[str, list[_Held]] = {}
        for held in due:
            by_queue.setdefault(held.task.queue_url, []).append(held)
        for queue_url, batch in by_queue.items():
            try:
                refused = set(
                    self.grid.queues.set_visibility(
                        queue_url, [held.task.receipt_handle for held in batch], timeout
                    )
                )
            except _AWS_TRANSIENT as error:
                logger.warning("visibility not extended", extra={"error": str(error)})
                continue  # the next beat tries again
            for held in batch:
                if held.task.receipt_handle in refused:
                    # Finished meanwhile, or already visible again: tried again next beat while
                    # held; a copy run elsewhere is a harmless duplicate.
                    logger.warning("visibility not extended", extra={"queue": queue_url})
                else:
                    held.visible_at = now + timeout

    def _stop_cancelled(self) -> None:
        """Halt the handlers of running tasks whose session or task was cancelled."""
        with self._leases_lock:
            running = list(self._running.values())
        by_session: dict[str, list[_Running]] = {}
        for task in running:
            by_session.setdefault(task.message.session_id, []).append(task)
        for session_id, tasks in by_session.items():
            flags = self._sessions.flags(session_id)
            if flags.cancelled:
                for task in tasks:
                    task.halt("cancelled")
            elif flags.has_cancelled_tasks:
                records = self.grid.table.get_records(
                    session_id, [task.message.task_id for task in tasks]
                )
                for task in tasks:
                    record = records.get(task.message.task_id)
                    if record is not None and record.state is TaskState.CANCELLED:
                        task.halt("cancelled")

    def _extend(self, lease: _Lease) -> None:
        duration = self.grid.settings.lease_duration_s
        try:
            self.grid.table.extend_lease(lease.completion, time.time() + duration)
            self.grid.queues.change_visibility(lease.queue_url, lease.receipt_handle, duration * 2)
            lease.extended_at = time.monotonic()
        except TransitionRejected as rejected:
            lease.lost = True
            CLAIM_CONFLICTS.labels("lease").inc()
            lost = lease.completion
            logger.warning(
                "lease lost", extra=task_fields(lost.session_id, lost.task_id, lost.attempt)
            )
            current = rejected.current
            with self._leases_lock:
                running = self._running.get(lease.completion.task_id)
            if running is not None:
                # Its result could never be recorded now: stop spending compute on it.
                cancelled = current is not None and current.state is TaskState.CANCELLED
                running.halt("cancelled" if cancelled else "abort")
        except _AWS_TRANSIENT as error:
            logger.warning("heartbeat failed", extra={"error": str(error)})
