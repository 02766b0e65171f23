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
fast, approximate status; ``TaskStore.count_states`` reads every task for the exact one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from htcgrid_core.keys import COUNTER_SHARDS
from htcgrid_core.models import SessionStatus, TaskState

if TYPE_CHECKING:
    from htcgrid_core.ports import GridPorts, TaskStore

#: The states a counter counts: the terminal ones. PENDING and RUNNING are what is left.
COUNTED_STATES = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


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

    def __init__(self, table: TaskStore, retention_days: int = 0) -> None:
        self._table = table
        self._retention_days = retention_days

    @classmethod
    def from_resources(cls, grid: GridPorts) -> SessionCounters:
        return cls(grid.table, grid.settings.result_retention_days)

    def add(
        self, session_id: str, finished: Mapping[TaskState, int], now: float | None = None
    ) -> None:
        """Add finished-task counts (e.g. ``{TaskState.FAILED: 3}``) to one random shard of the
        session's counters: one write. Call it after the transitions it counts succeeded, with
        the counts of a whole batch at once. Not idempotent: a caller that cannot tell whether
        a write landed must not resend it (undercounting is the documented failure mode,
        overcounting is not)."""
        deltas = {state: n for state, n in finished.items() if n}
        unknown = set(deltas) - set(COUNTED_STATES)
        if unknown:
            raise ValueError(f"only terminal states are counted, not {sorted(unknown)}")
        if not deltas:
            return
        expires_at = expiry(self._retention_days, time.time() if now is None else now)
        shard = random.randrange(COUNTER_SHARDS)  # noqa: S311 - load spreading, not security
        self._table.sessions.add_to_counter(session_id, shard, deltas, expires_at)

    def read(self, session_ids: Iterable[str]) -> dict[str, SessionCounts]:
        """The counters of each session, summed over their shards (a handful of batched
        reads, eventually consistent: a count may lag its write by a second)."""
        ids = list(dict.fromkeys(session_ids))
        counts = {session_id: SessionCounts(session_id) for session_id in ids}
        for item in self._table.sessions.read_counters(ids):
            session = counts[item.session_id]
            for state in COUNTED_STATES:
                session.finished[state] += item.finished.get(state, 0)
            if item.submitted is not None:
                session.found = True
                session.submitted = item.submitted
                session.created_at = item.created_at
        return counts
