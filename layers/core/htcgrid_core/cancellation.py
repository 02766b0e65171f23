"""Cancelling a session or some of its tasks.

The cancel function first flags the session (so agents stop starting its tasks at once), then
moves each unfinished task to CANCELLED with a conditional write. A task that finished first
keeps its outcome. Agents stop running tasks of a cancelled session or cancelled tasks within
one heartbeat, and a late result of a cancelled task is rejected by the same conditional writes.
"""

from __future__ import annotations

import time

from htcgrid_core import keys
from htcgrid_core.errors import TransitionRejected
from htcgrid_core.models import CancelReport, CancelRequest
from htcgrid_core.results import decode_token, encode_token
from htcgrid_core.table import TaskTable


def _cancel_each(table: TaskTable, session_id: str, task_ids: list[str], now: float) -> int:
    cancelled = 0
    for task_id in task_ids:
        try:
            table.cancel(session_id, task_id, now)
        except TransitionRejected:
            continue  # finished (or unknown) before the cancel reached it
        cancelled += 1
    return cancelled


def cancel(request: CancelRequest, table: TaskTable) -> CancelReport:
    """Cancel the named tasks, or the next ``limit`` unfinished tasks of the whole session."""
    now = time.time()
    table.flag_session(request.session_id, now, whole_session=request.task_ids is None)
    if request.task_ids is not None:
        ids = list(dict.fromkeys(request.task_ids))
        done = _cancel_each(table, request.session_id, ids, now)
        return CancelReport(
            session_id=request.session_id, cancelled=done, already_finished=len(ids) - done
        )
    shard, key = decode_token(request.next_token) if request.next_token else (0, None)
    cancelled = 0
    while shard < keys.SESSION_SHARDS and cancelled < request.limit:
        ids, key = table.page_unfinished(request.session_id, shard, key, request.limit - cancelled)
        cancelled += _cancel_each(table, request.session_id, ids, now)
        if key is None:
            shard += 1
    more = shard < keys.SESSION_SHARDS
    return CancelReport(
        session_id=request.session_id,
        cancelled=cancelled,
        already_finished=0,
        next_token=encode_token(shard, key) if more else None,
    )
