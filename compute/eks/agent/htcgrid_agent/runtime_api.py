"""Slots served through the Lambda Runtime API: any Lambda runtime is a worker.

For each slot the agent serves the documented Runtime API (``GET .../invocation/next``,
``POST .../invocation/{id}/response`` and ``/error``, ``POST .../init/error``) on a port of its
own on 127.0.0.1. The runtime behind it is either a process the agent starts per slot
(``--bootstrap``, like a custom runtime's ``bootstrap`` on Lambda, with the variables Lambda
sets) or a container beside the agent pointed at the slot's address (``--runtime-api-port``).
Either way one runtime serves one slot and runs one task at a time, as one Lambda execution
environment does.

What the runtime does wrong is the attempt's outcome, and the slot goes on: an init error, a
handler error, a deadline overrun (the runtime is killed and replaced), a runtime that exits
mid-invocation, a response over Lambda's 6 MB or not JSON, a runtime that stops asking for work.
The runtime's requests are untrusted input: bodies are bounded, ids checked, errors parsed
leniently.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from htcgrid_agent.context import TaskContext
from htcgrid_agent.log import logger
from htcgrid_agent.metrics import RUNTIME_RESTARTS
from htcgrid_agent.slots import ABORTED, HandlerLoadError, Outcome, StartRecord
from htcgrid_core.traces import new_trace_header

#: Lambda's limit on a synchronous response (6 MB), and the error type it fails with.
RESPONSE_LIMIT_BYTES = 6_291_556
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
#: Error types of the runtime's own failures, as Lambda names them.
EXIT_ERROR = "Runtime.ExitError"
INIT_ERROR = "Runtime.InitError"
#: The attempt's error when the runtime stopped asking for work.
NO_NEXT_INVOCATION = "Runtime.NoNextInvocation"
#: Why a runtime was killed (``htcgrid_agent_runtime_restarts_total``), by the run's failure.
_RESTART_REASONS = {
    "TaskTimeout": "timeout",
    EXIT_ERROR: "exit",
    NO_NEXT_INVOCATION: "no_next",
    ABORTED: "cancel",
}
#: Longest error document read from a runtime; the rest is discarded.
MAX_ERROR_BODY_BYTES = 256 * 1024
#: Most bytes of an oversized response read (and discarded) to keep its connection usable;
#: past it the connection is closed instead.
MAX_DISCARD_BYTES = 64 * 2**20
#: How often a waiting run checks its abort flag and the runtime's process.
_CHECK_S = 0.2

_API = "/2018-06-01/runtime"
_NEXT = f"{_API}/invocation/next"
_INVOCATION = f"{_API}/invocation/"
_INIT_ERROR = f"{_API}/init/error"


def is_permanent_error(error_type: str) -> bool:
    """A runtime fails a task for good by naming its error ``PermanentTaskError`` (Java and
    C# runtimes send the class's full name, hence the suffix), as Python handlers do by raising
    one: no retry can help."""
    return error_type == "PermanentTaskError" or error_type.endswith(".PermanentTaskError")


def error_outcome(
    document: Any, header_type: str | None, default_type: str = "Runtime.Unknown"
) -> Outcome:
    """The outcome of ``POST .../error`` from its body (``errorType``, ``errorMessage``,
    ``stackTrace`` or ``trace``, any of them missing or malformed) and its error-type header.
    The stack trace comes first and the message last, as in a Python traceback: a message cut
    to fit the task's error keeps its tail."""
    fields = document if isinstance(document, dict) else {}
    error_type = fields.get("errorType")
    if not isinstance(error_type, str) or not error_type:
        error_type = header_type or default_type
    message = fields.get("errorMessage")
    message = message if isinstance(message, str) else ""
    # Node.js's runtime client (aws-lambda-ric) names the stack trace "trace".
    trace = fields.get("stackTrace", fields.get("trace"))
    lines = [str(line).rstrip() for line in trace] if isinstance(trace, list) else []
    return Outcome(
        error_type=error_type,
        error_message="\n".join([*lines, message]) if lines else message,
        retryable=not is_permanent_error(error_type),
    )


def response_outcome(body: bytes) -> Outcome:
    """The outcome of ``POST .../response``: the result if the body is one JSON document in
    UTF-8 (the grid's results are JSON), else a failure that a retry would bring back."""
    try:
        json.loads(body.decode(), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:
        return Outcome(
            error_type="ResultNotJson",
            error_message=f"the runtime's response is not a JSON document in UTF-8: {error}"[:2000],
            retryable=False,
        )
    return Outcome(result=body)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@dataclass
class Invocation:
    """One attempt handed to the runtime, and what came of it."""

    request_id: str
    payload: bytes
    headers: dict[str, str]
    handed: bool = False
    #: The runtime's address on the connection it took the invocation on (sidecar kills).
    peer_port: int | None = None
    outcome: Outcome | None = None


def invocation_headers(context: TaskContext, region: str) -> dict[str, str]:
    """The ``GET .../next`` headers of one attempt. The request id is the task id; the client
    context carries the session and attempt, as strings (Lambda's custom context is a map of
    strings). No Cognito identity exists, so that header is left out, as Lambda leaves it out
    of invocations without one. The trace id is the task's (its submission's trace), or a new
    one for a task that carries none."""
    arn = f"arn:aws:lambda:{region}:000000000000:function:{context.function_name}"
    return {
        "Lambda-Runtime-Aws-Request-Id": context.aws_request_id,
        "Lambda-Runtime-Deadline-Ms": str(int(context.deadline * 1000)),
        "Lambda-Runtime-Invoked-Function-Arn": arn,
        "Lambda-Runtime-Trace-Id": context.trace_id or new_trace_header(),
        "Lambda-Runtime-Client-Context": json.dumps(
            {"custom": {"session_id": context.session_id, "attempt": str(context.attempt)}}
        ),
    }


def lambda_environment(
    base: Mapping[str, str],
    *,
    api_address: str,
    handler: str,
    task_root: str,
    runtime_dir: str,
    function_name: str,
    memory_mb: int,
    region: str,
) -> dict[str, str]:
    """The environment of a runtime the agent starts: ``base`` (the agent's, without its
    credentials) and the variables Lambda sets for a custom runtime."""
    return {
        **base,
        "AWS_LAMBDA_RUNTIME_API": api_address,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": runtime_dir,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": function_name,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "TZ": ":UTC",
    }


def peer_pid(server_port: int, peer_port: int) -> int | None:
    """The process holding the client end of a TCP connection to ``server_port`` from
    ``peer_port`` on this host's network namespace (a runtime in another container of the
    pod), found through /proc; None if it is gone or not visible (no shared process
    namespace, or another user's)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
            if int(local, 16) == peer_port and int(remote, 16) == server_port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    return int(entry)
        except OSError:
            continue  # exited meanwhile, or not ours to read
    return None


class RuntimeApiSlot(StartRecord):
    """One slot whose tasks run in a Lambda runtime, over the Runtime API on its own port.

    Started (``start``), the slot has a runtime parked on ``GET .../next``. ``run`` hands it
    one invocation and waits for its response or error, the deadline, an abort, or the
    runtime's end. As on Lambda, a runtime is initialised on the invocation that needs it: a
    slot whose runtime could not start still takes tasks (``init_on_invoke``), and each one
    fails with the init error, which is how its submitter learns of it. A sidecar's runtime
    starts with its container, not with a task: its slot takes no task while it is away.
    """

    def __init__(
        self,
        *,
        bootstrap: str | None,
        environment: Mapping[str, str],
        handler: str,
        task_root: str,
        function_name: str,
        memory_mb: int,
        region: str,
        port: int = 0,
        init_timeout_s: float = 30.0,
        max_result_bytes: int = RESPONSE_LIMIT_BYTES,
        stopping: threading.Event | None = None,
    ) -> None:
        """A slot serving the Runtime API on 127.0.0.1:``port`` (0: any free port). With a
        ``bootstrap`` command the slot starts (and restarts) the runtime itself; without one
        it waits for a runtime started by someone else (a sidecar container). Once
        ``stopping`` is set, a start waiting for its runtime gives up (an agent draining does
        not wait out a sidecar's init timeout)."""
        self._command = shlex.split(bootstrap) if bootstrap else None
        self.init_on_invoke = self._command is not None
        if self._command and "/" in self._command[0]:
            # A path is the user's, from where the agent was started (not the task root).
            self._command[0] = str(Path(self._command[0]).resolve())
        self._task_root = task_root
        self._region = region
        self._init_timeout_s = init_timeout_s
        self._stopping = stopping or threading.Event()
        #: Largest response taken: Lambda's limit, or the grid's if that is lower.
        self.max_result_bytes = min(max_result_bytes, RESPONSE_LIMIT_BYTES)
        self._state = threading.Condition()
        #: Bumped when a runtime is killed: connections from before then are not served.
        self._generation = 0
        self._parked = 0  # GET .../next requests of the current generation waiting
        self._pending: Invocation | None = None
        self._current: Invocation | None = None
        self._init_error: Outcome | None = None
        self._closed = False
        self._process: subprocess.Popen[bytes] | None = None
        self._server = _RuntimeApiServer(("127.0.0.1", port), self)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._environment = (
            lambda_environment(
                environment,
                api_address=self.address,
                handler=handler,
                task_root=task_root,
                runtime_dir=str(Path(self._command[0]).resolve().parent),
                function_name=function_name,
                memory_mb=memory_mb,
                region=region,
            )
            if self._command
            else {}
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"runtime-api-{self.address}", daemon=True
        )
        self._thread.start()
        #: Why the runtime last failed to start: the outcome of the task that needed it.
        self.init_failure: Outcome | None = None

    @property
    def pid(self) -> int | None:
        """The runtime's process (group) id, if the slot started it."""
        return self._process.pid if self._process is not None else None

    # -- the runtime's life -------------------------------------------------------------------

    def _start(self) -> None:
        """Have a runtime ready: start it (``--bootstrap``) or wait for a sidecar's, until it
        asks for its first invocation. ``HandlerLoadError`` with the init error if it reports
        one, exits, or does not ask within the init timeout."""
        with self._state:
            self._init_error = None
        if self._command is not None:
            try:
                self._process = subprocess.Popen(
                    self._command,
                    cwd=self._task_root,
                    env=self._environment,
                    stdin=subprocess.DEVNULL,
                    # Its own process group: a kill takes whatever the runtime started too.
                    start_new_session=True,
                )
            except OSError as error:
                raise HandlerLoadError(f"bootstrap {self._command[0]!r}: {error}") from error
        deadline = time.monotonic() + self._init_timeout_s
        with self._state:
            while self._parked == 0:
                failure = self._init_error or self._exit_outcome()
                if failure is None and self._stopping.is_set():
                    failure = Outcome(error_type=INIT_ERROR, error_message="the agent is stopping")
                if failure is None and time.monotonic() > deadline:
                    failure = Outcome(
                        error_type=INIT_ERROR,
                        error_message="the runtime did not ask for an invocation within "
                        f"{self._init_timeout_s:g} s of starting",
                    )
                if failure is not None:
                    break
                self._state.wait(_CHECK_S)
            else:
                return
        self._kill()
        RUNTIME_RESTARTS.labels("init_error").inc()
        self.init_failure = failure
        raise HandlerLoadError(f"{failure.error_type}: {failure.error_message}")

    def _exit_outcome(self) -> Outcome | None:
        """Why the runtime the slot started has exited, if it has."""
        if self._process is None:
            return None
        code = self._process.poll()
        if code is None:
            return None
        if code < 0:
            try:
                how = f"signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        else:
            how = f"exit status {code}"
        return Outcome(error_type=EXIT_ERROR, error_message=f"Runtime exited with error: {how}")

    def _kill(self, peer_port: int | None = None) -> None:
        """End the runtime: the process group the slot started, or the sidecar's process
        found by its connection. Connections from before are not served again."""
        self.started = False
        with self._state:
            self._generation += 1
            self._parked = 0
            self._current = None
            self._state.notify_all()
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone, with every process of its group
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass  # stuck in the kernel: it no longer holds the slot
        elif peer_port is not None:
            server_port = int(self.address.rsplit(":", 1)[1])
            pid = peer_pid(server_port, peer_port)
            if pid is None:
                logger.warning(
                    "runtime not found to kill: is the pod's process namespace shared?",
                    extra={"runtime_api": self.address},
                )
                return
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError) as error:
                logger.warning("runtime not killed", extra={"pid": pid, "error": str(error)})

    def _replace(self, peer_port: int | None) -> None:
        """Kill the runtime and start a fresh one if the slot starts its own (a sidecar's
        comes back when its container restarts, which the next run waits for)."""
        self._kill(peer_port)
        if self._command is not None:
            try:
                self.start()
            except HandlerLoadError:
                pass  # recorded in load_failures and load_error, which the agent reads

    # -- one invocation -----------------------------------------------------------------------

    def run(
        self,
        payload: bytes,
        context: TaskContext,
        timeout_s: float,
        abort: threading.Event,
    ) -> Outcome:
        """Run one attempt in the runtime and return its outcome."""
        if not self.started:
            try:
                self.start()
            except HandlerLoadError as error:
                # Lambda fails the invocation whose init failed with the init error.
                return self.init_failure or Outcome(error_type=INIT_ERROR, error_message=str(error))
        invocation = Invocation(
            context.aws_request_id, payload, invocation_headers(context, self._region)
        )
        now = time.monotonic()
        deadline = now + timeout_s
        ask_by = now + self._init_timeout_s  # for a runtime to come back for work
        failure: Outcome | None = None
        with self._state:
            self._pending = invocation
            self._state.notify_all()
            while invocation.outcome is None:
                now = time.monotonic()
                if abort.is_set():
                    failure = Outcome(
                        error_type=ABORTED, error_message="the agent aborted", aborted=True
                    )
                elif (exited := self._exit_outcome()) is not None:
                    failure = exited
                elif now >= deadline:
                    failure = Outcome(
                        error_type="TaskTimeout",
                        error_message=f"the handler ran past the task's timeout of {timeout_s:g} s"
                        if invocation.handed
                        else f"the runtime did not ask for the task within its timeout of "
                        f"{timeout_s:g} s",
                    )
                elif not invocation.handed and self._parked == 0 and now >= ask_by:
                    failure = Outcome(
                        error_type=NO_NEXT_INVOCATION,
                        error_message="the runtime did not ask for its next invocation "
                        f"within {self._init_timeout_s:g} s",
                    )
                if failure is not None:
                    break
                self._state.wait(min(_CHECK_S, deadline - now))
            if self._pending is invocation:
                self._pending = None
            outcome = invocation.outcome
        if outcome is not None:
            return outcome
        assert failure is not None
        RUNTIME_RESTARTS.labels(_RESTART_REASONS[failure.error_type or ""]).inc()
        self._replace(invocation.peer_port)
        return failure

    # -- the API's side (called from the server's threads) ------------------------------------

    def next_invocation(self, generation: int, peer_port: int) -> Invocation | None:
        """Block until there is an invocation for this connection's runtime; None once the
        runtime was replaced or the slot closed (the connection is then dropped)."""
        with self._state:
            if generation != self._generation or self._closed:
                return None
            lost = self._current
            if lost is not None and lost.outcome is None:
                # A runtime asks for work only after answering: this one is a new runtime
                # (a sidecar's container restarted) or one that dropped the invocation.
                lost.outcome = Outcome(
                    error_type=EXIT_ERROR,
                    error_message="the runtime asked for its next invocation without "
                    "answering this one (it restarted, or lost it)",
                )
                RUNTIME_RESTARTS.labels("exit").inc()
                self._current = None
            self._parked += 1
            self._state.notify_all()
            try:
                while self._pending is None:
                    self._state.wait()
                    if generation != self._generation or self._closed:
                        return None
            finally:
                if generation == self._generation:
                    self._parked -= 1
            invocation, self._pending = self._pending, None
            invocation.handed, invocation.peer_port = True, peer_port
            self._current = invocation
            return invocation

    def current(self, generation: int, request_id: str) -> Invocation | None:
        """The invocation ``request_id`` names, if it is the one running on this runtime."""
        with self._state:
            invocation = self._current
            if (
                generation == self._generation
                and invocation is not None
                and invocation.request_id == request_id
                and invocation.outcome is None
            ):
                return invocation
            return None

    def finish(self, invocation: Invocation, outcome: Outcome) -> None:
        with self._state:
            if self._current is invocation and invocation.outcome is None:
                invocation.outcome = outcome
                self._current = None
                self._state.notify_all()

    def init_failed(self, generation: int, outcome: Outcome) -> None:
        with self._state:
            if generation == self._generation:
                self._init_error = outcome
                self._state.notify_all()

    @property
    def generation(self) -> int:
        with self._state:
            return self._generation

    def close(self) -> None:
        """Stop the runtime (if the slot started it) and the slot's server."""
        with self._state:
            self._closed = True
            self._state.notify_all()
        if self._process is not None:
            self._kill()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.started = False


class _RuntimeApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # A runtime reconnecting at once after a kill must find the port free.
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], slot: RuntimeApiSlot) -> None:
        self.slot = slot
        super().__init__(address, _RuntimeApiHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed mid-request (a timeout, an init error) drops its connection: that
        # is expected, and recorded as the attempt's outcome, not a traceback in the log.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    """The Runtime API's routes; keep-alive (HTTP/1.1), as runtime clients expect."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux) on every response.
    disable_nagle_algorithm = True
    server: _RuntimeApiServer

    def setup(self) -> None:
        super().setup()
        # The runtime this connection belongs to: a killed one's requests are not served.
        self.generation = self.server.slot.generation

    def log_message(self, format: str, *args: object) -> None:
        pass  # two requests a task: the agent logs outcomes, not requests

    def do_GET(self) -> None:
        if self.path != _NEXT:
            self._send_json(HTTPStatus.NOT_FOUND, _error("InvalidRoute", self.path))
            return
        invocation = self.server.slot.next_invocation(self.generation, self.client_address[1])
        if invocation is None:
            self.close_connection = True
            return
        self.send_response_only(HTTPStatus.OK)
        for name, value in invocation.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(invocation.payload)))
        self.end_headers()
        self.wfile.write(invocation.payload)

    def do_POST(self) -> None:
        slot = self.server.slot
        length = self._length()
        if length is None:
            return
        if self.path == _INIT_ERROR:
            body = self._read(length, MAX_ERROR_BODY_BYTES)
            document = _lenient_json(body)
            slot.init_failed(
                self.generation, error_outcome(document, self._error_type_header(), INIT_ERROR)
            )
            self._send_json(HTTPStatus.ACCEPTED, {"status": "OK"})
            return
        request_id, _, what = self.path.removeprefix(_INVOCATION).partition("/")
        if not self.path.startswith(_INVOCATION) or what not in ("response", "error"):
            self._discard(length)
            self._send_json(HTTPStatus.NOT_FOUND, _error("InvalidRoute", self.path))
            return
        invocation = slot.current(self.generation, request_id)
        if invocation is None:
            self._discard(length)
            self._send_json(
                HTTPStatus.BAD_REQUEST, _error("InvalidRequestID", f"no invocation {request_id}")
            )
            return
        if what == "error":
            body = self._read(length, MAX_ERROR_BODY_BYTES)
            slot.finish(invocation, error_outcome(_lenient_json(body), self._error_type_header()))
            self._send_json(HTTPStatus.ACCEPTED, {"status": "OK"})
            return
        limit = slot.max_result_bytes
        if length > limit:
            self._discard(length)
            message = (
                f"Response payload size ({length} bytes) exceeded maximum allowed payload "
                f"size ({limit} bytes)."
            )
            slot.finish(
                invocation,
                Outcome(error_type=RESPONSE_TOO_LARGE, error_message=message, retryable=False),
            )
            self._send_json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error("RequestEntityTooLarge", message)
            )
            return
        slot.finish(invocation, response_outcome(self.rfile.read(length)))
        self._send_json(HTTPStatus.ACCEPTED, {"status": "OK"})

    def _length(self) -> int | None:
        """The body's length; a request without a valid one is refused and its connection
        closed (its body cannot be told from the next request)."""
        text = self.headers.get("Content-Length", "0")
        if not text.isdigit():
            self.close_connection = True
            self._send_json(HTTPStatus.LENGTH_REQUIRED, _error("InvalidRequest", "Content-Length"))
            return None
        return int(text)

    def _read(self, length: int, limit: int) -> bytes:
        body = self.rfile.read(min(length, limit))
        self._discard(length - len(body))
        return body

    def _discard(self, length: int) -> None:
        if length > MAX_DISCARD_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 2**20))
            if not chunk:
                break
            length -= len(chunk)

    def _error_type_header(self) -> str | None:
        return self.headers.get("Lambda-Runtime-Function-Error-Type")

    def _send_json(self, status: HTTPStatus, document: dict[str, str]) -> None:
        body = json.dumps(document).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _error(error_type: str, message: str) -> dict[str, str]:
    return {"errorType": error_type, "errorMessage": message}


def _lenient_json(body: bytes) -> Any:
    """An error document as far as it can be read: a runtime's bug must not hide its error."""
    try:
        return json.loads(body)
    except ValueError:
        return {"errorMessage": body.decode(errors="replace")}
