"""When a session reads results back from the table, and how many: reconciliation's policy.

Notices on the result queue bring results as tasks finish. When they stop while tasks are
outstanding (a notice lost with a crashed agent, taken by someone else, or the queue gone),
the session reconciles: it reads outstanding tasks through the status function. A read of
every outstanding task at each quiet spell is a storm (10^6 reads for 10^6 tasks, just when
the grid is slow), so each turn is bounded and turns back off:

- A turn first reads the session's counters (one small read), which say how many tasks have
  finished. Tasks finished beyond what notices brought since the last turn are what is missing;
  the turn reads that many outstanding tasks, a page (100) at a time, at most ``MAX_PAGES``.
  If the counters show nothing missing, the turn reads nothing, except a single page once the
  wait has backed off to its cap: counters trail a process that died between a task's write
  and its count, so they cannot be the only way to find a result.
- A turn that finds a page's worth of results is followed by another at once; one that finds
  some, after the base wait; one that finds none doubles the wait, up to a cap. A notice
  resets the wait to the base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Tasks per read of the status function (its ``ResultsQuery`` limit).
PAGE = 100
#: Most pages one turn reads.
MAX_PAGES = 10
#: Quiet seconds before the first turn, and the longest wait between turns: with a result
#: queue (notices are the normal path), and without one (turns are the only path).
STREAMING_WAIT_S = (15.0, 300.0)
POLLING_WAIT_S = (1.0, 15.0)


@dataclass
class Reconciliation:
    """The reconcile schedule of one session (monotonic seconds)."""

    streaming: bool
    due_at: float
    wait_s: float
    #: Finished tasks by the counters at the last turn (None before the first).
    finished_mark: int | None = None
    #: Results notices brought since the last turn.
    notified_since_mark: int = 0
    #: Missing results the last turn did not find.
    carried: int = 0

    @classmethod
    def start(cls, now: float, *, streaming: bool) -> Reconciliation:
        base = _waits(streaming)[0]
        return cls(streaming=streaming, due_at=now + base, wait_s=base)

    def notified(self, now: float, results: int) -> None:
        """Notices brought ``results``: the quiet spell starts again."""
        self.notified_since_mark += results
        self.wait_s = _waits(self.streaming)[0]
        self.due_at = now + self.wait_s

    def stream_lost(self, now: float) -> None:
        """The result queue is gone: turns are the only path from now on."""
        self.streaming = False
        self.wait_s = _waits(False)[0]
        self.due_at = now

    def is_due(self, now: float) -> bool:
        return now >= self.due_at

    def pages(self, finished: int, yielded: int, *, forced: bool = False) -> int:
        """Pages to read this turn, given the counters' ``finished`` count and the results
        this session has yielded in all (``forced``: read at least one page)."""
        if self.finished_mark is None:
            missing = finished - yielded
        else:
            missing = finished - self.finished_mark - self.notified_since_mark
        missing = max(0, missing) + self.carried
        self.finished_mark, self.notified_since_mark, self.carried = finished, 0, missing
        wanted = math.ceil(missing / PAGE)
        if wanted == 0 and (forced or self.wait_s >= _waits(self.streaming)[1]):
            wanted = 1
        return min(MAX_PAGES, wanted)

    def turned(self, now: float, found: int) -> None:
        """A turn found ``found`` results: schedule the next one."""
        # Missing results a turn did not find may be elsewhere in the outstanding tasks, or
        # may be other clients' tasks of the session: keep looking, less each fruitless turn.
        self.carried = max(0, self.carried - found) if found else self.carried // 2
        base, cap = _waits(self.streaming)
        if found >= PAGE:
            self.wait_s = base
            self.due_at = now  # more to find: go on at once
            return
        self.wait_s = base if found else min(cap, self.wait_s * 2)
        self.due_at = now + self.wait_s


def _waits(streaming: bool) -> tuple[float, float]:
    return STREAMING_WAIT_S if streaming else POLLING_WAIT_S
