"""X-Ray trace headers (``traces``) and how a task's trace follows it: from its submission to its
messages and records, and through its retries. Without AWS."""

from __future__ import annotations

import json
import time

import pytest

from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    AttemptFailure,
    DispatchBatch,
    InlineData,
    RetryRequest,
    TaskError,
    TaskMessage,
)
from htcgrid_core.retries import decide
from htcgrid_core.submissions import dispatch_submission, parse_document
from htcgrid_core.traces import (
    active_trace_header,
    new_trace_header,
    trace_header,
    trace_root,
)
from tests.fakes import FakeGrid
from tests.integration.builders import persist

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
#: What Lambda sets in _X_AMZN_TRACE_ID for an invocation of a traced function.
LAMBDA_HEADER = f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0"
SUBMITTED = f"Root={ROOT};Parent=1111111111111111;Sampled=1"
DISPATCHED = f"Root={ROOT};Parent=2222222222222222;Sampled=1"


def test_lambdas_header_is_kept_as_root_parent_and_sampled() -> None:
    assert trace_header(LAMBDA_HEADER) == f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
    # X-Ray's keys in any order and with spaces, as some SDKs write them
    assert trace_header(f"Sampled=0; Root={ROOT}") == f"Root={ROOT};Sampled=0"
    assert active_trace_header({"_X_AMZN_TRACE_ID": LAMBDA_HEADER}) == trace_header(LAMBDA_HEADER)
    assert active_trace_header({}) is None


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "Parent=53995c3f42cd8ad8;Sampled=1",  # no root
        "Root=1-5759e988-bd862e3fe1be46a99427279;Sampled=1",  # a digit short
        f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=yes",
        f"Root={ROOT};Parent=$(reboot)",
        f"Root={ROOT};Sampled=1\nX-Forwarded-For: 10.0.0.1",  # a header smuggled in
        f"Root={ROOT};Lineage={'x' * 2000}",  # longer than any header X-Ray writes
    ],
)
def test_a_header_that_names_no_well_formed_trace_is_refused(text: str | None) -> None:
    assert trace_header(text) is None


def test_a_new_header_is_a_well_formed_unsampled_trace_of_its_own() -> None:
    first, second = new_trace_header(now=1_700_000_000), new_trace_header()
    assert trace_header(first) == first
    assert first.endswith(";Sampled=0")
    assert trace_root(first).startswith(f"1-{1_700_000_000:08x}-")
    assert trace_root(first) != trace_root(second)


def message(**fields: object) -> dict[str, object]:
    return {
        "session_id": "s",
        "task_id": "t",
        "attempt": 1,
        "max_attempts": 3,
        "priority": 0,
        "timeout_s": 60,
        "payload": {"inline": 1},
        "submitted_at": 1.0,
        **fields,
    }


def test_a_message_without_a_trace_has_no_trace_key_and_old_messages_still_parse() -> None:
    # GIVEN a message as agents older than the field read and write them
    old = TaskMessage.model_validate(message())
    # THEN it has no trace and its JSON has no key for one: older agents forbid unknown keys
    assert old.trace_header is None
    assert "trace_header" not in json.loads(old.model_dump_json())
    traced = TaskMessage.model_validate(message(trace_header=SUBMITTED))
    assert TaskMessage.model_validate_json(traced.model_dump_json()) == traced


def test_a_malformed_trace_header_in_a_message_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidSubmissionError, match=r"trace_header: String should match"):
        parse_document(TaskMessage, message(trace_header="Root=1-x;Parent=$(reboot)"))


def queue(grid: FakeGrid, batch: DispatchBatch) -> list[TaskMessage]:
    """The messages on the queue of the batch's (one) priority."""
    (priority,) = {m.priority for m in batch.messages}
    return [m for m, _ in grid.queues.messages(grid.queues.task_queue_url(priority))]


def test_a_submissions_trace_reaches_its_records_and_messages_but_not_the_workflow_state(
    grid: FakeGrid, session_id: str
) -> None:
    # WHEN the persist step runs in the submission's trace and the dispatch step one segment on
    batch = persist(grid, session_id, ["x", "y"], trace_header=SUBMITTED)
    assert [m.trace_header for m in batch.messages] == [None, None]
    dispatch_submission(batch, grid, trace_header=LAMBDA_HEADER)
    # THEN each message carries the dispatch step's header, normalised
    sent = queue(grid, batch)
    assert {m.trace_header for m in sent} == {trace_header(LAMBDA_HEADER)}
    # AND each record the submission's, for the messages of its retries
    records = grid.table.get_records(session_id, batch.task_ids)
    assert {r.trace_header for r in records.values()} == {SUBMITTED}


def test_an_untraced_dispatch_sends_messages_without_a_trace(
    grid: FakeGrid, session_id: str
) -> None:
    batch = persist(grid, session_id, ["x"])
    dispatch_submission(batch, grid, trace_header="not a trace header")
    (sent,) = queue(grid, batch)
    assert sent.trace_header is None


def test_a_retried_task_keeps_its_submissions_trace(grid: FakeGrid, session_id: str) -> None:
    batch = persist(grid, session_id, ["x"], trace_header=SUBMITTED)
    (task_id,) = batch.task_ids
    failure = AttemptFailure(
        session_id=session_id,
        task_id=task_id,
        attempt=1,
        max_attempts=3,
        error=TaskError(type="Boom", message="", attempt=1, at=1.0),
    )
    decide(RetryRequest(failures=[failure]), grid, time.time())
    (retry,) = queue(grid, batch)
    assert (retry.attempt, retry.payload, retry.trace_header) == (
        2,
        InlineData(inline="x"),
        SUBMITTED,
    )
