"""Slots: one child process per concurrent task, running the user's handler.

A child imports the handler once and then runs task after task. Running handlers out of the
agent's process is what lets the agent stop a handler that overruns its timeout (the child is
killed and replaced), survive a handler that crashes the interpreter, and use every core.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from htcgrid_agent.context import TaskContext

#: How long a child may take to import the handler before the agent gives up on it.
STARTUP_TIMEOUT_S = 120
_MAX_MESSAGE = 2000
#: Error type of a run the agent cut short on a second SIGTERM.
ABORTED = "Aborted"
#: How often a waiting slot checks for an abort.
_ABORT_CHECK_S = 0.2


@dataclass(frozen=True)
class Outcome:
    """What one run of the handler produced: JSON text of its result, or an error."""

    result_json: str | None = None
    error_type: str | None = None
    error_message: str = ""
    retryable: bool = True

    @property
    def succeeded(self) -> bool:
        return self.error_type is None

    @property
    def aborted(self) -> bool:
        """The agent was told to abort while the handler ran: no outcome to record."""
        return self.error_type == ABORTED


class HandlerLoadError(RuntimeError):
    """The handler named on the command line could not be imported."""


def load_handler(spec: str) -> Callable[[Any, Any], Any]:
    """Import ``module:function``."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise HandlerLoadError(f"handler {spec!r}: expected 'module:function'")
    module = importlib.import_module(module_name)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise HandlerLoadError(f"handler {spec!r}: {module_name} has no function {function_name}")
    return handler  # type: ignore[no-any-return]


def _is_permanent(error: BaseException) -> bool:
    """A handler fails its task at once by raising htcgrid's PermanentTaskError, or any
    exception with ``retryable = False`` (so handlers need not import htcgrid)."""
    if getattr(error, "retryable", True) is False:
        return True
    return any(cls.__name__ == "PermanentTaskError" for cls in type(error).__mro__)


def _run(handler: Callable[[Any, Any], Any], payload_json: str, context: TaskContext) -> Outcome:
    try:
        value = handler(json.loads(payload_json), context)
    except Exception as error:
        detail = "".join(traceback.format_exception_only(error)).strip()
        return Outcome(
            error_type=type(error).__name__,
            error_message=detail[-_MAX_MESSAGE:],
            retryable=not _is_permanent(error),
        )
    try:
        result_json = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        # A lone surrogate (an undecodable file name, say) is not Unicode: no UTF-8 document,
        # record or notice can carry it. Found here, it fails the task, not the agent.
        result_json.encode()
    except (TypeError, ValueError) as error:
        return Outcome(
            error_type="ResultNotSerializable",
            error_message=f"the handler returned a value JSON cannot hold: {error}"[:_MAX_MESSAGE],
            retryable=False,
        )
    return Outcome(result_json=result_json)


def _slot_main(handler_spec: str, conn: Connection) -> None:
    # The agent decides when its children stop; a SIGTERM sent to the whole process group
    # must not kill a handler the agent means to let finish.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        handler = load_handler(handler_spec)
    except Exception as error:
        conn.send(("failed", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready", ""))
    while True:
        job = conn.recv()
        if job is None:
            return
        payload_json, context = job
        # The dataclasses cross the pipe as they are: pickle copies them cheaper than asdict.
        conn.send(("done", _run(handler, payload_json, context)))


class Slot:
    """The agent's end of one child process."""

    def __init__(self, handler_spec: str) -> None:
        self._spec = handler_spec
        self._context = multiprocessing.get_context("spawn")
        #: Consecutive failed starts of the child, and the last one's reason.
        self.load_failures = 0
        self.load_error = ""
        self.started = False
        self.start()

    def start(self) -> None:
        """Start the child and import the handler in it; ``HandlerLoadError`` if it cannot."""
        try:
            self._start()
        except HandlerLoadError as error:
            self.load_failures += 1
            self.load_error = str(error)
            raise
        self.load_failures, self.load_error, self.started = 0, "", True

    def _start(self) -> None:
        self._conn, child_conn = self._context.Pipe()
        self._process = self._context.Process(
            target=_slot_main, args=(self._spec, child_conn), daemon=True
        )
        self._process.start()
        child_conn.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._conn.poll(0.2):
            if not self._process.is_alive() or time.monotonic() > deadline:
                self._kill()
                raise HandlerLoadError(
                    f"handler {self._spec!r}: its process exited or took over "
                    f"{STARTUP_TIMEOUT_S}s to load (exit code {self._process.exitcode})"
                )
        try:
            status, detail = self._conn.recv()
        except EOFError:
            status, detail = "failed", f"handler {self._spec!r}: its process died while loading"
        if status != "ready":
            self._kill()
            raise HandlerLoadError(detail)

    def _kill(self) -> None:
        self.started = False
        self._process.kill()
        self._process.join(5)
        self._conn.close()

    def run(
        self,
        payload_json: str,
        context: TaskContext,
        timeout_s: float,
        abort: threading.Event,
    ) -> Outcome:
        """Run the handler on one payload. Past ``timeout_s``, or once ``abort`` is set, the
        child is killed and replaced. A stopped slot is started first (``HandlerLoadError`` if
        it cannot be)."""
        if not self.started:
            self.start()
        deadline = time.monotonic() + timeout_s
        try:
            self._conn.send((payload_json, context))
            while not abort.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self._conn.poll(min(remaining, _ABORT_CHECK_S)):
                    _, outcome = self._conn.recv()
                    return cast(Outcome, outcome)
        except (EOFError, OSError):
            self._restart()
            return Outcome(
                error_type="HandlerCrashed",
                error_message="the handler's process died (a crash or being killed)",
            )
        self._restart()
        if abort.is_set():
            return Outcome(error_type=ABORTED, error_message="the agent aborted")
        return Outcome(
            error_type="TaskTimeout",
            error_message=f"the handler ran past the task's timeout of {timeout_s:g} s",
        )

    def _restart(self) -> None:
        """Replace the child. If the new one cannot load the handler (a slow import under CPU
        pressure, say), the slot stays stopped: the run that led here still has its outcome,
        and the agent starts the slot again before its next task."""
        self._kill()
        try:
            self.start()
        except HandlerLoadError:
            pass  # recorded in load_failures and load_error, which the agent reads

    def close(self) -> None:
        """Stop the child, politely first."""
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass  # the child is already gone; kill() below makes sure
        self._process.join(2)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()
