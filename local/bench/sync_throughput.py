"""Measure synchronous Express executions per second on the embedded emulator.

Starts an emulator, provisions a template, and runs StartSyncExecution from client threads:
``python local/bench/sync_throughput.py --workflow fixture`` (the test fixture's two-Lambda
workflow) or ``--workflow submit --tasks 100`` (the grid's submit workflow, 100 tasks each).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from htcgrid_local.clients import client
from htcgrid_local.emulator import Emulator
from htcgrid_local.provision import provision_stack

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests/integration/local/fixture_app/template.yaml"


def fixture_input(index: int, tasks: int) -> dict[str, Any]:
    return {"key": f"k{index}-{uuid.uuid4().hex[:8]}"}


def submit_input(index: int, tasks: int) -> dict[str, Any]:
    return {
        "session_id": "bench",
        "submission_token": f"tok-{index}-{uuid.uuid4().hex[:8]}",
        "tasks": [{"payload": {"inline": {"x": i}}} for i in range(tasks)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflow", choices=["fixture", "submit"], default="fixture")
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=1, help="tasks per submission (submit)")
    parser.add_argument("--endpoint-url", help="a running emulator instead of a fresh one")
    args = parser.parse_args()

    if args.workflow == "fixture":
        template, arn_output, make_input = FIXTURE, "WorkflowArn", fixture_input
    else:
        template, arn_output, make_input = REPO / "template.yaml", "SubmitWorkflowArn", submit_input
    with contextlib.ExitStack() as stack:
        endpoint_url = args.endpoint_url or stack.enter_context(Emulator()).endpoint_url
        outputs = provision_stack(endpoint_url, template, f"bench-{uuid.uuid4().hex[:6]}")
        sfn = client("stepfunctions", endpoint_url)
        arn = outputs[arn_output]
        # Warm up: cold starts (module imports) are not what is measured.
        first = sfn.start_sync_execution(
            stateMachineArn=arn, input=json.dumps(make_input(-1, args.tasks))
        )
        assert first["status"] == "SUCCEEDED", first
        counter = iter(range(args.executions))
        lock = threading.Lock()
        failures: list[dict[str, Any]] = []

        def work() -> None:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                reply = sfn.start_sync_execution(
                    stateMachineArn=arn, input=json.dumps(make_input(index, args.tasks))
                )
                if reply["status"] != "SUCCEEDED":
                    failures.append(reply)

        threads = [threading.Thread(target=work) for _ in range(args.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    rate = args.executions / elapsed
    print(
        f"{args.workflow}: {args.executions} executions, {args.threads} client threads, "
        f"{elapsed:.1f} s: {rate:.1f} executions/s"
        + (f", {rate * args.tasks:.0f} tasks/s" if args.workflow == "submit" else "")
        + (f", {len(failures)} failed: {failures[0]}" if failures else "")
    )


if __name__ == "__main__":
    main()
