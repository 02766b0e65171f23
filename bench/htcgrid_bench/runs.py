"""The bench's runs on a local grid: a burst of tasks, sequential single tasks, and the CPU and
AWS requests they cost. Each function runs once; ``__main__`` repeats them and takes medians."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import JsonValue
from rich.console import Console

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid.session import Completed
from htcgrid_bench import procstat
from htcgrid_core import result_queues
from htcgrid_core.settings import get_settings
from htcgrid_local import accounting
from htcgrid_local.grid import LocalGrid

HANDLER = "htcgrid_bench.handlers:timed"
#: boto3 puts ``app/<id>`` in every request's User-Agent: how the emulator tells callers apart.
APP_ID_VARIABLE = "AWS_SDK_UA_APP_ID"
CLIENT_APP_ID = "htcgrid-client"
FAULTS_VARIABLE = "HTCGRID_FAULTS"
AGENT_APP_ID = "htcgrid-agent"
#: How long the agents may take to delete the last messages after the client has every result.
SETTLE_TIMEOUT_S = 15.0
#: The services whose requests ``aws_latency_ms`` slows down.
LATENCY_SERVICES = ("dynamodb", "sqs", "s3", "stepfunctions", "lambda")


def latency_faults(aws_latency_ms: float) -> str:
    """The ``HTCGRID_FAULTS`` value that adds ``aws_latency_ms`` to every AWS request."""
    if aws_latency_ms <= 0:
        return ""
    return ",".join(f"{s}:latency={aws_latency_ms / 1000:g}" for s in LATENCY_SERVICES)


@contextmanager
def local_grid(
    agents: int, slots: int, prefetch: int, *, count_requests: bool, aws_latency_ms: float = 0
) -> Iterator[LocalGrid]:
    """A local grid running the bench's handler; with ``count_requests`` its emulator counts
    every AWS call (``HTCGRID_LOCAL_ACCOUNTING``) and agents and client name themselves. With
    ``aws_latency_ms`` every AWS request of the client, the Lambdas and the agents waits that
    long first, as a round trip to AWS would (``htcgrid_core.faults``)."""
    names = (accounting.ENV_FLAG, APP_ID_VARIABLE, FAULTS_VARIABLE)
    saved = {name: os.environ.get(name) for name in names}
    os.environ[accounting.ENV_FLAG] = "1" if count_requests else "0"  # the emulator inherits it
    if aws_latency_ms > 0:  # else HTCGRID_FAULTS stays as the caller set it
        os.environ[FAULTS_VARIABLE] = latency_faults(aws_latency_ms)  # agents inherit it too
        get_settings.cache_clear()  # and this process's clients read it
    os.environ.pop(APP_ID_VARIABLE, None)
    grid = LocalGrid(
        agents=agents,
        handler=HANDLER,
        slots=slots,
        stack_name="htcgrid-bench",
        agent_env={APP_ID_VARIABLE: AGENT_APP_ID},
        agent_args=["--prefetch", str(prefetch)],
    )
    try:
        grid.start()
        # Set after the emulator and agents started: only this process's clients read it.
        os.environ[APP_ID_VARIABLE] = CLIENT_APP_ID
        yield grid
    finally:
        grid.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


def client_of(grid: LocalGrid) -> Grid:
    return Grid(GridEndpoints.for_emulator(dict(grid.outputs), grid.endpoint_url))


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used during a run by the agents (slots included), the emulator, the Lambda
    functions' execution environments (processes under the emulator's) and this client."""

    agents_s: float
    emulator_s: float
    client_s: float
    lambdas_s: float = 0.0


class CpuMeter:
    """CPU of the grid's processes between :meth:`start` and :meth:`stop`."""

    def __init__(self, grid: LocalGrid) -> None:
        self._agents = [agent.pid for agent in grid.agents]
        self._emulator = grid.emulator.pid if grid.emulator and grid.emulator.pid else None
        self._before: Mapping[int, float] = {}
        self._lambdas_before: Mapping[int, float] = {}
        self._emulator_before = 0.0
        self._client_before = 0.0

    def start(self) -> None:
        self._before = procstat.tree_cpu_seconds(self._agents)
        self._emulator_before = procstat.cpu_seconds(self._emulator) if self._emulator else 0.0
        self._lambdas_before = self._lambdas()
        self._client_before = time.process_time()

    def _lambdas(self) -> Mapping[int, float]:
        """CPU of the emulator's descendants: the Lambda functions' processes."""
        if self._emulator is None:
            return {}
        tree = procstat.tree_cpu_seconds([self._emulator])
        tree.pop(self._emulator, None)
        return tree

    def stop(self) -> CpuSample:
        after = procstat.tree_cpu_seconds(self._agents)
        # A process that exited in between took its CPU with it: only pids seen twice count.
        agents = sum(after[pid] - self._before.get(pid, 0.0) for pid in after)
        emulator = (
            procstat.cpu_seconds(self._emulator) - self._emulator_before if self._emulator else 0.0
        )
        lambdas_after = self._lambdas()
        lambdas = sum(lambdas_after[p] - self._lambdas_before.get(p, 0.0) for p in lambdas_after)
        return CpuSample(agents, emulator, time.process_time() - self._client_before, lambdas)


@dataclass(frozen=True)
class Burst:
    """Tasks submitted at once and waited for."""

    tasks: int
    submit_s: float
    total_s: float
    handler_cpu_s: float
    cpu: CpuSample

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.total_s

    @property
    def submit_per_s(self) -> float:
        return self.tasks / self.submit_s

    @property
    def agent_cpu_ms_per_task(self) -> float:
        """Agent CPU (slot processes included) per task, the handler's own CPU taken out."""
        return 1000 * (self.cpu.agents_s - self.handler_cpu_s) / self.tasks


def _handler_value(done: Completed) -> Mapping[str, float]:
    value = done.value
    if not done.ok or not isinstance(value, dict):
        raise RuntimeError(f"task {done.task_id} ended {done.state}: {done.error}")
    return {k: float(v) for k, v in value.items() if isinstance(v, int | float)}


def run_burst(grid: LocalGrid, tasks: int, sleep_s: float = 0.0, timeout_s: float = 600) -> Burst:
    """Submit ``tasks`` tasks in one call and wait for every result."""
    client = client_of(grid)
    payload: JsonValue = {"sleep": sleep_s} if sleep_s else {}
    meter = CpuMeter(grid)
    with client.open_session() as session:
        meter.start()
        began = time.perf_counter()
        session.submit([payload] * tasks)
        submitted = time.perf_counter()
        results = session.wait(timeout=timeout_s)
        finished = time.perf_counter()
        cpu = meter.stop()
    handler_cpu = sum(_handler_value(done)["cpu_s"] for done in results)
    if len(results) != tasks:
        raise RuntimeError(f"{len(results)}/{tasks} results")
    return Burst(tasks, submitted - began, finished - began, handler_cpu, cpu)


#: The stages of one task's latency, in order, as the bench names them.
STAGES = (
    "submit workflow",
    "queue wait",
    "agent pick-up",
    "handler",
    "completion",
    "client notification",
)


@dataclass(frozen=True)
class Latency:
    """One task's latency from submit to result in the client, split into :data:`STAGES` by
    timestamps on one clock (everything runs on this machine):

    - submit workflow: from the client's submit call to the task message's arrival in its
      queue (SQS's ``SentTimestamp``, in ms): StartSyncExecution, the workflow, the persist
      Lambda's validation and writes, the dispatch Lambda's send;
    - queue wait: from there to the agent's receive returning it (the result's ``received_at``);
    - agent pick-up: from the receive to the handler's own start: the cancellation check, the
      hand-off to a slot and the slot process's decoding;
    - handler: the handler's own run;
    - completion: from the handler's end to the agent sending the result notice (the notice's
      ``sent_at``): the result's way back from the slot process, the conditional completion
      write, the reporter's batching;
    - client notification: from the notice's sending to the client holding the decoded result
      (SQS delivery to the client's long poll).

    ``submit_call_s`` is when the client's submit call returned: the agent often starts the
    task before that (the synchronous execution still has to return its output).
    """

    stages_s: tuple[float, ...]
    submit_call_s: float = 0.0

    @property
    def total_s(self) -> float:
        return sum(self.stages_s)


def latency_of(done: Completed, began: float, returned: float) -> Latency:
    """Split one result's latency, given when its submit call began and returned."""
    result, handler = done.result, _handler_value(done)
    if result.queued_at is None or result.received_at is None or done.notified_at is None:
        raise RuntimeError(f"task {done.task_id}: its result came without the agent's timings")
    return Latency(
        (
            result.queued_at - began,
            result.received_at - result.queued_at,
            handler["started_at"] - result.received_at,
            handler["finished_at"] - handler["started_at"],
            done.notified_at - handler["finished_at"],
            done.received_at - done.notified_at,
        ),
        returned - began,
    )


def run_sequential(grid: LocalGrid, count: int, timeout_s: float = 30) -> list[Latency]:
    """``count`` single tasks, each submitted once the previous one's result is in."""
    client = client_of(grid)
    samples: list[Latency] = []
    with client.open_session() as session:
        for _ in range(count):
            began = time.time()
            session.submit([{}])
            returned = time.time()
            (done,) = list(session.results(timeout=timeout_s))
            samples.append(latency_of(done, began, returned))
    return samples


def stage_medians(samples: Sequence[Latency]) -> list[float]:
    return [statistics.median(s.stages_s[i] for s in samples) for i in range(len(STAGES))]


def settled_accounting(endpoint_url: str, tasks: int) -> accounting.Accounting:
    """The counters once the agents have deleted every task message of the run (their
    reporters send the notices first and the deletes a moment later)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        counted = accounting.fetch(endpoint_url)
        deleted = sum(
            row.entries
            for row in counted.select(service="sqs", operation="DeleteMessageBatch")
            if row.caller == AGENT_APP_ID and result_queues.INFIX not in row.resource
        )
        if deleted >= tasks or time.monotonic() > deadline:
            return counted
        time.sleep(0.1)


def measured_or_saved(
    saved: Path | None, out: Path, console: Console, measure: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """A bench's raw results: read back from ``saved`` if given (nothing runs), else measured,
    timed and written to ``out`` as JSON."""
    if saved:
        results: dict[str, Any] = json.loads(saved.read_text(encoding="utf-8"))
        return results
    began = time.perf_counter()
    results = measure()
    results["seconds"] = time.perf_counter() - began
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    console.print(f"raw results in {out} ({results['seconds']:.0f} s of runs)")
    return results
