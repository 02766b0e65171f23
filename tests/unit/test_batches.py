"""The client's split of payloads into submissions: every chunk fits what the grid accepts, and
the input is read lazily."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import JsonValue

from htcgrid.batches import chunks
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.models import (
    MAX_TASKS_PER_SUBMISSION,
    Data,
    InlineData,
    StoredData,
    Submission,
    TaskSpec,
)
from htcgrid_core.payloads import payload_key
from htcgrid_core.settings import GridSettings
from htcgrid_core.submissions import dispatch_batch

SESSION = "s" * 48
URL = "https://sqs.us-east-1.amazonaws.com/123456789012/" + "q" * 80
THRESHOLD = 16384


def as_submission(token: str, payloads: list[JsonValue], stored: list[bool]) -> Submission:
    """The submission the client makes of a chunk (stored payloads referenced, not uploaded)."""
    specs = []
    for payload, is_stored in zip(payloads, stored, strict=True):
        data: Data = InlineData(inline=payload)
        if is_stored:  # named by its SHA-256, as the client names it
            key = payload_key(SESSION, "f" * 64)
            data = StoredData(s3_key=key, size=5 * 1024**3, sha256="0" * 64)
        specs.append(TaskSpec(payload=data, priority=2, timeout_s=43200, max_attempts=100))
    return Submission(session_id=SESSION, submission_token=token, tasks=specs, result_queue_url=URL)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("tiny", 1),
        ("digits, where spaces between items add most", [1] * 2000),
        ("non-ASCII, escaped six bytes a character", "é" * 2000),
        ("just inline", "x" * (THRESHOLD - 2)),
        ("stored", "x" * (THRESHOLD + 1)),
    ],
)
def test_every_chunk_fits_the_grids_limit_for_the_workflows_state(
    name: str, payload: JsonValue
) -> None:
    made = list(chunks([payload] * 3000, inline_threshold_bytes=THRESHOLD, result_queue_url=URL))
    assert sum(len(c) for c in made) == 3000
    for chunk in made:
        assert len(chunk) <= MAX_TASKS_PER_SUBMISSION
        token = f"{'t' * 56}.{chunk.number}"
        # The grid's own check: raises if the persist step's output would be too large.
        dispatch_batch(as_submission(token, chunk.payloads, chunk.stored), GridSettings(), 0.0)
    # And chunks are not needlessly small: the first holds most of what fits.
    if name == "tiny":
        assert len(made[0]) > 300


def test_chunks_read_the_payloads_as_they_go() -> None:
    read = 0

    def payloads() -> Iterator[JsonValue]:
        nonlocal read
        for i in range(5000):
            read += 1
            yield {"i": i}

    stream = chunks(payloads(), inline_threshold_bytes=THRESHOLD, result_queue_url=None)
    first = next(stream)
    assert first.first == 0
    assert read == len(first) + 1  # the payload that did not fit, and no more
    second = next(stream)
    assert (second.number, second.first) == (1, len(first))


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (float("nan"), "Out of range float"),
        (float("inf"), "Out of range float"),
        ({"when": object()}, "not JSON serializable"),
        ({"name": "caf\udce9.txt"}, "lone surrogate"),
        ({"caf\udce9": 1}, "lone surrogate"),
    ],
    ids=["NaN", "infinity", "an object", "a lone surrogate", "a lone surrogate in a key"],
)
def test_a_payload_json_cannot_hold_is_named_by_its_index(payload: JsonValue, why: str) -> None:
    stream = chunks([1, 2, payload], inline_threshold_bytes=THRESHOLD, result_queue_url=None)
    with pytest.raises(InvalidSubmissionError, match=rf"payloads\[2\] .*{why}"):
        list(stream)


def test_a_payload_above_the_largest_the_grid_stores_is_named_by_its_index() -> None:
    # (5 GiB on a grid: S3's largest single PUT; a smaller limit here)
    payloads = [{"x": 1}, "y" * 1000, "y" * 998]
    stream = chunks(
        payloads, inline_threshold_bytes=THRESHOLD, result_queue_url=None, max_payload_bytes=1000
    )
    with pytest.raises(
        InvalidSubmissionError, match=r"^payloads\[1\]: 1002 bytes .* the largest payload is 1000"
    ):
        list(stream)
    fits = chunks(
        payloads[::2],
        inline_threshold_bytes=THRESHOLD,
        result_queue_url=None,
        max_payload_bytes=1000,
    )
    assert [len(chunk) for chunk in fits] == [2]


def test_unicode_payloads_are_fine_and_sized_as_the_grid_sizes_them() -> None:
    payload = {"name": "café ☃ 𝄞", "€": ["ü" * 10]}
    (chunk,) = chunks([payload], inline_threshold_bytes=THRESHOLD, result_queue_url=None)
    assert chunk.payloads == [payload]


def test_the_same_payloads_make_the_same_chunks() -> None:
    # A resubmission with the same token then names the same tasks.
    payloads: list[JsonValue] = [{"i": i, "pad": "x" * (i % 700)} for i in range(4000)]

    def split() -> list[tuple[int, int, int]]:
        made = chunks(payloads, inline_threshold_bytes=THRESHOLD, result_queue_url=URL)
        return [(c.number, c.first, len(c)) for c in made]

    assert split() == split()
    assert len(split()) > 1
