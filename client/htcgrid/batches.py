"""Splitting a stream of payloads into submissions the submit workflow can carry.

A submission's tasks travel through the workflow's state as one ``DispatchBatch``, which must
stay under ``MAX_DISPATCH_BATCH_BYTES`` (the grid refuses a larger one before writing
anything). Each task costs its payload's JSON (or, above the inline threshold, the reference
to its stored copy), its ``result_queue_url`` and at most ``TASK_STATE_OVERHEAD_BYTES`` more;
a chunk is closed before the next task would take it past the limit, or at
``MAX_TASKS_PER_SUBMISSION``. Chunks are made lazily, one at a time, so a caller streams any
number of payloads while holding only the chunks in flight.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import JsonValue

from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    DISPATCH_BATCH_OVERHEAD_BYTES,
    MAX_DISPATCH_BATCH_BYTES,
    MAX_TASKS_PER_SUBMISSION,
    TASK_STATE_OVERHEAD_BYTES,
)
from htcgrid_core.payloads import to_json_bytes

#: The most a stored payload's reference (S3 key, size, SHA-256) takes in the state, as JSON.
STORED_PAYLOAD_STATE_BYTES = 300


@dataclass(frozen=True)
class Chunk:
    """Payloads for one submission: the ``number``-th of a ``submit`` call (its token is
    ``<token>.<number>``), starting at payload ``first`` of the call."""

    number: int
    first: int
    payloads: list[JsonValue]
    #: Whether each payload's JSON is above the inline threshold (it is stored in S3).
    stored: list[bool]

    def __len__(self) -> int:
        return len(self.payloads)


def state_bytes(value: JsonValue) -> int:
    """Bytes of a JSON value in the workflow's state, measured as the grid measures it."""
    return len(json.dumps(value))


def chunks(
    payloads: Iterable[JsonValue],
    *,
    inline_threshold_bytes: int,
    result_queue_url: str | None,
    max_payload_bytes: int | None = None,
) -> Iterator[Chunk]:
    """``payloads`` in submission-sized chunks, made as the iteration reaches them. A payload
    JSON cannot hold, or whose JSON is above ``max_payload_bytes`` (the largest object the
    grid stores), raises ``InvalidSubmissionError`` naming it (``payloads[<index>]``)."""
    budget = MAX_DISPATCH_BATCH_BYTES - DISPATCH_BATCH_OVERHEAD_BYTES
    per_task = TASK_STATE_OVERHEAD_BYTES + state_bytes(result_queue_url)
    number = first = size = 0
    batch: list[JsonValue] = []
    stored: list[bool] = []
    for index, payload in enumerate(payloads):
        inline_size = len(to_json_bytes(payload, what=f"payloads[{index}]"))
        if max_payload_bytes is not None and inline_size > max_payload_bytes:
            raise InvalidSubmissionError(
                f"payloads[{index}]: {inline_size} bytes of JSON; the largest payload is "
                f"{max_payload_bytes} bytes"
            )
        is_stored = inline_size > inline_threshold_bytes
        cost = per_task + (STORED_PAYLOAD_STATE_BYTES if is_stored else state_bytes(payload))
        if batch and (size + cost > budget or len(batch) == MAX_TASKS_PER_SUBMISSION):
            yield Chunk(number, first, batch, stored)
            number, first, size, batch, stored = number + 1, index, 0, [], []
        batch.append(payload)
        stored.append(is_stored)
        size += cost
    if batch:
        yield Chunk(number, first, batch, stored)
