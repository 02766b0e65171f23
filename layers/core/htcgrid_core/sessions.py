"""A session's own records: its submitted count and registry entry, listing recent sessions,
and deleting a session with everything it stored.

The session record (``session#<session>`` / ``session``) carries, besides the cancellation
flags, the number of tasks submitted, when the session was created, and a ``registry_shard``.
The table's sparse ``sessions`` index is keyed by (``registry_shard``, ``created_at``): only
session records carry those attributes, so listing the newest sessions reads
``REGISTRY_SHARDS`` short index pages, never the table. Later submissions change neither
attribute, so they cost the index nothing.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from htcgrid_core import keys
from htcgrid_core.counters import SessionCounters, counter_keys, expiry
from htcgrid_core.models import (
    DeleteReport,
    SessionsList,
    SessionsQuery,
    SessionStatus,
    TasksPage,
    TasksQuery,
    TaskSummary,
)
from htcgrid_core.paging import across_shards, decode_position, encode_position, finite
from htcgrid_core.payloads import session_prefix
from htcgrid_core.table import SubmissionStage, TaskTable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from htcgrid_core.resources import GridResources

Item = dict[str, Any]

#: Partitions of the ``sessions`` index: new sessions spread over them, and listing reads each.
REGISTRY_SHARDS = 4
SESSIONS_INDEX = "sessions"
#: A deleted session leaves its record as a tombstone this long (flagged cancelled, so agents
#: acknowledge its leftover messages without running them), then TTL removes it.
TOMBSTONE_S = 86400
#: Shards deleted at once: DynamoDB takes the parallel batches, the client's pool is 64.
DELETE_PARALLELISM = 8
_S3_DELETE_BATCH = 1000

#: A submission still PERSISTED this long after its tasks were written was never dispatched:
#: every execution of the submit workflow that could dispatch it has ended (an Express
#: execution lasts 5 minutes at most, the client's retries a minute or two more). The reaper
#: then sends its tasks' messages itself.
DISPATCH_DEADLINE_S = 600

#: Progress of a deletion: (records deleted so far, objects deleted so far).
DeleteProgress = Callable[[int, int], None]


def registry_shard(session_id: str) -> str:
    return f"sessions#{zlib.crc32(session_id.encode()) % REGISTRY_SHARDS}"


def record_persisted(
    grid: GridResources,
    session_id: str,
    submission_token: str,
    task_count: int,
    now: float,
    content_sha256: str | None = None,
) -> bool:
    """Move a submission PERSISTING -> PERSISTED and, if this call made that move, count its
    tasks on the session record (registering the session on its first submission).

    Exactly one attempt of a submission wins the conditional move, so tasks are counted once
    per submission token; returns False when another attempt had already moved it. If the
    process dies between the two writes the count stays short (see ``counters``).

    The PERSISTED submission is filed in the table's ``leases`` index under a dispatch shard,
    by its dispatch deadline, until dispatching it removes the entry: the reaper finds the
    ones never dispatched there, without a scan. ``content_sha256`` (of its tasks) is kept so
    a resubmission with the same token can be told apart from one of other tasks.
    """
    table = grid.table
    expires_at = expiry(grid.settings.result_retention_days, now)
    update = "SET stage = :persisted, lease_shard = :dispatch_shard, lease_expires_at = :deadline"
    values: dict[str, Any] = {
        ":persisted": {"S": SubmissionStage.PERSISTED},
        ":persisting": {"S": SubmissionStage.PERSISTING},
        ":dispatch_shard": {"S": keys.dispatch_shard(submission_token)},
        ":deadline": {"N": repr(now + DISPATCH_DEADLINE_S)},
    }
    if expires_at is not None:
        update += ", expires_at = :expires"
        values[":expires"] = {"N": str(expires_at)}
    if content_sha256 is not None:
        update += ", content_sha256 = :content"
        values[":content"] = {"S": content_sha256}
    try:
        table.client.update_item(
            TableName=table.name,
            Key=keys.submission_key(session_id, submission_token),
            UpdateExpression=update + " REMOVE failed_error, failed_cause, failed_at",
            ConditionExpression="stage = :persisting",
            ExpressionAttributeValues=values,
        )
    except table.client.exceptions.ConditionalCheckFailedException:
        return False
    session_update = (
        "ADD submitted :n SET created_at = if_not_exists(created_at, :now), "
        "registry_shard = if_not_exists(registry_shard, :shard), last_submitted_at = :now"
    )
    session_values: dict[str, Any] = {
        ":n": {"N": str(task_count)},
        ":now": {"N": repr(now)},
        ":shard": {"S": registry_shard(session_id)},
    }
    if expires_at is not None:
        # Each submission extends the session record's retention, as its tasks' records.
        session_update += ", expires_at = :expires"
        session_values[":expires"] = {"N": str(expires_at)}
    table.client.update_item(
        TableName=table.name,
        Key=keys.session_key(session_id),
        UpdateExpression=session_update,
        ExpressionAttributeValues=session_values,
    )
    return True


def persisted_content(grid: GridResources, session_id: str, submission_token: str) -> str | None:
    """The SHA-256 of the tasks a submission token was persisted with (None if not recorded)."""
    item = grid.table.client.get_item(
        TableName=grid.table.name,
        Key=keys.submission_key(session_id, submission_token),
        ConsistentRead=True,
        ProjectionExpression="content_sha256",
    ).get("Item", {})
    return item["content_sha256"]["S"] if "content_sha256" in item else None


def record_rejection(
    grid: GridResources, session_id: str, submission_token: str, error: Exception, now: float
) -> None:
    """Note on a submission's record why the grid refused it, for whoever reads the session
    later. Only a submission whose ids are valid gets a record, and the record expires with
    the session's retention: refused submissions leave no lasting junk. A record without a
    stage is a new submission to a retry with the same token."""
    expires_at = expiry(grid.settings.result_retention_days, now)
    update = "SET failed_error = :error, failed_cause = :cause, failed_at = :now"
    values: dict[str, Any] = {
        ":error": {"S": type(error).__name__},
        ":cause": {"S": str(error)},
        ":now": {"N": repr(now)},
    }
    if expires_at is not None:
        update += ", expires_at = :expires"
        values[":expires"] = {"N": str(expires_at)}
    grid.table.client.update_item(
        TableName=grid.table.name,
        Key=keys.submission_key(session_id, submission_token),
        UpdateExpression=update,
        ExpressionAttributeValues=values,
    )


def recent_sessions(
    table: TaskTable, limit: int, before: float | None = None
) -> tuple[list[str], float | None]:
    """The ids of the ``limit`` most recently created sessions (created before ``before``, if
    given), newest first, from one index query per registry shard; and the creation time to
    continue before, None when no older session is left. (A session created in the very
    microsecond of a page's last one would be skipped: ``created_at`` is ``time.time()``.)"""
    found: list[tuple[float, str]] = []
    truncated = False  # some shard stopped at ``limit``: it may hold older sessions
    condition, values = "registry_shard = :shard", {}
    if before is not None:
        condition += " AND created_at < :before"
        values[":before"] = {"N": repr(before)}
    for shard in range(REGISTRY_SHARDS):
        response = table.client.query(
            TableName=table.name,
            IndexName=SESSIONS_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues={":shard": {"S": f"sessions#{shard}"}, **values},
            ScanIndexForward=False,
            Limit=limit,
        )
        found.extend(
            (float(item["created_at"]["N"]), item["pk"]["S"].removeprefix("session#"))
            for item in response.get("Items", [])
        )
        truncated |= "LastEvaluatedKey" in response
    found.sort(reverse=True)
    page = found[:limit]
    more = len(found) > limit or truncated
    return [session_id for _, session_id in page], page[-1][0] if page and more else None


def session_statuses(counters: SessionCounters, session_ids: list[str]) -> list[SessionStatus]:
    """Each session's status from its counters, in the order given."""
    counts = counters.read(session_ids)
    return [counts[session_id].status() for session_id in session_ids]


def _delete_shard(
    table: TaskTable, session_id: str, shard: int, deadline: float | None
) -> tuple[int, bool]:
    """Delete a shard's task records, a page at a time, until done or past ``deadline``
    (monotonic): (records deleted, whether the shard is empty)."""
    deleted = 0
    start: Item | None = None
    while True:
        page, start = table.session_keys(session_id, shard, start)
        table.delete_keys(page)
        deleted += len(page)
        if not start:
            return deleted, True
        if deadline is not None and time.monotonic() > deadline:
            return deleted, False


def _session_partition_keys(table: TaskTable, session_id: str) -> list[Item]:
    """Keys of the session partition's items (submission records), the session record aside."""
    found: list[Item] = []
    extra: dict[str, Any] = {}
    while True:
        response = table.client.query(
            TableName=table.name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": keys.session_key(session_id)["pk"]},
            ProjectionExpression="pk, sk",
            **extra,
        )
        found.extend(
            {"pk": item["pk"], "sk": item["sk"]}
            for item in response.get("Items", [])
            if item["sk"]["S"] != "session"
        )
        if "LastEvaluatedKey" not in response:
            return found
        extra = {"ExclusiveStartKey": response["LastEvaluatedKey"]}


def _delete_objects(
    s3: S3Client, bucket: str, session_id: str, progress: Callable[[int], None]
) -> int:
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=session_prefix(session_id)):
        objects: list[Any] = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        for start in range(0, len(objects), _S3_DELETE_BATCH):
            batch = objects[start : start + _S3_DELETE_BATCH]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
            progress(deleted)
    return deleted


def delete_session(
    table: TaskTable,
    s3: S3Client,
    bucket: str,
    session_id: str,
    progress: DeleteProgress | None = None,
    deadline: float | None = None,
) -> DeleteReport:
    """Delete every record and S3 object of a session: task records (all shards in parallel,
    25 per batch), submission records, counters and stored payloads and results.

    With a ``deadline`` (monotonic seconds) it stops deleting task records once past it and
    reports ``done=False``: call it again to go on (deleted records are gone, so each call
    starts where the last one stopped), as the delete function does within its time budget.

    The session is flagged cancelled first, so agents stop starting its tasks; a task still
    running when its record goes cannot record a result (its conditional write finds no
    record). The session record stays as a cancelled tombstone for a day, then expires, so
    messages still queued for the session are acknowledged without running.
    """
    now = time.time()
    records = objects = 0

    def report() -> None:
        if progress is not None:
            progress(records, objects)

    table.flag_session(session_id, now, whole_session=True)
    with ThreadPoolExecutor(max_workers=DELETE_PARALLELISM) as pool:
        shards = [
            pool.submit(_delete_shard, table, session_id, shard, deadline)
            for shard in range(keys.SESSION_SHARDS)
        ]
        emptied = True
        for done in shards:
            count, empty = done.result()
            records += count
            emptied &= empty
            report()
    if not emptied:
        return DeleteReport(
            session_id=session_id, records_deleted=records, objects_deleted=0, done=False
        )
    submissions = _session_partition_keys(table, session_id)
    table.delete_keys(submissions + counter_keys(session_id))
    records += len(submissions)
    report()

    def objects_progress(count: int) -> None:
        nonlocal objects
        objects = count
        report()

    _delete_objects(s3, bucket, session_id, objects_progress)
    table.client.update_item(
        TableName=table.name,
        Key=keys.session_key(session_id),
        UpdateExpression="SET deleted_at = :now, expires_at = :expires "
        "REMOVE submitted, created_at, registry_shard, last_submitted_at",
        ExpressionAttributeValues={
            ":now": {"N": repr(now)},
            ":expires": {"N": str(int(now + TOMBSTONE_S))},
        },
    )
    return DeleteReport(session_id=session_id, records_deleted=records, objects_deleted=objects)


def status_of(
    session_id: str, table: TaskTable, counters: SessionCounters, exact: bool
) -> SessionStatus:
    """A session's counts per state: from its counters (a single batched read), or, if asked
    or if the session has no counters (created before them, or unknown), from every task."""
    if not exact:
        counts = counters.read([session_id])[session_id]
        if counts.found:
            return counts.status()
    return SessionStatus(session_id=session_id, counts=table.count_states(session_id))


def list_tasks(query: TasksQuery, table: TaskTable) -> TasksPage:
    """A page of a session's tasks in the asked states, shard after shard."""

    def tasks_page(
        shard: int, key: Item | None, limit: int
    ) -> tuple[list[TaskSummary], Item | None]:
        return table.page_tasks(query.session_id, shard, key, limit, query.states)

    tasks, token = across_shards(query.session_id, query.next_token, query.limit, tasks_page)
    return TasksPage(tasks=tasks, next_token=token)


def list_sessions(
    query: SessionsQuery, table: TaskTable, counters: SessionCounters
) -> SessionsList:
    """The newest sessions with their counts (from counters)."""
    token = query.next_token
    before = decode_position(token, lambda p: finite(p["before"])) if token else None
    session_ids, older_than = recent_sessions(table, query.limit, before)
    return SessionsList(
        sessions=session_statuses(counters, session_ids),
        next_token=None if older_than is None else encode_position({"before": older_than}),
    )
