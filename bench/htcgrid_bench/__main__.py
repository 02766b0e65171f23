"""``make bench``: what the grid costs and how fast it runs, measured on the local grid.

One local grid (2 agents x 4 slots, prefetch 10, request accounting on) runs, ``--repeats``
times, side by side: (a) a burst of 5,000 no-op tasks (tasks/s end to end, submit rate, agent
CPU per task without the handler's, AWS requests per task); (b) 1,000 tasks sleeping 10 ms
(tasks/s against the ideal of slots x 100/s); (c) 200 sequential single tasks (latency and
where it goes). Medians are reported. The per-task requests are priced with ``prices.toml``
and turned into the throughput ceiling under AWS quotas (``cost_model``). ``--scaling 1,2,4``
adds a burst per agent count (a grid each); ``--plots DIR`` draws PNGs (matplotlib, from
requirements-bench.txt). The last line is the summary:

    bench: wru_per_task=... sqs_per_task=... s3_per_task=... usd_per_million=... ceiling_tps=...
    local_tps=... p50_ms=...
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from htcgrid_bench import cost_model, runs
from htcgrid_core.percentiles import percentile
from htcgrid_local import accounting

BUDGETS = {"dynamodb_wru": 2.0, "sqs_requests": 0.5, "s3_requests": 0.0}


def _median_summary(summaries: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in summaries) for key in summaries[0]}


def measure(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Every run of the bench; the raw numbers, for the report and the plots."""
    bursts: list[runs.Burst] = []
    sleepers: list[runs.Burst] = []
    latencies: list[list[runs.Latency]] = []
    summaries: list[dict[str, float]] = []
    console.print(f"starting the local grid ({args.agents} agents x {args.slots} slots)")
    started = time.perf_counter()
    with runs.local_grid(
        args.agents,
        args.slots,
        args.prefetch,
        count_requests=True,
        aws_latency_ms=args.aws_latency_ms,
    ) as grid:
        console.print(f"local grid up in {time.perf_counter() - started:.1f} s")
        runs.run_burst(grid, 200)  # warm-up: handler imports, queue URL lookups, cold starts
        for repeat in range(1, args.repeats + 1):
            with console.status(f"run {repeat}/{args.repeats}: {args.burst_tasks:,} no-op tasks"):
                accounting.reset(grid.endpoint_url)
                bursts.append(runs.run_burst(grid, args.burst_tasks))
                counted = runs.settled_accounting(grid.endpoint_url, args.burst_tasks)
                summaries.append(counted.summary(args.burst_tasks))
            with console.status(f"run {repeat}/{args.repeats}: {args.sleep_tasks:,} x 10 ms"):
                sleepers.append(runs.run_burst(grid, args.sleep_tasks, sleep_s=0.01))
            with console.status(f"run {repeat}/{args.repeats}: {args.sequential} single tasks"):
                latencies.append(runs.run_sequential(grid, args.sequential))
            console.print(
                f"run {repeat}: {bursts[-1].tasks_per_s:.0f} tasks/s (no-op),"
                f" {sleepers[-1].tasks_per_s:.0f} tasks/s (10 ms),"
                f" p50 {1000 * statistics.median(s.total_s for s in latencies[-1]):.0f} ms"
            )
    scaling: dict[int, list[float]] = {}
    for count in args.scaling:
        with (
            console.status(f"scaling: {count} agent(s), {args.scaling_tasks:,} no-op tasks"),
            runs.local_grid(
                count,
                args.slots,
                args.prefetch,
                count_requests=False,
                aws_latency_ms=args.aws_latency_ms,
            ) as g,
        ):
            runs.run_burst(g, 100)
            scaling[count] = [
                runs.run_burst(g, args.scaling_tasks).tasks_per_s for _ in range(args.repeats)
            ]
        console.print(f"scaling: {count} agent(s): {statistics.median(scaling[count]):.0f} tasks/s")
    return {
        "config": {
            "agents": args.agents,
            "slots": args.slots,
            "prefetch": args.prefetch,
            "repeats": args.repeats,
            "aws_latency_ms": args.aws_latency_ms,
        },
        "bursts": [asdict(b) | {"tasks_per_s": b.tasks_per_s} for b in bursts],
        "sleepers": [asdict(b) | {"tasks_per_s": b.tasks_per_s} for b in sleepers],
        "latencies": [[list(s.stages_s) for s in repeat] for repeat in latencies],
        "submit_calls": [[s.submit_call_s for s in repeat] for repeat in latencies],
        "summaries": summaries,
        "scaling": {str(k): v for k, v in scaling.items()},
    }


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def report(results: dict[str, Any], console: Console) -> str:
    """Print the tables; return the summary line."""
    config = results["config"]
    bursts, sleepers = results["bursts"], results["sleepers"]
    slots = config["agents"] * config["slots"]

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(float(row[key]) for row in rows)

    def each(rows: list[dict[str, Any]], key: str, fmt: str = "{:.0f}") -> str:
        return " / ".join(fmt.format(float(row[key])) for row in rows)

    burst_tasks, sleep_tasks = bursts[0]["tasks"], sleepers[0]["tasks"]
    added_ms = config.get("aws_latency_ms", 0)
    added = f", +{added_ms:g} ms per AWS request" if added_ms else ""
    local_tps = med(bursts, "tasks_per_s")
    throughput = _table(
        f"Throughput (median of {config['repeats']}; {config['agents']} agents x"
        f" {config['slots']} slots, prefetch {config['prefetch']}{added})",
        "scenario",
        "median",
        "each run",
    )
    submit_rate = [{"r": b["tasks"] / b["submit_s"]} for b in bursts]
    throughput.add_row(
        f"(a) {burst_tasks:,} no-op tasks: tasks/s", f"{local_tps:.0f}", each(bursts, "tasks_per_s")
    )
    throughput.add_row(
        "(a) submit rate, tasks/s", f"{med(submit_rate, 'r'):.0f}", each(submit_rate, "r")
    )
    sleep_tps = med(sleepers, "tasks_per_s")
    ideal = slots * 100
    throughput.add_row(
        f"(b) {sleep_tasks:,} x 10 ms: tasks/s", f"{sleep_tps:.0f}", each(sleepers, "tasks_per_s")
    )
    throughput.add_row(f"(b) efficiency vs {slots} slots x 100/s", f"{sleep_tps / ideal:.0%}", "")
    for count, values in results["scaling"].items():
        throughput.add_row(
            f"{count} agent(s), no-op tasks/s",
            f"{statistics.median(values):.0f}",
            " / ".join(f"{v:.0f}" for v in values),
        )
    console.print(throughput)

    pooled = [runs.Latency(tuple(s)) for repeat in results["latencies"] for s in repeat]
    totals = [1000 * s.total_s for s in pooled]
    latency = _table(
        f"(c) Latency of {len(pooled)} sequential single tasks, submit to result (ms)",
        "stage",
        "p50",
        "p90",
        "p99",
    )
    for index, stage in enumerate(runs.STAGES):
        values = [1000 * s.stages_s[index] for s in pooled]
        latency.add_row(stage, *(f"{percentile(values, f):.1f}" for f in (0.5, 0.9, 0.99)))
    latency.add_row("[bold]total", *(f"{percentile(totals, f):.1f}" for f in (0.5, 0.9, 0.99)))
    calls = [1000 * c for repeat in results["submit_calls"] for c in repeat]
    latency.add_row(
        "(submit call returned)", *(f"{percentile(calls, f):.1f}" for f in (0.5, 0.9, 0.99))
    )
    console.print(latency)
    p50 = percentile(totals, 0.5)

    cpu = _table(
        f"(d) CPU per task during (a), ms (median of {config['repeats']})", "process", "ms/task"
    )
    agent_ms = statistics.median(
        runs.Burst(**_burst_fields(b)).agent_cpu_ms_per_task for b in bursts
    )
    cpu.add_row("agents (slots included), handler's own CPU taken out", f"{agent_ms:.2f}")
    cpu.add_row(
        "handler (the no-op itself)", f"{1000 * med(bursts, 'handler_cpu_s') / burst_tasks:.3f}"
    )
    cpu.add_row(
        "emulator (all AWS calls, moto)",
        f"{1000 * statistics.median(b['cpu']['emulator_s'] for b in bursts) / burst_tasks:.2f}",
    )
    lambdas_s = statistics.median(b["cpu"].get("lambdas_s", 0.0) for b in bursts)
    cpu.add_row(
        "Lambda functions (their execution environments)", f"{1000 * lambdas_s / burst_tasks:.2f}"
    )
    cpu.add_row(
        "client (submit, results)",
        f"{1000 * statistics.median(b['cpu']['client_s'] for b in bursts) / burst_tasks:.2f}",
    )
    console.print(cpu)

    summary = _median_summary(results["summaries"])
    requests = cost_model.task_requests(summary)
    requests_table = _table(
        f"AWS requests per task during (a) (median of {config['repeats']})",
        "measure",
        "per task",
        "budget",
    )
    for key, value in summary.items():
        budget = BUDGETS.get(key)
        requests_table.add_row(key, f"{value:.4f}", "" if budget is None else f"<= {budget:g}")
    console.print(requests_table)

    prices = cost_model.load_prices()
    compute = cost_model.ComputeAssumption()
    plain = cost_model.cost_per_million(requests, prices)
    full = cost_model.cost_per_million(requests, prices, compute)
    reference = cost_model.cost_per_million(
        cost_model.htc_grid_task_requests(tasks_per_submission=requests.tasks_per_execution),
        prices,
    )
    cost = _table(
        "US$ per million tasks (us-east-1 list prices, bench/htcgrid_bench/prices.toml)",
        "service",
        "requests",
        "+ compute",
        "HTC-Grid requests",
    )
    for service in plain.by_service:
        cost.add_row(
            service,
            f"{plain.by_service[service]:.3f}",
            f"{full.by_service[service]:.3f}",
            f"{reference.by_service[service]:.3f}",
        )
    cost.add_row("[bold]total", f"{plain.total:.3f}", f"{full.total:.3f}", f"{reference.total:.3f}")
    console.print(cost)
    console.print(
        f"compute assumption: Lambda {compute.lambda_memory_mb} MB x {compute.lambda_duration_s}"
        f" s per invocation, Express {compute.sfn_memory_mb} MB x {compute.sfn_duration_s} s per"
        " execution; worker (EKS) compute not included"
    )

    workload = cost_model.Workload()
    quotas = cost_model.Quotas()
    fresh = cost_model.limits(requests, workload, quotas)
    warm = {
        limit.name: limit for limit in cost_model.limits(requests, workload, quotas, prewarmed=True)
    }
    limits_table = _table(
        "Throughput ceiling under default quotas (tasks/s)", "quota", "tasks/s", "why"
    )
    for limit in fresh:
        mark = "[bold]" if limit is fresh[0] else ""
        limits_table.add_row(f"{mark}{limit.name}", f"{limit.tasks_per_s:,.0f}", limit.why)
    console.print(limits_table)
    prewarmed = min(warm.values(), key=lambda limit: limit.tasks_per_s)
    console.print(
        f"first to bind: {fresh[0].name} at {fresh[0].tasks_per_s:,.0f} tasks/s; with the table"
        f" pre-warmed (WarmThroughput): {prewarmed.name} at {prewarmed.tasks_per_s:,.0f} tasks/s"
    )
    target = 100_000
    needs = _table(
        f"What {target:,} tasks/s needs (10 ms tasks, 0.5 s in flight)",
        "resource",
        "needed",
        "default",
        "change",
    )
    for need in cost_model.requirements(target, requests, workload, quotas):
        needs.add_row(need.name, f"{need.needed:,.0f}", f"{need.default:,.0f}", need.change)
    console.print(needs)

    s3 = summary["s3_requests"]
    return (
        f"bench: wru_per_task={summary['dynamodb_wru']:.3f}"
        f" sqs_per_task={summary['sqs_requests']:.3f} s3_per_task={s3:.3f}"
        f" usd_per_million={full.total:.3f} ceiling_tps={fresh[0].tasks_per_s:.0f}"
        f" local_tps={local_tps:.1f} p50_ms={p50:.1f}"
    )


def _burst_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in row.items() if k != "tasks_per_s"}
    fields["cpu"] = runs.CpuSample(**row["cpu"])
    return fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--burst-tasks", type=int, default=5000)
    parser.add_argument("--sleep-tasks", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--prefetch", type=int, default=10)
    parser.add_argument(
        "--scaling",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[],
        help="agent counts to run a burst with, e.g. 1,2,4 (a grid each)",
    )
    parser.add_argument("--scaling-tasks", type=int, default=2000)
    parser.add_argument(
        "--aws-latency-ms",
        type=float,
        default=0.0,
        help="add this much to every AWS request (an AWS round trip; the emulator takes ~1 ms)",
    )
    parser.add_argument("--json", type=Path, default=Path(".htcgrid/bench/results.json"))
    parser.add_argument("--from-json", type=Path, help="report saved results, run nothing")
    parser.add_argument("--plots", type=Path, help="write PNG plots into this directory")
    args = parser.parse_args(argv)
    console = Console()
    results = runs.measured_or_saved(
        args.from_json, args.json, console, lambda: measure(args, console)
    )
    summary = report(results, console)
    if args.plots:
        from htcgrid_bench.plots import draw  # matplotlib only when asked for

        for path in draw(results, args.plots):
            console.print(f"plot: {path}")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
