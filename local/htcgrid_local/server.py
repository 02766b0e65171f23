"""The emulator process: moto's WSGI app, patched, behind the local Lambda runtime.

Runs as its own process (``python -m htcgrid_local serve``) because moto is bound to one GIL:
clients, tests and agents live in other processes. Serves threaded, since a synchronous
execution calls back into this same server for every Lambda and SDK task it runs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer

from htcgrid_local import accounting, loopback, moto_patches
from htcgrid_local.clients import EMULATOR_CREDENTIALS, client
from htcgrid_local.environments import Environments
from htcgrid_local.http_server import KeepAliveRequestHandler, KeepAliveServer
from htcgrid_local.lambda_runtime import LambdaMiddleware, WsgiApp
from htcgrid_local.schedules import ScheduleFirer

LOG = logging.getLogger(__name__)

#: Variables of the emulator's own environment that its Lambda functions get as well.
PASSED_TO_FUNCTIONS = ("HTCGRID_FAULTS",)

#: moto settings the local grid needs, set before any resource exists: state machines created
#: while execution is off live in another backend and become invisible once it is on.
MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


def build_app(environments: Environments) -> WsgiApp:
    """moto's app, patched and configured, behind the local Lambda runtime, whose invocations
    run in ``environments``."""
    moto_patches.apply_all()
    moto_api_backend.set_config(MOTO_CONFIG)  # what POST /moto-api/config does, in-process
    app: WsgiApp = LambdaMiddleware(DomainDispatcherApplication(create_backend_app), environments)
    # Request accounting, only with HTCGRID_LOCAL_ACCOUNTING=1 (accounting.py): counts every
    # request by caller, service and operation, over HTTP and loopback alike (the loopback is
    # given this same app), and serves the counts at /_htcgrid/accounting.
    if accounting.enabled():
        app = accounting.install(app)
    return app


def emulator_environment(region: str) -> dict[str, str]:
    """Variables of the emulator process itself: moto's state-machine interpreter signs its
    calls to this server with boto3."""
    return {**EMULATOR_CREDENTIALS, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}


def runtime_environment(endpoint_url: str, region: str) -> dict[str, str]:
    """Variables every Lambda function of this emulator runs with beside its own (Lambda's
    reserved ones are added per function by ``environments.py``)."""
    variables = {
        **emulator_environment(region),
        # htcgrid_core sends every AWS call to HTCGRID_ENDPOINT_URL; AWS_ENDPOINT_URL makes
        # any other boto3 client in a handler do the same.
        "HTCGRID_ENDPOINT_URL": endpoint_url,
        "AWS_ENDPOINT_URL": endpoint_url,
        # No X-Ray daemon locally: Powertools Tracer would try to send segments to one.
        "POWERTOOLS_TRACE_DISABLED": "1",
        # A developer's ~/.aws never reaches a function: its credentials are the emulator's.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    # Injected faults (a chaos run's, the bench's latency) reach the functions' calls too.
    for name in PASSED_TO_FUNCTIONS:
        if name in os.environ:
            variables[name] = os.environ[name]
    return variables


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    region: str = "us-east-1",
    ready_file: Path | None = None,
    parent_pid: int | None = None,
    schedule_period_s: float = 0.0,
) -> None:
    """Serve until SIGTERM/SIGINT (or until ``parent_pid`` exits). Port 0 picks a free port.

    Once listening, writes ``{"endpoint_url", "pid"}`` to ``ready_file`` (atomically), which is
    how the starting process learns the port. With ``schedule_period_s`` > 0 the schedules of
    the stacks on this server fire every that many seconds (``schedules.py``).
    """
    # Both log a line per request otherwise.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
    # Bound before the app exists: the functions' environments need the endpoint's port.
    listener = socket.create_server((host, port))
    bound_port = int(listener.getsockname()[1])
    endpoint_url = f"http://{host}:{bound_port}"
    environments = Environments(runtime_environment(endpoint_url, region))
    app = build_app(environments)
    server = KeepAliveServer(
        host, bound_port, app, handler=KeepAliveRequestHandler, fd=listener.fileno()
    )
    listener.close()  # the server holds its own duplicate of the socket
    # moto's state-machine interpreter calls back to http://localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(bound_port)
    # Before any boto3 client exists in this process: sessions copy the hook list when created.
    loopback.install(app, [endpoint_url, f"http://localhost:{bound_port}"])
    os.environ.update(emulator_environment(region))
    _check_localhost(host)

    def stop(signum: int, frame: FrameType | None) -> None:
        LOG.info("stopping on signal %d", signum)
        raise SystemExit(0)

    if threading.current_thread() is threading.main_thread():  # signals reach only that one
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if parent_pid is not None:
        threading.Thread(
            target=_exit_with_parent, args=(parent_pid, server), daemon=True, name="parent-watch"
        ).start()
    if ready_file is not None:
        _write_atomically(ready_file, {"endpoint_url": endpoint_url, "pid": os.getpid()})
    firer: ScheduleFirer | None = None
    if schedule_period_s > 0:
        firer = ScheduleFirer(
            client("scheduler", endpoint_url, region),
            client("stepfunctions", endpoint_url, region),
            schedule_period_s,
        )
        firer.start()
    LOG.info("emulator listening on %s", endpoint_url)
    try:
        server.serve_forever()
    finally:
        if firer is not None:
            firer.stop()
        server.server_close()
        environments.close()


def _check_localhost(host: str) -> None:
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", None, socket.AF_INET)}
    if host not in ("0.0.0.0", *addresses):  # noqa: S104 - a comparison, not a bind
        LOG.warning(
            "localhost resolves to %s, not %s: state machines will not reach this server",
            sorted(addresses),
            host,
        )


def _exit_with_parent(parent_pid: int, server: BaseWSGIServer) -> None:
    """Stop serving once the process that started this one is gone (a crashed test run)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            LOG.warning("parent %d exited: stopping the emulator", parent_pid)
            server.shutdown()
            return


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document), encoding="utf-8")
    partial.replace(path)
