"""Cancelling a session or some of its tasks.

The cancel function first flags the session (so agents stop starting its tasks at once), then
moves each unfinished task to CANCELLED with a conditional write. A task that finished first
keeps its outcome. Agents stop running tasks of a cancelled session or cancelled tasks within
one heartbeat, and a late result of a cancelled task is rejected by the same conditional writes.
"""

from __future__ import annotations

import time

from htcgrid_core.counters import SessionCounters
from htcgrid_core.errors import TransitionRejected
from htcgrid_core.models import CancelReport, CancelRequest, TaskState
from htcgrid_core.paging import across_shards
from htcgrid_core.ports import Key, TaskStore
from htcgrid_core.settings import get_settings


def _cancel_one(table: TaskStore, session_id: str, task_id: str, now: float) -> bool:
    """Cancel one task; False if it finished (or is unknown) before the cancel reached it."""
    try:
        table.cancel(session_id, task_id, now)
    except TransitionRejected:
        return False
    return True


def cancel(
    request: CancelRequest, table: TaskStore, counters: SessionCounters | None = None
) -> CancelReport:
    """Cancel the named tasks, or the next ``limit`` unfinished tasks of the whole session.
    The tasks this call cancelled are added to the session's counters, in one write."""
    now = time.time()
    counters = counters or SessionCounters(table, get_settings().result_retention_days)
    table.flag_session(request.session_id, now, whole_session=request.task_ids is None)
    if request.task_ids is not None:
        ids = list(dict.fromkeys(request.task_ids))
        done = sum(_cancel_one(table, request.session_id, t, now) for t in ids)
        counters.add(request.session_id, {TaskState.CANCELLED: done})
        return CancelReport(
            session_id=request.session_id, cancelled=done, already_finished=len(ids) - done
        )

    def cancel_page(shard: int, key: Key | None, limit: int) -> tuple[list[str], Key | None]:
        """Cancel a page of unfinished tasks; the ones actually cancelled count to the limit."""
        ids, key = table.page_unfinished(request.session_id, shard, key, limit)
        return [t for t in ids if _cancel_one(table, request.session_id, t, now)], key

    cancelled, token = across_shards(
        request.session_id, request.next_token, request.limit, cancel_page
    )
    counters.add(request.session_id, {TaskState.CANCELLED: len(cancelled)})
    return CancelReport(
        session_id=request.session_id,
        cancelled=len(cancelled),
        already_finished=0,
        next_token=token,
    )
