"""Capped exponential back-off, the one formula every retry of the grid waits by: a re-sent
batch call (``aws.back_off``), a failed task's next attempt (``lifecycle.retry_delay_s``), the
agent's fetches after AWS errors and its slots' restarts. Pure code."""

from __future__ import annotations

import random


def backoff_s(attempt: int, *, base_s: float, cap_s: float, jitter: bool = True) -> float:
    """Seconds to wait after try ``attempt`` (0 for the first) failed: ``base_s * 2**attempt``,
    at most ``cap_s``; with full ``jitter`` (the default) a uniform draw below that, so that
    many callers failing together do not come back as one wave."""
    bound = min(cap_s, base_s * 2.0 ** min(attempt, 64))
    return bound * random.random() if jitter else bound  # noqa: S311 - jitter, not cryptography
