"""Paging: opaque position tokens, and one loop through a session's shards for every paged
call that walks them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

from htcgrid_core import keys
from htcgrid_core.errors import InvalidSubmissionError

T = TypeVar("T")
#: Fetch one page of a shard: (shard, start key, how many at most) -> (items, key to resume).
PageFetcher = Callable[[int, dict[str, Any] | None, int], tuple[list[T], dict[str, Any] | None]]


_NOT_OURS = "next_token: not a token this grid issued"


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


def encode_token(shard: int, key: dict[str, Any] | None) -> str:
    """A position in a session's shards, for a paged call to resume from."""
    return encode_position({"shard": shard, "key": key})


def decode_token(token: str) -> tuple[int, dict[str, Any] | None]:
    shard, key = decode_position(token, lambda p: (int(p["shard"]), p["key"]))
    if not 0 <= shard < keys.SESSION_SHARDS:
        raise InvalidSubmissionError(_NOT_OURS)
    return shard, key


def across_shards(
    next_token: str | None, limit: int, fetch_page: PageFetcher[T]
) -> tuple[list[T], str | None]:
    """Up to ``limit`` items, shard after shard from where ``next_token`` left off, and the
    token to continue from (None once every shard is done)."""
    shard, key = decode_token(next_token) if next_token else (0, None)
    items: list[T] = []
    while shard < keys.SESSION_SHARDS and len(items) < limit:
        page, key = fetch_page(shard, key, limit - len(items))
        items.extend(page)
        if key is None:
            shard += 1
    return items, encode_token(shard, key) if shard < keys.SESSION_SHARDS else None
