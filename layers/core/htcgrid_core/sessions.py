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

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from htcgrid_core import aws, keys
from htcgrid_core.counters import SessionCounters, expiry
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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from htcgrid_core.ports import GridPorts, Key, TaskStore

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


def mark_persisted(
    grid: GridPorts,
    session_id: str,
    submission_token: str,
    now: float,
    content_sha256: str | None = None,
) -> bool:
    """Move a submission PERSISTING -> PERSISTED: True if this call made that move, False when
    another attempt had already made it. Exactly one attempt of a submission wins the
    conditional move, and only that one counts its tasks (:func:`count_submitted`).

    The PERSISTED submission is filed for the reaper's sweep by its dispatch deadline until
    dispatching it removes the entry (``TaskStore.mark_persisted``). ``content_sha256`` (of its
    tasks) is kept so a resubmission with the same token can be told apart from one of other
    tasks.
    """
    expires_at = expiry(grid.settings.result_retention_days, now)
    return grid.table.mark_persisted(
        session_id, submission_token, now + DISPATCH_DEADLINE_S, expires_at, content_sha256
    )


def count_submitted(grid: GridPorts, session_id: str, task_count: int, now: float) -> None:
    """Count a newly persisted submission's tasks on the session record (registering the
    session on its first submission). Called once per submission, by the attempt that made it
    PERSISTED: if the process dies before, the count stays short (see ``counters``). Each
    submission extends the session record's retention, as its tasks' records."""
    expires_at = expiry(grid.settings.result_retention_days, now)
    grid.table.sessions.count_submitted(session_id, task_count, now, expires_at)


def record_rejection(
    grid: GridPorts, session_id: str, submission_token: str, error: Exception, now: float
) -> None:
    """Note on a submission's record why the grid refused it, for whoever reads the session
    later. Only a submission whose ids are valid gets a record, and the record expires with
    the session's retention: refused submissions leave no lasting junk. A record without a
    stage is a new submission to a retry with the same token."""
    expires_at = expiry(grid.settings.result_retention_days, now)
    grid.table.record_rejection(session_id, submission_token, error, now, expires_at)


def recent_sessions(
    table: TaskStore, limit: int, before: float | None = None
) -> tuple[list[str], float | None]:
    """The ids of the ``limit`` most recently created sessions (created before ``before``, if
    given), newest first, from one index query per registry shard; and the creation time to
    continue before, None when no older session is left. (A session created in the very
    microsecond of a page's last one would be skipped: ``created_at`` is ``time.time()``.)"""
    found: list[tuple[float, str]] = []
    truncated = False  # some shard stopped at ``limit``: it may hold older sessions
    for shard in range(keys.REGISTRY_SHARDS):
        page, more = table.sessions.newest(shard, limit, before)
        found.extend(page)
        truncated |= more
    found.sort(reverse=True)
    page = found[:limit]
    more = len(found) > limit or truncated
    return [session_id for _, session_id in page], page[-1][0] if page and more else None


def session_statuses(counters: SessionCounters, session_ids: list[str]) -> list[SessionStatus]:
    """Each session's status from its counters, in the order given."""
    counts = counters.read(session_ids)
    return [counts[session_id].status() for session_id in session_ids]


def _delete_shard(
    table: TaskStore, session_id: str, shard: int, deadline: float | None
) -> tuple[int, bool]:
    """Delete a shard's task records, a page at a time, until done or past ``deadline``
    (monotonic): (records deleted, whether the shard is empty)."""
    deleted = 0
    start: Key | None = None
    while True:
        page, start = table.session_keys(session_id, shard, start)
        table.delete_keys(page)
        deleted += len(page)
        if not start:
            return deleted, True
        if deadline is not None and time.monotonic() > deadline:
            return deleted, False


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
    table: TaskStore,
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
    counted = threading.Lock()

    def delete_shard(shard: int) -> bool:
        nonlocal records
        count, empty = _delete_shard(table, session_id, shard, deadline)
        with counted:  # progress is reported from the pool's threads, one call at a time
            records += count
            report()
        return empty

    emptied = all(aws.in_parallel(delete_shard, range(keys.SESSION_SHARDS), DELETE_PARALLELISM))
    if not emptied:
        return DeleteReport(
            session_id=session_id, records_deleted=records, objects_deleted=0, done=False
        )
    submissions = table.submission_keys(session_id)
    table.delete_keys(submissions + keys.counter_keys(session_id))
    records += len(submissions)
    report()

    def objects_progress(count: int) -> None:
        nonlocal objects
        objects = count
        report()

    _delete_objects(s3, bucket, session_id, objects_progress)
    table.sessions.bury(session_id, now, int(now + TOMBSTONE_S))
    return DeleteReport(session_id=session_id, records_deleted=records, objects_deleted=objects)


def status_of(
    session_id: str, table: TaskStore, counters: SessionCounters, exact: bool
) -> SessionStatus:
    """A session's counts per state: from its counters (a single batched read), or, if asked
    or if the session has no counters (created before them, or unknown), from every task."""
    if not exact:
        counts = counters.read([session_id])[session_id]
        if counts.found:
            return counts.status()
    return SessionStatus(session_id=session_id, counts=table.count_states(session_id))


def list_tasks(query: TasksQuery, table: TaskStore) -> TasksPage:
    """A page of a session's tasks in the asked states, shard after shard."""

    def tasks_page(shard: int, key: Key | None, limit: int) -> tuple[list[TaskSummary], Key | None]:
        return table.page_tasks(query.session_id, shard, key, limit, query.states)

    tasks, token = across_shards(query.session_id, query.next_token, query.limit, tasks_page)
    return TasksPage(tasks=tasks, next_token=token)


def list_sessions(
    query: SessionsQuery, table: TaskStore, counters: SessionCounters
) -> SessionsList:
    """The newest sessions with their counts (from counters)."""
    token = query.next_token
    before = decode_position(token, lambda p: finite(p["before"])) if token else None
    session_ids, older_than = recent_sessions(table, query.limit, before)
    return SessionsList(
        sessions=session_statuses(counters, session_ids),
        next_token=None if older_than is None else encode_position({"before": older_than}),
    )
