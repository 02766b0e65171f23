"""Lambda's execution model on the local grid: execution environments, seen from the emulator.

Lambda runs an invocation in an execution environment that serves one invocation at a time;
concurrent invocations of a function get separate environments, which stay warm and are reused;
a function's environments share nothing, and functions share nothing with each other. Here an
environment is a process of its own (``sandbox.py`` is its inside) with exactly its function's
environment variables, so what one handler keeps in module state (Powertools' metrics, caches,
settings read from ``os.environ``) is never seen by a concurrent invocation or another function.

- :class:`Environments` keeps a pool per function: an invocation takes the most recently used
  idle environment (Lambda reuses warm ones), else starts one, up to the function's concurrency
  (its reserved concurrency, else :data:`DEFAULT_CONCURRENCY`); beyond that it is throttled
  (HTTP 429 ``TooManyRequestsException``, as Lambda answers).
- A function's init runs once, in a *function process*; its environments are forked from it, as
  Lambda SnapStart resumes environments from a snapshot of an initialised function. A cold start
  is then a fork (milliseconds), not an interpreter start and the imports (seconds on these
  machines), which kept a workflow-heavy run's CPU for the grid, not for start-ups.
- An invocation that runs past the function's timeout ends its environment (its whole process
  group is killed) and answers ``Sandbox.Timedout``; an environment that dies mid-invocation
  answers ``Runtime.ExitError``; a failed init answers its ``Runtime.*`` error, and the next
  invocation tries the init again, as Lambda does.
- Environments unused for :data:`IDLE_TIMEOUT_S` are stopped, and so are the least recently used
  idle ones beyond :data:`MAX_ENVIRONMENTS`: a test run creates many stacks.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from htcgrid_core.traces import new_trace_header, trace_header
from htcgrid_local import sandbox

LOG = logging.getLogger(__name__)

#: Environments one function may have at once, unless its reserved concurrency says otherwise
#: (an account's 1,000 would be more processes than a laptop holds).
DEFAULT_CONCURRENCY = 32
#: An environment unused this long is stopped (Lambda keeps idle ones for minutes too).
IDLE_TIMEOUT_S = 300.0
#: Idle environments beyond this many, across functions, are stopped, oldest first.
MAX_ENVIRONMENTS = 64
#: How long a function's init may take (Lambda allows 10 s; a loaded laptop needs more).
INIT_TIMEOUT_S = 60.0
#: How long the fork of a new environment may take to answer.
START_TIMEOUT_S = 10.0
#: How often idle environments are looked for.
_SWEEP_PERIOD_S = 10.0
#: How long an Event invocation waits for a free environment (Lambda retries them for hours).
_EVENT_PATIENCE_S = 60.0

#: ``AWS_SDK_UA_APP_ID`` prefix of the environments' AWS calls (``lambda:<name>`` in accounting).
LAMBDA_APP_PREFIX = "htcgrid-lambda-"
#: Lambda's variables that are the same for every function here: bases import with them too.
RUNTIME_VARIABLES = {
    "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
    # Environments are forked from an initialised function, as SnapStart restores them.
    "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
    "TZ": ":UTC",
}

#: Lambda's answer to an invocation beyond the function's concurrency.
_THROTTLED_BODY = {
    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
    "Type": "User",
    "message": "Rate Exceeded.",
}


@dataclass(frozen=True)
class LocalFunction:
    """A Lambda function of a stack whose code is on this machine."""

    name: str
    arn: str
    logical_id: str
    code_dir: Path
    handler: str
    python_path: tuple[str, ...]
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int
    #: The deployed code's hash: new code gets new environments.
    code_sha: str = ""
    #: ``ReservedConcurrentExecutions``, if the function has it.
    reserved_concurrency: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.arn, self.code_sha


@dataclass(frozen=True)
class InvocationResult:
    """What Lambda answers: a status, the function error (if any), a body and extra headers."""

    status: int
    body: bytes
    function_error: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def throttled(self) -> bool:
        return self.status == 429


def failure(body: dict[str, Any], request_id: str) -> InvocationResult:
    """A function error: HTTP 200 with ``X-Amz-Function-Error: Unhandled`` and the error body."""
    body = {**body, "requestId": request_id}
    return InvocationResult(200, json.dumps(body).encode("utf-8"), function_error="Unhandled")


def _runtime_error(error_type: str, message: str, request_id: str) -> InvocationResult:
    body = {"errorMessage": message, "errorType": error_type, "stackTrace": []}
    return failure(body, request_id)


class _InitFailed(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("errorMessage", ""))
        self.body = body


class _Throttled(Exception):
    pass


class _Retired(Exception):
    """The pool was let go between finding it and using it: find it again."""


@dataclass
class _Environment:
    """The emulator's end of one execution environment."""

    pid: int
    conn: Connection
    last_used: float = field(default_factory=time.monotonic)

    def stop(self) -> None:
        """Kill the environment's process group (the handler's children too)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # already gone
        self.conn.close()


class _Base:
    """A base process of one layer set: libraries imported once, function processes forked."""

    def __init__(self, python_path: tuple[str, ...], environment: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",  # no cwd, user site or PYTHON* variables: the sandbox sets its own path
                    "-m",
                    "htcgrid_local.sandbox",
                    str(theirs.fileno()),
                    json.dumps(list(python_path)),
                ],
                pass_fds=(theirs.fileno(),),
                env=environment,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.channel = ours
        self._lock = threading.Lock()

    def alive(self) -> bool:
        return self.process.poll() is None

    def start_function(self, spec: dict[str, Any]) -> socket.socket:
        """Fork a function process for ``spec``; its control socket (it answers there)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs, self._lock:
            sandbox.send_control(self.channel, {"function": spec}, [theirs.fileno()])
        return ours

    def stop(self) -> None:
        self.channel.close()  # it exits on end of file
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class _FunctionPool:
    """One function's init process and its environments."""

    def __init__(self, function: LocalFunction, start: Callable[[], socket.socket]) -> None:
        self.function = function
        self._start_function = start
        self._lock = threading.Lock()  # idle, busy, last_used
        self._init_lock = threading.Lock()  # the function process
        self._channel: socket.socket | None = None
        self.idle: list[_Environment] = []
        self.busy = 0
        self.last_used = time.monotonic()
        #: Set once the pool is let go: no new invocation takes it, and what returns is stopped.
        self.retired = False
        reserved = function.reserved_concurrency
        self.concurrency = DEFAULT_CONCURRENCY if reserved is None else reserved

    @property
    def size(self) -> int:
        return len(self.idle) + self.busy

    def acquire(self) -> _Environment:
        """A warm environment (the most recently used), or a new one; raises ``_Throttled``
        at the function's concurrency and ``_InitFailed`` if its init fails."""
        with self._lock:
            if self.retired:
                raise _Retired()
            self.last_used = time.monotonic()
            if self.idle:
                self.busy += 1
                return self.idle.pop()
            if self.busy >= self.concurrency:
                raise _Throttled()
            self.busy += 1
        try:
            return self._new_environment()
        except BaseException:
            with self._lock:
                self.busy -= 1
            raise

    def release(self, environment: _Environment) -> None:
        """Back to the idle ones, to be reused."""
        environment.last_used = time.monotonic()
        with self._lock:
            self.busy -= 1
            if not self.retired:
                self.idle.append(environment)
                return
        environment.stop()

    def discard(self, environment: _Environment) -> None:
        """End an environment that timed out or died."""
        environment.stop()
        with self._lock:
            self.busy -= 1

    def stop_idle(self, older_than: float) -> None:
        """Stop idle environments last used before ``older_than`` (monotonic)."""
        with self._lock:
            stale = [e for e in self.idle if e.last_used < older_than]
            self.idle = [e for e in self.idle if e.last_used >= older_than]
        for environment in stale:
            environment.stop()

    def evict(self, environment: _Environment) -> None:
        """Stop ``environment`` if it is still idle here."""
        with self._lock:
            if environment not in self.idle:
                return
            self.idle.remove(environment)
        environment.stop()

    def retire_if_unused(self, older_than: float) -> bool:
        """Retire the pool if it has no environment and was last used before ``older_than``."""
        with self._lock:
            if self.size or self.last_used >= older_than:
                return False
            self.retired = True
        self.close()
        return True

    def close(self) -> None:
        """Retire the pool: stop its idle environments and its function process (busy ones are
        stopped when their invocation returns)."""
        with self._lock:
            self.retired = True
        self.stop_idle(float("inf"))
        with self._init_lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None

    def _new_environment(self) -> _Environment:
        for attempt in range(2):
            channel = self._function_channel()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
            try:
                with theirs:
                    sandbox.send_control(channel, {"log_stream": log_stream}, [theirs.fileno()])
            except OSError:
                # The function process is gone (killed, or the emulator is stopping): once more
                # with a new one.
                ours.close()
                self._forget_function(channel)
                if attempt:
                    raise
                continue
            conn = Connection(ours.detach())
            if not conn.poll(START_TIMEOUT_S):
                conn.close()
                raise RuntimeError(f"{self.function.logical_id}: a new environment did not start")
            ready = json.loads(conn.recv_bytes())
            return _Environment(int(ready["ready"]), conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _function_channel(self) -> socket.socket:
        with self._init_lock:
            if self._channel is not None:
                return self._channel
            channel = self._start_function()
            channel.settimeout(INIT_TIMEOUT_S)
            try:
                message, _ = sandbox.receive_control(channel)
            except TimeoutError:
                channel.close()
                raise _InitFailed(
                    {
                        "errorType": "Runtime.InitTimeout",
                        "errorMessage": f"init did not finish within {INIT_TIMEOUT_S:.0f} s",
                        "stackTrace": [],
                    }
                ) from None
            channel.settimeout(None)
            if message is None or "ready" not in message:
                channel.close()
                raise _InitFailed(
                    message["init_error"]
                    if message is not None
                    else {
                        "errorType": "Runtime.ExitError",
                        "errorMessage": "Runtime exited during init without providing a reason",
                        "stackTrace": [],
                    }
                )
            self._channel = channel
            return channel

    def _forget_function(self, channel: socket.socket) -> None:
        with self._init_lock:
            if self._channel is channel:
                channel.close()
                self._channel = None


class Environments:
    """Every function's execution environments on this emulator.

    ``runtime_environment`` holds the variables every function gets beside its own (the
    emulator's endpoint and credentials, the region, fault injection); Lambda's reserved
    variables are added per function.
    """

    def __init__(self, runtime_environment: dict[str, str]) -> None:
        self._runtime_environment = dict(runtime_environment)
        self._lock = threading.Lock()
        self._bases: dict[tuple[str, ...], _Base] = {}
        self._pools: dict[tuple[str, str], _FunctionPool] = {}
        self._closed = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="lambda-sweeper", daemon=True)
        self._sweeper.start()

    def invoke(
        self, function: LocalFunction, payload: bytes, trace_id: str | None = None
    ) -> InvocationResult:
        """Run one invocation to its end in an environment of its own and answer as Lambda."""
        request_id = str(uuid.uuid4())
        while True:
            pool = self._pool(function)
            try:
                environment = pool.acquire()
                break
            except _Retired:
                continue  # the sweeper let it go just now: a new pool replaces it
            except _Throttled:
                return InvocationResult(
                    429,
                    json.dumps(_THROTTLED_BODY).encode("utf-8"),
                    headers=(("x-amzn-ErrorType", "TooManyRequestsException"),),
                )
            except _InitFailed as failed:
                return failure(failed.body, request_id)
        self._limit_idle()
        deadline_ms = int((time.time() + function.timeout_s) * 1000)
        # Lambda runs every invocation in a trace: the caller's, or one it starts.
        trace_id = trace_header(trace_id) or new_trace_header()
        header = {"request_id": request_id, "deadline_ms": deadline_ms, "trace_id": trace_id}
        try:
            environment.conn.send_bytes(json.dumps(header).encode("utf-8"))
            environment.conn.send_bytes(payload)
            if not environment.conn.poll(function.timeout_s):
                pool.discard(environment)
                return _runtime_error(
                    "Sandbox.Timedout",
                    f"RequestId: {request_id} Error: Task timed out after "
                    f"{function.timeout_s:.2f} seconds",
                    request_id,
                )
            answer = json.loads(environment.conn.recv_bytes())
            body = environment.conn.recv_bytes()
        except (EOFError, OSError):
            pool.discard(environment)
            return _runtime_error(
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: Runtime exited without providing a reason",
                request_id,
            )
        pool.release(environment)
        if answer["error"]:
            return InvocationResult(200, body, function_error="Unhandled")
        return InvocationResult(200, body)

    def invoke_event(self, function: LocalFunction, payload: bytes) -> InvocationResult:
        """An asynchronous (Event) invocation: waits out throttling for a while, as Lambda's
        event queue does, rather than dropping the event."""
        patience = time.monotonic() + _EVENT_PATIENCE_S
        delay = 0.05
        while True:
            result = self.invoke(function, payload)
            if not result.throttled or time.monotonic() > patience:
                return result
            time.sleep(delay)
            delay = min(2.0, delay * 2)

    def close(self) -> None:
        """Stop every environment and process this object started."""
        self._closed.set()
        with self._lock:
            pools, bases = list(self._pools.values()), list(self._bases.values())
            self._pools.clear()
            self._bases.clear()
        for pool in pools:
            pool.close()
        for base in bases:
            base.stop()

    # -- pools ------------------------------------------------------------------------------------

    def _pool(self, function: LocalFunction) -> _FunctionPool:
        with self._lock:
            pool = self._pools.get(function.key)
            if pool is None or pool.retired:
                spec = self._spec(function)
                pool = _FunctionPool(function, lambda: self._base(function).start_function(spec))
                self._pools[function.key] = pool
            return pool

    def _base(self, function: LocalFunction) -> _Base:
        with self._lock:
            base = self._bases.get(function.python_path)
            if base is None or not base.alive():
                base = _Base(function.python_path, self._base_environment())
                self._bases[function.python_path] = base
            return base

    def _base_environment(self) -> dict[str, str]:
        """What a base imports its libraries with: nothing of any function's, and the runtime's
        variables every function has (botocore and Powertools read some when imported)."""
        inherited = {"PATH", "LANG", "LC_ALL", "TMPDIR"}
        return {
            **{name: value for name, value in os.environ.items() if name in inherited},
            **RUNTIME_VARIABLES,
        }

    def _spec(self, function: LocalFunction) -> dict[str, Any]:
        environment = {
            **self._base_environment(),
            **self._runtime_environment,
            **function.environment,
            # Lambda's reserved variables: a function's own cannot override them.
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            **RUNTIME_VARIABLES,
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "_HANDLER": function.handler,
            # The request accounting (accounting.py) names the caller from this.
            "AWS_SDK_UA_APP_ID": f"{LAMBDA_APP_PREFIX}{function.name}",
        }
        return {
            "name": function.name,
            "arn": function.arn,
            "memory_mb": function.memory_mb,
            "handler": function.handler,
            "code_dir": str(function.code_dir),
            "python_path": list(function.python_path),
            "environment": environment,
        }

    def _limit_idle(self) -> None:
        """Beyond :data:`MAX_ENVIRONMENTS`, stop idle environments, least recently used first."""
        with self._lock:
            pools = list(self._pools.values())
        excess = sum(pool.size for pool in pools) - MAX_ENVIRONMENTS
        if excess <= 0:
            return
        idle = sorted(
            (
                (environment.last_used, pool, environment)
                for pool in pools
                for environment in pool.idle
            ),
            key=lambda entry: entry[0],
        )
        for _, pool, environment in idle[:excess]:
            pool.evict(environment)

    def _sweep(self) -> None:
        while not self._closed.wait(_SWEEP_PERIOD_S):
            cutoff = time.monotonic() - IDLE_TIMEOUT_S
            with self._lock:
                pools = list(self._pools.items())
            for key, pool in pools:
                pool.stop_idle(cutoff)
                if pool.retire_if_unused(cutoff):
                    with self._lock:
                        if self._pools.get(key) is pool:
                            del self._pools[key]
