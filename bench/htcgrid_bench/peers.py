"""``make bench-peers``: htcgrid beside Celery on SQS, on one emulator, in one run.

One local grid (2 agents x 1 slot, the agent's default prefetch, request accounting on) serves
both systems: htcgrid's stack, and Celery's broker (kombu's SQS transport) and result backend
(Celery's DynamoDB backend), both pointed at the same emulator. Celery runs 2 workers of
concurrency 1 (``celery worker -c 1``, the default prefork pool). Each of ``--repeats`` rounds
runs, for each system in turn (the first one alternating round by round): (a) a burst of 5,000
no-op tasks (tasks/s from the first submit to the last result), (b) 1,000 tasks sleeping 10 ms,
(c) 200 sequential single tasks (submit to result in the client). Medians are reported beside
the targets of issue 15; the last line is the summary:

    peers: noop_ratio=... sleep_ratio=... p50_ratio=... targets_met=yes|no
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from htcgrid_agent.config import AgentConfig
from htcgrid_bench import peer_workers, runs
from htcgrid_bench.peer_workers import CeleryPeer, CeleryTuning
from htcgrid_core.percentiles import percentile
from htcgrid_local import accounting

CELERY, HTCGRID = "celery", "htcgrid"
SYSTEMS = (CELERY, HTCGRID)
NOOP, SLEEP, SEQUENTIAL = "noop", "sleep", "sequential"
WORKLOADS = (NOOP, SLEEP, SEQUENTIAL)
#: What the 10 ms tasks sleep.
SLEEP_S = 0.01
#: kombu's workers receive through their own HTTP client (pycurl), whose requests carry no
#: boto3 User-Agent: the accounting names them "external". Nothing else of the grid does.
CELERY_CALLERS = frozenset(
    {peer_workers.CELERY_CLIENT_APP_ID, peer_workers.CELERY_WORKER_APP_ID, "external"}
)


# --- what one run measured -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One workload run of one system: its tasks, the seconds from the first submit to the last
    result (bursts) or each task's submit-to-result seconds (sequential), and per task the AWS
    requests of the system's callers and the CPU of its processes (bursts)."""

    system: str
    workload: str
    round: int
    tasks: int
    seconds: float
    submit_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    requests: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds


def is_celery_caller(caller: str) -> bool:
    """True for a request the accounting charged to Celery (client, workers, their receives)."""
    return caller in CELERY_CALLERS


def requests_per_task(rows: Sequence[accounting.Row], system: str, tasks: int) -> dict[str, float]:
    """The AWS requests ``system``'s callers made, per task: SQS, DynamoDB (and its write
    units), the rest (Lambda, Step Functions, S3), and all of them."""
    mine = [row for row in rows if is_celery_caller(row.caller) == (system == CELERY)]
    sqs = sum(row.count for row in mine if row.service == "sqs")
    dynamodb = sum(row.count for row in mine if row.service == "dynamodb")
    everything = sum(row.count for row in mine)
    return {
        "sqs_requests": sqs / tasks,
        "dynamodb_requests": dynamodb / tasks,
        "dynamodb_wru": sum(row.wru for row in mine) / tasks,
        "other_requests": (everything - sqs - dynamodb) / tasks,
        "all_requests": everything / tasks,
    }


def cpu_ms_per_task(burst: runs.Burst) -> dict[str, float]:
    """CPU per task of the workers (agents or Celery workers, the handler's own CPU taken
    out), the emulator with the Lambda functions' environments, and the client."""
    cpu = burst.cpu
    return {
        "workers": burst.agent_cpu_ms_per_task,
        "emulator": 1000 * (cpu.emulator_s + cpu.lambdas_s) / burst.tasks,
        "client": 1000 * cpu.client_s / burst.tasks,
    }


# --- the summary: medians, ratios, targets -------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Issue 15's bound on htcgrid / Celery for one measure."""

    name: str
    bound: float
    at_least: bool  # True: the ratio must be >= bound (throughput); False: <= bound (latency)

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.at_least else ratio <= self.bound

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}x"


TARGETS = {
    "noop_ratio": Target("no-op throughput", 2.0, at_least=True),
    "sleep_ratio": Target("10 ms throughput", 1.5, at_least=True),
    "p50_ratio": Target("sequential p50", 1.5, at_least=False),
}


def median_tasks_per_s(runs_: Sequence[Run], system: str, workload: str) -> float:
    return statistics.median(
        r.tasks_per_s for r in runs_ if r.system == system and r.workload == workload
    )


def latency_ms(runs_: Sequence[Run], system: str, fraction: float) -> float:
    """A percentile of ``system``'s sequential latencies, every round's samples pooled."""
    pooled = [
        1000 * s
        for r in runs_
        if r.system == system and r.workload == SEQUENTIAL
        for s in r.latencies_s
    ]
    return percentile(pooled, fraction)


def median_of(runs_: Sequence[Run], system: str, workload: str, part: str, key: str) -> float:
    """The median over rounds of ``requests`` or ``cpu_ms`` [``key``] of one system's runs."""
    values = [
        float(getattr(r, part)[key])
        for r in runs_
        if r.system == system and r.workload == workload and key in getattr(r, part)
    ]
    return statistics.median(values) if values else math.nan


def ratios(runs_: Sequence[Run]) -> dict[str, float]:
    """htcgrid / Celery for the three targeted measures."""
    return {
        "noop_ratio": median_tasks_per_s(runs_, HTCGRID, NOOP)
        / median_tasks_per_s(runs_, CELERY, NOOP),
        "sleep_ratio": median_tasks_per_s(runs_, HTCGRID, SLEEP)
        / median_tasks_per_s(runs_, CELERY, SLEEP),
        "p50_ratio": latency_ms(runs_, HTCGRID, 0.5) / latency_ms(runs_, CELERY, 0.5),
    }


def summary_line(measured: Mapping[str, float]) -> str:
    """The last line: each ratio, and whether every target is met."""
    met = all(target.met(measured[name]) for name, target in TARGETS.items())
    values = " ".join(f"{name}={measured[name]:.2f}" for name in TARGETS)
    return f"peers: {values} targets_met={'yes' if met else 'no'}"


def round_order(round_index: int) -> tuple[str, ...]:
    """Which system goes first in a round: Celery in even rounds, htcgrid in odd ones."""
    return SYSTEMS if round_index % 2 == 0 else SYSTEMS[::-1]


# --- the rounds ----------------------------------------------------------------------------------


def _htcgrid_run(grid: Any, workload: str, tasks: int, round_index: int) -> Run:
    accounting.reset(grid.endpoint_url)
    with peer_workers.app_id(runs.CLIENT_APP_ID):
        if workload == SEQUENTIAL:
            samples = [s.total_s for s in runs.run_sequential(grid, tasks)]
        else:
            burst = runs.run_burst(grid, tasks, sleep_s=SLEEP_S if workload == SLEEP else 0.0)
    counted = runs.settled_accounting(grid.endpoint_url, tasks)
    requests = requests_per_task(counted.rows, HTCGRID, tasks)
    if workload == SEQUENTIAL:
        return Run(HTCGRID, workload, round_index, tasks, sum(samples), 0.0, samples, requests)
    return _burst_run(HTCGRID, workload, round_index, tasks, burst, requests)


def _celery_run(
    peer: CeleryPeer, endpoint_url: str, workload: str, tasks: int, round_index: int
) -> Run:
    accounting.reset(endpoint_url)
    if workload == SEQUENTIAL:
        samples = peer.sequential(tasks)
        requests = requests_per_task(accounting.fetch(endpoint_url).rows, CELERY, tasks)
        return Run(CELERY, workload, round_index, tasks, sum(samples), 0.0, samples, requests)
    burst = peer.burst(tasks, SLEEP_S if workload == SLEEP else 0.0, timeout_s=600)
    # Celery acknowledges (deletes) a message when its worker receives it, before the result:
    # nothing of the run is left to settle.
    requests = requests_per_task(accounting.fetch(endpoint_url).rows, CELERY, tasks)
    return _burst_run(CELERY, workload, round_index, tasks, burst, requests)


def _burst_run(
    system: str,
    workload: str,
    round_index: int,
    tasks: int,
    burst: runs.Burst,
    requests: dict[str, float],
) -> Run:
    """A burst's run: from the first submit to the last result, and its CPU per task."""
    return Run(
        system,
        workload,
        round_index,
        tasks,
        burst.total_s,
        burst.submit_s,
        requests=requests,
        cpu_ms=cpu_ms_per_task(burst),
    )


def measure(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Every round of both systems; the raw numbers."""
    tuning = CeleryTuning(
        polling_interval_s=args.celery_polling_interval,
        wait_time_s=args.celery_wait_time,
        prefetch_multiplier=args.celery_prefetch_multiplier,
        result_interval_s=args.celery_result_interval,
    )
    sizes = {NOOP: args.noop_tasks, SLEEP: args.sleep_tasks, SEQUENTIAL: args.sequential}
    prefetch = int(AgentConfig.model_fields["prefetch"].default)  # the agent's default
    console.print(f"starting the local grid ({args.agents} agents x 1 slot, prefetch {prefetch})")
    done: list[Run] = []
    with runs.local_grid(
        args.agents, 1, prefetch, count_requests=True, aws_latency_ms=args.aws_latency_ms
    ) as grid:
        settings = peer_workers.celery_settings(grid.endpoint_url, tuning, grid.region)
        emulator_pid = grid.emulator.pid if grid.emulator else None
        console.print(f"starting {args.workers} Celery workers (-c 1, prefork) on the emulator")
        with CeleryPeer(settings, tuning, args.workers, grid.log_dir, emulator_pid) as peer:
            runs.run_burst(grid, 200)  # warm-up: imports, queue URL lookups, cold starts
            peer.burst(200, 0.0, timeout_s=120)
            for round_index in range(args.repeats):
                order = round_order(round_index)
                for workload in WORKLOADS:
                    for system in order:
                        with console.status(
                            f"round {round_index + 1}/{args.repeats}: {system},"
                            f" {sizes[workload]:,} {workload} tasks"
                        ):
                            if system == CELERY:
                                run = _celery_run(
                                    peer, grid.endpoint_url, workload, sizes[workload], round_index
                                )
                            else:
                                run = _htcgrid_run(grid, workload, sizes[workload], round_index)
                        done.append(run)
                        console.print(f"round {round_index + 1}: {_one_line(run)}")
    return {
        "config": {
            "agents": args.agents,
            "slots": 1,
            "prefetch": prefetch,
            "celery_workers": args.workers,
            "celery_tuning": asdict(tuning),
            "repeats": args.repeats,
            "aws_latency_ms": args.aws_latency_ms,
        },
        "runs": [asdict(run) for run in done],
    }


def _one_line(run: Run) -> str:
    if run.workload == SEQUENTIAL:
        p50 = 1000 * statistics.median(run.latencies_s)
        return f"{run.system} {run.tasks} sequential: p50 {p50:.1f} ms"
    return f"{run.system} {run.tasks:,} {run.workload}: {run.tasks_per_s:.0f} tasks/s"


# --- the report ----------------------------------------------------------------------------------


def _row_values(
    table: Table,
    label: str,
    value: Callable[[str], float],
    fmt: str,
    target: Target | None = None,
    measured: float | None = None,
) -> None:
    celery, htcgrid = value(CELERY), value(HTCGRID)
    ratio = measured if measured is not None else (htcgrid / celery if celery else math.nan)
    met = "" if target is None else ("[green]yes" if target.met(ratio) else "[red]no")
    table.add_row(
        label,
        fmt.format(celery),
        fmt.format(htcgrid),
        f"{ratio:.2f}" if math.isfinite(ratio) else "",
        "" if target is None else str(target),
        met,
    )


def _noop_median(done: Sequence[Run], part: str, key: str) -> Callable[[str], float]:
    return lambda system: median_of(done, system, NOOP, part, key)


def report(results: dict[str, Any], console: Console) -> str:
    """Print the comparison; return the summary line."""
    config = results["config"]
    done = [Run(**row) for row in results["runs"]]
    sizes = {run.workload: run.tasks for run in done}
    measured = ratios(done)
    added_ms = float(config.get("aws_latency_ms", 0))
    table = Table(
        title=(
            f"htcgrid beside Celery on SQS, one emulator (median of {config['repeats']};"
            f" htcgrid {config['agents']} agents x 1 slot, prefetch {config['prefetch']};"
            f" Celery {config['celery_workers']} workers x -c 1)"
        ),
        title_justify="left",
    )
    for index, column in enumerate(("measure", "Celery", "htcgrid", "htcgrid/Celery")):
        table.add_column(column, justify="left" if index == 0 else "right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="left")
    _row_values(
        table,
        f"(a) {sizes[NOOP]:,} no-op tasks: tasks/s",
        lambda s: median_tasks_per_s(done, s, NOOP),
        "{:.0f}",
        TARGETS["noop_ratio"],
        measured["noop_ratio"],
    )
    _row_values(
        table,
        f"(b) {sizes[SLEEP]:,} tasks of 10 ms: tasks/s",
        lambda s: median_tasks_per_s(done, s, SLEEP),
        "{:.0f}",
        TARGETS["sleep_ratio"],
        measured["sleep_ratio"],
    )
    _row_values(
        table,
        f"(c) {sizes[SEQUENTIAL]} sequential tasks: p50 ms",
        lambda s: latency_ms(done, s, 0.5),
        "{:.1f}",
        TARGETS["p50_ratio"],
        measured["p50_ratio"],
    )
    _row_values(table, "(c) p90 ms", lambda s: latency_ms(done, s, 0.9), "{:.1f}")
    _row_values(
        table,
        "(a) submit rate: tasks/s",
        lambda s: statistics.median(
            r.tasks / r.submit_s for r in done if r.system == s and r.workload == NOOP
        ),
        "{:.0f}",
    )
    for key, label in (
        ("sqs_requests", "SQS requests"),
        ("dynamodb_requests", "DynamoDB requests"),
        ("dynamodb_wru", "DynamoDB write units"),
        ("other_requests", "Lambda, Step Functions, S3 requests"),
        ("all_requests", "all AWS requests"),
    ):
        _row_values(
            table,
            f"(a) {label} per task",
            _noop_median(done, "requests", key),
            "{:.2f}",
        )
    for key, label in (
        ("workers", "CPU ms/task: agents / workers (handler's own out)"),
        ("emulator", "CPU ms/task: emulator (+ Lambda environments)"),
        ("client", "CPU ms/task: client"),
    ):
        _row_values(
            table,
            f"(a) {label}",
            _noop_median(done, "cpu_ms", key),
            "{:.2f}",
        )
    console.print(table)
    tuning = CeleryTuning(**config["celery_tuning"])
    console.print(
        f"Celery: broker sqs:// (kombu, pycurl receives) and result backend dynamodb:// on the"
        f" same emulator; polling_interval {tuning.polling_interval_s:g} s, wait_time_seconds"
        f" {tuning.wait_time_s}, prefetch multiplier {tuning.prefetch_multiplier},"
        f" get(interval={tuning.result_interval_s:g}). Emulator CPU includes the other"
        " system's idle polling."
    )
    if added_ms:
        console.print(
            f"[yellow]--aws-latency-ms {added_ms:g}: only htcgrid's requests wait (its client,"
            " Lambdas and agents inject it, htcgrid_core.faults); Celery's do not, so the"
            " ratios favour Celery. Only the default (no added latency) compares like for like."
        )
    return summary_line(measured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (first system alternates)")
    parser.add_argument("--noop-tasks", type=int, default=5000)
    parser.add_argument("--sleep-tasks", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--agents", type=int, default=2, help="htcgrid agents of 1 slot")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers of -c 1")
    defaults = CeleryTuning()
    parser.add_argument(
        "--celery-polling-interval", type=float, default=defaults.polling_interval_s
    )
    parser.add_argument("--celery-wait-time", type=int, default=defaults.wait_time_s)
    parser.add_argument(
        "--celery-prefetch-multiplier", type=int, default=defaults.prefetch_multiplier
    )
    parser.add_argument("--celery-result-interval", type=float, default=defaults.result_interval_s)
    parser.add_argument(
        "--aws-latency-ms",
        type=float,
        default=0.0,
        help="add this much to every AWS request of htcgrid's (not Celery's: see the output)",
    )
    parser.add_argument("--json", type=Path, default=Path(".htcgrid/bench/peers.json"))
    parser.add_argument("--from-json", type=Path, help="report saved results, run nothing")
    args = parser.parse_args(argv)
    console = Console()
    results = runs.measured_or_saved(
        args.from_json, args.json, console, lambda: measure(args, console)
    )
    print(report(results, console))
    return 0


if __name__ == "__main__":
    sys.exit(main())
