"""Task records and submission records in the task table.

Every lifecycle transition is one conditional UpdateItem built from a ``lifecycle.Expectation``;
a failed condition raises ``TransitionRejected``. Batch reads and writes retry their
unprocessed items with backoff (botocore retries the throttled requests themselves).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from htcgrid_core import aws, keys
from htcgrid_core.errors import RetryableError, TransitionRejected
from htcgrid_core.lifecycle import (
    Expectation,
    expect_cancellable,
    expect_claimable,
    expect_failed_by,
    expect_holder,
    expect_redrivable,
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
from htcgrid_core.ports import Completion, SubmissionRecord, SubmissionStage
from htcgrid_core.table.base import TableAccess
from htcgrid_core.table.codec import (
    SUMMARY_PROJECTION,
    Item,
    condition_for,
    decode_record,
    decode_summary,
    encode_record,
    errors_value,
    n,
    s,
    text,
)
from htcgrid_core.table.sessions import SessionRecords

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Keys per page when a session is deleted: ten BatchWriteItem requests between time checks.
SESSION_KEYS_PAGE = 250
#: An attempt still PERSISTING after this long died (the submission function times out at 30 s):
#: a retry may take over.
PERSISTING_STALE_AFTER_S = 90

UNFINISHED_STATES = (TaskState.PENDING, TaskState.RUNNING)
FINISHED_STATES = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)

#: When an attempt may take a submission's record: no attempt reached a stage (a record without
#: one only holds a failure the workflow recorded), or one died while PERSISTING.
_TAKEABLE = "attribute_not_exists(stage) OR (stage = :persisting AND started_at < :stale)"


def _takeable_values(now: float) -> dict[str, Any]:
    return {
        ":persisting": s(SubmissionStage.PERSISTING),
        ":stale": n(now - PERSISTING_STALE_AFTER_S),
    }


def _stage_reached(old: Item, submission_token: str) -> SubmissionStage:
    """The stage an earlier attempt reached, from the record that refused this one; while that
    attempt is still persisting, ``RetryableError``: two attempts writing the same tasks at
    once could reset one that the other already dispatched."""
    stage = SubmissionStage(old["stage"]["S"])
    if stage is SubmissionStage.PERSISTING:
        raise RetryableError(f"submission {submission_token} is being persisted by another attempt")
    return stage


class TaskTable(TableAccess):
    """Typed access to the task table's task and submission records; ``sessions`` holds the
    session-level records (registry, counters, tombstones) of the same table. Thread-safe: it
    holds only a boto3 client and a name."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        super().__init__(client, table_name)
        self.sessions = SessionRecords(client, table_name)

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
                    "stage": s(SubmissionStage.PERSISTING),
                    "task_count": n(task_count),
                    "started_at": n(now),
                },
                ConditionExpression=_TAKEABLE,
                ExpressionAttributeValues=_takeable_values(now),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as failure:
            old: Item = dict(failure.response.get("Item", {}))  # type: ignore[call-overload]
            return _stage_reached(old, submission_token)
        return None

    def persist_at_once(
        self,
        session_id: str,
        submission_token: str,
        records: Sequence[TaskRecord],
        now: float,
        dispatch_deadline: float,
        expires_at: int | None,
        content_sha256: str,
    ) -> SubmissionStage | None:
        """Write a small submission's records and its submission record at ``PERSISTED`` in one
        transaction: ``begin_submission``, ``put_new_tasks`` and ``mark_persisted`` in one
        round trip instead of three, at 2 write units per item instead of 1.

        Returns None when this call persisted it, else the stage an earlier attempt reached (as
        ``begin_submission``: nothing is written then, so no task that may have started is
        rewritten); raises ``RetryableError`` while another attempt is persisting it or when
        DynamoDB cancels the transaction for a conflict or throttling.
        """
        submission: Item = {
            **keys.submission_key(session_id, submission_token),
            "stage": s(SubmissionStage.PERSISTED),
            "task_count": n(len(records)),
            "started_at": n(now),
            "lease_shard": s(keys.dispatch_shard(submission_token)),
            "lease_expires_at": n(dispatch_deadline),
            "content_sha256": s(content_sha256),
        }
        if expires_at is not None:
            submission["expires_at"] = n(expires_at)
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self._name,
                    "Item": submission,
                    "ConditionExpression": _TAKEABLE,
                    "ExpressionAttributeValues": _takeable_values(now),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            *({"Put": {"TableName": self._name, "Item": encode_record(r)}} for r in records),
        ]
        try:
            self._client.transact_write_items(TransactItems=items)
        except self._client.exceptions.TransactionCanceledException as cancelled:
            reasons = cancelled.response.get("CancellationReasons") or [{}]
            first = reasons[0]
            if first.get("Code") != "ConditionalCheckFailed":
                raise RetryableError(
                    f"submission {submission_token}: transaction cancelled "
                    f"({', '.join(sorted({r.get('Code', '?') for r in reasons} - {'None'}))})"
                ) from None
            return _stage_reached(dict(first.get("Item", {})), submission_token)
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
            ExpressionAttributeValues={":stage": s(stage)},
        )

    def put_new_tasks(self, records: Sequence[TaskRecord]) -> None:
        """Write new task records in batches of 25.

        Unconditional by design (BatchWriteItem takes no conditions): callers only write tasks
        that no message can have reached yet (see ``begin_submission``).
        """
        self._batch_write(
            [{"PutRequest": {"Item": encode_record(r)}} for r in records], "task writes"
        )

    def mark_persisted(
        self,
        session_id: str,
        submission_token: str,
        dispatch_deadline: float,
        expires_at: int | None,
        content_sha256: str | None,
    ) -> bool:
        """PERSISTING -> PERSISTED: True if this call made the move, False if another attempt
        had made it already. The PERSISTED submission is filed in the ``leases`` index under a
        dispatch shard by ``dispatch_deadline`` until ``advance_submission`` removes it: the
        reaper finds the ones never dispatched there (``stranded_submissions``). A failure an
        earlier attempt recorded is cleared."""
        update = (
            "SET stage = :persisted, lease_shard = :dispatch_shard, lease_expires_at = :deadline"
        )
        values: dict[str, Any] = {
            ":persisted": s(SubmissionStage.PERSISTED),
            ":persisting": s(SubmissionStage.PERSISTING),
            ":dispatch_shard": s(keys.dispatch_shard(submission_token)),
            ":deadline": n(dispatch_deadline),
        }
        if expires_at is not None:
            update += ", expires_at = :expires"
            values[":expires"] = n(expires_at)
        if content_sha256 is not None:
            update += ", content_sha256 = :content"
            values[":content"] = s(content_sha256)
        try:
            self._client.update_item(
                TableName=self._name,
                Key=keys.submission_key(session_id, submission_token),
                UpdateExpression=update + " REMOVE failed_error, failed_cause, failed_at",
                ConditionExpression="stage = :persisting",
                ExpressionAttributeValues=values,
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def record_rejection(
        self,
        session_id: str,
        submission_token: str,
        error: Exception,
        now: float,
        expires_at: int | None,
    ) -> None:
        """Note on a submission's record why the grid refused it (a record without a stage:
        a new submission to a retry with the same token)."""
        update = "SET failed_error = :error, failed_cause = :cause, failed_at = :now"
        values: dict[str, Any] = {
            ":error": s(type(error).__name__),
            ":cause": s(str(error)),
            ":now": n(now),
        }
        if expires_at is not None:
            update += ", expires_at = :expires"
            values[":expires"] = n(expires_at)
        self._client.update_item(
            TableName=self._name,
            Key=keys.submission_key(session_id, submission_token),
            UpdateExpression=update,
            ExpressionAttributeValues=values,
        )

    def persisted_content(self, session_id: str, submission_token: str) -> str | None:
        """The SHA-256 of the tasks a submission token was persisted with (None if not
        recorded)."""
        item = self._client.get_item(
            TableName=self._name,
            Key=keys.submission_key(session_id, submission_token),
            ConsistentRead=True,
            ProjectionExpression="content_sha256",
        ).get("Item", {})
        return text(item, "content_sha256")

    def submission(self, session_id: str, submission_token: str) -> SubmissionRecord | None:
        """A submission's record, strongly consistent (None if there is none)."""
        found = self.submissions([(session_id, submission_token)])
        return found[0] if found else None

    def submissions(self, submissions: Sequence[tuple[str, str]]) -> list[SubmissionRecord]:
        """The records that exist of ``(session_id, submission_token)`` pairs (strongly
        consistent, 100 per request)."""
        items = self.get_items([keys.submission_key(sid, token) for sid, token in submissions])
        return [
            SubmissionRecord(
                session_id=item["pk"]["S"].removeprefix("session#"),
                submission_token=item["sk"]["S"].removeprefix("submission#"),
                stage=SubmissionStage(stage) if (stage := text(item, "stage")) else None,
                task_count=int(item["task_count"]["N"]) if "task_count" in item else 0,
                failed_error=text(item, "failed_error"),
                expires_at=int(item["expires_at"]["N"]) if "expires_at" in item else None,
            )
            for item in items
        ]

    def stranded_submissions(
        self, shard: int, now: float, limit: int
    ) -> tuple[list[tuple[str, str]], bool]:
        """Up to ``limit`` ``(session_id, submission_token)`` of one dispatch shard of the
        ``leases`` index whose dispatch deadline passed before ``now``, and whether the shard
        holds more. The index is eventually consistent: read the records before acting."""
        response = self._client.query(
            TableName=self._name,
            IndexName=keys.LEASES_INDEX,
            KeyConditionExpression="lease_shard = :shard AND lease_expires_at < :now",
            ExpressionAttributeValues={":shard": s(keys.dispatch_partition(shard)), ":now": n(now)},
            Limit=limit,
        )
        found = [
            (item["pk"]["S"].removeprefix("session#"), item["sk"]["S"].removeprefix("submission#"))
            for item in response.get("Items", [])
        ]
        return found, "LastEvaluatedKey" in response

    def submission_keys(self, session_id: str) -> list[Item]:
        """Keys of a session's submission records (its partition, the session record aside),
        for deleting them."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": keys.session_key(session_id)["pk"]},
            ProjectionExpression="pk, sk",
        )
        return [{"pk": i["pk"], "sk": i["sk"]} for i in items if i["sk"]["S"] != "session"]

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
                ":running": s(TaskState.RUNNING),
                ":lease": s(lease_token),
                ":shard": s(keys.lease_shard(task_id)),
                ":expires": n(lease_expires_at),
                ":now": n(now),
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
            {":pending": s(TaskState.PENDING)},
        )

    def extend_lease(self, completion: Completion, lease_expires_at: float) -> None:
        """Push a held lease's expiry forward; rejected once the lease was lost."""
        self._transition(
            completion.session_id,
            completion.task_id,
            "extend lease",
            expect_holder(completion.attempt, completion.lease_token),
            "SET lease_expires_at = :expires",
            {":expires": n(lease_expires_at)},
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
                ":succeeded": s(TaskState.SUCCEEDED),
                ":result": s(result.model_dump_json()),
                ":now": n(now),
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
            ":target": s(target),
            ":error": {"L": [s(error.model_dump_json())]},
            ":none": {"L": []},
        }
        if target is TaskState.PENDING:
            update += ", attempt = attempt + :one"
            values[":one"] = n(1)
        else:
            update += ", finished_at = :now"
            values[":now"] = n(now)
        if failure.cause is FailureCause.DEAD_LETTERED:
            update += ", dead_lettered_at = :now"
            values[":now"] = n(now)
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
                    ":errors": errors_value(compacted),
                    ":count": n(len(compacted)),
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
            expect_redrivable(attempt),
            "SET #state = :pending, attempt = attempt + :one, max_attempts = :max "
            "REMOVE finished_at, dead_lettered_at",
            {
                ":pending": s(TaskState.PENDING),
                ":one": n(1),
                ":max": n(max(max_attempts, attempt + 1)),
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
                ":shard": s(keys.lease_partition(shard)),
                ":now": n(now),
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
            {":cancelled": s(TaskState.CANCELLED), ":now": n(now)},
        )

    # -- session flags ---------------------------------------------------------------------------

    def flag_session(self, session_id: str, now: float, *, whole_session: bool) -> None:
        """Record on the session that it (or some of its tasks) was cancelled, for agents."""
        update = "ADD task_cancels :one SET flagged_at = :now"
        if whole_session:
            update += ", cancelled_at = if_not_exists(cancelled_at, :now)"
        self._client.update_item(
            TableName=self._name,
            Key=keys.session_key(session_id),
            UpdateExpression=update,
            ExpressionAttributeValues={":one": n(1), ":now": n(now)},
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

    def count_states(self, session_id: str) -> dict[TaskState, int]:
        """How many of a session's tasks are in each state (reads every shard's keys + state,
        several shards at once)."""

        def shard_states(shard: int) -> list[Item]:
            return self._query_all(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s(keys.shard_partition(session_id, shard))},
                ProjectionExpression="#state",
                ExpressionAttributeNames={"#state": "state"},
            )

        counts = dict.fromkeys(TaskState, 0)
        for items in aws.in_parallel(shard_states, range(keys.SESSION_SHARDS)):
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
        values: dict[str, Any] = {f":state{i}": s(state) for i, state in enumerate(states)}
        values[":pk"] = s(keys.shard_partition(session_id, shard))
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
        items, key = self._page_in_states(
            session_id, shard, start_key, limit, tuple(states or TaskState), SUMMARY_PROJECTION
        )
        return [decode_summary(item) for item in items], key

    def session_keys(
        self, session_id: str, shard: int, start_key: Item | None
    ) -> tuple[list[Item], Item | None]:
        """One page (``SESSION_KEYS_PAGE`` keys) of the keys of a shard's task records, for
        deleting a session: a deleter checks its time budget between pages."""
        extra: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
        response = self._client.query(
            TableName=self._name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": s(keys.shard_partition(session_id, shard))},
            ProjectionExpression="pk, sk",
            Limit=SESSION_KEYS_PAGE,
            **extra,
        )
        page = [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
        return page, response.get("LastEvaluatedKey")
