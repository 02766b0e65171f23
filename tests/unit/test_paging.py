"""Paging tokens: a genuine next_token resumes where its page stopped; anything else a caller
sends is refused naming ``next_token``, before any read."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from htcgrid_core import keys
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.paging import across_shards, decode_position, encode_token, finite


def forged(position: object) -> str:
    """A token made by hand: base64 JSON, as the grid's are."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def shard_key(session_id: str, shard: int, task_id: str = "a" * 32 + "-7") -> dict[str, Any]:
    return {"pk": {"S": keys.shard_partition(session_id, shard)}, "sk": {"S": task_id}}


class Reads:
    """A page fetcher that records what it was asked, and finds nothing."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, dict[str, Any] | None, int]] = []

    def __call__(
        self, shard: int, key: dict[str, Any] | None, limit: int
    ) -> tuple[list[str], dict[str, Any] | None]:
        self.asked.append((shard, key, limit))
        return [], None


def test_a_genuine_token_resumes_at_its_shard_and_key() -> None:
    reads = Reads()
    key = shard_key("s1", 3)
    across_shards("s1", encode_token(3, key), 10, reads)
    assert reads.asked[0] == (3, key, 10)
    assert [shard for shard, _, _ in reads.asked] == list(range(3, keys.SESSION_SHARDS))


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        forged(["shard", 3]),
        forged({"shard": 3}),
        forged({"shard": keys.SESSION_SHARDS, "key": None}),
        forged({"shard": -1, "key": None}),
        forged({"shard": "3", "key": None}),
        forged({"shard": True, "key": None}),
        # A well-formed token whose key DynamoDB would refuse, or read another session from
        forged({"shard": 3, "key": shard_key("another-session", 3)}),
        forged({"shard": 3, "key": shard_key("s1", 4)}),
        forged({"shard": 3, "key": {**shard_key("s1", 3), "state": {"S": "PENDING"}}}),
        forged({"shard": 3, "key": {"pk": shard_key("s1", 3)["pk"]}}),
        forged({"shard": 3, "key": {"pk": {"N": "3"}, "sk": {"S": "t"}}}),
        forged({"shard": 3, "key": {"pk": shard_key("s1", 3)["pk"], "sk": {"N": "1"}}}),
        forged({"shard": 3, "key": shard_key("s1", 3, task_id="")}),
        forged({"shard": 3, "key": shard_key("s1", 3, task_id="t" * 101)}),
        forged({"shard": 3, "key": "s1#03"}),
        forged({"shard": 3, "key": []}),
    ],
    ids=[
        "not base64 JSON",
        "not an object",
        "no key",
        "shard past the last",
        "negative shard",
        "shard as text",
        "shard as a boolean",
        "another session's key",
        "another shard's key",
        "key with an extra attribute",
        "key without a sort key",
        "partition key of another type",
        "sort key of another type",
        "empty sort key",
        "sort key longer than a task id",
        "key as text",
        "key as a list",
    ],
)
def test_a_forged_token_is_refused_naming_next_token_before_any_read(token: str) -> None:
    reads = Reads()
    with pytest.raises(InvalidSubmissionError, match=r"^next_token: "):
        across_shards("s1", token, 10, reads)
    assert reads.asked == []


@pytest.mark.parametrize("before", [float("nan"), float("inf"), float("-inf"), "soon"])
def test_a_position_that_is_no_number_is_refused_naming_next_token(before: object) -> None:
    with pytest.raises(InvalidSubmissionError, match=r"^next_token: "):
        decode_position(forged({"before": before}), lambda p: finite(p["before"]))
    assert decode_position(forged({"before": 1.5}), lambda p: finite(p["before"])) == 1.5
