"""The task table's key design.

A session's tasks are spread over ``SESSION_SHARDS`` partition keys, ``<session>#<shard>``, the
shard a stable hash of the task id. One partition key takes at most 1,000 write units/s; a
session writing 20,000 tasks/s at 2 write units each needs 40,000 units/s, so 64 shards leave
headroom (625 units/s each) while a session's status reads stay at 64 small queries.
Session-level records (the session's own, its submissions) live under ``session#<session>``,
its finished-task counters under ``counters#<session>#<shard>``.
"""

from __future__ import annotations

import re
import uuid
import zlib

SESSION_SHARDS = 64
#: Partitions of the sparse ``leases`` index. A heartbeat rewrites its lease's index entry, so
#: 20,000 leases extended every 20 s take 1,000 index writes/s: 16 shards keep each far below
#: a partition's 1,000 writes/s, and the reaper's 16 queries per run stay cheap.
LEASE_SHARDS = 16
#: Name of the task table's sparse index of leases, by shard and expiry.
LEASES_INDEX = "leases"
#: Partitions of the ``leases`` index holding submissions persisted and not yet dispatched, by
#: dispatch deadline (see ``sessions.record_persisted``): the reaper re-dispatches those past it.
DISPATCH_SHARDS = 4
#: Partitions of the sparse ``sessions`` index, keyed by (``registry_shard``, ``created_at``):
#: new sessions spread over them, and listing the newest reads each.
REGISTRY_SHARDS = 4
SESSIONS_INDEX = "sessions"
#: Counter items per session, each its own partition key. 16 keys at 1,000 writes/s each is
#: 16,000 counter writes/s per session, against the few hundred a session finishing 20,000
#: tasks/s makes.
COUNTER_SHARDS = 16
_TASK_ID_NAMESPACE = uuid.UUID("5f0c1f0e-9a43-4c3b-9d0e-8a1f2a6b7c11")
_TASK_ID = re.compile(r"^([0-9a-f]{32})-(0|[1-9][0-9]{0,5})$")


def shard_of(task_id: str) -> int:
    """The shard a task lives in: stable across processes and languages (CRC-32)."""
    return zlib.crc32(task_id.encode()) % SESSION_SHARDS


def task_partition(session_id: str, task_id: str) -> str:
    return shard_partition(session_id, shard_of(task_id))


def shard_partition(session_id: str, shard: int) -> str:
    return f"{session_id}#{shard:02d}"


def lease_partition(shard: int) -> str:
    """The ``leases`` index partition of lease shard ``shard``."""
    return f"lease#{shard:02d}"


def lease_shard(task_id: str) -> str:
    """The ``leases`` index partition a leased task is filed under."""
    return lease_partition(zlib.crc32(task_id.encode()) % LEASE_SHARDS)


def dispatch_partition(shard: int) -> str:
    """The ``leases`` index partition of dispatch shard ``shard``."""
    return f"dispatch#{shard:02d}"


def dispatch_shard(submission_token: str) -> str:
    """The ``leases`` index partition a persisted, undispatched submission is filed under."""
    return dispatch_partition(zlib.crc32(submission_token.encode()) % DISPATCH_SHARDS)


def registry_partition(shard: int) -> str:
    """The ``sessions`` index partition of registry shard ``shard``."""
    return f"sessions#{shard}"


def registry_shard(session_id: str) -> str:
    """The ``sessions`` index partition a session is registered under."""
    return registry_partition(zlib.crc32(session_id.encode()) % REGISTRY_SHARDS)


def task_key(session_id: str, task_id: str) -> dict[str, dict[str, str]]:
    """The DynamoDB key of a task record."""
    return {"pk": {"S": task_partition(session_id, task_id)}, "sk": {"S": task_id}}


def submission_key(session_id: str, submission_token: str) -> dict[str, dict[str, str]]:
    """The DynamoDB key of a submission record (its idempotency record)."""
    return {"pk": {"S": f"session#{session_id}"}, "sk": {"S": f"submission#{submission_token}"}}


def session_key(session_id: str) -> dict[str, dict[str, str]]:
    """The DynamoDB key of a session's own record (cancellation flags)."""
    return {"pk": {"S": f"session#{session_id}"}, "sk": {"S": "session"}}


def counter_key(session_id: str, shard: int) -> dict[str, dict[str, str]]:
    """The DynamoDB key of one of a session's counter items."""
    return {"pk": {"S": f"counters#{session_id}#{shard:02d}"}, "sk": {"S": "counters"}}


def counter_keys(session_id: str) -> list[dict[str, dict[str, str]]]:
    """Every counter item key of a session (for reading or deleting them)."""
    return [counter_key(session_id, shard) for shard in range(COUNTER_SHARDS)]


def submission_digest(session_id: str, submission_token: str) -> str:
    """32 hex digits naming a submission: the stem of its tasks' ids."""
    return uuid.uuid5(_TASK_ID_NAMESPACE, f"{session_id}/{submission_token}").hex


def task_id_for(session_id: str, submission_token: str, index: int) -> str:
    """The id of the ``index``-th task of a submission: ``<submission digest>-<index>``.

    Deterministic, so a retried submission with the same token names the same tasks and
    creates no duplicates. The index in the id lets a client find a task's place among its
    submissions with a record per submission instead of one per task (``parse_task_id``).
    """
    return f"{submission_digest(session_id, submission_token)}-{index}"


def parse_task_id(task_id: str) -> tuple[str, int] | None:
    """The submission digest and index a task id was made of; None for any other id."""
    parsed = _TASK_ID.match(task_id)
    return (parsed[1], int(parsed[2])) if parsed else None
