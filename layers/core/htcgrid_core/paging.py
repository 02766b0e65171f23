"""Paging: opaque position tokens, and one loop through a session's shards for every paged
call that walks them.

A token is only base64 JSON, so a caller can forge one. A forged token is refused naming
``next_token`` before any read: in particular a position in a shard is the key DynamoDB
resumes from, and a key that is not one of this session's shard's task keys would otherwise
reach DynamoDB (which refuses it with a ValidationException no caller can act on).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from htcgrid_core import keys
from htcgrid_core.errors import InvalidSubmissionError

T = TypeVar("T")
#: Fetch one page of a shard: (shard, start key, how many at most) -> (items, key to resume).
PageFetcher = Callable[[int, dict[str, Any] | None, int], tuple[list[T], dict[str, Any] | None]]


_NOT_OURS = "next_token: not a token this grid issued"
#: Longest sort key a task record has (a task id).
_MAX_TASK_ID_CHARS = 100


def encode_position(position: dict[str, Any]) -> str:
    """An opaque ``next_token`` holding ``position`` (JSON values)."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def decode_position(token: str, read: Callable[[dict[str, Any]], T]) -> T:
    """What ``read`` makes of the position in a token from ``encode_position``; a token that
    is not one, or whose position ``read`` cannot use, is refused naming the field."""
    try:
        return read(json.loads(base64.urlsafe_b64decode(token.encode())))
    except (ValueError, KeyError, TypeError):
        raise InvalidSubmissionError(_NOT_OURS) from None


def finite(value: Any) -> float:
    """A position's number: NaN and infinities (which JSON as Python reads it allows) are no
    position, and DynamoDB refuses them."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(number)
    return number


def encode_token(shard: int, key: dict[str, Any] | None) -> str:
    """A position in a session's shards, for a paged call to resume from."""
    return encode_position({"shard": shard, "key": key})


def _shard_key(session_id: str, shard: int, key: Any) -> dict[str, Any] | None:
    """``key`` if it is a task record's key in the session's ``shard`` (or None): exactly
    the ``pk`` and ``sk`` a query of that shard returns as its ``LastEvaluatedKey``."""
    if key is None:
        return None
    expected_pk = {"S": keys.shard_partition(session_id, shard)}
    if not isinstance(key, dict) or set(key) != {"pk", "sk"} or key["pk"] != expected_pk:
        raise ValueError(key)
    sort_key = key["sk"]
    if (
        not isinstance(sort_key, dict)
        or set(sort_key) != {"S"}
        or not isinstance(sort_key["S"], str)
        or not 0 < len(sort_key["S"]) <= _MAX_TASK_ID_CHARS
    ):
        raise ValueError(key)
    return {"pk": expected_pk, "sk": {"S": sort_key["S"]}}


def decode_token(token: str, session_id: str) -> tuple[int, dict[str, Any] | None]:
    """The shard and start key a token from ``encode_token`` holds for ``session_id``'s
    shards; anything else (another session's position, a key of another shape) is refused
    naming ``next_token``."""

    def read(position: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        shard = position["shard"]
        if not isinstance(shard, int) or isinstance(shard, bool):
            raise TypeError(shard)
        if not 0 <= shard < keys.SESSION_SHARDS:
            raise ValueError(shard)
        return shard, _shard_key(session_id, shard, position["key"])

    return decode_position(token, read)


def across_shards(
    session_id: str, next_token: str | None, limit: int, fetch_page: PageFetcher[T]
) -> tuple[list[T], str | None]:
    """Up to ``limit`` items of ``session_id``'s shards, shard after shard from where
    ``next_token`` left off, and the token to continue from (None once every shard is done)."""
    shard, key = decode_token(next_token, session_id) if next_token else (0, None)
    items: list[T] = []
    while shard < keys.SESSION_SHARDS and len(items) < limit:
        page, key = fetch_page(shard, key, limit - len(items))
        items.extend(page)
        if key is None:
            shard += 1
    return items, encode_token(shard, key) if shard < keys.SESSION_SHARDS else None
