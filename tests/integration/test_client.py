"""The client at its edges, on the emulator with the stack's real functions and workflows: the
result stream (notices it cannot read, notices it must not trust), and ``map``.

No agent runs here: a test plays the agent by sending the notices an agent would send.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from pydantic import JsonValue

from htcgrid import (
    Completed,
    Grid,
    GridClosedError,
    InvalidRequestError,
    PartialSubmissionError,
    ResultsTimeoutError,
    Session,
    reconcile,
)
from htcgrid.connection import GridEndpoints
from htcgrid_core import aws
from htcgrid_core.counters import SessionCounters
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    Data,
    InlineData,
    ResultNotice,
    ResultsPage,
    StoredData,
    TaskResult,
    TaskState,
)
from htcgrid_core.payloads import result_key
from htcgrid_core.resources import GridResources
from htcgrid_core.settings import GridSettings
from htcgrid_core.table import Completion
from htcgrid_local.provision import read_stack_outputs


@pytest.fixture
def client(grid_settings: GridSettings) -> Grid:
    endpoint = str(grid_settings.endpoint_url)
    outputs = read_stack_outputs(endpoint, grid_settings.queue_prefix)
    return Grid(GridEndpoints.for_emulator(dict(outputs), endpoint))


def finished(session: Session, task_id: str, result: Data | None) -> TaskResult:
    return TaskResult(
        session_id=session.id,
        task_id=task_id,
        state=TaskState.SUCCEEDED,
        attempt=1,
        result=result,
        submitted_at=time.time(),
        finished_at=time.time(),
    )


def notify(session: Session, *results: TaskResult) -> None:
    """Send a result notice to the session's result queue, as an agent does."""
    assert session.result_queue_url
    body = ResultNotice(results=list(results), sent_at=time.time()).model_dump_json()
    session.transport.client("sqs").send_message(
        QueueUrl=session.result_queue_url, MessageBody=body
    )


def corrupted_result(client: Grid, session: Session, task_id: str) -> StoredData:
    """A stored result whose object does not match its recorded SHA-256 (as a late duplicate
    execution's upload would leave it)."""
    key = result_key(session.id, task_id, 1, "corrupted")
    body = b'{"value": "overwritten"}'
    s3 = aws.s3(client.settings.endpoint_url, client.settings.region)
    s3.put_object(Bucket=client.settings.bucket_name, Key=key, Body=body)
    return StoredData(s3_key=key, size=len(body), sha256=hashlib.sha256(b"other").hexdigest())


@pytest.mark.shared_stack
def test_a_result_that_cannot_be_read_is_yielded_as_an_error_and_none_is_dropped(
    client: Grid,
) -> None:
    with client.open_session() as session:
        first, second, third = session.submit([{"value": i} for i in range(3)])
        # GIVEN one notice whose middle result's stored object is corrupt
        notify(
            session,
            finished(session, first, InlineData(inline=1)),
            finished(session, second, corrupted_result(client, session, second)),
            finished(session, third, InlineData(inline=3)),
        )
        # WHEN the session's results are read
        results = {done.task_id: done for done in session.results(timeout=30)}
    # THEN every task comes out once: the readable ones with their values, the other as an error
    assert set(results) == {first, second, third}
    assert (results[first].value, results[third].value) == (1, 3)
    unreadable = results[second]
    assert not unreadable.ok
    assert unreadable.state is TaskState.SUCCEEDED
    assert unreadable.value is None
    assert unreadable.error is not None
    assert unreadable.error.type == "PayloadIntegrityError"
    assert session.outstanding == 0


@pytest.mark.shared_stack
def test_ordered_map_goes_past_an_unreadable_result_instead_of_stopping(
    client: Grid, grid: GridResources
) -> None:
    def play_the_agent(session: Session) -> None:
        # GIVEN the first task's stored result is corrupt, the others are fine
        ids = [task.task_id for task in client.iter_tasks(session.id)]
        records = grid.table.get_records(session.id, ids).values()
        by_value = {r.payload.inline["value"]: r.task_id for r in records}  # type: ignore[union-attr,index,call-overload]
        notify(
            session,
            finished(session, by_value[0], corrupted_result(client, session, by_value[0])),
            finished(session, by_value[1], InlineData(inline=1)),
            finished(session, by_value[2], InlineData(inline=2)),
        )

    # WHEN map runs three tasks in input order
    yielded: list[Completed] = list(
        client.map([{"value": i} for i in range(3)], on_submitted=play_the_agent, timeout=30)
    )
    # THEN all three come out, in order, the first as an error
    assert [done.value for done in yielded] == [None, 1, 2]
    assert [done.ok for done in yielded] == [False, True, True]


def record_successes(grid: GridResources, session: Session, task_ids: list[str]) -> None:
    """Record each task's success in the table and count it, as an agent does before
    notifying."""
    for value, task_id in enumerate(task_ids):
        grid.table.record_success(
            Completion(session.id, task_id, 1, None), InlineData(inline=value), time.time()
        )
    SessionCounters.from_resources(grid).add(session.id, {TaskState.SUCCEEDED: len(task_ids)})


@pytest.mark.shared_stack
def test_a_notice_naming_another_session_is_never_yielded(client: Grid) -> None:
    with client.open_session() as session:
        (task_id,) = session.submit([{"value": 1}])
        # GIVEN a notice whose result names another session but this session's task
        forged = finished(session, task_id, InlineData(inline="forged"))
        notify(session, forged.model_copy(update={"session_id": "someone-else"}))
        # AND then the genuine one
        notify(session, finished(session, task_id, InlineData(inline="genuine")))
        # THEN only the genuine result comes out
        (done,) = session.results(timeout=30)
    assert done.value == "genuine"


@pytest.mark.shared_stack
def test_notices_that_are_not_notices_are_dropped_and_the_genuine_one_is_yielded(
    client: Grid,
) -> None:
    with client.open_session() as session:
        (task_id,) = session.submit([{"value": 1}])
        assert session.result_queue_url
        sqs = session.transport.client("sqs")
        genuine = finished(session, task_id, InlineData(inline="genuine"))
        # GIVEN bodies on the result queue that are not result notices: not JSON, a notice
        # with a field no notice has, and one whose result is not a result
        for body in (
            "not JSON",
            ResultNotice(results=[genuine]).model_dump_json()[:-1] + ', "surprise": 1}',
            json.dumps({"results": [{"task_id": task_id, "state": "SUCCEEDED"}]}),
        ):
            sqs.send_message(QueueUrl=session.result_queue_url, MessageBody=body)
        # AND then the genuine notice
        notify(session, genuine)
        # THEN only the genuine result comes out
        (done,) = session.results(timeout=30)
        assert (done.task_id, done.value) == (task_id, "genuine")
        # AND nothing is left on the queue to be read again
        attributes = sqs.get_queue_attributes(
            QueueUrl=session.result_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert set(attributes.values()) == {"0"}


@pytest.mark.shared_stack
def test_a_result_queue_deleted_under_the_session_falls_back_to_the_table(
    client: Grid, grid: GridResources
) -> None:
    with client.open_session() as session:
        task_ids = session.submit([{"value": i} for i in range(3)])
        record_successes(grid, session, task_ids)
        # GIVEN someone else (any holder of the client policy) deleted the session's queue
        other = Grid(client.endpoints)
        other.transport.close_result_queue(session.id)
        # THEN the session still yields every result, read back from the table
        results = {done.task_id: done.value for done in session.results(timeout=30)}
    assert results == {task_id: i for i, task_id in enumerate(task_ids)}


@pytest.mark.shared_stack
def test_notices_taken_by_another_client_are_read_back_from_the_table(
    client: Grid, grid: GridResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "STREAMING_WAIT_S", (1.0, 300.0))
    with client.open_session() as session:
        task_ids = session.submit([{"value": i} for i in range(3)])
        record_successes(grid, session, task_ids)
        notify(
            session, *(finished(session, t, InlineData(inline=i)) for i, t in enumerate(task_ids))
        )
        # GIVEN another client received and deleted every notice first
        assert session.result_queue_url
        sqs = client.endpoints.client("sqs")
        taken = sqs.receive_message(QueueUrl=session.result_queue_url, MaxNumberOfMessages=10)
        for message in taken["Messages"]:
            sqs.delete_message(
                QueueUrl=session.result_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        # THEN the session reads the results from the table once notices stop: at its first
        # quiet turn, since the counters show them finished
        results = {done.task_id: done.value for done in session.results(timeout=30)}
    assert results == {task_id: i for i, task_id in enumerate(task_ids)}


@pytest.mark.shared_stack
def test_a_submit_stopped_part_way_says_what_was_accepted_and_resubmitting_finishes_it(
    client: Grid,
) -> None:
    payloads: list[JsonValue] = [{"value": i} for i in range(1500)]
    bad = [*payloads[:1200], float("nan"), *payloads[1201:]]
    with client.open_session(stream_results=False) as session:
        # GIVEN a payload JSON cannot hold, after several submissions of the call went out
        with pytest.raises(PartialSubmissionError) as stopped:
            session.submit(bad)
        error = stopped.value
        # What stopped it is the client's error for the core's refusal, the cause of each.
        assert error.error == "InvalidRequestError"
        assert "payloads[1200]" in error.cause
        assert isinstance(error.__cause__, InvalidRequestError)
        assert isinstance(error.__cause__.__cause__, InvalidSubmissionError)
        accepted = error.task_ids
        assert 0 < len(accepted) <= 1200
        assert session.outstanding == len(accepted)  # they run: their results will come
        # WHEN the caller fixes the payload and resubmits with the token the error gave
        task_ids = session.submit(payloads, submission_token=error.submission_token)
        # THEN the accepted tasks keep their ids, and each task exists once
        assert task_ids[: len(accepted)] == accepted
        assert len(set(task_ids)) == 1500
        assert session.status(exact=True).total == 1500


@pytest.mark.shared_stack
def test_quiet_turns_read_no_more_tasks_than_the_counters_say_finished(
    client: Grid, grid: GridResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "STREAMING_WAIT_S", (0.2, 0.8))
    with client.open_session() as session:
        # GIVEN 1,000 outstanding tasks, of which 5 finished without a notice
        task_ids = session.submit([{"value": i} for i in range(1000)])
        record_successes(grid, session, task_ids[:5])
        read: list[str] = []
        fetch = session.transport.fetch_results

        def counted(session_id: str, task_ids: list[str]) -> ResultsPage:
            read.extend(task_ids)
            return fetch(session_id, task_ids)

        monkeypatch.setattr(session.transport, "fetch_results", counted)
        # WHEN the session waits through several quiet turns
        found: list[Completed] = []
        with pytest.raises(ResultsTimeoutError):
            found.extend(session.results(timeout=4))
    # THEN it found the 5, reading a page or so per turn, never the 1,000 each time
    assert sorted(done.task_id for done in found) == sorted(task_ids[:5])
    assert 0 < len(read) <= 5 * reconcile.PAGE


@pytest.mark.shared_stack
def test_resubmitting_other_content_with_a_token_is_refused_and_overwrites_nothing(
    client: Grid, grid: GridResources
) -> None:
    big: list[JsonValue] = [{"value": "first", "pad": "a" * 20_000}]
    other: list[JsonValue] = [{"value": "other", "pad": "b" * 20_000}]
    with client.open_session(stream_results=False) as session:
        (task_id,) = session.submit(big, submission_token="tok")
        # WHEN other payloads are submitted with the same token
        with pytest.raises(PartialSubmissionError) as refused:
            session.submit(other, submission_token="tok")
        # THEN the grid refuses them, naming the token
        assert refused.value.error == "InvalidSubmissionError"
        assert "submission_token: 'tok.0' already names" in refused.value.cause
        assert len(refused.value.task_ids) == 0
        # AND the submitted task still reads the payload it was submitted with
        record = grid.table.get_records(session.id, [task_id])[task_id]
        assert isinstance(record.payload, StoredData)
        assert client.payloads.decode(record.payload) == big[0]


@pytest.mark.shared_stack
def test_a_task_yielded_failed_is_not_yielded_again_after_a_redrive(client: Grid) -> None:
    with client.open_session() as session:
        first, second = session.submit([{"value": 1}, {"value": 2}])
        # GIVEN the first task was yielded FAILED (dead-lettered, say)
        failed = finished(session, first, None).model_copy(update={"state": TaskState.FAILED})
        notify(session, failed)
        done = next(session.results(timeout=30))
        assert (done.task_id, done.state) == (first, TaskState.FAILED)
        # WHEN an operator's redrive makes it succeed, and its notice comes
        notify(session, finished(session, first, InlineData(inline="late")))
        notify(session, finished(session, second, InlineData(inline=2)))
        # THEN the session yields only the task it still waits for: a result once yielded is
        # final for it (the grid's record, read with fetch_results, has the new outcome)
        rest = list(session.results(timeout=30))
    assert [(r.task_id, r.value) for r in rest] == [(second, 2)]


@pytest.mark.shared_stack
def test_a_grid_in_a_with_block_streams_a_sessions_results_and_is_closed_after_it(
    client: Grid,
) -> None:
    endpoints = client.endpoints
    with Grid(GridEndpoints.for_emulator(endpoints.outputs, str(endpoints.endpoint_url))) as grid:
        with grid.open_session() as session:
            (task_id,) = session.submit([{"value": 1}])
            notify(session, finished(session, task_id, InlineData(inline="done")))
            (done,) = session.results(timeout=30)
        assert done.value == "done"
        # The session's own block removed its result queue, through the open grid.
        assert grid.status(session.id).total == 1
    with pytest.raises(GridClosedError):
        grid.status(session.id)
