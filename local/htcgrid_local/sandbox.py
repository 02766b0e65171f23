"""Lambda execution environments of the local grid, seen from the inside.

``python -I -m htcgrid_local.sandbox FD PYTHON_PATH`` (started by ``environments.py``) talks to
the emulator over the Unix socket ``FD`` and becomes, in turn, three kinds of process:

- a *base*: imports once the libraries every function of a layer set uses (boto3, pydantic,
  Powertools, the grid's core documents: :data:`PRELOAD`), then forks a function process for
  each function it is asked for;
- a *function* process: takes the function's environment variables, code and layers, runs its
  init (imports the handler module), then forks an execution environment per request: as Lambda
  SnapStart resumes environments from one snapshot of an initialised function, the init runs
  once per function, and every environment starts from its end state;
- an *execution environment*: a process of its own (and a process group: a timeout kills the
  handler's children too) that runs one invocation at a time, each to its end, until the emulator
  closes its socket or kills it.

After a fork nothing is shared: each environment has its own copy of every module's state (the
Powertools Logger, Metrics and Tracer globals, caches, ``os.environ``). Forks happen only in
single-threaded processes, so no lock can be inherited held; ``random`` reseeds itself in each
child. Only the standard library is imported here: what else a process holds is its own choice.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

#: Modules the base imports before any fork: none reads the environment when imported
#: (``tests/integration/local/test_environments.py`` checks), so they serve every function.
#: Missing ones are skipped: a layer set without the grid's core still gets a base.
PRELOAD = (
    "boto3",
    "botocore.session",
    "botocore.client",
    "pydantic",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "htcgrid_core.models",
    "htcgrid_core.resources",
    "htcgrid_core.submissions",
    "htcgrid_core.retries",
    "htcgrid_core.reaper",
    "htcgrid_core.deadletters",
    "htcgrid_core.sessions",
    "htcgrid_core.cancellation",
)

#: The largest control message (a function's description, with its environment variables).
MAX_CONTROL_BYTES = 256 * 1024


# --- messages ------------------------------------------------------------------------------------


def send_control(channel: socket.socket, message: dict[str, Any], fds: list[int]) -> None:
    """One message, with file descriptors attached, on a SOCK_SEQPACKET control socket."""
    socket.send_fds(channel, [json.dumps(message).encode("utf-8")], fds)


def receive_control(channel: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next control message and its descriptors; (None, []) once the peer has closed."""
    data, fds, _flags, _address = socket.recv_fds(channel, MAX_CONTROL_BYTES, 4)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), list(fds)


# --- what Lambda answers -------------------------------------------------------------------------


class HandlerNotFoundError(Exception):
    """The module has no such handler (Lambda: Runtime.HandlerNotFound)."""


def error_payload(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """Lambda's body for an unhandled error; ``errorType`` is what Step Functions matches.

    The stack trace starts at the handler, as Lambda's does: this module's frames are left out.
    """
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename != __file__
    ]
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(frames),
    }


class LambdaContext:
    """The context object a Python handler receives, with the attributes Lambda provides."""

    def __init__(self, function: dict[str, Any], request_id: str, deadline_ms: int) -> None:
        self.function_name: str = function["name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = function["arn"]
        self.memory_limit_in_mb: int = function["memory_mb"]
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function['name']}"
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


# --- the three processes -------------------------------------------------------------------------


def serve_base(channel: socket.socket, python_path: list[str]) -> None:
    """Preload, then fork a function process per request until the emulator goes away."""
    sys.path[:0] = [entry for entry in python_path if entry not in sys.path]
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # not in this layer set: the function imports what it needs itself
    # Forked children are reaped by the kernel: nobody here waits for them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        message, fds = receive_control(channel)
        if message is None:
            return
        _fork(channel, fds[0], _function_main, message["function"])


def serve_function(channel: socket.socket, function: dict[str, Any]) -> None:
    """Take the function's environment and code, run its init, then fork an execution
    environment per request. An init error is reported, and the process ends."""
    os.environ.clear()
    os.environ.update(function["environment"])
    code_dir: str = function["code_dir"]
    os.chdir(code_dir)
    # Lambda's order: the function's code, then its layers, then the runtime's packages.
    sys.path[:0] = [code_dir, *function["python_path"]]
    try:
        handler = _load_handler(function["handler"])
    except HandlerNotFoundError as error:
        send_control(channel, {"init_error": error_payload(error, "Runtime.HandlerNotFound")}, [])
        return
    except Exception as error:
        module = function["handler"].rpartition(".")[0]
        failure = error_payload(error, "Runtime.ImportModuleError")
        failure["errorMessage"] = f"Unable to import module '{module}': {error}"
        send_control(channel, {"init_error": failure}, [])
        return
    send_control(channel, {"ready": os.getpid()}, [])
    while True:
        message, fds = receive_control(channel)
        if message is None:
            return
        _fork(channel, fds[0], _environment_main, handler, function, str(message["log_stream"]))


def serve_invocations(
    conn: Connection, handler: Any, function: dict[str, Any], log_stream: str
) -> None:
    """An execution environment: one invocation at a time until the emulator closes."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # a handler's subprocesses are its own
    os.setsid()  # a group of its own: a timeout kills what the handler started as well
    os.environ["AWS_LAMBDA_LOG_STREAM_NAME"] = log_stream
    conn.send_bytes(json.dumps({"ready": os.getpid()}).encode("utf-8"))
    while True:
        try:
            header = json.loads(conn.recv_bytes())
            payload = conn.recv_bytes()
        except EOFError:
            return
        answer, body = invoke(handler, function, header, payload)
        conn.send_bytes(json.dumps(answer).encode("utf-8"))
        conn.send_bytes(body)


def invoke(
    handler: Any, function: dict[str, Any], header: dict[str, Any], payload: bytes
) -> tuple[dict[str, Any], bytes]:
    """Run one invocation: ``({"error": False}, result JSON)`` or ``({"error": True}, Lambda's
    error body)``. A handler that exits the process (``sys.exit``) takes the environment with
    it, as in Lambda: the emulator answers ``Runtime.ExitError``."""
    request_id = str(header["request_id"])
    os.environ["_X_AMZN_TRACE_ID"] = str(header.get("trace_id") or "")
    try:
        event = json.loads(payload) if payload.strip() else {}
    except ValueError as error:
        return _failed(error, "Runtime.UnmarshalError", request_id)
    context = LambdaContext(function, request_id, int(header["deadline_ms"]))
    try:
        result = handler(event, context)
    except Exception as error:
        return _failed(error, None, request_id)
    try:
        return {"error": False}, json.dumps(result).encode("utf-8")
    except (TypeError, ValueError) as error:
        return _failed(error, "Runtime.MarshalError", request_id)


def _failed(
    error: BaseException, error_type: str | None, request_id: str
) -> tuple[dict[str, Any], bytes]:
    body = error_payload(error, error_type)
    body["requestId"] = request_id
    return {"error": True}, json.dumps(body).encode("utf-8")


def _load_handler(spec: str) -> Any:
    """``module.function`` (Lambda's handler setting) from the function's code directory."""
    module_path, _, attribute = spec.rpartition(".")
    module = importlib.import_module(module_path)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerNotFoundError(f"Handler '{attribute}' missing on module '{module_path}'")
    return handler


def _seqpacket(fd: int) -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fd)


def _function_main(fd: int, function: dict[str, Any]) -> None:
    serve_function(_seqpacket(fd), function)


def _environment_main(fd: int, handler: Any, function: dict[str, Any], log_stream: str) -> None:
    serve_invocations(Connection(fd), handler, function, log_stream)


def _fork(channel: socket.socket, child_fd: int, child_main: Any, *args: Any) -> None:
    """Fork a child that runs ``child_main(child_fd, *args)`` and exits; the parent keeps
    serving. The child never returns into the parent's loop, whatever happens in it."""
    pid = os.fork()
    if pid != 0:
        os.close(child_fd)
        return
    status = 1
    try:
        channel.close()  # the parent's socket: only the parent reads it
        child_main(child_fd, *args)
        status = 0
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main() -> None:
    """Entry point of a base: ``python -I -m htcgrid_local.sandbox FD PYTHON_PATH`` (the socket's
    descriptor, and the layer set's import roots as a JSON list)."""
    channel = _seqpacket(int(sys.argv[1]))
    # A line a handler prints (an EMF metric, a log record) is in the log at once, as in Lambda.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # The emulator stops its processes itself; a Ctrl-C in its terminal must not kill them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve_base(channel, json.loads(sys.argv[2]))


if __name__ == "__main__":
    main()
