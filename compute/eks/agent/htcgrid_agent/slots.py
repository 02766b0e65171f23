"""Slots: one child process per concurrent task, running the user's handler.

A child imports the handler once and then runs task after task. Running handlers out of the
agent's process is what lets the agent stop a handler that overruns its timeout (the child is
killed and replaced), survive a handler that crashes the interpreter, and use every core.

The child is a fresh interpreter (``slot_child``) started with an environment of its own: the
agent's AWS credentials are left out unless the agent is told to pass them
(``handler_environment``). The two talk over a socket pair in JSON frames, never pickles, so
nothing handler code sends can run code in the agent, which holds those credentials.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from htcgrid_agent.context import TaskContext

#: How long a child may take to import the handler before the agent gives up on it.
STARTUP_TIMEOUT_S = 120
#: Error type of a run the agent cut short on a second SIGTERM.
ABORTED = "Aborted"
#: Error type of a run that needed more than its slot's memory.
OUT_OF_MEMORY = "OutOfMemory"
#: How often a waiting slot checks for an abort.
_ABORT_CHECK_S = 0.2
#: How long a slot waits for a child that closed its socket to exit, to say how it ended.
_EXIT_WAIT_S = 1.0

#: Environment variables through which AWS SDKs find credentials: static keys, a profile or
#: credentials file, EKS Pod Identity and ECS container credentials (an endpoint and its
#: token), IRSA (a role and its web identity token).
CREDENTIAL_VARIABLES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    }
)


def handler_environment(
    environ: Mapping[str, str], *, with_credentials: bool = False
) -> dict[str, str]:
    """The environment a slot's child runs in: the agent's, without the variables that lead
    to its AWS credentials (unless ``with_credentials``), and with the SDKs' fall-back to the
    instance metadata service off, so an SDK in a handler finds no credentials at all."""
    if with_credentials:
        return dict(environ)
    environment = {k: v for k, v in environ.items() if k not in CREDENTIAL_VARIABLES}
    environment["AWS_EC2_METADATA_DISABLED"] = "true"
    return environment


@dataclass(frozen=True)
class Outcome:
    """What one run of the handler produced: its result as JSON (UTF-8), or an error."""

    result: bytes | None = None
    error_type: str | None = None
    error_message: str = ""
    retryable: bool = True
    #: The agent was told to abort while the handler ran: no outcome to record. (A flag, not
    #: an error type: a handler's own exception may have any name.)
    aborted: bool = False

    @property
    def succeeded(self) -> bool:
        return self.error_type is None


class HandlerLoadError(RuntimeError):
    """The handler named on the command line could not be imported (or, for a Lambda
    runtime, the runtime could not start)."""


class TaskSlot(Protocol):
    """What the worker drives: ``Slot`` (Python children) or ``runtime_api.RuntimeApiSlot``
    (any Lambda runtime)."""

    #: Whether the handler (runtime) is loaded and ready for a task.
    started: bool
    #: Consecutive failed starts, and the last one's reason.
    load_failures: int
    load_error: str
    #: Whether a task may be handed to a stopped slot, which then starts for it and fails
    #: the task with its start's error if it cannot (Lambda's init-on-invoke), rather than
    #: the worker restarting the slot before it takes tasks.
    init_on_invoke: bool

    @property
    def pid(self) -> int | None: ...

    def start(self) -> None: ...

    def run(
        self, payload: bytes, context: TaskContext, timeout_s: float, abort: threading.Event
    ) -> Outcome: ...

    def close(self) -> None: ...


def send_json(conn: Connection, document: Any) -> None:
    conn.send_bytes(json.dumps(document).encode())


def receive_json(conn: Connection) -> Any:
    return json.loads(conn.recv_bytes())


class ResultTooLarge(Exception):
    """The child announced a result above the slot's limit (it is not read)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def receive_outcome(conn: Connection, max_result_bytes: int | None = None) -> Outcome:
    """The outcome the child sends: a header, then the result's JSON if it succeeded (read
    only if within ``max_result_bytes``, else ``ResultTooLarge``). A malformed one counts as a
    crash of the child (``EOFError``)."""
    header = receive_json(conn)
    if not isinstance(header, dict):
        raise EOFError("the handler's process sent no outcome")
    if header.get("succeeded") is True:
        size = header.get("size")
        if not isinstance(size, int):
            raise EOFError("the handler's process sent no result size")
        if max_result_bytes is not None and size > max_result_bytes:
            raise ResultTooLarge(size)
        return Outcome(result=conn.recv_bytes())
    error_type = header.get("error_type")
    if not isinstance(error_type, str):
        raise EOFError("the handler's process sent no outcome")
    return Outcome(
        error_type=error_type,
        error_message=str(header.get("error_message", "")),
        retryable=header.get("retryable") is not False,
    )


class StartRecord:
    """A slot's starts as the worker reads them: whether it is started, and its consecutive
    failed starts with the last one's reason (for back-off and liveness). Subclasses say how
    to start in ``_start``, raising ``HandlerLoadError`` when they cannot."""

    load_failures = 0
    load_error = ""
    started = False

    def start(self) -> None:
        try:
            self._start()
        except HandlerLoadError as error:
            self.load_failures += 1
            self.load_error = str(error)
            raise
        self.load_failures, self.load_error, self.started = 0, "", True

    def _start(self) -> None:
        raise NotImplementedError


class Slot(StartRecord):
    """The agent's end of one child process."""

    init_on_invoke = False

    def __init__(
        self,
        handler_spec: str,
        environment: Mapping[str, str] | None = None,
        *,
        memory_limit_mb: int | None = None,
        max_result_bytes: int | None = None,
    ) -> None:
        """A slot running ``handler_spec`` in a child with ``environment`` (the agent's without
        its credentials, by default), its address space capped at ``memory_limit_mb`` (None:
        no cap), refusing results above ``max_result_bytes``."""
        self._spec = handler_spec
        self._environment = dict(
            handler_environment(os.environ) if environment is None else environment
        )
        self._memory_limit_mb = memory_limit_mb
        self._max_result_bytes = max_result_bytes
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        #: Waits for the child's outcome. One per child: ``Connection.poll`` builds, registers
        #: and closes a selector on every call, several times a task.
        self._outcome_ready = select.poll()
        self.start()

    def _start(self) -> None:
        """Start the child and import the handler in it; ``HandlerLoadError`` if it cannot."""
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from htcgrid_agent.slot_child import serve; "
                    "serve(int(sys.argv[1]))",
                    str(theirs.fileno()),
                ],
                env=self._environment,
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                # Its own process group (setsid), led by the child: killing the group on a
                # timeout or abort kills the handler's own subprocesses (a solver, a shell) too.
                start_new_session=True,
            )
            self._conn = conn = Connection(ours.detach())
            self._outcome_ready = select.poll()
            self._outcome_ready.register(conn.fileno(), select.POLLIN)
        # The child imports the handler from where the agent would (tests, a mounted folder).
        send_json(
            conn,
            {
                "handler": self._spec,
                "sys_path": sys.path,
                "memory_limit_mb": self._memory_limit_mb,
            },
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not conn.poll(0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise HandlerLoadError(
                    f"handler {self._spec!r}: its process exited or took over "
                    f"{STARTUP_TIMEOUT_S}s to load (exit code {self._process.returncode})"
                )
        try:
            answer = receive_json(conn)
        except (EOFError, OSError, ValueError):
            answer = {"failed": f"handler {self._spec!r}: its process died while loading"}
        if not isinstance(answer, dict) or answer.get("ready") is not True:
            self._kill()
            detail = answer.get("failed") if isinstance(answer, dict) else None
            raise HandlerLoadError(str(detail or f"handler {self._spec!r} did not load"))

    @property
    def pid(self) -> int | None:
        """The child's process id (its process group's too), while it has one."""
        return self._process.pid if self._process is not None else None

    def _kill(self) -> None:
        self.started = False
        if self._process is not None:
            self._kill_group()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass  # unkillable (stuck in the kernel): it no longer holds the slot
        if self._conn is not None:
            self._conn.close()

    def _kill_group(self) -> None:
        """SIGKILL the child's process group: the child and whatever its handler started."""
        assert self._process is not None
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is gone: every process of it already exited

    def run(
        self,
        payload: bytes,
        context: TaskContext,
        timeout_s: float,
        abort: threading.Event,
    ) -> Outcome:
        """Run the handler on one payload (its JSON; the child parses it, within its memory
        limit). Past ``timeout_s``, or once ``abort`` is set, the child is killed and replaced;
        so is a child that ran out of memory. A stopped slot is started first
        (``HandlerLoadError`` if it cannot be)."""
        if not self.started:
            self.start()
        assert self._conn is not None  # started
        conn = self._conn
        deadline = time.monotonic() + timeout_s
        try:
            # Its fields are plain values: vars() is the dict asdict() would build by deep copy.
            send_json(conn, vars(context))
            conn.send_bytes(payload)
            while not abort.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Readable, or hung up (the child died: reading says how, as EOFError).
                if self._outcome_ready.poll(1000 * min(remaining, _ABORT_CHECK_S)):
                    outcome = receive_outcome(conn, self._max_result_bytes)
                    if outcome.error_type == OUT_OF_MEMORY:
                        self._restart()  # its heap may be fragmented or half-freed: start clean
                    return outcome
        except ResultTooLarge as too_large:
            self._restart()  # the result is still in the socket: the child cannot go on
            return Outcome(
                error_type="ResultTooLarge",
                error_message=f"the result is {too_large.size} bytes of JSON; the limit is "
                f"{self._max_result_bytes} bytes",
                retryable=False,
            )
        except (EOFError, OSError, ValueError):
            how = self._how_it_ended()
            self._restart()
            return Outcome(error_type="HandlerCrashed", error_message=f"the handler's {how}")
        self._restart()
        if abort.is_set():
            return Outcome(error_type=ABORTED, error_message="the agent aborted", aborted=True)
        return Outcome(
            error_type="TaskTimeout",
            error_message=f"the handler ran past the task's timeout of {timeout_s:g} s",
        )

    def _how_it_ended(self) -> str:
        """Why the child's end of the socket went away, for the attempt's error: its exit
        status once it has one (it closes the socket as it exits), or what it sent instead."""
        assert self._process is not None
        try:
            code = self._process.wait(_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            return "process sent something that is not an outcome"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"process died: ended by {name}"
        return f"process exited with code {code} (sys.exit(), os._exit() or a BaseException)"

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
        """Stop the child, politely first (closing its end of the socket ends its loop)."""
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            try:
                self._process.wait(2)
            except subprocess.TimeoutExpired:
                pass
            # Whatever the handler left running in the background goes with the slot.
            self._kill_group()
            self._process.wait(5)
        self.started = False
