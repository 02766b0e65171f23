"""``make chaos``: the local grid under fire, then every task checked.

Starts the local grid with 4 agents and submits 5,000 tasks of random length (0-2 s): 10 % fail
on their first attempt (a transient error), 1 % on every attempt, half are long enough to be
leased. While they run, every few seconds a random agent is SIGKILLed (a crash, a reclaimed
spot node) or SIGTERMed (a scale-in) and a fresh one started, and 2 % of the DynamoDB and SQS
calls of the agents and of the Lambdas fail with throttling errors. The reaper fires every two
seconds; leases last 6 s and short tasks' messages hide for 30 s, so dead workers' tasks come
back within a test's patience.

At the end it checks every task against what it was told to do:

- lost: a task without an outcome (not finished, or no result reached the client);
- duplicated: a success recorded twice, seen as a result that reached the client from another
  attempt, or with another value, than the one the task table recorded;
- wrong: a task that should have succeeded and did not (or the reverse), a result that is not
  its task's, errors that do not match its attempts, attempts beyond its budget;
- stuck: task messages still in the queues once everything finished (reported separately).

Its last line: ``chaos: <total> tasks, succeeded=<n> failed=<n> lost=<n> duplicated=<n>
wrong=<n>, agents killed=<n>``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid.session import Completed
from htcgrid_core.models import InlineData, TaskRecord, TaskState
from htcgrid_core.resources import GridResources
from htcgrid_core.settings import GridSettings
from htcgrid_local.clients import EMULATOR_CREDENTIALS
from htcgrid_local.grid import LocalGrid

HANDLER = "htcgrid_examples.scripted:handler"
#: The scripted handler's error, and the one the reaper records for an attempt whose worker died.
HANDLER_ERROR, WORKER_LOST = "TransientTaskError", "LeaseExpired"
#: Tasks with this timeout exceed the chaos lease threshold (3 s): they are leased.
LEASED_TIMEOUT_S, SHORT_TIMEOUT_S = 5, 3


@dataclass(frozen=True)
class ChaosPlan:
    tasks: int = 5000
    agents: int = 4
    slots: int = 4
    prefetch: int = 4
    max_duration_s: float = 2.0
    transient_share: float = 0.10
    permanent_share: float = 0.01
    fault_rate: float = 0.02
    kill_period_s: float = 4.0
    sigterm_share: float = 0.3
    max_attempts: int = 3
    max_receive_count: int = 8
    seed: int = 7
    timeout_s: float = 900.0


@dataclass(frozen=True)
class Intent:
    """What one task was told to do, and so what its outcome must be."""

    kind: str  # "ok", "transient" (fails on attempt 1) or "permanent" (fails every attempt)
    payload: dict[str, Any]
    timeout_s: int


@dataclass
class ChaosReport:
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    stuck: int = 0
    killed: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong or self.stuck)

    def line(self) -> str:
        return (
            f"chaos: {self.total} tasks, succeeded={self.succeeded} failed={self.failed} "
            f"lost={len(self.lost)} duplicated={len(self.duplicated)} wrong={len(self.wrong)}, "
            f"agents killed={sum(self.killed.values())}"
        )


def intents(plan: ChaosPlan) -> list[Intent]:
    """The plan's tasks, reproducible from its seed."""
    rng = random.Random(plan.seed)  # noqa: S311 - a test plan, not cryptography
    made = []
    for index in range(plan.tasks):
        draw = rng.random()
        kind = (
            "permanent"
            if draw < plan.permanent_share
            else "transient"
            if draw < plan.permanent_share + plan.transient_share
            else "ok"
        )
        payload: dict[str, Any] = {
            "value": f"task-{index}",
            "sleep": round(rng.uniform(0, plan.max_duration_s), 3),
        }
        if kind == "transient":
            payload["fail_attempts"] = 1
        elif kind == "permanent":
            payload["fail"] = "always"
        made.append(Intent(kind, payload, LEASED_TIMEOUT_S if index % 2 else SHORT_TIMEOUT_S))
    return made


class Killer:
    """Every few seconds, kill (or stop) a random agent and start a fresh one in its place."""

    def __init__(self, grid: LocalGrid, plan: ChaosPlan, report: ChaosReport) -> None:
        self._grid = grid
        self._plan = plan
        self._report = report
        self._rng = random.Random(plan.seed + 1)  # noqa: S311 - a test plan
        self._stop = threading.Event()
        self._signalled: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _live(self) -> list[subprocess.Popen[bytes]]:
        return [
            agent
            for agent in self._grid.agents
            if agent.poll() is None and agent.pid not in self._signalled
        ]

    def _run(self) -> None:
        while not self._stop.wait(self._rng.uniform(0.5, 1.5) * self._plan.kill_period_s):
            live = self._live()
            if not live:
                continue
            victim = self._rng.choice(live)
            sigterm = self._rng.random() < self._plan.sigterm_share
            victim.send_signal(signal.SIGTERM if sigterm else signal.SIGKILL)
            self._signalled.add(victim.pid)
            self._report.killed["SIGTERM" if sigterm else "SIGKILL"] += 1
            self._grid.start_agent()


def start_grid(plan: ChaosPlan, console: Console) -> LocalGrid:
    faults = f"dynamodb:throttle={plan.fault_rate},sqs:throttle={plan.fault_rate}"
    local = LocalGrid(
        agents=plan.agents,
        handler=HANDLER,
        slots=plan.slots,
        stack_name="htcgrid-chaos",
        parameters={
            "TaskVisibilityTimeoutSeconds": "30",
            "LeaseDurationSeconds": "6",
            "MaxAttempts": str(plan.max_attempts),
            "MaxReceiveCount": str(plan.max_receive_count),
        },
        agent_env={
            "HTCGRID_FAULTS": faults,
            "HTCGRID_HEARTBEAT_INTERVAL_S": "1",
            "HTCGRID_LEASE_THRESHOLD_S": "3",
        },
        emulator_env={"HTCGRID_FAULTS": faults},
        agent_args=["--prefetch", str(plan.prefetch), "--long-poll", "2"],
        schedule_period_s=2.0,
    )
    with console.status(f"starting the local grid with {plan.agents} agents"):
        local.start()
    return local


def run(plan: ChaosPlan, console: Console) -> ChaosReport:
    tasks = intents(plan)
    report = ChaosReport(total=len(tasks))
    local = start_grid(plan, console)
    try:
        grid = Grid(GridEndpoints.for_emulator(dict(local.outputs), local.endpoint_url))
        killer = Killer(local, plan, report)
        seen: dict[str, Completed] = {}
        yielded: Counter[str] = Counter()
        with grid.open_session() as session:
            intent_of: dict[str, Intent] = {}
            for timeout in (SHORT_TIMEOUT_S, LEASED_TIMEOUT_S):
                group = [t for t in tasks if t.timeout_s == timeout]
                ids = session.submit([t.payload for t in group], timeout_s=timeout)
                intent_of.update(zip(ids, group, strict=True))
            console.print(f"submitted {len(intent_of):,} tasks; agents are being killed")
            killer.start()
            progress = Progress(
                TextColumn("[bold]chaos"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[killed]} agents killed"),
                TimeElapsedColumn(),
                console=console,
            )
            try:
                with progress:
                    bar = progress.add_task("results", total=len(intent_of), killed=0)
                    for done in session.results(timeout=plan.timeout_s):
                        yielded[done.task_id] += 1
                        seen[done.task_id] = done
                        progress.update(bar, advance=1, killed=sum(report.killed.values()))
            finally:
                killer.stop()
            report.stuck = drain(local, console)
            records = read_records(local, session.id, list(intent_of))
        check(report, intent_of, records, seen, yielded, plan)
    finally:
        with console.status("stopping the local grid"):
            local.stop()
    return report


def resources(local: LocalGrid) -> GridResources:
    """The grid's table and queues, read with the emulator's credentials (as the agents do)."""
    os.environ.update(EMULATOR_CREDENTIALS)
    return GridResources.from_settings(
        GridSettings.from_stack_outputs(
            local.outputs, endpoint_url=local.endpoint_url, region=local.region
        )
    )


def drain(local: LocalGrid, console: Console, patience_s: float = 120.0) -> int:
    """Wait (agents still running) until no task message is left anywhere in the task queues:
    dead workers' messages come back after their visibility and are cleared as stale. Returns
    how many were still there when patience ran out."""
    grid = resources(local)
    urls = [grid.queues.task_queue_url(p) for p in range(grid.queues.priority_levels)]
    deadline = time.monotonic() + patience_s
    with console.status("waiting for the queues to drain"):
        while True:
            left = sum(sum(grid.queues.depth(url)) for url in urls)
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(1.0)


def read_records(local: LocalGrid, session_id: str, task_ids: list[str]) -> dict[str, TaskRecord]:
    return resources(local).table.get_records(session_id, task_ids)


def check(
    report: ChaosReport,
    intent_of: dict[str, Intent],
    records: dict[str, TaskRecord],
    seen: dict[str, Completed],
    yielded: Counter[str],
    plan: ChaosPlan,
) -> None:
    """Every task against its intent (see the module docstring for the categories)."""
    for task_id, intent in intent_of.items():
        record = records.get(task_id)
        done = seen.get(task_id)
        if record is None or not record.state.is_terminal or done is None:
            report.lost.append(task_id)
            report.reasons["lost: no outcome"] += 1
            continue
        report.succeeded += record.state is TaskState.SUCCEEDED
        report.failed += record.state is TaskState.FAILED
        yielded_value = done.value if isinstance(done.value, dict) else {}
        if yielded[task_id] > 1 or (
            record.state is TaskState.SUCCEEDED
            and (
                done.result.attempt != record.attempt
                or not isinstance(record.result, InlineData)
                or record.result.inline != yielded_value
            )
        ):
            report.duplicated.append(task_id)
            report.reasons["duplicated: client's result is not the recorded one"] += 1
            continue
        problem = _wrong(intent, record, yielded_value, task_id, plan)
        if problem:
            report.wrong.append(task_id)
            report.reasons[f"wrong: {problem}"] += 1


def _wrong(
    intent: Intent, record: TaskRecord, value: dict[str, Any], task_id: str, plan: ChaosPlan
) -> str | None:
    """Why a finished task's record contradicts its intent, if it does.

    A killed worker's attempt shows as ``LeaseExpired`` (for a leased task), so the errors a
    task may carry are its handler's (if it was told to fail) and worker losses. Handler errors
    spend the attempt budget, worker losses their own (``max_receive_count``).
    """
    errors = [error.type for error in record.errors]
    allowed = {WORKER_LOST} | ({HANDLER_ERROR} if intent.kind != "ok" else set())
    handler_errors, losses = errors.count(HANDLER_ERROR), errors.count(WORKER_LOST)
    if handler_errors > plan.max_attempts or losses > plan.max_receive_count:
        return "attempts beyond the budget"
    if set(errors) - allowed:
        return f"errors it was not told to raise: {sorted(set(errors) - allowed)}"
    if intent.kind == "permanent":
        if record.state is not TaskState.FAILED:
            return "an always-failing task did not fail"
        spent = handler_errors == plan.max_attempts or losses == plan.max_receive_count
        if len(errors) != record.attempt or not spent:
            return "a failed task without the error of each attempt of its budget"
        return None
    if record.state is not TaskState.SUCCEEDED:
        return f"should have succeeded, ended {record.state.value} ({errors})"
    if value.get("value") != intent.payload["value"] or value.get("task_id") != task_id:
        return "a result that is not its task's"
    if value.get("attempt") != record.attempt:
        return "a result from another attempt than the recorded one"
    if len(errors) != record.attempt - 1:
        return "errors that do not match the attempts"
    if intent.kind == "transient" and record.attempt < 2:
        return "a transient failure not retried"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = ChaosPlan()
    parser.add_argument("--tasks", type=int, default=defaults.tasks)
    parser.add_argument("--agents", type=int, default=defaults.agents)
    parser.add_argument("--slots", type=int, default=defaults.slots)
    parser.add_argument("--max-duration", type=float, default=defaults.max_duration_s)
    parser.add_argument("--kill-period", type=float, default=defaults.kill_period_s)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    plan = ChaosPlan(
        tasks=args.tasks,
        agents=args.agents,
        slots=args.slots,
        max_duration_s=args.max_duration,
        kill_period_s=args.kill_period,
        fault_rate=args.fault_rate,
        seed=args.seed,
    )
    console = Console()
    started = time.monotonic()
    report = run(plan, console)
    console.print(
        f"{report.total:,} tasks in {time.monotonic() - started:.0f} s; agents killed: "
        f"{dict(report.killed)}; task messages left in the queues: {report.stuck}"
    )
    for reason, count in report.reasons.most_common():
        console.print(f"  {count} x {reason}")
    print(report.line())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
