"""Count every AWS call the grid makes per task: the instrumented run of the cost budgets.

Starts a local grid whose emulator counts every request (``HTCGRID_LOCAL_ACCOUNTING=1``, see
``htcgrid_local/accounting.py``): 2 agents running ``htcgrid_examples.scripted:handler`` with 4
slots and a prefetch of 10. A warm-up session absorbs the cold starts (handler imports, queue URL
lookups); the counters are then reset and one session runs ``--tasks`` small tasks (payload and
result of about ``--payload-bytes``) through the real client. Prints every (caller, service,
operation, resource) with its calls, batch entries and DynamoDB units, then the per-task numbers
the budgets in ARCHITECTURE.md are stated in:

    python local/bench/request_accounting.py --tasks 2000 [--json accounting.json]

Callers: ``htcgrid-client`` and ``htcgrid-agent`` (from each process's boto3 User-Agent app id),
``lambda:<function>`` (a handler's calls) and ``workflow:<state machine>`` (the interpreter's).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from pydantic import JsonValue

from htcgrid import Grid
from htcgrid.connection import GridEndpoints
from htcgrid_core import result_queues
from htcgrid_local import accounting, clients
from htcgrid_local.grid import LocalGrid

HANDLER = "htcgrid_examples.scripted:handler"
#: boto3 puts ``app/<id>`` in every request's User-Agent: how the emulator tells callers apart.
APP_ID_VARIABLE = "AWS_SDK_UA_APP_ID"
CLIENT_APP_ID = "htcgrid-client"
AGENT_APP_ID = "htcgrid-agent"
#: How long to wait for the agents' last acknowledgements after the client has every result.
SETTLE_TIMEOUT_S = 10.0

# What the run prints each budget against (ARCHITECTURE.md, "Cost and scale budgets").
BUDGETS: dict[str, tuple[float, str]] = {
    "dynamodb_wru": (2.0, "<= 2 write units per task (submission + completion)"),
    "sqs_requests": (0.5, "<= 0.5 SQS requests per task at saturation"),
    "s3_requests": (0.0, "0 S3 requests for inline payloads and results"),
    "lambda_invocations": (0.01, "per submission batch, not per task"),
    "sfn_executions": (0.01, "per submission batch, not per task"),
    "sfn_transitions": (0.02, "per submission batch, not per task"),
}


def payloads(count: int, size: int) -> list[JsonValue]:
    """``count`` payloads of about ``size`` bytes of JSON. The scripted handler returns
    ``value``, so each result carries the same bytes back (plus its own small fields)."""
    filler = "x" * max(0, size - len('{"value": "-00000"}'))
    return [{"value": f"{filler}-{index:05d}"} for index in range(count)]


def start_grid(agents: int, slots: int, prefetch: int, stack_name: str) -> LocalGrid:
    """A local grid whose emulator counts requests and whose agents say who they are."""
    os.environ[accounting.ENV_FLAG] = "1"  # inherited by the emulator process
    grid = LocalGrid(
        agents=agents,
        handler=HANDLER,
        slots=slots,
        stack_name=stack_name,
        agent_env={APP_ID_VARIABLE: AGENT_APP_ID},
        agent_args=["--prefetch", str(prefetch)],
    )
    grid.start()
    # After the emulator started: only this process's clients are the grid's client.
    os.environ[APP_ID_VARIABLE] = CLIENT_APP_ID
    return grid


def run_session(client: Grid, tasks: int, payload_bytes: int, timeout_s: float) -> str:
    """Submit ``tasks`` tasks in one session and wait for every result; the session's id."""
    with client.open_session() as session:
        session.submit(payloads(tasks, payload_bytes))
        results = session.wait(timeout=timeout_s)
    failed = [r for r in results if not r.ok]
    if len(results) != tasks or failed:
        raise RuntimeError(f"{len(results)}/{tasks} results, {len(failed)} failed")
    return session.id


def settled(
    endpoint_url: str, tasks: int, timeout_s: float = SETTLE_TIMEOUT_S
) -> accounting.Accounting:
    """The counters once the agents have acknowledged every task message of the run.

    The client can have every result before the agents' reporters delete the last messages
    (notices go out first, deletes a moment later), so wait for the deletes to add up.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        counted = accounting.fetch(endpoint_url)
        deleted = sum(
            row.entries
            for row in counted.select(service="sqs", operation="DeleteMessageBatch")
            if result_queues.INFIX not in row.resource
        )
        if deleted >= tasks or time.monotonic() > deadline:
            return counted
        time.sleep(0.1)


def measure(
    grid: LocalGrid, tasks: int, payload_bytes: int, warmup: int, timeout_s: float
) -> tuple[accounting.Accounting, float, str]:
    """Warm up, reset the counters, run ``tasks`` tasks: the counters, the run's seconds and
    its session id."""
    client = Grid(GridEndpoints.for_emulator(dict(grid.outputs), grid.endpoint_url))
    if warmup:
        run_session(client, warmup, payload_bytes, timeout_s)
        settled(grid.endpoint_url, warmup)
    accounting.reset(grid.endpoint_url)
    started = time.perf_counter()
    session_id = run_session(client, tasks, payload_bytes, timeout_s)
    elapsed = time.perf_counter() - started
    return settled(grid.endpoint_url, tasks), elapsed, session_id


def item_sizes(grid: LocalGrid, session_id: str) -> list[int]:
    """Sizes of the session's finished task items, as DynamoDB bills them (after counting)."""
    dynamodb = clients.client("dynamodb", grid.endpoint_url)
    sizes: list[int] = []
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=grid.outputs["TaskTableName"],
        FilterExpression="session_id = :s",
        ExpressionAttributeValues={":s": {"S": session_id}},
    ):
        sizes.extend(accounting.item_size(item) for item in page["Items"])
    return sorted(sizes)


def report(counted: accounting.Accounting, tasks: int, elapsed: float, sizes: list[int]) -> str:
    """The per-row table, the per-caller SQS breakdown, the task items' sizes and the
    per-task summary."""
    summary = counted.summary(tasks)
    lines = [counted.table(tasks), "", f"{tasks} tasks in {elapsed:.1f} s", ""]
    if sizes:
        lines += [
            f"task item after completion: {sizes[0]} / {sizes[len(sizes) // 2]} / {sizes[-1]}"
            f" bytes (min / median / max); a write costs 1 unit up to"
            f" {accounting.WRITE_UNIT_BYTES} bytes",
            "",
        ]
    lines.append("SQS requests per task, by caller and operation:")
    sqs: dict[tuple[str, str], float] = {}
    for row in counted.select(service="sqs"):
        key = (row.caller, row.operation)
        sqs[key] = sqs.get(key, 0.0) + row.count
    for (caller, operation), count in sorted(sqs.items(), key=lambda item: -item[1]):
        lines.append(f"  {caller:<34} {operation:<22} {count / tasks:.3f}")
    lines += ["", "per task:"]
    for name in accounting.SUMMARY_KEYS:
        budget = BUDGETS.get(name)
        verdict = ""
        if budget is not None:
            limit, text = budget
            verdict = f"  {'ok  ' if summary[name] <= limit else 'OVER'} budget: {text}"
        lines.append(f"  {name:<20} {summary[name]:8.4f}{verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100, help="tasks run before the reset")
    parser.add_argument("--payload-bytes", type=int, default=200)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--prefetch", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the run")
    parser.add_argument("--json", type=Path, help="also write the rows and summary here")
    args = parser.parse_args()

    started = time.perf_counter()
    with start_grid(args.agents, args.slots, args.prefetch, "htcgrid-acct") as grid:
        counted, elapsed, session_id = measure(
            grid, args.tasks, args.payload_bytes, args.warmup, args.timeout
        )
        sizes = item_sizes(grid, session_id)
    print(report(counted, args.tasks, elapsed, sizes))
    total = time.perf_counter() - started
    print(f"\nwhole run (grid start, warm-up, measured run, stop): {total:.0f} s")
    if args.json:
        document = {
            "tasks": args.tasks,
            "seconds": elapsed,
            "summary": counted.summary(args.tasks),
            "rows": [asdict(row) for row in counted.rows],
        }
        args.json.write_text(json.dumps(document, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
