"""The child end of a slot: imports the handler once, then runs task after task.

Started by ``slots.Slot`` as ``python -c ...serve(fd)`` with the socket it talks over. Frames
are JSON (and raw JSON text for payloads and results) in both directions: the agent never
unpickles what this process, which runs handler code, sends.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from htcgrid_agent.context import TaskContext
from htcgrid_agent.process import die_with_parent
from htcgrid_agent.slots import OUT_OF_MEMORY, HandlerLoadError, receive_json, send_json
from htcgrid_core.traces import TRACE_HEADER_ENV

#: Longest error message a child reports (the agent bounds it again, in bytes).
MAX_MESSAGE_CHARS = 2000


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


def _failure(error_type: str, message: str, *, retryable: bool) -> dict[str, Any]:
    return {
        "succeeded": False,
        "error_type": error_type,
        "error_message": message,
        "retryable": retryable,
    }


def out_of_memory(memory_limit_mb: int | None) -> dict[str, Any]:
    """The outcome of a run that needed more than the slot's memory: the same task would need
    it again, so it fails for good."""
    limit = f"{memory_limit_mb} MiB" if memory_limit_mb else "the machine's memory"
    return _failure(
        OUT_OF_MEMORY,
        f"the handler needed more than its slot's {limit} (the agent's --slot-memory-mb)",
        retryable=False,
    )


def run(
    handler: Callable[[Any, Any], Any],
    payload: bytes,
    context: TaskContext,
    memory_limit_mb: int | None = None,
) -> tuple[dict[str, Any], bytes | None]:
    """One run: the outcome header to send, and the result's JSON text if it succeeded."""
    try:
        event = json.loads(payload)
    except MemoryError:
        return out_of_memory(memory_limit_mb), None
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        message = f"the task's payload is not JSON: {error}"
        return _failure("PayloadNotJsonError", message[:MAX_MESSAGE_CHARS], retryable=False), None
    try:
        value = handler(event, context)
    except MemoryError:
        return out_of_memory(memory_limit_mb), None
    except Exception as error:
        detail = "".join(traceback.format_exception_only(error)).strip()
        header = _failure(
            type(error).__name__, detail[-MAX_MESSAGE_CHARS:], retryable=not _is_permanent(error)
        )
        return header, None
    try:
        result = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        # A lone surrogate (an undecodable file name, say) is not Unicode: no UTF-8 document,
        # record or notice can carry it. Found here, it fails the task, not the agent.
        body = result.encode()
    except MemoryError:
        return out_of_memory(memory_limit_mb), None
    except (TypeError, ValueError) as error:
        message = f"the handler returned a value JSON cannot hold: {error}"
        return _failure("ResultNotSerializable", message[:MAX_MESSAGE_CHARS], retryable=False), None
    return {"succeeded": True, "size": len(body)}, body


def limit_memory(megabytes: int | None) -> None:
    """Cap this process's address space: a handler that allocates past it gets MemoryError in
    this process, instead of the kernel's OOM killer ending the agent's whole container."""
    if megabytes is not None:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def serve(fd: int) -> None:
    """Load the handler the agent names, then run tasks until the agent closes the socket."""
    # The agent decides when this process stops. It runs in a session of its own, so signals
    # meant for the agent (a SIGTERM to drain, a Ctrl-C to its terminal's process group) do
    # not reach it; nothing is ignored, which the handler's own subprocesses would inherit.
    # If the agent dies, this process dies too.
    die_with_parent()
    conn = Connection(fd)
    setup = receive_json(conn)
    sys.path[:] = setup["sys_path"]
    memory_limit = setup.get("memory_limit_mb")
    try:
        limit_memory(memory_limit)  # before the handler's import, which counts too
        handler = load_handler(setup["handler"])
    except Exception as error:
        send_json(conn, {"failed": f"{type(error).__name__}: {error}"})
        return
    send_json(conn, {"ready": True})
    while True:
        try:
            context = TaskContext(**receive_json(conn))
            try:
                payload = conn.recv_bytes()
            except MemoryError:
                # Unread, the payload's bytes would garble the next frame: the agent restarts
                # this process after an OutOfMemory outcome anyway.
                send_json(conn, out_of_memory(memory_limit))
                return
        except EOFError:
            return  # the agent closed the slot
        # Per task, as Lambda sets it per invocation: tracing SDKs in the handler read it there.
        if context.trace_id:
            os.environ[TRACE_HEADER_ENV] = context.trace_id
        else:
            os.environ.pop(TRACE_HEADER_ENV, None)
        header, body = run(handler, payload, context, memory_limit)
        send_json(conn, header)
        if body is not None:
            conn.send_bytes(body)
