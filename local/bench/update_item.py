"""Time moto's DynamoDB UpdateItem for the grid's completions, stock and with the patch.

Every task ends with one conditional UpdateItem from an agent (``TaskTable.record_success``:
the same expressions every time, new values). In-process under ``mock_aws`` (no HTTP), this
writes ``--updates`` RUNNING task records, then records a success for each through the real
``TaskTable``, once with moto's UpdateItem and once with
``moto_patches.patch_dynamodb_update_item_reuses_parsed_expressions``, alternating which goes
first, ``--rounds`` times. It reports CPU milliseconds per call (of this one thread: other
processes on the machine hardly move them) end to end, the boto3 client included, and inside
moto's UpdateItem handler, which is what the emulator spends on it; each round, the medians,
and the ratio of the medians:

    python local/bench/update_item.py --updates 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

from htcgrid_core.models import InlineData, TaskRecord, TaskState
from htcgrid_core.table import Completion, TaskTable
from htcgrid_local import moto_patches

TABLE = "bench-tasks"


def _create_table(client: Any) -> None:
    """The task table's keys and lease index, as ``template.yaml`` declares them."""
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": kind}
            for name, kind in (
                ("pk", "S"),
                ("sk", "S"),
                ("lease_shard", "S"),
                ("lease_expires_at", "N"),
            )
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "leases",
                "KeySchema": [
                    {"AttributeName": "lease_shard", "KeyType": "HASH"},
                    {"AttributeName": "lease_expires_at", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["session_id", "attempt", "max_attempts", "lease_token"],
                },
            }
        ],
    )


def _running_tasks(count: int) -> list[TaskRecord]:
    now = time.time()
    session = f"bench-{uuid.uuid4().hex[:8]}"
    return [
        TaskRecord(
            session_id=session,
            task_id=f"task-{i:06d}",
            state=TaskState.RUNNING,
            attempt=1,
            max_attempts=3,
            priority=0,
            timeout_s=60,
            payload=InlineData(inline={"spot": 100.0, "strike": 95.0 + i % 10, "years": 1.0}),
            submitted_at=now,
            started_at=now,
            lease_token=uuid.uuid4().hex,
            lease_expires_at=now + 60,
        )
        for i in range(count)
    ]


class _Variant:
    """moto's UpdateItem (handler and backend) as stock or patched, timed inside the handler."""

    def __init__(self, name: str, handler: Callable[..., Any], backend: Callable[..., Any]):
        self.name = name
        self.backend = backend
        self.in_handler_s = 0.0

        def timed(response: DynamoHandler) -> Any:
            started = time.thread_time()
            try:
                return handler(response)
            finally:
                self.in_handler_s += time.thread_time() - started

        self.handler = timed

    def install(self) -> None:
        DynamoHandler.update_item = self.handler  # type: ignore[method-assign,assignment]
        DynamoDBBackend.update_item = self.backend  # type: ignore[method-assign]


def measure(variant: _Variant, table: TaskTable, count: int) -> tuple[float, float]:
    """CPU milliseconds per record_success, end to end and inside moto's handler."""
    records = _running_tasks(count)
    table.put_new_tasks(records)
    result = InlineData(inline={"price": 7.13})
    variant.install()
    variant.in_handler_s = 0.0
    gc.collect()
    started = time.thread_time()
    for record in records:
        completion = Completion(record.session_id, record.task_id, 1, record.lease_token)
        table.record_success(completion, result, time.time())
    elapsed = time.thread_time() - started
    return elapsed * 1000 / count, variant.in_handler_s * 1000 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=5000, help="UpdateItems per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant")
    args = parser.parse_args()

    stock = _Variant("stock", DynamoHandler.update_item, DynamoDBBackend.update_item)
    moto_patches.patch_dynamodb_update_item_reuses_parsed_expressions()
    patched = _Variant("patched", DynamoHandler.update_item, DynamoDBBackend.update_item)

    timings: dict[str, list[tuple[float, float]]] = {stock.name: [], patched.name: []}
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create_table(client)
        table = TaskTable(client, TABLE)
        measure(patched, table, 50)  # warm-up: imports, first parses
        measure(stock, table, 50)
        for round_ in range(args.rounds):
            order = (stock, patched) if round_ % 2 == 0 else (patched, stock)
            for variant in order:
                end_to_end, in_handler = measure(variant, table, args.updates)
                timings[variant.name].append((end_to_end, in_handler))
                print(
                    f"round {round_ + 1} {variant.name:7}: {end_to_end:6.3f} CPU ms per call, "
                    f"{in_handler:6.3f} ms of it in moto's UpdateItem",
                    flush=True,
                )

    medians = {
        name: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs))
        for name, runs in timings.items()
    }
    for name, (end_to_end, in_handler) in medians.items():
        print(
            f"median  {name:7}: {end_to_end:6.3f} CPU ms per call, "
            f"{in_handler:6.3f} ms of it in moto's UpdateItem"
        )
    (stock_e2e, stock_handler), (patched_e2e, patched_handler) = medians.values()
    print(
        f"stock / patched: {stock_e2e / patched_e2e:.2f}x per call, "
        f"{stock_handler / patched_handler:.2f}x in moto's UpdateItem "
        f"({args.updates} updates x {args.rounds} rounds each)"
    )


if __name__ == "__main__":
    main()
