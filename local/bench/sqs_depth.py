"""Time moto's SQS backend at queue depth, stock and with the local grid's SQS patches.

Runs the backend in-process (no HTTP), so the numbers isolate what the patches change:
``python local/bench/sqs_depth.py --depth 1000``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sqs.models import SQSBackend


def _entries() -> dict[str, dict[str, Any]]:
    return {
        str(i): {
            "Id": str(i),
            "MessageBody": "x" * 200,
            "MessageAttributes": {},
            "DelaySeconds": None,
        }
        for i in range(10)
    }


def measure(depth: int, rounds: int) -> dict[str, float]:
    """Mean milliseconds of send_batch(10), receive(10) and delete_batch(10) at ``depth``."""
    backend = SQSBackend("us-east-1", DEFAULT_ACCOUNT_ID)
    backend.create_queue("bench")
    for _ in range(depth // 10):
        backend.send_message_batch("bench", _entries())
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for _ in range(rounds):
        backend.send_message_batch("bench", _entries())
    timings["send_batch(10)"] = (time.perf_counter() - started) * 1000 / rounds
    received = []
    started = time.perf_counter()
    for _ in range(rounds):
        received.append(backend.receive_message("bench", 10, 0, 300))
    timings["receive(10)"] = (time.perf_counter() - started) * 1000 / rounds
    started = time.perf_counter()
    for messages in received:
        backend.delete_message_batch(
            "bench",
            [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(messages)],
        )
    timings["delete_batch(10)"] = (time.perf_counter() - started) * 1000 / rounds
    return timings


def _report(label: str, depth: int, timings: dict[str, float]) -> None:
    cells = "  ".join(f"{name} {ms:8.2f} ms" for name, ms in timings.items())
    print(f"{label:7} depth {depth:6}: {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--patched-only", action="store_true", help="skip the (slow) stock run")
    args = parser.parse_args()
    if not args.patched_only:
        _report("stock", args.depth, measure(args.depth, args.rounds))
    from htcgrid_local import moto_patches

    moto_patches.apply_all()
    _report("patched", args.depth, measure(args.depth, args.rounds))


if __name__ == "__main__":
    main()
