"""What the agent knows of the sessions it runs tasks for: whether they were cancelled.

One strongly consistent read per session per heartbeat interval at most, however many of its
tasks the agent runs: cancellation costs nothing on the happy path.
"""

from __future__ import annotations

import threading
import time

from htcgrid_core.models import SessionFlags
from htcgrid_core.table import TaskTable


class SessionWatch:
    """A cache of sessions' cancellation flags, refreshed after ``max_age_s``."""

    def __init__(self, table: TaskTable, max_age_s: float) -> None:
        self._table = table
        self._max_age_s = max_age_s
        self._flags: dict[str, tuple[float, SessionFlags]] = {}
        self._lock = threading.Lock()

    def flags(self, session_id: str) -> SessionFlags:
        """The session's flags, read again if the cached copy is older than ``max_age_s``."""
        now = time.monotonic()
        with self._lock:
            cached = self._flags.get(session_id)
        if cached is not None and now - cached[0] < self._max_age_s:
            return cached[1]
        flags = self._table.session_flags(session_id)
        with self._lock:
            self._flags[session_id] = (now, flags)
            # Forget sessions not seen for a long while, so a long-lived agent stays small.
            for stale in [
                s for s, (at, _) in self._flags.items() if now - at > 100 * self._max_age_s
            ]:
                del self._flags[stale]
        return flags
