"""A real Prometheus (Debian's package) scraping the local grid's agents.

``LocalPrometheus`` writes a configuration whose one job reads its targets from a file_sd file,
starts ``prometheus`` on 127.0.0.1 at a free port with its storage in a directory of its own,
and rewrites the targets file as agents come and go (Prometheus watches the file). Each agent
target carries ``pod`` and ``namespace`` labels (the agent's name, the stack's name), the labels
the EKS PodMonitor gives, so the Grafana dashboards' queries work here unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from htcgrid_local.emulator import stop_processes

#: The job every agent target belongs to.
JOB = "htcgrid-agents"
#: Seconds between scrapes: short, so a test or a render sees a run's end within seconds.
SCRAPE_INTERVAL_S = 1
#: How long Prometheus may take to open its storage and answer /-/ready.
READY_TIMEOUT_S = 30.0
#: How long a stopping Prometheus may flush before it is killed.
STOP_GRACE_S = 10.0
INSTALL_HINT = "install it with `make prometheus` (scripts/install-prometheus.sh)"


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or answered a query with an error."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick; the caller binds it at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary() -> str:
    """The ``prometheus`` executable, or an error saying how to install it."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise PrometheusError(f"prometheus not found on PATH: {INSTALL_HINT}")
    return binary


class LocalPrometheus:
    """One Prometheus process for one local grid; ``start()`` returns once it is ready."""

    def __init__(self, directory: Path, namespace: str) -> None:
        # Absolute: Prometheus resolves file_sd paths against its configuration file's folder.
        self.directory = directory.resolve()
        #: The ``namespace`` label of every target: the grid's stack name.
        self.namespace = namespace
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Where its HTTP API answers, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def targets_file(self) -> Path:
        return self.directory / "agents.json"

    def start(self) -> LocalPrometheus:
        binary = find_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.set_targets({})
        config = self.directory / "prometheus.yml"
        config.write_text(json.dumps(self._config(), indent=2), encoding="utf-8")  # YAML ⊃ JSON
        self.port = free_port()
        self._log = (self.directory / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def stop(self) -> None:
        """Stop Prometheus (SIGTERM, then SIGKILL after a grace period). Safe to call twice."""
        if self.process is not None:
            stop_processes([self.process], STOP_GRACE_S)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def set_targets(self, agents: Mapping[str, int]) -> None:
        """Scrape exactly these agents (name -> metrics port on 127.0.0.1) from now on."""
        groups = [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {"pod": name, "namespace": self.namespace},
            }
            for name, port in sorted(agents.items())
        ]
        # Written aside and renamed: Prometheus never reads half a file.
        partial = self.targets_file.with_suffix(".tmp")
        partial.write_text(json.dumps(groups, indent=2), encoding="utf-8")
        os.replace(partial, self.targets_file)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        return self._api("query", {"query": expr})

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query's matrix (``[{"metric": {...}, "values": [[t, "v"], ...]}, ...]``)."""
        return self._api("query_range", {"query": expr, "start": start, "end": end, "step": step})

    def scalar(self, expr: str) -> float | None:
        """The value of a query that yields one series (None if it yields none)."""
        result = self.query(expr)
        if len(result) > 1:
            raise PrometheusError(f"{expr!r} yields {len(result)} series, not one")
        return float(result[0]["value"][1]) if result else None

    # --- internals ---------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        interval = f"{SCRAPE_INTERVAL_S}s"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "file_sd_configs": [
                        {"files": [str(self.targets_file)], "refresh_interval": "5s"}
                    ],
                }
            ],
        }

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited at start: see {self._log_path()}")
            try:
                ready = f"{self.url}/-/ready"
                with urllib.request.urlopen(ready, timeout=2) as response:  # noqa: S310 - http
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet: try again until the deadline
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(
            f"prometheus not ready after {READY_TIMEOUT_S} s: see {self._log_path()}"
        )

    def _log_path(self) -> Path:
        return self.directory / "prometheus.log"

    def _api(self, endpoint: str, params: Mapping[str, str | float]) -> list[dict[str, Any]]:
        return query_api(self.url, endpoint, params)


def query_api(url: str, endpoint: str, params: Mapping[str, str | float]) -> list[dict[str, Any]]:
    """Call Prometheus' HTTP API at ``url`` (``/api/v1/<endpoint>``) and return its result."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise PrometheusError(f"Prometheus URL {url!r}: only http and https")
    data = urllib.parse.urlencode({k: str(v) for k, v in params.items()}).encode()
    api = f"{url}/api/v1/{endpoint}"
    request = urllib.request.Request(api, data=data, method="POST")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http(s) only
            document = json.load(response)
    except urllib.error.HTTPError as error:  # 400/422: a bad query; the body says why
        document = json.load(error)
    if document.get("status") != "success":
        raise PrometheusError(f"{endpoint} {params.get('query')!r}: {document.get('error')}")
    result: list[dict[str, Any]] = document["data"]["result"]
    return result
