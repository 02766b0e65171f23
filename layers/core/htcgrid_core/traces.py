"""X-Ray trace headers: read the one a Lambda runs in, make one where there is none.

A task's message carries the trace of its submission so that the agent, its handler and the
retries of the task join that trace. Headers come from places the grid does not control (the
environment Lambda sets, a message, a client), so each is normalised to what the grid passes on
(``Root``, ``Parent``, ``Sampled``) or refused. Pure and light: no X-Ray SDK, no AWS, no
pydantic (a slot's child process imports it).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping

#: An X-Ray trace header as the grid passes it on: the trace's root, the segment that handed the
#: task on, and whether the trace is sampled; nothing else.
TRACE_HEADER_PATTERN = r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}(;Parent=[0-9a-f]{16})?(;Sampled=[01?])?$"
#: Where Lambda puts the invocation's trace header for the function's code and tracing SDKs.
TRACE_HEADER_ENV = "_X_AMZN_TRACE_ID"
#: The header's keys the grid passes on, in X-Ray's order. Others (``Lineage``, which Lambda
#: uses to stop recursive loops, and any future key) stay with the service that set them.
_KEPT = ("Root", "Parent", "Sampled")
#: Longest header read: X-Ray's headers are a few hundred bytes at most.
_MAX_HEADER_CHARS = 1024

_VALID = re.compile(TRACE_HEADER_PATTERN)


def trace_header(text: str | None) -> str | None:
    """``text`` as the grid passes it on (``Root=...;Parent=...;Sampled=...``, keys in that
    order, others dropped), or None if it is absent or names no well-formed trace."""
    if not text or len(text) > _MAX_HEADER_CHARS:
        return None
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, value)
    header = ";".join(f"{key}={fields[key]}" for key in _KEPT if key in fields)
    return header if _VALID.fullmatch(header) else None


def active_trace_header(environ: Mapping[str, str] = os.environ) -> str | None:
    """The trace header of the invocation running now (Lambda sets it per invocation), or
    None outside a traced invocation."""
    return trace_header(environ.get(TRACE_HEADER_ENV))


def new_trace_header(now: float | None = None, *, sampled: bool = False) -> str:
    """A header of a new trace, as X-Ray makes one: the root holds the epoch second in hex and
    96 random bits. Not sampled by default: nothing records a trace the grid starts itself."""
    epoch = int(time.time() if now is None else now)
    return (
        f"Root=1-{epoch:08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};"
        f"Sampled={int(sampled)}"
    )


def trace_root(header: str) -> str:
    """The ``Root`` of a header (the trace's id): what says two headers are one trace."""
    for part in header.split(";"):
        key, _, value = part.partition("=")
        if key == "Root":
            return value
    raise ValueError(f"trace header {header!r} has no Root")
