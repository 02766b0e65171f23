"""The task table's item codec: task records to DynamoDB items and back, and the condition
expression that enforces a ``lifecycle.Expectation``. Pure code, no AWS.

An explicit codec rather than boto3's ``TypeSerializer``: that one rejects ``float`` (it wants
``Decimal``) and reads numbers back as ``Decimal``; this one is typed and faster.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from htcgrid_core import keys
from htcgrid_core.lifecycle import Expectation
from htcgrid_core.models import Data, TaskError, TaskRecord, TaskState, TaskSummary

Item = dict[str, Any]

_DATA: TypeAdapter[Data] = TypeAdapter(Data)


def n(value: float | int) -> dict[str, str]:
    """A DynamoDB number (a float keeps every digit ``repr`` gives it)."""
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def s(value: str) -> dict[str, str]:
    """A DynamoDB string."""
    return {"S": value}


def number(item: Item, name: str) -> float | None:
    """The number attribute ``name`` of ``item``, None if absent."""
    return float(item[name]["N"]) if name in item else None


def text(item: Item, name: str) -> str | None:
    """The string attribute ``name`` of ``item``, None if absent."""
    return item[name]["S"] if name in item else None


def errors_value(errors: list[TaskError]) -> dict[str, Any]:
    """A task's error history as a DynamoDB list of JSON strings."""
    return {"L": [s(e.model_dump_json()) for e in errors]}


def encode_record(record: TaskRecord) -> Item:
    """The DynamoDB item of a task record."""
    item: Item = {
        **keys.task_key(record.session_id, record.task_id),
        "session_id": s(record.session_id),
        "state": s(record.state),
        "attempt": n(record.attempt),
        "max_attempts": n(record.max_attempts),
        "priority": n(record.priority),
        "timeout_s": n(record.timeout_s),
        "payload": s(record.payload.model_dump_json()),
        "submitted_at": n(record.submitted_at),
    }
    if record.result is not None:
        item["result"] = s(record.result.model_dump_json())
    if record.errors:
        item["errors"] = errors_value(record.errors)
    for name in ("started_at", "finished_at", "lease_expires_at"):
        value = getattr(record, name)
        if value is not None:
            item[name] = n(value)
    for name in ("lease_token", "result_queue_url", "trace_header"):
        value = getattr(record, name)
        if value is not None:
            item[name] = s(value)
    if record.expires_at is not None:
        item["expires_at"] = n(record.expires_at)  # the table's TTL attribute
    return item


def decode_record(item: Item) -> TaskRecord:
    """The task record held in a DynamoDB item."""
    result = text(item, "result")
    return TaskRecord(
        session_id=item["session_id"]["S"],
        task_id=item["sk"]["S"],
        state=TaskState(item["state"]["S"]),
        attempt=int(item["attempt"]["N"]),
        max_attempts=int(item["max_attempts"]["N"]),
        priority=int(item["priority"]["N"]),
        timeout_s=int(item["timeout_s"]["N"]),
        payload=_DATA.validate_json(item["payload"]["S"]),
        result=_DATA.validate_json(result) if result is not None else None,
        errors=[TaskError.model_validate_json(e["S"]) for e in item.get("errors", {}).get("L", [])],
        submitted_at=float(item["submitted_at"]["N"]),
        started_at=number(item, "started_at"),
        finished_at=number(item, "finished_at"),
        lease_token=text(item, "lease_token"),
        lease_expires_at=number(item, "lease_expires_at"),
        result_queue_url=text(item, "result_queue_url"),
        trace_header=text(item, "trace_header"),
        expires_at=int(item["expires_at"]["N"]) if "expires_at" in item else None,
    )


#: The attributes a ``TaskSummary`` is read from (a listing reads no payload or result).
SUMMARY_PROJECTION = "sk, #state, attempt, priority, submitted_at, started_at, finished_at"


def decode_summary(item: Item) -> TaskSummary:
    """A task as a listing shows it, from an item read with ``SUMMARY_PROJECTION``."""
    return TaskSummary(
        task_id=item["sk"]["S"],
        state=TaskState(item["state"]["S"]),
        attempt=int(item["attempt"]["N"]),
        priority=int(item["priority"]["N"]),
        submitted_at=float(item["submitted_at"]["N"]),
        started_at=number(item, "started_at"),
        finished_at=number(item, "finished_at"),
    )


def condition_for(expectation: Expectation) -> tuple[str, dict[str, Any]]:
    """The ConditionExpression and values that enforce an expectation (``Expectation.admits``
    is the same rule in Python)."""
    values: dict[str, Any] = {}
    states = sorted(expectation.states)
    for i, state in enumerate(states):
        values[f":expect_s{i}"] = s(state)
    clauses = [f"#state IN ({', '.join(f':expect_s{i}' for i in range(len(states)))})"]
    if expectation.attempt is not None:
        clauses.append("attempt = :expect_attempt")
        values[":expect_attempt"] = n(expectation.attempt)
    if expectation.lease_token is not None:
        clauses.append("lease_token = :expect_lease")
        values[":expect_lease"] = s(expectation.lease_token)
    if expectation.expired_by is not None:
        clauses.append("(#state <> :expect_running OR lease_expires_at < :expect_expired_by)")
        values[":expect_running"] = s(TaskState.RUNNING)
        values[":expect_expired_by"] = n(expectation.expired_by)
    if expectation.dead_lettered:
        clauses.append("attribute_exists(dead_lettered_at)")
    return " AND ".join(clauses), values
