"""Celery's side of ``make bench-peers``, as the bench drives it: its settings (broker and
result backend on the local grid's emulator), its worker processes (``celery worker -c 1``,
started and always stopped here), and its client (``delay()`` then ``get()``, as a Celery user
writes it). The app and task the workers run are in ``peer_celery``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from htcgrid_bench import peer_celery, procstat, runs
from htcgrid_local.clients import EMULATOR_CREDENTIALS

#: The ``app/<id>`` in the User-Agent of Celery's boto3 requests: how the emulator's request
#: accounting tells them from htcgrid's (``runs.CLIENT_APP_ID``, ``runs.AGENT_APP_ID``).
CELERY_CLIENT_APP_ID = "celery-client"
CELERY_WORKER_APP_ID = "celery-worker"
#: Celery's SQS queues are named with this prefix, its results table is this one.
CELERY_QUEUE_PREFIX = "htcgrid-peer-"
CELERY_RESULTS_TABLE = "htcgrid-peer-results"
#: How long a stopping Celery worker may finish its task before it is killed.
WORKER_GRACE_S = 10.0
#: How long the workers may take to answer their first tasks (imports, queue creation).
WORKER_START_TIMEOUT_S = 60.0
#: Linux's prctl(PR_SET_PDEATHSIG): a worker gets SIGTERM if the bench dies without stopping it.
_PR_SET_PDEATHSIG = 1


# --- Celery's configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class CeleryTuning:
    """The Celery settings a team wanting low latency would choose; docs/performance.md
    ("Against Celery on SQS") gives the measurements behind each default.

    - ``polling_interval_s``: kombu's SQS transport waits this long after an empty receive,
      and also whenever the worker's prefetch is full (default 1 s, which stalls a busy worker
      for up to a second per prefetch window);
    - ``wait_time_s``: the receive's long poll (SQS's WaitTimeSeconds; kombu's default 10);
    - ``prefetch_multiplier``: messages a worker holds per process (Celery's default 4; a
      receive asks for at most that many);
    - ``result_interval_s``: how often the client polls the result backend in ``get()``
      (Celery's default 0.5 s).
    """

    polling_interval_s: float = 0.01
    wait_time_s: int = 10
    prefetch_multiplier: int = 4
    result_interval_s: float = 0.005


def celery_settings(endpoint_url: str, tuning: CeleryTuning, region: str) -> dict[str, Any]:
    """Celery's configuration with its broker (SQS) and result backend (DynamoDB) on the
    emulator at ``endpoint_url``. kombu takes the SQS endpoint from the broker URL's host and
    port (``http`` when ``is_secure`` is off); the DynamoDB backend takes an IP address or
    ``localhost`` as a local endpoint (``http://host:port``) and the path as its table."""
    address = urlsplit(endpoint_url).netloc
    key = quote(EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"], safe="")
    secret = quote(EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], safe="")
    return {
        "broker_url": f"sqs://{key}:{secret}@{address}",
        "broker_transport_options": {
            "region": region,
            "is_secure": False,
            "queue_name_prefix": CELERY_QUEUE_PREFIX,
            "polling_interval": tuning.polling_interval_s,
            "wait_time_seconds": tuning.wait_time_s,
        },
        "broker_connection_retry_on_startup": True,
        "result_backend": f"dynamodb://{key}:{secret}@{address}/{CELERY_RESULTS_TABLE}",
        "worker_prefetch_multiplier": tuning.prefetch_multiplier,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
    }


# --- the workers and the client -----------------------------------------------------------------


def _die_with_parent() -> None:
    """In a worker before exec: SIGTERM it if the bench dies without stopping it."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def app_id(name: str) -> Iterator[None]:
    """``AWS_SDK_UA_APP_ID`` set to ``name`` while the block runs: boto3 clients made in it
    name their caller so. htcgrid's client and Celery's share this process."""
    saved = os.environ.get(runs.APP_ID_VARIABLE)
    os.environ[runs.APP_ID_VARIABLE] = name
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(runs.APP_ID_VARIABLE, None)
        else:
            os.environ[runs.APP_ID_VARIABLE] = saved


class CeleryPeer:
    """Celery's side: ``workers`` worker processes (``celery worker -c 1``, prefork) and a
    client app, with the given settings. ``start()`` returns once both workers have run a task;
    ``stop()`` (also on any error or Ctrl-C, as a context manager) stops every worker process:
    SIGTERM (Celery's warm shutdown), then SIGKILL of its process group after the grace."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        tuning: CeleryTuning,
        workers: int,
        log_dir: Path,
        emulator_pid: int | None = None,
    ) -> None:
        self.settings = dict(settings)
        self.tuning = tuning
        self.worker_count = workers
        self.log_dir = log_dir
        self.workers: list[subprocess.Popen[bytes]] = []
        self.emulator_pid = emulator_pid
        self._app: Any = None

    def __enter__(self) -> CeleryPeer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def worker_pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    def start(self) -> None:
        with app_id(CELERY_CLIENT_APP_ID):
            self._app = peer_celery.make_app(self.settings)
            self._app.backend.client  # noqa: B018 - creates the results table before the workers
        env = {
            **os.environ,
            **EMULATOR_CREDENTIALS,
            peer_celery.SETTINGS_VARIABLE: json.dumps(self.settings),
            runs.APP_ID_VARIABLE: CELERY_WORKER_APP_ID,
        }
        env.pop("AWS_PROFILE", None)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(self.worker_count):
            with (self.log_dir / f"celery-worker-{index}.log").open("ab") as log:
                self.workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "htcgrid_bench.peer_celery",
                            "worker",
                            "--concurrency",
                            "1",
                            "--hostname",
                            f"peer{index}@%h",
                            "--loglevel",
                            "WARNING",
                        ],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # Ctrl-C reaches the bench, which stops them
                        preexec_fn=_die_with_parent,  # one prctl call: safe between fork and exec
                    )
                )
        # Tasks go to whichever worker receives first: warm up until both have run one.
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        ran: set[float] = set()
        while len(ran) < self.worker_count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Celery workers not all consuming; see {self.log_dir}")
            tasks = 2 * self.worker_count * self.tuning.prefetch_multiplier
            _, values = self._send_and_get(tasks, {}, deadline)
            ran.update(value["pid"] for value in values)

    def _check_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is not None:
                raise RuntimeError(
                    f"a Celery worker exited ({worker.returncode}); see {self.log_dir}"
                )

    def stop(self) -> None:
        """Stop every worker process (warm shutdown, then SIGKILL of its process group)."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WORKER_GRACE_S
        for worker in self.workers:
            try:
                worker.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass  # killed with its group below
            try:
                # Its own session: the group is the worker and its pool's processes.
                os.killpg(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # the worker and its pool are gone: what a warm shutdown leaves
            if worker.poll() is None:
                worker.wait(timeout=WORKER_GRACE_S)
        self.workers = []

    def burst(self, tasks: int, sleep_s: float, timeout_s: float) -> runs.Burst:
        """Send ``tasks`` tasks, one ``delay()`` each, then ``get()`` every result in order."""
        meter = CeleryCpuMeter(self.worker_pids, self.emulator_pid)
        meter.start()
        began = time.perf_counter()
        submit_s, values = self._send_and_get(
            tasks, {"sleep": sleep_s} if sleep_s else {}, time.monotonic() + timeout_s
        )
        finished = time.perf_counter()
        cpu = meter.stop()
        handler_cpu = sum(float(value["cpu_s"]) for value in values)
        return runs.Burst(tasks, submit_s, finished - began, handler_cpu, cpu)

    def _send_and_get(
        self, tasks: int, payload: dict[str, Any], deadline: float
    ) -> tuple[float, list[dict[str, Any]]]:
        """What a Celery user writes: ``delay()`` each task, then ``get()`` each result. The
        seconds the sends took, and the results."""
        self._check_workers()
        task = self._app.tasks[peer_celery.TASK_NAME]
        with app_id(CELERY_CLIENT_APP_ID):
            began = time.perf_counter()
            pending = [task.delay(payload) for _ in range(tasks)]
            submit_s = time.perf_counter() - began
            return submit_s, [self._get(result, deadline) for result in pending]

    def sequential(self, count: int, timeout_s: float = 30.0) -> list[float]:
        """``count`` single tasks, each sent once the previous one's result is in; the seconds
        from each ``delay()`` to its result."""
        self._check_workers()
        task = self._app.tasks[peer_celery.TASK_NAME]
        samples: list[float] = []
        with app_id(CELERY_CLIENT_APP_ID):
            for _ in range(count):
                began = time.perf_counter()
                self._get(task.delay({}), time.monotonic() + timeout_s)
                samples.append(time.perf_counter() - began)
        return samples

    def _get(self, result: Any, deadline: float) -> dict[str, Any]:
        value = result.get(
            timeout=max(0.001, deadline - time.monotonic()),
            interval=self.tuning.result_interval_s,
        )
        if not isinstance(value, dict):
            raise RuntimeError(f"Celery task {result.id} returned {value!r}")
        return value


class CeleryCpuMeter:
    """CPU of the Celery workers (their pool processes included), the emulator and its Lambda
    environments, and this client, between :meth:`start` and :meth:`stop`: the same
    ``runs.CpuSample`` as htcgrid's agents are measured with (``runs.CpuMeter``)."""

    def __init__(self, workers: Sequence[int], emulator: int | None = None) -> None:
        self._workers = list(workers)
        self._emulator = emulator
        self._before: dict[int, float] = {}
        self._client_before = 0.0

    def _snapshot(self) -> dict[int, float]:
        snapshot = procstat.tree_cpu_seconds(self._workers)
        if self._emulator is not None:
            snapshot.update(procstat.tree_cpu_seconds([self._emulator]))
        return snapshot

    def start(self) -> None:
        self._before = self._snapshot()
        self._client_before = time.process_time()

    def stop(self) -> runs.CpuSample:
        after = self._snapshot()
        used = {pid: after[pid] - self._before.get(pid, 0.0) for pid in after}
        emulator_tree = (
            procstat.descendants([self._emulator]) if self._emulator is not None else set()
        )
        workers = sum(v for pid, v in used.items() if pid not in emulator_tree)
        emulator = used.get(self._emulator, 0.0) if self._emulator is not None else 0.0
        lambdas = sum(v for pid, v in used.items() if pid in emulator_tree) - emulator
        return runs.CpuSample(workers, emulator, time.process_time() - self._client_before, lambdas)
