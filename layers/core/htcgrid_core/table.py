"""The task table: task records and submission records in one DynamoDB table.

Every lifecycle transition is one conditional UpdateItem built from a ``lifecycle.Expectation``;
a failed condition raises ``TransitionRejected``. Batch reads and writes retry their
unprocessed items with backoff (botocore retries the throttled requests themselves).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from htcgrid_core import aws, keys
from htcgrid_core.errors import RetryableError, TransitionRejected
from htcgrid_core.lifecycle import (
    Expectation,
    expect_cancellable,
    expect_claimable,
    expect_failed_by,
    expect_holder,
)
from htcgrid_core.models import (
    AttemptFailure,
    Data,
    FailureCause,
    SessionFlags,
    TaskError,
    TaskRecord,
    TaskState,
    TaskSummary,
    compact_history,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]

_DATA: TypeAdapter[Data] = TypeAdapter(Data)
#: Keys per page when a session is deleted: ten BatchWriteItem requests between time checks.
SESSION_KEYS_PAGE = 250
#: BatchWriteItem and BatchGetItem limits.
_WRITE_BATCH, _GET_BATCH = 25, 100
#: How many times unprocessed batch items are re-sent before the call counts as throttled.
_BATCH_RETRIES = 10


#: An attempt still PERSISTING after this long died (the submission function times out at 30 s):
#: a retry may take over.
PERSISTING_STALE_AFTER_S = 90


UNFINISHED_STATES = (TaskState.PENDING, TaskState.RUNNING)
FINISHED_STATES = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


class SubmissionStage(StrEnum):
    """How far a submission got; a retried submission resumes from here."""

    PERSISTING = "PERSISTING"
    PERSISTED = "PERSISTED"
    DISPATCHED = "DISPATCHED"


@dataclass(frozen=True)
class Completion:
    """A finished attempt as an agent reports it."""

    session_id: str
    task_id: str
    attempt: int
    lease_token: str | None


def _n(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _encode_data(data: Data) -> str:
    return data.model_dump_json()


def encode_record(record: TaskRecord) -> Item:
    """The DynamoDB item of a task record."""
    item: Item = {
        **keys.task_key(record.session_id, record.task_id),
        "session_id": _s(record.session_id),
        "state": _s(record.state),
        "attempt": _n(record.attempt),
        "max_attempts": _n(record.max_attempts),
        "priority": _n(record.priority),
        "timeout_s": _n(record.timeout_s),
        "payload": _s(_encode_data(record.payload)),
        "submitted_at": _n(record.submitted_at),
    }
    if record.result is not None:
        item["result"] = _s(_encode_data(record.result))
    if record.errors:
        item["errors"] = {"L": [_s(e.model_dump_json()) for e in record.errors]}
    for name in ("started_at", "finished_at", "lease_expires_at"):
        value = getattr(record, name)
        if value is not None:
            item[name] = _n(value)
    for name in ("lease_token", "result_queue_url"):
        value = getattr(record, name)
        if value is not None:
            item[name] = _s(value)
    if record.expires_at is not None:
        item["expires_at"] = _n(record.expires_at)  # the table's TTL attribute
    return item


def decode_record(item: Item) -> TaskRecord:
    """The task record held in a DynamoDB item."""

    def num(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    result = text("result")
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
        started_at=num("started_at"),
        finished_at=num("finished_at"),
        lease_token=text("lease_token"),
        lease_expires_at=num("lease_expires_at"),
        result_queue_url=text("result_queue_url"),
        expires_at=int(item["expires_at"]["N"]) if "expires_at" in item else None,
    )


def condition_for(expectation: Expectation) -> tuple[str, dict[str, Any]]:
    """The ConditionExpression and values that enforce an expectation."""
    values: dict[str, Any] = {}
    states = sorted(expectation.states)
    for i, state in enumerate(states):
        values[f":expect_s{i}"] = _s(state)
    clauses = [f"#state IN ({', '.join(f':expect_s{i}' for i in range(len(states)))})"]
    if expectation.attempt is not None:
        clauses.append("attempt = :expect_attempt")
        values[":expect_attempt"] = _n(expectation.attempt)
    if expectation.lease_token is not None:
        clauses.append("lease_token = :expect_lease")
        values[":expect_lease"] = _s(expectation.lease_token)
    if expectation.expired_by is not None:
        clauses.append("(#state <> :expect_running OR lease_expires_at < :expect_expired_by)")
        values[":expect_running"] = _s(TaskState.RUNNING)
        values[":expect_expired_by"] = _n(expectation.expired_by)
    if expectation.dead_lettered:
        clauses.append("attribute_exists(dead_lettered_at)")
    return " AND ".join(clauses), values


class TaskTable:
    """Typed access to the task table. Thread-safe: it holds only a boto3 client and a name."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._name = table_name

    # -- submissions ---------------------------------------------------------------------------

    def begin_submission(
        self, session_id: str, submission_token: str, task_count: int, now: float
    ) -> SubmissionStage | None:
        """Take ownership of persisting a submission, unless an attempt got further.

        Returns None when this attempt owns it (a new submission, or one whose earlier attempt
        died while persisting), else the stage an earlier attempt reached: the caller resumes
        from there, so a retry never rewrites a task that may have started. Raises
        ``RetryableError`` while another attempt is persisting it right now: two attempts
        writing the same tasks at once could reset one that the other already dispatched.
        """
        try:
            self._client.put_item(
                TableName=self._name,
                Item={
                    **keys.submission_key(session_id, submission_token),
                    "stage": _s(SubmissionStage.PERSISTING),
                    "task_count": _n(task_count),
                    "started_at": _n(now),
                },
                # A record without a stage only holds a failure the workflow recorded.
                ConditionExpression="attribute_not_exists(stage) OR "
                "(stage = :persisting AND started_at < :stale)",
                ExpressionAttributeValues={
                    ":persisting": _s(SubmissionStage.PERSISTING),
                    ":stale": _n(now - PERSISTING_STALE_AFTER_S),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as failure:
            old: Item = dict(failure.response.get("Item", {}))  # type: ignore[call-overload]
            stage = SubmissionStage(old["stage"]["S"])
            if stage is SubmissionStage.PERSISTING:
                raise RetryableError(
                    f"submission {submission_token} is being persisted by another attempt"
                ) from None
            return stage
        return None

    def advance_submission(
        self, session_id: str, submission_token: str, stage: SubmissionStage
    ) -> None:
        """Move a submission record to ``stage`` (idempotent: re-setting a stage is harmless).
        A failure an earlier attempt recorded is cleared: this attempt got further. So is the
        dispatch deadline that files a PERSISTED submission for the reaper's sweep."""
        self._client.update_item(
            TableName=self._name,
            Key=keys.submission_key(session_id, submission_token),
            UpdateExpression="SET stage = :stage REMOVE failed_error, failed_cause, failed_at, "
            "lease_shard, lease_expires_at",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":stage": _s(stage)},
        )

    def put_new_tasks(self, records: Sequence[TaskRecord]) -> None:
        """Write new task records in batches of 25.

        Unconditional by design (BatchWriteItem takes no conditions): callers only write tasks
        that no message can have reached yet (see ``begin_submission``).
        """
        self._batch_write(
            [{"PutRequest": {"Item": encode_record(r)}} for r in records], "task writes"
        )

    def _batch_write(self, requests: Sequence[Any], what: str) -> None:
        """BatchWriteItem ``requests``, 25 per call and several calls at once, resending what
        DynamoDB left unprocessed with backoff (botocore retries only requests that failed as
        a whole)."""

        def write(batch: list[Any]) -> None:
            for attempt in range(_BATCH_RETRIES):
                response = self._client.batch_write_item(RequestItems={self._name: batch})
                batch = list(response.get("UnprocessedItems", {}).get(self._name, []))
                if not batch:
                    return
                aws.pause_before_resend(attempt)
            raise RetryableError(f"{len(batch)} {what} still unprocessed (throttled)")

        aws.in_parallel(
            write,
            [list(requests[i : i + _WRITE_BATCH]) for i in range(0, len(requests), _WRITE_BATCH)],
        )

    # -- lifecycle transitions -----------------------------------------------------------------

    def _transition(
        self,
        session_id: str,
        task_id: str,
        name: str,
        expectation: Expectation,
        update: str,
        values: dict[str, Any],
        *,
        return_new: bool = False,
    ) -> TaskRecord | None:
        condition, condition_values = condition_for(expectation)
        names = {"#state": "state"}
        if "#result" in update:  # RESULT is a DynamoDB reserved word
            names["#result"] = "result"
        try:
            # ReturnValues NONE on the hot path: callers know the outcome of a write that
            # succeeded. The retry path asks for the new item (same write units) to rebuild the
            # task's next message without a read.
            response = self._client.update_item(
                TableName=self._name,
                Key=keys.task_key(session_id, task_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**values, **condition_values},
                ReturnValues="ALL_NEW" if return_new else "NONE",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as failure:
            old: Item = dict(failure.response.get("Item", {}))  # type: ignore[call-overload]
            current = decode_record(old) if "state" in old else None
            raise TransitionRejected(task_id, name, current) from None
        return decode_record(dict(response["Attributes"])) if return_new else None

    def claim(
        self,
        session_id: str,
        task_id: str,
        attempt: int,
        lease_token: str,
        lease_expires_at: float,
        now: float,
    ) -> None:
        """PENDING -> RUNNING with a lease: only one worker wins a given attempt."""
        self._transition(
            session_id,
            task_id,
            "claim",
            expect_claimable(attempt),
            "SET #state = :running, lease_token = :lease, lease_expires_at = :expires, "
            "lease_shard = :shard, started_at = :now",
            {
                ":running": _s(TaskState.RUNNING),
                ":lease": _s(lease_token),
                ":shard": _s(keys.lease_shard(task_id)),
                ":expires": _n(lease_expires_at),
                ":now": _n(now),
            },
        )

    def release(self, completion: Completion) -> None:
        """Hand a leased task back: RUNNING -> PENDING at the same attempt, lease removed, so the
        next delivery of its message can claim it."""
        self._transition(
            completion.session_id,
            completion.task_id,
            "release",
            expect_holder(completion.attempt, completion.lease_token),
            "SET #state = :pending REMOVE lease_token, lease_expires_at, lease_shard",
            {":pending": _s(TaskState.PENDING)},
        )

    def extend_lease(self, completion: Completion, lease_expires_at: float) -> None:
        """Push a held lease's expiry forward; rejected once the lease was lost."""
        self._transition(
            completion.session_id,
            completion.task_id,
            "extend lease",
            expect_holder(completion.attempt, completion.lease_token),
            "SET lease_expires_at = :expires",
            {":expires": _n(lease_expires_at)},
        )

    def record_success(self, completion: Completion, result: Data, now: float) -> None:
        """Record an attempt's result, only if the caller still holds the attempt.

        A duplicate delivery, a late worker whose lease was taken over or a cancelled task gets
        ``TransitionRejected``: a result is recorded exactly once.
        """
        self._transition(
            completion.session_id,
            completion.task_id,
            "record success",
            expect_holder(completion.attempt, completion.lease_token),
            "SET #state = :succeeded, #result = :result, finished_at = :now "
            "REMOVE lease_token, lease_expires_at, lease_shard",
            {
                ":succeeded": _s(TaskState.SUCCEEDED),
                ":result": _s(_encode_data(result)),
                ":now": _n(now),
            },
        )

    def record_failure(self, failure: AttemptFailure, target: TaskState, now: float) -> TaskRecord:
        """Record a failed attempt and move the task to ``target``: PENDING at the next attempt,
        or FAILED (``lifecycle.state_after_failure`` decides). Every attempt's error is kept
        (beyond the first and the last ten, without its message: ``_compact_errors``).
        What the write expects depends on who saw the failure (``lifecycle.expect_failed_by``);
        it names the attempt, so a decision made on a read of the task cannot land on a task
        that moved on since. Returns the task as it now is, for the retry's next message or the
        failure's notice."""
        error = failure.error
        update = "SET #state = :target, errors = list_append(if_not_exists(errors, :none), :error)"
        values: dict[str, Any] = {
            ":target": _s(target),
            ":error": {"L": [_s(error.model_dump_json())]},
            ":none": {"L": []},
        }
        if target is TaskState.PENDING:
            update += ", attempt = attempt + :one"
            values[":one"] = _n(1)
        else:
            update += ", finished_at = :now"
            values[":now"] = _n(now)
        if failure.cause is FailureCause.DEAD_LETTERED:
            update += ", dead_lettered_at = :now"
            values[":now"] = _n(now)
        update += " REMOVE lease_token, lease_expires_at, lease_shard"
        record = self._transition(
            failure.session_id,
            failure.task_id,
            "record failure",
            expect_failed_by(failure.cause, failure.attempt, failure.lease_token, now),
            update,
            values,
            return_new=True,
        )
        assert record is not None  # return_new always yields the item
        return self._compact_errors(record)

    def _compact_errors(self, record: TaskRecord) -> TaskRecord:
        """Keep a task's error history far below DynamoDB's 400 KB item limit (an append cannot
        also rewrite older entries, so this is a second write, made only once the history
        outgrew what is kept whole: ``models.compact_history``). It expects the history as
        just written; a failure recorded meanwhile compacts it in turn."""
        compacted = compact_history(record.errors)
        if compacted == record.errors:
            return record
        try:
            self._client.update_item(
                TableName=self._name,
                Key=keys.task_key(record.session_id, record.task_id),
                UpdateExpression="SET errors = :errors",
                ConditionExpression="size(errors) = :count",
                ExpressionAttributeValues={
                    ":errors": {"L": [_s(e.model_dump_json()) for e in compacted]},
                    ":count": _n(len(compacted)),
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return record  # another failure was appended since: its own write compacts
        return record.model_copy(update={"errors": compacted})

    def redrive(self, session_id: str, task_id: str, attempt: int, max_attempts: int) -> TaskRecord:
        """A task FAILED by the DLQ sweep gets one more attempt: FAILED -> PENDING at
        ``attempt + 1`` (its budget raised to cover it). Only dead-lettered failures qualify, so
        a redrive can never resurrect a task that failed on its own errors or a finished one."""
        record = self._transition(
            session_id,
            task_id,
            "redrive",
            Expectation(states=frozenset({TaskState.FAILED}), attempt=attempt, dead_lettered=True),
            "SET #state = :pending, attempt = attempt + :one, max_attempts = :max "
            "REMOVE finished_at, dead_lettered_at",
            {
                ":pending": _s(TaskState.PENDING),
                ":one": _n(1),
                ":max": _n(max(max_attempts, attempt + 1)),
            },
            return_new=True,
        )
        assert record is not None  # return_new always yields the item
        return record

    def expired_leases(
        self, shard: int, now: float, start_key: Item | None, limit: int
    ) -> tuple[list[AttemptFailure], Item | None]:
        """Leases of one ``leases`` index shard that expired before ``now``, oldest first, as
        the failures the reaper reports (a page of at most ``limit``, and where to go on)."""
        kwargs: dict[str, Any] = {}
        if start_key is not None:
            kwargs["ExclusiveStartKey"] = start_key
        response = self._client.query(
            TableName=self._name,
            IndexName=keys.LEASES_INDEX,
            KeyConditionExpression="lease_shard = :shard AND lease_expires_at < :now",
            ExpressionAttributeValues={
                ":shard": _s(f"lease#{shard:02d}"),
                ":now": _n(now),
            },
            Limit=limit,
            **kwargs,
        )
        failures = [
            AttemptFailure(
                session_id=item["session_id"]["S"],
                task_id=item["sk"]["S"],
                attempt=int(item["attempt"]["N"]),
                max_attempts=int(item["max_attempts"]["N"]),
                lease_token=item["lease_token"]["S"],
                cause=FailureCause.LEASE_EXPIRED,
                error=TaskError(
                    type="LeaseExpired",
                    message=(
                        "the worker running this attempt stopped renewing its lease "
                        f"(expired at {float(item['lease_expires_at']['N']):.0f}): it died or "
                        "lost its connection"
                    ),
                    attempt=int(item["attempt"]["N"]),
                    at=now,
                ),
            )
            for item in response.get("Items", [])
        ]
        return failures, response.get("LastEvaluatedKey")

    def cancel(self, session_id: str, task_id: str, now: float) -> None:
        """Any unfinished task -> CANCELLED."""
        self._transition(
            session_id,
            task_id,
            "cancel",
            expect_cancellable(),
            "SET #state = :cancelled, finished_at = :now "
            "REMOVE lease_token, lease_expires_at, lease_shard",
            {":cancelled": _s(TaskState.CANCELLED), ":now": _n(now)},
        )

    # -- sessions ----------------------------------------------------------------------------------

    def flag_session(self, session_id: str, now: float, *, whole_session: bool) -> None:
        """Record on the session that it (or some of its tasks) was cancelled, for agents."""
        update = "ADD task_cancels :one SET flagged_at = :now"
        if whole_session:
            update += ", cancelled_at = if_not_exists(cancelled_at, :now)"
        self._client.update_item(
            TableName=self._name,
            Key=keys.session_key(session_id),
            UpdateExpression=update,
            ExpressionAttributeValues={":one": _n(1), ":now": _n(now)},
        )

    def session_flags(self, session_id: str) -> SessionFlags:
        """The session's cancellation flags (strongly consistent)."""
        item = self._client.get_item(
            TableName=self._name, Key=keys.session_key(session_id), ConsistentRead=True
        ).get("Item", {})
        return SessionFlags(
            cancelled="cancelled_at" in item, has_cancelled_tasks="task_cancels" in item
        )

    def page_unfinished(
        self, session_id: str, shard: int, start_key: Item | None, limit: int
    ) -> tuple[list[str], Item | None]:
        """Up to ``limit`` ids of a shard's unfinished tasks, from ``start_key``, and where to
        resume."""
        items, key = self._page_in_states(
            session_id, shard, start_key, limit, UNFINISHED_STATES, projection="sk"
        )
        return [item["sk"]["S"] for item in items], key

    # -- reads -----------------------------------------------------------------------------------

    def get_tasks(self, tasks: Iterable[tuple[str, str]]) -> dict[tuple[str, str], TaskRecord]:
        """The records that exist of ``(session_id, task_id)`` pairs from any sessions, keyed by
        the pair (``get_records`` for each session's tasks)."""
        by_session: dict[str, list[str]] = {}
        for session_id, task_id in tasks:
            by_session.setdefault(session_id, []).append(task_id)
        return {
            (session_id, task_id): record
            for session_id, task_ids in by_session.items()
            for task_id, record in self.get_records(session_id, task_ids).items()
        }

    def get_records(self, session_id: str, task_ids: Iterable[str]) -> dict[str, TaskRecord]:
        """The records of the named tasks that exist (strongly consistent, 100 per request)."""
        ids = list(dict.fromkeys(task_ids))
        items = self.get_items([keys.task_key(session_id, t) for t in ids], what="task reads")
        return {record.task_id: record for record in map(decode_record, items)}

    def get_items(
        self, item_keys: Sequence[Item], *, consistent: bool = True, what: str = "reads"
    ) -> list[Item]:
        """The items that exist of ``item_keys`` (BatchGetItem, 100 keys per request), resending
        what DynamoDB left unprocessed with backoff."""
        found: list[Item] = []
        for start in range(0, len(item_keys), _GET_BATCH):
            pending: dict[str, Any] = {
                self._name: {
                    "Keys": list(item_keys[start : start + _GET_BATCH]),
                    "ConsistentRead": consistent,
                }
            }
            for attempt in range(_BATCH_RETRIES):
                response = self._client.batch_get_item(RequestItems=pending)
                found.extend(response.get("Responses", {}).get(self._name, []))
                pending = dict(response.get("UnprocessedKeys") or {})
                if not pending:
                    break
                aws.pause_before_resend(attempt)
            else:
                raise RetryableError(f"{what} still unprocessed (throttled)")
        return found

    def _query_shard(
        self, session_id: str, shard: int, projection: str | None, start_key: Item | None
    ) -> tuple[list[Item], Item | None]:
        kwargs: dict[str, Any] = {
            "TableName": self._name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(keys.shard_partition(session_id, shard))},
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
            kwargs["ExpressionAttributeNames"] = {"#state": "state"}
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        response = self._client.query(**kwargs)
        return list(response.get("Items", [])), response.get("LastEvaluatedKey")

    def _shard_items(self, session_id: str, shard: int, projection: str | None) -> list[Item]:
        items: list[Item] = []
        start: Item | None = None
        while True:
            page, start = self._query_shard(session_id, shard, projection, start)
            items.extend(page)
            if not start:
                return items

    def count_states(self, session_id: str) -> dict[TaskState, int]:
        """How many of a session's tasks are in each state (reads every shard's keys + state)."""
        counts = dict.fromkeys(TaskState, 0)
        with ThreadPoolExecutor(max_workers=8) as pool:
            shards = pool.map(
                lambda shard: self._shard_items(session_id, shard, "#state"),
                range(keys.SESSION_SHARDS),
            )
            for items in shards:
                for item in items:
                    counts[TaskState(item["state"]["S"])] += 1
        return counts

    def page_finished(
        self, session_id: str, shard: int, start_key: Item | None, limit: int
    ) -> tuple[list[TaskRecord], Item | None]:
        """Up to ``limit`` finished tasks of one shard, from ``start_key``, and where to resume."""
        items, key = self._page_in_states(session_id, shard, start_key, limit, FINISHED_STATES)
        return [decode_record(item) for item in items], key

    def _page_in_states(
        self,
        session_id: str,
        shard: int,
        start_key: Item | None,
        limit: int,
        states: tuple[TaskState, ...],
        projection: str | None = None,
    ) -> tuple[list[Item], Item | None]:
        """One page of a shard's items in ``states``: ``limit`` items read at most."""
        values: dict[str, Any] = {f":state{i}": _s(state) for i, state in enumerate(states)}
        values[":pk"] = _s(keys.shard_partition(session_id, shard))
        extra: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
        if projection:
            extra["ProjectionExpression"] = projection
        response = self._client.query(
            TableName=self._name,
            KeyConditionExpression="pk = :pk",
            FilterExpression=f"#state IN ({', '.join(f':state{i}' for i in range(len(states)))})",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=values,
            Limit=limit,
            **extra,
        )
        return list(response.get("Items", [])), response.get("LastEvaluatedKey")

    # -- for the session-level modules (counters, sessions) -------------------------------------

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client: session counters and the session registry share the table."""
        return self._client

    @property
    def name(self) -> str:
        return self._name

    def page_tasks(
        self,
        session_id: str,
        shard: int,
        start_key: Item | None,
        limit: int,
        states: Sequence[TaskState] | None = None,
    ) -> tuple[list[TaskSummary], Item | None]:
        """Up to ``limit`` of a shard's tasks (in ``states``, if given) without their payloads
        or results, from ``start_key``, and where to resume."""
        projection = "sk, #state, attempt, priority, submitted_at, started_at, finished_at"
        items, key = self._page_in_states(
            session_id, shard, start_key, limit, tuple(states or TaskState), projection
        )

        def num(item: Item, name: str) -> float | None:
            return float(item[name]["N"]) if name in item else None

        return [
            TaskSummary(
                task_id=item["sk"]["S"],
                state=TaskState(item["state"]["S"]),
                attempt=int(item["attempt"]["N"]),
                priority=int(item["priority"]["N"]),
                submitted_at=float(item["submitted_at"]["N"]),
                started_at=num(item, "started_at"),
                finished_at=num(item, "finished_at"),
            )
            for item in items
        ], key

    def session_keys(
        self, session_id: str, shard: int, start_key: Item | None
    ) -> tuple[list[Item], Item | None]:
        """One page (``SESSION_KEYS_PAGE`` keys) of the keys of a shard's task records, for
        deleting a session: a deleter checks its time budget between pages."""
        extra: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
        response = self._client.query(
            TableName=self._name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(keys.shard_partition(session_id, shard))},
            ProjectionExpression="pk, sk",
            Limit=SESSION_KEYS_PAGE,
            **extra,
        )
        page = [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
        return page, response.get("LastEvaluatedKey")

    def delete_keys(self, item_keys: Sequence[Item]) -> None:
        """Delete the items with these keys, 25 per BatchWriteItem, resending what DynamoDB
        left unprocessed (deleting a missing item is not an error)."""
        self._batch_write([{"DeleteRequest": {"Key": key}} for key in item_keys], "deletes")
