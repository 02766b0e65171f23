"""Fixture function: reports what its execution environment holds, and misbehaves on request.

Two functions of the template run this code with different ``PROBE_NAME``s and Powertools
service names. An event may ask it to keep a value in module state, set an environment
variable, record a metric named after itself, say it is running, start a child process, sleep,
or exit the process.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from fixture_layer import metrics

#: Module state: what this environment's last invocation was given.
_last: dict[str, Any] = {}


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = os.environ["PROBE_NAME"]
    _last["value"] = event.get("value")
    if "set_environ" in event:
        os.environ[event["set_environ"]] = name
    metrics.add_metric(name=f"{name}Invocations", unit="Count", value=1)
    if "running_file" in event:
        Path(event["running_file"]).write_text(str(os.getpid()))
    if "child_pid_file" in event:
        child = subprocess.Popen(["sleep", "600"])  # noqa: S607 - a fixture's stand-in solver
        Path(event["child_pid_file"]).write_text(str(child.pid))
    time.sleep(float(event.get("sleep", 0)))
    if "exit" in event:
        os._exit(int(event["exit"]))
    return {
        "name": name,
        "pid": os.getpid(),
        "value": _last["value"],
        "environ": {key: os.environ.get(key) for key in event.get("read_environ", [])},
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
