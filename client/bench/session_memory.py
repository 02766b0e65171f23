"""How much memory a client holds for a large session: RSS after submitting N tasks and after
yielding every result.

The grid's transport is replaced by functions of the client's own interface (the submit
workflow's receipt, the counters, the results read back), computed in this process: a real
10^6-task run on the local grid takes about half an hour (it submits some 600 tasks/s), and
what is measured here is the client alone. The payloads stream from a generator, as a caller
with more tasks than memory would pass them.

    python client/bench/session_memory.py --tasks 1000000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import JsonValue

from htcgrid import Session, Transport
from htcgrid.connection import GridEndpoints
from htcgrid_core import keys
from htcgrid_core.models import (
    InlineData,
    ResultsPage,
    SessionStatus,
    Submission,
    SubmissionReceipt,
    TaskResult,
    TaskState,
)

OUTPUTS = {
    "TaskTableName": "table",
    "DataBucketName": "bucket",
    "QueuePrefix": "grid",
    "PriorityLevels": "3",
    "SubmitWorkflowArn": "arn:aws:states:us-east-1:123456789012:stateMachine:submit",
    "StatusFunctionName": "status",
    "SessionFunctionName": "session",
    "InlinePayloadThresholdBytes": "16384",
}


class InProcessTransport(Transport):
    """The submit workflow, the counters and the results, answered in this process: every
    submitted task has finished with its payload's value as its result."""

    submitted = 0

    def submit_batch(self, submission: Submission) -> SubmissionReceipt:
        self.submitted += len(submission.tasks)
        return SubmissionReceipt(
            session_id=submission.session_id,
            submission_token=submission.submission_token,
            task_ids=[
                keys.task_id_for(submission.session_id, submission.submission_token, i)
                for i in range(len(submission.tasks))
            ],
        )

    def status(self, session_id: str, *, exact: bool = False) -> SessionStatus:
        return SessionStatus(
            session_id=session_id, counts={TaskState.SUCCEEDED: self.submitted}, exact=False
        )

    def fetch_results(self, session_id: str, task_ids: list[str]) -> ResultsPage:
        now = time.time()
        return ResultsPage(
            results=[
                TaskResult(
                    session_id=session_id,
                    task_id=task_id,
                    state=TaskState.SUCCEEDED,
                    attempt=1,
                    result=InlineData(inline=1),
                    submitted_at=now,
                    finished_at=now,
                )
                for task_id in task_ids
            ]
        )


def rss_mb() -> tuple[float, float]:
    """This process's resident set now and at its peak, in MB (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (
        int(fields["VmRSS"].split()[0]) / 1024,
        int(fields["VmHWM"].split()[0]) / 1024,
    )


def payloads(tasks: int) -> Iterator[JsonValue]:
    for i in range(tasks):
        yield {"value": i, "strike": 100 + i % 40}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    args = parser.parse_args()
    transport = InProcessTransport(GridEndpoints.for_emulator(OUTPUTS, "http://127.0.0.1:9"))
    session = Session(transport, "memory-bench", None)
    start, _ = rss_mb()
    began = time.perf_counter()
    task_ids = session.submit(payloads(args.tasks))
    submitted_at = time.perf_counter()
    after_submit, peak_submit = rss_mb()
    yielded = sum(1 for _ in session.results())
    after_results, peak = rss_mb()
    assert yielded == len(task_ids) == args.tasks
    print(f"tasks                      {args.tasks:>12,}")
    print(f"RSS at start               {start:>12.1f} MB")
    print(
        f"RSS after submit           {after_submit:>12.1f} MB (peak {peak_submit:.1f} MB, "
        f"{submitted_at - began:.0f} s)"
    )
    print(f"RSS after every result     {after_results:>12.1f} MB (peak {peak:.1f} MB)")
    print(f"growth per task            {(peak - start) * 1024**2 / args.tasks:>12.1f} bytes")


if __name__ == "__main__":
    main()
