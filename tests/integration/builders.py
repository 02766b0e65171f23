"""Builders for integration tests: submissions persisted through the real core."""

from __future__ import annotations

import uuid
from typing import Any

from htcgrid_core.models import DispatchBatch, Submission
from htcgrid_core.resources import GridResources
from htcgrid_core.submissions import dispatch_submission, persist_submission


def submission(
    session_id: str,
    payloads: list[Any],
    token: str | None = None,
    result_queue_url: str | None = None,
    **task_fields: Any,
) -> Submission:
    return Submission(
        session_id=session_id,
        submission_token=token or uuid.uuid4().hex,
        tasks=[{"payload": {"inline": p}, **task_fields} for p in payloads],  # type: ignore[misc]
        result_queue_url=result_queue_url,
    )


def persist(
    grid: GridResources,
    session_id: str,
    payloads: list[Any],
    trace_header: str | None = None,
    **fields: Any,
) -> DispatchBatch:
    return persist_submission(submission(session_id, payloads, **fields), grid, trace_header)


def submit(
    grid: GridResources, session_id: str, payloads: list[Any], **fields: Any
) -> DispatchBatch:
    """Persist and dispatch, as the submit workflow does."""
    batch = persist(grid, session_id, payloads, **fields)
    dispatch_submission(batch, grid)
    return batch
