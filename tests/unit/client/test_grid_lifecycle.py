"""A ``Grid`` as a context manager: sessions opened in it work as ever, and closing it closes
the clients it made; a call after that raises ``GridClosedError`` before reaching AWS. And a
session's submissions run in the caller's context (no network: the grid's workflow and
functions are answered in-process)."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import pytest

from htcgrid import Grid, GridClosedError, Transport
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

#: Context-local state of the caller's, as request tracing or accounting would keep it.
REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


class InProcessTransport(Transport):
    """The submit workflow and the status function answered in this process: every task
    submitted has finished, its payload its result. Each submission records the context it
    ran in, and on which thread."""

    def __init__(self, endpoints: GridEndpoints) -> None:
        super().__init__(endpoints)
        self.submitted: dict[str, Any] = {}
        self.seen: list[tuple[str, int]] = []

    def submit_batch(self, submission: Submission) -> SubmissionReceipt:
        self.seen.append((REQUEST.get(), threading.get_ident()))
        ids = [
            keys.task_id_for(submission.session_id, submission.submission_token, i)
            for i in range(len(submission.tasks))
        ]
        for task_id, task in zip(ids, submission.tasks, strict=True):
            assert isinstance(task.payload, InlineData)
            self.submitted[task_id] = task.payload.inline
        return SubmissionReceipt(
            session_id=submission.session_id,
            submission_token=submission.submission_token,
            task_ids=ids,
        )

    def status(self, session_id: str, *, exact: bool = False) -> SessionStatus:
        self.client("lambda")  # as the real call would, through the grid's clients
        counts = {TaskState.SUCCEEDED: len(self.submitted)}
        return SessionStatus(session_id=session_id, counts=counts, exact=exact)

    def fetch_results(self, session_id: str, task_ids: list[str]) -> ResultsPage:
        self.client("lambda")
        now = time.time()
        return ResultsPage(
            results=[
                TaskResult(
                    session_id=session_id,
                    task_id=task_id,
                    state=TaskState.SUCCEEDED,
                    attempt=1,
                    result=InlineData(inline=self.submitted[task_id]),
                    submitted_at=now,
                    finished_at=now,
                )
                for task_id in task_ids
            ],
            missing=[],
        )


@pytest.fixture
def closes(offline_endpoints: GridEndpoints, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The services whose clients were closed, in order (each client's own ``close`` runs)."""
    closed: list[str] = []
    make = offline_endpoints.client

    def client(service: str) -> Any:
        made = make(service)
        if not getattr(made, "_recorded", False):
            close = made.close

            def recorded_close() -> None:
                closed.append(service)
                close()

            made.close = recorded_close
            made._recorded = True
        return made

    monkeypatch.setattr(offline_endpoints, "client", client)
    return closed


def test_a_session_opened_in_a_grids_block_works_and_leaving_it_closes_every_client(
    offline_endpoints: GridEndpoints, closes: list[str]
) -> None:
    transport = InProcessTransport(offline_endpoints)
    with Grid(transport) as grid:
        with grid.open_session("s1", stream_results=False) as session:
            task_ids = session.submit([{"x": i} for i in range(3)])
            values = [done.value for done in session.results(timeout=10)]
        assert sorted(values, key=str) == [{"x": 0}, {"x": 1}, {"x": 2}]
        assert len(task_ids) == 3
        assert closes == []
    # THEN every client the grid made (S3 for payloads, Lambda for the calls) is closed once
    assert sorted(closes) == ["lambda", "s3"]
    assert grid.transport.closed
    grid.close()  # closing again is fine, and closes nothing twice
    assert sorted(closes) == ["lambda", "s3"]


def test_a_call_after_close_raises_grid_closed_before_reaching_aws(
    offline_endpoints: GridEndpoints,
) -> None:
    grid = Grid(offline_endpoints)
    session = grid.open_session("s1", stream_results=False)
    grid.close()
    # The endpoint has nothing listening: reaching for it would be UnreachableError, after
    # botocore's retries; GridClosedError comes at once.
    for call in (
        lambda: grid.status("s1"),
        lambda: grid.queue_depths(),
        lambda: session.status(),
        lambda: session.submit([{"x": 1}]),
        lambda: grid.open_session("s2"),
    ):
        with pytest.raises(GridClosedError, match="closed"):
            call()


def test_submissions_run_in_the_callers_context(offline_endpoints: GridEndpoints) -> None:
    transport = InProcessTransport(offline_endpoints)
    grid = Grid(transport)
    session = grid.open_session("s1", stream_results=False)
    # GIVEN a caller with context-local state, submitting enough for several submissions
    token = REQUEST.set("request-42")
    try:
        session.submit([{"x": i} for i in range(2_500)])
    finally:
        REQUEST.reset(token)
    # THEN each submission, in the session's pool, saw the caller's state
    contexts = {request for request, _ in transport.seen}
    threads = {thread for _, thread in transport.seen}
    assert len(transport.seen) >= 3
    assert threading.get_ident() not in threads  # they did run in the pool
    assert contexts == {"request-42"}


def test_a_call_of_one_submission_is_sent_on_the_callers_thread(
    offline_endpoints: GridEndpoints,
) -> None:
    transport = InProcessTransport(offline_endpoints)
    session = Grid(transport).open_session("s1", stream_results=False)
    token = REQUEST.set("request-7")
    try:
        (task_id,) = session.submit([{"x": 1}])
    finally:
        REQUEST.reset(token)
    # No pool for a lone submission: no thread to start, none to hand the answer back.
    assert transport.seen == [("request-7", threading.get_ident())]
    assert transport.submitted == {task_id: {"x": 1}}
