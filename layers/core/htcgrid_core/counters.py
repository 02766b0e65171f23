"""Session counters: how many of a session's tasks were submitted and finished, without reading
the tasks.

Finished tasks are counted in ``COUNTER_SHARDS`` items per session, each its own partition key
(``counters#<session>#<nn>``): a writer ADDs a batch of deltas to a random shard, so a session
finishing 20,000 tasks/s in agent flushes of tens of tasks stays far below a key's 1,000
writes/s. Submitted tasks are counted on the session record, by the submission that wins its
PERSISTING -> PERSISTED transition (``sessions.record_persisted``), so a retried submission
never counts twice.

A count is written after the transition it counts, and only by whoever made that transition,
so counts never run ahead; a process that dies in between leaves them behind. They are the
fast, approximate status; ``TaskTable.count_states`` reads every task for the exact one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from htcgrid_core import keys
from htcgrid_core.models import SessionStatus, TaskState
from htcgrid_core.table import TaskTable

if TYPE_CHECKING:
    from htcgrid_core.resources import GridResources

Item = dict[str, Any]

#: Counter items per session. 16 keys at 1,000 writes/s each is 16,000 counter writes/s per
#: session, against the few hundred a session finishing 20,000 tasks/s makes.
COUNTER_SHARDS = 16
#: The states a counter counts: the terminal ones. PENDING and RUNNING are what is left.
COUNTED_STATES = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


def counter_key(session_id: str, shard: int) -> Item:
    """The key of one of a session's counter items."""
    return {"pk": {"S": f"counters#{session_id}#{shard:02d}"}, "sk": {"S": "counters"}}


def counter_keys(session_id: str) -> list[Item]:
    """Every counter item key of a session (for reading or deleting them)."""
    return [counter_key(session_id, shard) for shard in range(COUNTER_SHARDS)]


def expiry(retention_days: int, now: float) -> int | None:
    """The TTL attribute value for an item written now (None: no retention limit)."""
    return int(now + retention_days * 86400) if retention_days > 0 else None


@dataclass
class SessionCounts:
    """A session's counters, summed over their shards."""

    session_id: str
    #: Whether the session record carries a submitted count (sessions created before counters
    #: existed, or unknown ones, have none: count them exactly instead).
    found: bool = False
    submitted: int = 0
    created_at: float | None = None
    finished: dict[TaskState, int] = field(default_factory=lambda: dict.fromkeys(COUNTED_STATES, 0))

    def status(self) -> SessionStatus:
        """The session's status from its counters: PENDING counts every unfinished task."""
        done = sum(self.finished.values())
        counts = {
            TaskState.PENDING: max(0, self.submitted - done),
            TaskState.RUNNING: 0,
            **self.finished,
        }
        return SessionStatus(
            session_id=self.session_id, counts=counts, exact=False, created_at=self.created_at
        )


class SessionCounters:
    """Writes and reads session counters in the task table. Thread-safe."""

    def __init__(self, table: TaskTable, retention_days: int = 0) -> None:
        self._table = table
        self._retention_days = retention_days

    @classmethod
    def from_resources(cls, grid: GridResources) -> SessionCounters:
        return cls(grid.table, grid.settings.result_retention_days)

    def add(
        self, session_id: str, finished: Mapping[TaskState, int], now: float | None = None
    ) -> None:
        """Add finished-task counts (e.g. ``{TaskState.FAILED: 3}``) to one random shard of the
        session's counters: one UpdateItem, 1 write unit. Call it after the transitions it
        counts succeeded, with the counts of a whole batch at once. Not idempotent: a caller
        that cannot tell whether a write landed must not resend it (undercounting is the
        documented failure mode, overcounting is not)."""
        deltas = {state: n for state, n in finished.items() if n}
        unknown = set(deltas) - set(COUNTED_STATES)
        if unknown:
            raise ValueError(f"only terminal states are counted, not {sorted(unknown)}")
        if not deltas:
            return
        names = {f"#c{i}": state.value for i, state in enumerate(deltas)}
        values: dict[str, Any] = {f":c{i}": {"N": str(n)} for i, n in enumerate(deltas.values())}
        update = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas)))
        expires_at = expiry(self._retention_days, time.time() if now is None else now)
        if expires_at is not None:
            update += " SET expires_at = :expires"
            values[":expires"] = {"N": str(expires_at)}
        shard = random.randrange(COUNTER_SHARDS)  # noqa: S311 - load spreading, not security
        self._table.client.update_item(
            TableName=self._table.name,
            Key=counter_key(session_id, shard),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def read(self, session_ids: Iterable[str]) -> dict[str, SessionCounts]:
        """The counters of each session (one BatchGetItem per 5 sessions, eventually
        consistent: a count may lag its write by a second)."""
        ids = list(dict.fromkeys(session_ids))
        counts = {session_id: SessionCounts(session_id) for session_id in ids}
        wanted = [k for s in ids for k in (keys.session_key(s), *counter_keys(s))]
        for item in self._table.get_items(wanted, consistent=False, what="counter reads"):
            pk = item["pk"]["S"]
            if pk.startswith("counters#"):
                session = counts[pk.removeprefix("counters#").rsplit("#", 1)[0]]
                for state in COUNTED_STATES:
                    if state.value in item:
                        session.finished[state] += int(item[state.value]["N"])
            elif "submitted" in item:
                session = counts[pk.removeprefix("session#")]
                session.found = True
                session.submitted = int(item["submitted"]["N"])
                if "created_at" in item:
                    session.created_at = float(item["created_at"]["N"])
        return counts


def add(
    session_id: str,
    finished: Mapping[TaskState, int],
    *,
    grid: GridResources | None = None,
) -> None:
    """Count finished tasks of a session, for callers that made the transitions themselves
    (the retry function failing tasks: ``add(session_id, {TaskState.FAILED: n})``). Uses
    this process's grid resources unless given others. See ``SessionCounters.add``."""
    from htcgrid_core.resources import get_resources  # the composition root, built on use

    SessionCounters.from_resources(grid or get_resources()).add(session_id, finished)
