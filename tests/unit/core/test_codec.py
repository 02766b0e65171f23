"""The task table's item codec and condition expressions, pure: records survive the round
trip, and each expectation names what it requires."""

from __future__ import annotations

from htcgrid_core import keys
from htcgrid_core.lifecycle import expect_failed_by, expect_holder, expect_redrivable
from htcgrid_core.models import (
    FailureCause,
    InlineData,
    StoredData,
    TaskError,
    TaskRecord,
    TaskState,
)
from htcgrid_core.table.codec import condition_for, decode_record, decode_summary, encode_record


def record(**fields: object) -> TaskRecord:
    values: dict[str, object] = {
        "session_id": "s",
        "task_id": "t-1",
        "state": TaskState.RUNNING,
        "attempt": 2,
        "max_attempts": 3,
        "priority": 1,
        "timeout_s": 600,
        "payload": StoredData(s3_key="sessions/s/p.json", size=3, sha256="a" * 64),
        "submitted_at": 1.25,
        **fields,
    }
    return TaskRecord.model_validate(values)


def test_a_record_survives_the_round_trip_with_every_optional_field() -> None:
    full = record(
        result=InlineData(inline={"π": 3.14}),
        errors=[TaskError(type="Boom", message="x", attempt=1, at=0.1, retryable=False)],
        started_at=2.5,
        finished_at=None,
        lease_token="tok",
        lease_expires_at=1e9 + 0.123456,
        result_queue_url="https://sqs.example/q",
        trace_header="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        expires_at=2_000_000_000,
    )
    item = encode_record(full)
    assert {"pk": item["pk"], "sk": item["sk"]} == keys.task_key("s", "t-1")
    assert "finished_at" not in item
    assert decode_record(item) == full
    bare = record()
    assert decode_record(encode_record(bare)) == bare
    summary = decode_summary(encode_record(bare))
    assert (summary.task_id, summary.state, summary.started_at) == ("t-1", TaskState.RUNNING, None)


def test_a_holders_condition_names_its_state_attempt_and_lease() -> None:
    condition, values = condition_for(expect_holder(2, "tok"))
    assert (
        condition
        == "#state IN (:expect_s0) AND attempt = :expect_attempt AND lease_token = :expect_lease"
    )
    assert values == {
        ":expect_s0": {"S": "RUNNING"},
        ":expect_attempt": {"N": "2"},
        ":expect_lease": {"S": "tok"},
    }


def test_the_reapers_condition_requires_an_expired_lease_and_redrive_a_dead_letter() -> None:
    condition, values = condition_for(expect_failed_by(FailureCause.LEASE_EXPIRED, 1, "t", 5.5))
    assert "(#state <> :expect_running OR lease_expires_at < :expect_expired_by)" in condition
    assert values[":expect_expired_by"] == {"N": "5.5"}
    condition, _ = condition_for(expect_redrivable(1))
    assert condition.endswith("AND attribute_exists(dead_lettered_at)")
