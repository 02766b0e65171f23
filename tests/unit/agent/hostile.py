"""A handler that does what hostile or broken tasks do, for the agent's tests.

{"touch": path}           -> appends a line to ``path`` first (how tests see a task start)
{"sleep": s}              -> sleeps first
{"surrogate_result": 1}   -> returns text holding a lone surrogate (no UTF-8 document can)
{"surrogate_error": 1}    -> raises an error whose message holds a lone surrogate
{"long_type": n}          -> raises an exception whose class name is ``n`` characters long
{"random": n}             -> returns n hex digits of fresh randomness (every run differs)
{"environment": 1}        -> returns what of the agent's AWS credentials it can find
{"pickle_to_agent": path} -> sends the agent a pickle that would create ``path`` if unpickled
{"allocate_mb": n}        -> allocates n MiB and returns its size
{"result_mb": n}          -> returns a result of about n MiB
{"memory": 1}             -> returns the memory its context reports
{"spawn": path}           -> starts a 10-minute sleeper of its own, writes its pid to ``path``,
                             then sleeps 30 s (a handler with a subprocess, overrunning)
{"exit": code}            -> calls sys.exit(code)
{"interrupt": 1}          -> raises KeyboardInterrupt (a BaseException, not an Exception)
{"segfault": 1}           -> reads address 0: the interpreter dies of SIGSEGV
{"crash": 1}              -> SIGKILLs its own process
{"float": text}           -> returns {"x": float(text)} ("nan", "inf": no JSON holds them)
{"value": v}              -> returns {"value": v}

Importing it fails while the file named by HTCGRID_TEST_BROKEN_IMPORT exists: a handler that
cannot be re-imported after a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

_BROKEN_IMPORT = os.environ.get("HTCGRID_TEST_BROKEN_IMPORT")
if _BROKEN_IMPORT and os.path.exists(_BROKEN_IMPORT):
    raise ImportError(f"broken on purpose while {_BROKEN_IMPORT} exists")


class _MakesDirectory:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.makedirs, (self.path,))


def _credentials_found() -> dict[str, Any]:
    import boto3  # only this test needs it

    with open("/proc/self/environ", "rb") as environ:
        initial = environ.read()
    return {
        "aws_variables": sorted(name for name in os.environ if name.startswith("AWS_")),
        "initial_environment_has_keys": b"AWS_SECRET_ACCESS_KEY" in initial,
        "sdk_credentials": boto3.Session().get_credentials() is not None,
    }


def handler(event: dict[str, Any], context: Any) -> Any:
    if event.get("touch"):
        with open(event["touch"], "a", encoding="utf-8") as marker:
            marker.write(f"{context.aws_request_id} {context.attempt}\n")
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    if event.get("surrogate_result"):
        return {"name": "caf\udce9.txt"}
    if event.get("surrogate_error"):
        raise FileNotFoundError("no such file: caf\udce9.txt")
    if event.get("long_type"):
        raise type("E" * int(event["long_type"]), (Exception,), {})("a very long class name")
    if event.get("environment"):
        return _credentials_found()
    if event.get("pickle_to_agent"):
        # Handler code that writes to the slot's socket (argv[1] of its process) directly.
        Connection(int(sys.argv[1]), readable=False).send(_MakesDirectory(event["pickle_to_agent"]))
        time.sleep(30)
    if event.get("spawn"):
        solver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(event["spawn"], "w", encoding="utf-8") as pid_file:
            pid_file.write(str(solver.pid))
        time.sleep(30)
    if "exit" in event:
        sys.exit(event["exit"])
    if event.get("interrupt"):
        raise KeyboardInterrupt
    if event.get("segfault"):
        import ctypes  # only this test needs it

        ctypes.string_at(0)
    if event.get("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    if event.get("float"):
        return {"x": float(event["float"])}
    if event.get("memory"):
        return {"memory_limit_in_mb": context.memory_limit_in_mb}
    if event.get("allocate_mb"):
        block = bytearray(int(event["allocate_mb"]) * 2**20)
        return {"allocated": len(block)}
    if event.get("result_mb"):
        return {"padding": "x" * (int(event["result_mb"]) * 2**20)}
    if event.get("random"):
        return {"random": os.urandom(int(event["random"]) // 2).hex()}
    return {"value": event.get("value")}
