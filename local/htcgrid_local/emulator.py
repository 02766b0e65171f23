"""Start and stop the embedded emulator: the ``serve`` process, seen from the process using it.

``Emulator`` spawns ``python -m htcgrid_local serve`` on a free port, waits until it answers,
and stops it again. The server lives in its own process so that it has a GIL to itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

#: How long a fresh server may take to import moto and start listening.
STARTUP_TIMEOUT_S = 60.0
#: How long ``stop`` waits after SIGTERM before SIGKILL.
STOP_GRACE_S = 10.0


class EmulatorError(RuntimeError):
    """The emulator process did not start, or exited while starting."""


class Emulator:
    """The embedded AWS emulator (moto, patched, with the local Lambda runtime).

    ``start()`` returns once the server answers HTTP; ``endpoint_url`` is then its address.
    Use as a context manager to stop it on exit. With ``exit_with_parent`` (the default) the
    server also stops by itself if this process dies without stopping it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        log_path: Path | None = None,
        exit_with_parent: bool = True,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        schedule_period_s: float = 0.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.log_path = log_path
        self.exit_with_parent = exit_with_parent
        self.startup_timeout_s = startup_timeout_s
        #: Fire the stacks' schedules (the reaper's) this often; 0 never fires them.
        self.schedule_period_s = schedule_period_s
        #: Extra environment of the server process, and so of the Lambdas it runs (e.g.
        #: HTCGRID_FAULTS for a chaos run).
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._endpoint_url: str | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._endpoint_url is None:
            raise EmulatorError("the emulator is not running")
        return self._endpoint_url

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> Emulator:
        """Spawn the server and wait (up to ``startup_timeout_s``) until it answers."""
        if self.process is not None:
            return self
        with tempfile.TemporaryDirectory(prefix="htcgrid-emulator-") as scratch:
            ready_file = Path(scratch) / "ready.json"
            command = [
                sys.executable,
                "-m",
                "htcgrid_local",
                "serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--region",
                self.region,
                "--ready-file",
                str(ready_file),
            ]
            if self.exit_with_parent:
                command += ["--parent-pid", str(os.getpid())]
            if self.schedule_period_s > 0:
                command += ["--schedule-period", str(self.schedule_period_s)]
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log = self.log_path.open("ab")
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT if self._log else None,
                env={**os.environ, **self.env},
                # Its own session: Ctrl-C in a terminal reaches the owner, which stops it in order.
                start_new_session=True,
            )
            try:
                self._endpoint_url = self._wait_until_ready(ready_file)
            except BaseException:
                self.stop()
                raise
        return self

    def _wait_until_ready(self, ready_file: Path) -> str:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmulatorError(
                    f"emulator exited with {self.process.returncode} while starting"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if ready_file.exists():
                endpoint_url = str(
                    json.loads(ready_file.read_text(encoding="utf-8"))["endpoint_url"]
                )
                if is_serving(endpoint_url):
                    return endpoint_url
            time.sleep(0.05)
        raise EmulatorError(f"emulator not ready after {self.startup_timeout_s:.0f} s")

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it if it lingers, and forget it. Safe to call twice."""
        if self.process is not None:
            stop_process(self.process.pid, STOP_GRACE_S, self.process)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self._endpoint_url = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def is_serving(endpoint_url: str, timeout_s: float = 2.0) -> bool:
    """True if a moto server answers at ``endpoint_url``."""
    try:
        url = f"{endpoint_url}/moto-api/config"
        if not url.startswith(("http://", "https://")):
            return False
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:  # noqa: S310 - http(s) only
            return bool(reply.status < 500)
    except (urllib.error.URLError, OSError):
        return False


def stop_process(pid: int, grace_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM ``pid``, wait up to ``grace_s`` for it to exit, then SIGKILL it."""
    stop_processes([process if process is not None else pid], grace_s)


def stop_processes(targets: list[subprocess.Popen[bytes] | int], grace_s: float) -> None:
    """SIGTERM every target once, wait up to ``grace_s`` for all, then SIGKILL the rest.

    One SIGTERM each, all at once: an agent takes a second SIGTERM as "abort now", and the
    grace period runs for all of them together, not one after the other. A target is a child
    ``Popen`` (reaped here) or the pid of a process started by another (``htcgrid-local down``).
    """
    for target in targets:
        _signal(target, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    pending = list(targets)
    while pending and time.monotonic() < deadline:
        pending = [target for target in pending if _running(target)]
        if pending:
            time.sleep(0.05)
    for target in pending:
        _signal(target, signal.SIGKILL)
        if isinstance(target, subprocess.Popen):
            target.wait(timeout=grace_s)


def _signal(target: subprocess.Popen[bytes] | int, sig: int) -> None:
    try:
        if isinstance(target, subprocess.Popen):
            if target.poll() is None:
                target.send_signal(sig)
        else:
            os.kill(target, sig)
    except ProcessLookupError:
        pass  # exited between the check and the signal: nothing left to stop


def _running(target: subprocess.Popen[bytes] | int) -> bool:
    if isinstance(target, subprocess.Popen):
        return target.poll() is None
    return _alive(target)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of someone else still "exists"; /proc tells it apart where available.
    status = Path(f"/proc/{pid}/stat")
    if status.exists():
        try:
            return status.read_text(encoding="utf-8").split(")")[-1].split()[0] != "Z"
        except OSError:
            return False
    return True
