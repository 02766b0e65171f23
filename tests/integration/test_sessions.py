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
from htcgrid_core.models import (
    CancelRequest,
    TaskState,
)
from htcgrid_core.payloads import payload_key, result_key
from htcgrid_core.resources import GridResources
from htcgrid_core.sessions import delete_session, status_of
from htcgrid_core.table import tasks as table_tasks
from tests.integration.builders import persist, submit
from tests.unit.core.test_session_records import (  # noqa: F401 - collected here, on moto
    test_a_larger_submission_is_left_to_the_dispatch_step,
    test_a_resubmission_of_other_tasks_with_the_same_token_is_refused,
    test_a_retried_submission_counts_its_tasks_once,
    test_a_small_submission_is_dispatched_at_once_and_its_retry_repeats_nothing,
    test_a_small_submission_whose_dispatch_mark_failed_is_sent_again_and_counted_once,
    test_a_small_submission_whose_send_failed_is_counted_once_when_retried,
    test_counters_follow_agents_and_cancellation,
    test_recent_sessions_are_listed_newest_first_with_counts,
    test_records_written_at_submission_expire_after_the_retention,
    test_sessions_page_from_newest_to_oldest_with_a_token,
    test_tasks_are_listed_by_state_page_by_page,
    test_the_last_page_of_sessions_has_no_token,
)

HANDLER = "htcgrid_examples.scripted:handler"


def status(grid: GridResources, session_id: str, exact: bool = False) -> dict[TaskState, int]:
    found = status_of(session_id, grid.table, SessionCounters.from_resources(grid), exact)
    assert found.exact is exact
    return {state: n for state, n in found.counts.items() if n}


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
