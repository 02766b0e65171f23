"""The client's bookkeeping at scale, without AWS: the ledger of outstanding tasks, task ids
made on demand, ``map``'s bounded wait for results in input order, and the memory a large
submission holds."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from htcgrid import Completed, Session, Transport
from htcgrid import grid as grid_module
from htcgrid.connection import GridEndpoints
from htcgrid.ledger import Ledger, TaskIds
from htcgrid_core import keys
from htcgrid_core.models import Submission, SubmissionReceipt, TaskResult, TaskState

SESSION = "s1"


def digest(token: str) -> str:
    return keys.submission_digest(SESSION, token)


def test_a_task_is_outstanding_until_settled_once() -> None:
    ledger = Ledger()
    ledger.add(digest("t.0"), 3, 100.0, first=0)
    ledger.add(digest("t.1"), 2, 101.0, first=3)
    task = keys.task_id_for(SESSION, "t.1", 1)
    assert ledger.outstanding == 5
    assert ledger.submitted_at(task) == 101.0
    assert ledger.position(task) == 4
    ledger.settle(task)
    ledger.settle(task)
    assert ledger.outstanding == 4
    assert task not in ledger
    assert ledger.sent_at(task) == 101.0
    # A resubmission of the same submission expects nothing again; foreign ids are not ours.
    ledger.add(digest("t.1"), 2, 102.0, first=3)
    assert ledger.outstanding == 4
    assert keys.task_id_for(SESSION, "other", 0) not in ledger
    assert "not-a-task-id" not in ledger
    assert keys.task_id_for(SESSION, "t.0", 3) not in ledger  # past the submission's end


def test_outstanding_tasks_are_visited_round_robin_and_settled_ones_skipped() -> None:
    ledger = Ledger()
    for n in range(3):
        ledger.add(digest(f"t.{n}"), 10, 0.0, first=10 * n)
    for index in range(0, 10, 2):  # half of the middle submission has finished
        ledger.settle(keys.task_id_for(SESSION, "t.1", index))
    seen: list[str] = []
    for _ in range(5):
        seen.extend(ledger.next_outstanding(5))
    assert len(seen) == 25
    assert set(seen) == {
        keys.task_id_for(SESSION, f"t.{n}", i)
        for n in range(3)
        for i in range(10)
        if n != 1 or i % 2
    }
    assert ledger.next_outstanding(3) == [keys.task_id_for(SESSION, "t.0", i) for i in range(3)]


def test_task_ids_are_made_on_demand_and_compare_as_a_list() -> None:
    ids = TaskIds([(digest("t.0"), 3), (digest("t.1"), 2)])
    expected = [
        keys.task_id_for(SESSION, f"t.{n}", i) for n, k in ((0, 3), (1, 2)) for i in range(k)
    ]
    assert len(ids) == 5
    assert list(ids) == expected
    assert ids == expected
    assert ids[3] == expected[3]
    assert ids[-1] == expected[-1]
    assert ids[1:4] == expected[1:4]
    with pytest.raises(IndexError):
        ids[5]


class StubSession:
    """The three calls ``map`` makes of a session, over a scripted completion order."""

    def __init__(self, order: list[int]) -> None:
        self.ids = [keys.task_id_for(SESSION, "t.0", i) for i in range(len(order))]
        self.order = order
        self.read_back_calls: list[list[str]] = []

    def completed(self, index: int) -> Completed:
        result = TaskResult(
            session_id=SESSION,
            task_id=self.ids[index],
            state=TaskState.SUCCEEDED,
            attempt=1,
            submitted_at=0.0,
        )
        return Completed(result, index, 0.0, 0.0)

    def results(self, timeout: float | None) -> Iterator[Completed]:
        for index in self.order:
            yield self.completed(index)

    def position_of(self, task_id: str) -> int:
        return self.ids.index(task_id)

    def read_back(self, task_ids: list[str]) -> list[Completed]:
        self.read_back_calls.append(task_ids)
        return [self.completed(self.ids.index(t)) for t in task_ids]


def test_map_in_input_order_keeps_a_bounded_window_and_reads_the_rest_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(grid_module, "ORDERED_WINDOW", 5)
    # GIVEN 25 tasks that finish last to first
    stub = StubSession(list(range(24, -1, -1)))
    session: Any = stub
    # THEN they come out first to last, the ones far ahead read back from the grid
    yielded = [done.value for done in grid_module._in_input_order(session, stub.ids, None)]
    assert yielded == list(range(25))
    read_back = [t for call in stub.read_back_calls for t in call]
    assert sorted(read_back) == sorted(stub.ids[5:])
    assert all(len(call) <= 100 for call in stub.read_back_calls)


class LocalTransport(Transport):
    """A transport whose submit workflow is answered by the client itself: the receipt the
    workflow would return, without AWS (for measuring the client alone)."""

    def submit_batch(self, submission: Submission) -> SubmissionReceipt:
        return SubmissionReceipt(
            session_id=submission.session_id,
            submission_token=submission.submission_token,
            task_ids=[
                keys.task_id_for(submission.session_id, submission.submission_token, i)
                for i in range(len(submission.tasks))
            ],
        )


def test_a_large_submission_holds_a_few_bytes_per_task(offline_endpoints: GridEndpoints) -> None:
    session = Session(LocalTransport(offline_endpoints), SESSION, None)
    tasks = 30_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        task_ids = session.submit({"value": i} for i in range(tasks))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(task_ids) == tasks == session.outstanding
    # A string and a dict entry per task would be some 200 bytes; the ledger and the ids of
    # the call hold a few hundred bytes per submission of hundreds of tasks.
    assert held / tasks < 8, f"{held / tasks:.1f} bytes per task"
    assert session.position_of(task_ids[12_345]) == 12_345
