"""Session-level records in the task table: the session record (submitted count, registry
entry, tombstone) and the session's counter items. The decisions about them (what to count,
when, how to merge the registry's shards) are in ``htcgrid_core.sessions`` and
``htcgrid_core.counters``; this module only reads and writes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from htcgrid_core import keys
from htcgrid_core.models import TaskState
from htcgrid_core.ports import CounterItem
from htcgrid_core.table.base import TableAccess
from htcgrid_core.table.codec import n, number, s


class SessionRecords(TableAccess):
    """The session records and counters of the task table. Thread-safe."""

    def count_submitted(
        self, session_id: str, task_count: int, now: float, expires_at: int | None
    ) -> None:
        """Add ``task_count`` to the session's submitted count, registering the session (its
        creation time and registry shard) on its first submission. Not idempotent: call it
        once per submission (``TaskTable.mark_persisted`` says which call that is)."""
        update = (
            "ADD submitted :n SET created_at = if_not_exists(created_at, :now), "
            "registry_shard = if_not_exists(registry_shard, :shard), last_submitted_at = :now"
        )
        values: dict[str, Any] = {
            ":n": n(task_count),
            ":now": n(now),
            ":shard": s(keys.registry_shard(session_id)),
        }
        if expires_at is not None:
            update += ", expires_at = :expires"
            values[":expires"] = n(expires_at)
        self._client.update_item(
            TableName=self._name,
            Key=keys.session_key(session_id),
            UpdateExpression=update,
            ExpressionAttributeValues=values,
        )

    def newest(
        self, shard: int, limit: int, before: float | None
    ) -> tuple[list[tuple[float, str]], bool]:
        """Up to ``limit`` ``(created_at, session_id)`` of one registry shard, newest first
        (created before ``before``, if given), and whether the shard holds more."""
        condition, values = "registry_shard = :shard", {":shard": s(keys.registry_partition(shard))}
        if before is not None:
            condition += " AND created_at < :before"
            values[":before"] = n(before)
        response = self._client.query(
            TableName=self._name,
            IndexName=keys.SESSIONS_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
        )
        found = [
            (float(item["created_at"]["N"]), item["pk"]["S"].removeprefix("session#"))
            for item in response.get("Items", [])
        ]
        return found, "LastEvaluatedKey" in response

    def bury(self, session_id: str, now: float, expires_at: int) -> None:
        """Leave the session's record as a tombstone: out of the registry, its counts gone,
        deleted by TTL at ``expires_at``."""
        self._client.update_item(
            TableName=self._name,
            Key=keys.session_key(session_id),
            UpdateExpression="SET deleted_at = :now, expires_at = :expires "
            "REMOVE submitted, created_at, registry_shard, last_submitted_at",
            ExpressionAttributeValues={":now": n(now), ":expires": n(expires_at)},
        )

    def add_to_counter(
        self,
        session_id: str,
        shard: int,
        deltas: Mapping[TaskState, int],
        expires_at: int | None,
    ) -> None:
        """ADD ``deltas`` to one counter item of the session: one UpdateItem, 1 write unit."""
        names = {f"#c{i}": state.value for i, state in enumerate(deltas)}
        values: dict[str, Any] = {f":c{i}": n(count) for i, count in enumerate(deltas.values())}
        update = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas)))
        if expires_at is not None:
            update += " SET expires_at = :expires"
            values[":expires"] = n(expires_at)
        self._client.update_item(
            TableName=self._name,
            Key=keys.counter_key(session_id, shard),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def read_counters(self, session_ids: Iterable[str]) -> list[CounterItem]:
        """The session records and counter items that exist of the sessions (one BatchGetItem
        per 5 sessions, eventually consistent: a count may lag its write by a second)."""
        ids = list(dict.fromkeys(session_ids))
        wanted = [k for sid in ids for k in (keys.session_key(sid), *keys.counter_keys(sid))]
        found: list[CounterItem] = []
        for item in self.get_items(wanted, consistent=False, what="counter reads"):
            pk = item["pk"]["S"]
            if pk.startswith("counters#"):
                finished = {
                    state: int(item[state.value]["N"]) for state in TaskState if state.value in item
                }
                session_id = pk.removeprefix("counters#").rsplit("#", 1)[0]
                found.append(CounterItem(session_id=session_id, finished=finished))
            else:
                submitted = item.get("submitted")
                found.append(
                    CounterItem(
                        session_id=pk.removeprefix("session#"),
                        submitted=int(submitted["N"]) if submitted else None,
                        created_at=number(item, "created_at"),
                    )
                )
        return found
