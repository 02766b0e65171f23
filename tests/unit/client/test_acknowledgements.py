"""A session hands each result over as soon as its notice is read: the notice's delete runs on
a thread of its own, its error surfaces on the next receive, and closing the session waits for
the deletes in flight. (No network: the transport answers in-process.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from htcgrid import GridError, Transport
from htcgrid.connection import GridEndpoints
from htcgrid.session import Session
from htcgrid_core import keys
from htcgrid_core.models import (
    InlineData,
    ResultNotice,
    Submission,
    SubmissionReceipt,
    TaskResult,
    TaskState,
)

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/grid_s_s1"


class NotifyingTransport(Transport):
    """Every submitted task has finished: the next receive brings one notice per task. A
    delete waits for ``release`` (or fails with ``delete_error``)."""

    def __init__(self, endpoints: GridEndpoints) -> None:
        super().__init__(endpoints)
        self.pending: list[TaskResult] = []
        self.release = threading.Event()
        self.deleted: list[list[str]] = []
        self.delete_error: Exception | None = None

    def submit_batch(self, submission: Submission) -> SubmissionReceipt:
        ids = [
            keys.task_id_for(submission.session_id, submission.submission_token, i)
            for i in range(len(submission.tasks))
        ]
        now = time.time()
        for task_id, task in zip(ids, submission.tasks, strict=True):
            assert isinstance(task.payload, InlineData)
            self.pending.append(
                TaskResult(
                    session_id=submission.session_id,
                    task_id=task_id,
                    state=TaskState.SUCCEEDED,
                    attempt=1,
                    result=task.payload,
                    submitted_at=now,
                    finished_at=now,
                )
            )
        return SubmissionReceipt(
            session_id=submission.session_id,
            submission_token=submission.submission_token,
            task_ids=ids,
        )

    def receive_notices(self, queue_url: str, wait_s: int) -> list[dict[str, Any]] | None:
        results, self.pending = self.pending, []
        return [
            {"Body": ResultNotice(results=[r]).model_dump_json(), "ReceiptHandle": r.task_id}
            for r in results
        ]

    def delete_notices(self, queue_url: str, receipt_handles: Sequence[str]) -> None:
        assert self.release.wait(10), "the test never released the delete"
        if self.delete_error is not None:
            raise self.delete_error
        self.deleted.append(list(receipt_handles))


def test_a_result_is_handed_over_before_its_notice_is_deleted(
    offline_endpoints: GridEndpoints,
) -> None:
    transport = NotifyingTransport(offline_endpoints)
    session = Session(transport, "s1", QUEUE)
    (task_id,) = session.submit([{"x": 1}])
    # WHEN the result's notice is read, with SQS's delete not answering yet
    done = next(session.results(timeout=5))
    # THEN the result is handed over without waiting for it
    assert (done.task_id, done.value) == (task_id, {"x": 1})
    assert transport.deleted == []
    # AND closing the session waits for the delete in flight
    transport.release.set()
    session.streams_results = False  # no result queue function to call here
    session.close()
    assert transport.deleted == [[task_id]]


def test_a_failed_delete_is_raised_by_the_next_receive(offline_endpoints: GridEndpoints) -> None:
    transport = NotifyingTransport(offline_endpoints)
    transport.delete_error = GridError("sqs:DeleteMessage denied")
    transport.release.set()
    session = Session(transport, "s1", QUEUE)
    session.submit([{"x": 1}, {"x": 2}])
    results = session.results(timeout=5)
    next(results)
    next(results)  # both came in one receive; its delete fails in the background
    session.submit([{"x": 3}])
    with pytest.raises(GridError, match="DeleteMessage denied"):
        list(session.results(timeout=5))
    # AND nothing accepted is lost: the next call goes on
    assert [done.value for done in session.results(timeout=5)] == [{"x": 3}]
