"""Sessions at scale: counters instead of counting, listing tasks and sessions, retention and
deletion."""

from __future__ import annotations

import time

import pytest

from htcgrid_agent.config import AgentConfig
from htcgrid_agent.worker import Worker
from htcgrid_core import aws, keys
from htcgrid_core.cancellation import cancel
from htcgrid_core.counters import SessionCounters
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    CancelRequest,
    InlineData,
    SessionsQuery,
    TasksQuery,
    TaskState,
)
from htcgrid_core.paging import encode_position
from htcgrid_core.payloads import payload_key, result_key
from htcgrid_core.resources import GridResources
from htcgrid_core.sessions import delete_session, list_sessions, list_tasks, status_of
from htcgrid_core.submissions import dispatch_submission, persist_submission
from htcgrid_core.table import Completion
from htcgrid_core.table import tasks as table_tasks
from tests.integration.builders import persist, submission, submit

HANDLER = "htcgrid_examples.scripted:handler"


def status(grid: GridResources, session_id: str, exact: bool = False) -> dict[TaskState, int]:
    found = status_of(session_id, grid.table, SessionCounters.from_resources(grid), exact)
    assert found.exact is exact
    return {state: n for state, n in found.counts.items() if n}


@pytest.mark.shared_stack
def test_a_retried_submission_counts_its_tasks_once(grid: GridResources, session_id: str) -> None:
    # GIVEN a submission persisted, then retried with the same token (twice)
    first = submission(session_id, [1, 2, 3], token="tok-1")
    for _ in range(3):
        dispatch_submission(persist_submission(first, grid), grid)
    persist(grid, session_id, [4, 5], token="tok-2")
    # THEN the counters hold each task once, all unfinished
    assert status(grid, session_id) == {TaskState.PENDING: 5}


@pytest.mark.shared_stack
def test_counters_follow_agents_and_cancellation(grid: GridResources, session_id: str) -> None:
    # GIVEN tasks an agent runs and tasks cancelled before any agent saw them
    task_ids = persist(grid, session_id, [{"value": i} for i in range(4)]).task_ids
    cancel(CancelRequest(session_id=session_id, task_ids=task_ids[:2]), grid.table)
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


def test_an_agent_counts_what_it_finishes_in_batched_writes(
    grid: GridResources, session_id: str
) -> None:
    # GIVEN 30 tasks, 2 of them cancelled before an agent saw them
    task_ids = submit(grid, session_id, [{"value": i} for i in range(30)]).task_ids
    cancel(CancelRequest(session_id=session_id, task_ids=task_ids[:2]), grid.table)
    # WHEN an agent works through the queue
    Worker(AgentConfig(handler=HANDLER, slots=2, prefetch=4, burst=True), grid).work()
    # THEN the counters say what an exact count says (the cancelled tasks counted once)
    expected = {TaskState.SUCCEEDED: 28, TaskState.CANCELLED: 2}
    assert status(grid, session_id, exact=True) == expected
    assert status(grid, session_id) == expected
    # AND far fewer counter items were written than tasks finished: one per flush at most
    items = grid.table.get_items(keys.counter_keys(session_id), consistent=False)
    assert 1 <= len(items) <= keys.COUNTER_SHARDS


@pytest.mark.shared_stack
def test_a_session_without_counters_is_counted_exactly(
    grid: GridResources, session_id: str
) -> None:
    # GIVEN tasks whose session record carries no count (written before counters existed)
    persist(grid, session_id, [1, 2])
    dynamodb = aws.dynamodb(grid.settings.endpoint_url, grid.settings.region)
    dynamodb.delete_item(TableName=grid.settings.table_name, Key=keys.session_key(session_id))
    # THEN the status counts the records instead
    found = status_of(session_id, grid.table, SessionCounters.from_resources(grid), exact=False)
    assert found.exact
    assert found.counts[TaskState.PENDING] == 2


@pytest.mark.shared_stack
def test_tasks_are_listed_by_state_page_by_page(grid: GridResources, session_id: str) -> None:
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


@pytest.mark.shared_stack
def test_recent_sessions_are_listed_newest_first_with_counts(
    grid: GridResources, session_id: str
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


@pytest.mark.shared_stack
def test_records_written_at_submission_expire_after_the_retention(
    grid: GridResources, session_id: str
) -> None:
    before = time.time()
    task_id = persist(grid, session_id, [1]).task_ids[0]
    record = grid.table.get_records(session_id, [task_id])[task_id]
    retention_s = grid.settings.result_retention_days * 86400
    assert record.expires_at is not None
    assert before + retention_s - 1 <= record.expires_at <= time.time() + retention_s


@pytest.mark.shared_stack
def test_deleting_a_session_removes_its_records_and_objects(
    grid: GridResources, session_id: str
) -> None:
    # GIVEN a session with 40 tasks across shards, counters, and objects in S3
    task_ids = persist(grid, session_id, list(range(40))).task_ids
    SessionCounters.from_resources(grid).add(session_id, {TaskState.SUCCEEDED: 1})
    s3 = aws.s3(grid.settings.endpoint_url, grid.settings.region)
    bucket = grid.settings.bucket_name
    for task_id in task_ids[:3]:
        s3.put_object(Bucket=bucket, Key=payload_key(session_id, task_id), Body=b"{}")
        s3.put_object(Bucket=bucket, Key=result_key(session_id, task_id, 1, "x"), Body=b"{}")
    progress: list[tuple[int, int]] = []
    # WHEN it is deleted
    report = delete_session(
        grid.table, s3, bucket, session_id, lambda r, o: progress.append((r, o))
    )
    # THEN nothing of it is left but a cancelled tombstone that expires
    assert (report.records_deleted, report.objects_deleted) == (41, 6)  # + 1 submission
    assert progress[-1] == (41, 6)
    assert grid.table.get_records(session_id, task_ids) == {}
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"sessions/{session_id}/")["KeyCount"] == 0
    assert grid.table.session_flags(session_id).cancelled
    assert status(grid, session_id, exact=True) == {}
    (tombstone,) = grid.table.get_items([keys.session_key(session_id)])
    assert "registry_shard" not in tombstone
    assert float(tombstone["expires_at"]["N"]) <= time.time() + 86400


@pytest.mark.shared_stack
def test_a_delete_past_its_deadline_stops_and_the_next_call_finishes_it(
    grid: GridResources, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a session with more records per shard than one page of keys
    monkeypatch.setattr(table_tasks, "SESSION_KEYS_PAGE", 5)
    task_ids = [  # two submissions: 1,000 tasks are over one submission's state limit
        *persist(grid, session_id, list(range(500))).task_ids,
        *persist(grid, session_id, list(range(500, 1000))).task_ids,
    ]
    s3 = aws.s3(grid.settings.endpoint_url, grid.settings.region)
    bucket = grid.settings.bucket_name
    s3.put_object(Bucket=bucket, Key=payload_key(session_id, task_ids[0]), Body=b"{}")
    # WHEN a call's deadline has passed before it starts
    first = delete_session(grid.table, s3, bucket, session_id, deadline=time.monotonic() - 1)
    # THEN it deleted a page per shard, kept the rest for later, and says it is not done
    assert not first.done
    assert 0 < first.records_deleted < 1000
    left = grid.table.get_records(session_id, task_ids)
    assert len(left) == 1000 - first.records_deleted
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"sessions/{session_id}/")["KeyCount"] == 1
    # AND the next call, in time, deletes the rest and finishes
    second = delete_session(grid.table, s3, bucket, session_id)
    assert second.done
    assert first.records_deleted + second.records_deleted == 1002  # + 2 submissions
    assert second.objects_deleted == 1
    assert grid.table.get_records(session_id, task_ids) == {}


@pytest.mark.shared_stack
def test_sessions_page_from_newest_to_oldest_with_a_token(
    grid: GridResources, session_id: str
) -> None:
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


@pytest.mark.shared_stack
def test_the_last_page_of_sessions_has_no_token(grid: GridResources, session_id: str) -> None:
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


@pytest.mark.shared_stack
def test_a_resubmission_of_other_tasks_with_the_same_token_is_refused(
    grid: GridResources, session_id: str
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
