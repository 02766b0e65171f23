"""Sessions' bookkeeping: submitted and finished counts that count each task once, listing
tasks and sessions page by page, retention, and resubmissions.

Each test runs here against the in-memory fake, and from ``tests/integration/test_sessions.py``
against the DynamoDB adapter on moto."""

from __future__ import annotations

import time

import pytest

from htcgrid_core.cancellation import cancel
from htcgrid_core.counters import SessionCounters
from htcgrid_core.errors import InvalidSubmissionError, RetryableError
from htcgrid_core.models import (
    CancelRequest,
    InlineData,
    SessionsQuery,
    TasksQuery,
    TaskState,
)
from htcgrid_core.paging import encode_position
from htcgrid_core.ports import GridPorts, SubmissionStage
from htcgrid_core.sessions import list_sessions, list_tasks, status_of
from htcgrid_core.submissions import (
    DISPATCH_AT_ONCE_MAX_TASKS,
    accept_submission,
    dispatch_submission,
    persist_submission,
)
from htcgrid_core.table import Completion
from tests.integration.builders import persist, submission


def status(grid: GridPorts, session_id: str, exact: bool = False) -> dict[TaskState, int]:
    found = status_of(session_id, grid.table, SessionCounters.from_resources(grid), exact)
    assert found.exact is exact
    return {state: n for state, n in found.counts.items() if n}


def test_a_retried_submission_counts_its_tasks_once(grid: GridPorts, session_id: str) -> None:
    # GIVEN a submission persisted, then retried with the same token (twice)
    first = submission(session_id, [1, 2, 3], token="tok-1")
    for _ in range(3):
        dispatch_submission(persist_submission(first, grid), grid)
    persist(grid, session_id, [4, 5], token="tok-2")
    # THEN the counters hold each task once, all unfinished
    assert status(grid, session_id) == {TaskState.PENDING: 5}


def sent_task_ids(grid: GridPorts, priority: int) -> list[str]:
    url = grid.queues.task_queue_url(priority)
    return [r.message.task_id for r in grid.queues.receive_from(url, 10, wait_s=1) if r.message]


def test_a_small_submission_is_dispatched_at_once_and_its_retry_repeats_nothing(
    grid: GridPorts, session_id: str
) -> None:
    # GIVEN a submission of one batch of messages, accepted, then retried with its token
    small = submission(session_id, [1, 2], token="tok-small", priority=1)
    first = accept_submission(small, grid)
    again = accept_submission(small, grid)
    # THEN the first attempt wrote and sent both tasks and ended the workflow's work
    assert (first.written, first.sent) == (2, 2)
    assert first.batch.dispatched
    assert first.batch.messages == []
    # AND the retry found it DISPATCHED: nothing written, sent or counted again
    assert (again.written, again.sent) == (0, 0)
    assert again.batch.dispatched
    (record,) = grid.table.submissions([(session_id, "tok-small")])
    assert record.stage is SubmissionStage.DISPATCHED
    assert sent_task_ids(grid, 1) == first.batch.task_ids
    assert status(grid, session_id) == {TaskState.PENDING: 2}


def test_a_small_submission_whose_dispatch_mark_failed_is_sent_again_and_counted_once(
    grid: GridPorts, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the messages went out but marking the submission DISPATCHED failed
    small = submission(session_id, [1], token="tok-mark", priority=1)
    advance = grid.table.advance_submission

    def failing(*args: object) -> None:
        raise RetryableError("DynamoDB throttled the mark")

    monkeypatch.setattr(grid.table, "advance_submission", failing)
    with pytest.raises(RetryableError):
        accept_submission(small, grid)
    monkeypatch.setattr(grid.table, "advance_submission", advance)
    # WHEN the workflow retries the step
    retried = accept_submission(small, grid)
    # THEN the message is sent again (harmless: one completion is recorded), the submission
    # is DISPATCHED, and its task is counted once
    assert retried.sent == 1
    (task_id,) = retried.batch.task_ids
    assert sent_task_ids(grid, 1) == [task_id, task_id]
    (record,) = grid.table.submissions([(session_id, "tok-mark")])
    assert record.stage is SubmissionStage.DISPATCHED
    assert status(grid, session_id) == {TaskState.PENDING: 1}


def test_a_small_submission_whose_send_failed_is_counted_once_when_retried(
    grid: GridPorts, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the records were written but sending the message failed
    small = submission(session_id, [1, 2], token="tok-send", priority=1)
    dispatch = grid.queues.dispatch

    def failing(*args: object, **kwargs: object) -> None:
        raise RetryableError("SQS throttled the send")

    monkeypatch.setattr(grid.queues, "dispatch", failing)
    with pytest.raises(RetryableError):
        accept_submission(small, grid)
    monkeypatch.setattr(grid.queues, "dispatch", dispatch)
    # WHEN the workflow retries the step
    retried = accept_submission(small, grid)
    # THEN the messages go out, and the tasks were counted once, by the attempt that wrote them
    assert (retried.written, retried.sent) == (0, 2)
    assert sent_task_ids(grid, 1) == retried.batch.task_ids
    assert status(grid, session_id) == {TaskState.PENDING: 2}


def test_a_larger_submission_is_left_to_the_dispatch_step(grid: GridPorts, session_id: str) -> None:
    large = submission(session_id, list(range(DISPATCH_AT_ONCE_MAX_TASKS + 1)), priority=1)
    accepted = accept_submission(large, grid)
    assert not accepted.batch.dispatched
    assert (accepted.written, accepted.sent) == (DISPATCH_AT_ONCE_MAX_TASKS + 1, 0)
    assert len(accepted.batch.messages) == DISPATCH_AT_ONCE_MAX_TASKS + 1
    assert sent_task_ids(grid, 1) == []
    assert status(grid, session_id) == {TaskState.PENDING: DISPATCH_AT_ONCE_MAX_TASKS + 1}


def test_counters_follow_agents_and_cancellation(grid: GridPorts, session_id: str) -> None:
    # GIVEN tasks an agent runs and tasks cancelled before any agent saw them
    task_ids = persist(grid, session_id, [{"value": i} for i in range(4)]).task_ids
    cancel(
        CancelRequest(session_id=session_id, task_ids=task_ids[:2]),
        grid.table,
        SessionCounters.from_resources(grid),
    )
    grid.table.record_success(
        Completion(session_id, task_ids[2], 1, None), InlineData(inline=1), time.time()
    )
    SessionCounters.from_resources(grid).add(session_id, {TaskState.SUCCEEDED: 1})
    # THEN the counts agree with an exact count of every record
    assert status(grid, session_id) == {
        TaskState.PENDING: 1,
        TaskState.SUCCEEDED: 1,
        TaskState.CANCELLED: 2,
    }
    assert status(grid, session_id, exact=True) == status(grid, session_id)


def test_tasks_are_listed_by_state_page_by_page(grid: GridPorts, session_id: str) -> None:
    task_ids = persist(grid, session_id, list(range(7))).task_ids
    cancel(CancelRequest(session_id=session_id, task_ids=task_ids[:3]), grid.table)
    listed: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = TasksQuery(
            session_id=session_id, states=[TaskState.PENDING], next_token=token, limit=2
        )
        page = list_tasks(query, grid.table)
        assert len(page.tasks) <= 2
        assert all(task.state is TaskState.PENDING for task in page.tasks)
        listed.extend(task.task_id for task in page.tasks)
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert sorted(listed) == sorted(task_ids[3:])
    assert pages >= 2


def test_recent_sessions_are_listed_newest_first_with_counts(
    grid: GridPorts, session_id: str
) -> None:
    # GIVEN three sessions created one after the other, the last with a second submission
    older, middle, newest = (f"{session_id}-{n}" for n in ("older", "middle", "newest"))
    for name in (older, middle, newest):
        persist(grid, name, [1, 2])
    persist(grid, newest, [3])
    # WHEN the two newest are listed
    listed = list_sessions(
        SessionsQuery(limit=2), grid.table, SessionCounters.from_resources(grid)
    ).sessions
    # THEN they come newest first, counted from their counters
    assert [s.session_id for s in listed] == [newest, middle]
    assert [s.total for s in listed] == [3, 2]


def test_records_written_at_submission_expire_after_the_retention(
    grid: GridPorts, session_id: str
) -> None:
    before = time.time()
    task_id = persist(grid, session_id, [1]).task_ids[0]
    record = grid.table.get_records(session_id, [task_id])[task_id]
    retention_s = grid.settings.result_retention_days * 86400
    assert record.expires_at is not None
    assert before + retention_s - 1 <= record.expires_at <= time.time() + retention_s


def test_sessions_page_from_newest_to_oldest_with_a_token(grid: GridPorts, session_id: str) -> None:
    # GIVEN three sessions created one after the other (after every other test's)
    names = [f"{session_id}-{n}" for n in ("older", "middle", "newest")]
    for name in names:
        persist(grid, name, [1])
    counters = SessionCounters.from_resources(grid)
    # WHEN they are listed two, then one, at a time
    first = list_sessions(SessionsQuery(limit=2), grid.table, counters)
    second = list_sessions(
        SessionsQuery(limit=1, next_token=first.next_token), grid.table, counters
    )
    # THEN each page continues where the last one stopped, newest first
    assert [s.session_id for s in first.sessions] == names[:0:-1]
    assert [s.session_id for s in second.sessions] == names[:1]
    assert first.next_token is not None
    # AND a token this grid did not issue is refused, naming the field: one that is not
    # base64 JSON, or a well-formed one whose position is no number DynamoDB takes
    for forged in ("not-a-token", encode_position({"before": float("nan")})):
        with pytest.raises(InvalidSubmissionError, match="next_token"):
            list_sessions(SessionsQuery(limit=1, next_token=forged), grid.table, counters)


def test_the_last_page_of_sessions_has_no_token(grid: GridPorts, session_id: str) -> None:
    persist(grid, session_id, [1])
    counters = SessionCounters.from_resources(grid)
    listed = list_sessions(SessionsQuery(limit=1), grid.table, counters)
    assert [s.session_id for s in listed.sessions] == [session_id]
    # Walk to the end: the last page says there is nothing older.
    token = listed.next_token
    pages = 0
    while token is not None and pages < 1000:
        token = list_sessions(
            SessionsQuery(limit=100, next_token=token), grid.table, counters
        ).next_token
        pages += 1
    assert token is None


def test_a_resubmission_of_other_tasks_with_the_same_token_is_refused(
    grid: GridPorts, session_id: str
) -> None:
    first = persist(grid, session_id, [1, 2], token="tok")
    # GIVEN the token's submission was persisted; resubmitting the same tasks is fine
    assert persist(grid, session_id, [1, 2], token="tok").task_ids == first.task_ids
    # WHEN other tasks come with the same token
    with pytest.raises(InvalidSubmissionError, match=r"submission_token: 'tok' already names"):
        persist(grid, session_id, [1, 3], token="tok")
    # THEN the persisted tasks are untouched
    records = grid.table.get_records(session_id, first.task_ids)
    assert [records[t].payload for t in first.task_ids] == [
        InlineData(inline=1),
        InlineData(inline=2),
    ]
