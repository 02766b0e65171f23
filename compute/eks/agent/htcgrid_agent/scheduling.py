"""Which priority queue an agent asks first: strict priority, or priority with anti-starvation.

Strict priority (the default) asks the highest level first on every fetch, so a sustained
high-priority backlog holds lower levels back indefinitely. With a starvation weight ``N`` each
lower level earns one credit per fetch it was not served in; once it has ``N`` it is asked
first, and being served (it had work) spends its credits. A lower level with work therefore
gets a turn at least every ``N + levels - 1`` fetches, and an empty one costs nothing more than
today: the fetch falls through to the next level in the order.

Pure code: no AWS, no clock, no threads (the worker calls it from its one fetcher thread).
"""

from __future__ import annotations

from collections.abc import Iterable


class FetchOrder:
    """The order to ask the priority queues in, fetch after fetch.

    ``weight`` None (or 0) is strict priority: always highest first. Call ``next_order()`` once
    per fetch and ``served()`` with the levels that fetch (or a long poll) brought work from.
    """

    def __init__(self, levels: int, weight: int | None = None) -> None:
        if levels < 1:
            raise ValueError("levels must be at least 1")
        if weight is not None and weight < 0:
            raise ValueError("the starvation weight must be positive (or None: off)")
        self.levels = levels
        self.weight = weight or None
        #: Fetches each level below the top has gone without being served.
        self.credits = [0] * levels

    def next_order(self) -> list[int]:
        """The levels to ask for this fetch, first to last (each level exactly once)."""
        highest_first = list(range(self.levels - 1, -1, -1))
        if self.weight is None:
            return highest_first
        for level in highest_first[1:]:
            self.credits[level] += 1
        # Levels whose turn came go first, the longest-starved first (higher level on a tie).
        due = sorted(
            (level for level in highest_first[1:] if self.credits[level] >= self.weight),
            key=lambda level: (-self.credits[level], -level),
        )
        return due + [level for level in highest_first if level not in due]

    def served(self, levels: Iterable[int]) -> None:
        """Levels that brought work: their turn is spent."""
        for level in levels:
            if 0 <= level < self.levels:
                self.credits[level] = 0
