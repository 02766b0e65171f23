"""What a session has submitted and not yet yielded, in about a bit per task.

A task's id is ``<submission digest>-<index>`` (``htcgrid_core.keys``), so the client keeps one
entry per submission (its digest, size and send time) and a bitmap of the tasks still
outstanding, instead of a string per task: a session of 10^7 tasks, in some 20,000
submissions, takes a few MB, not gigabytes. ``TaskIds`` is the ids of a ``submit`` call in
the same form, a sequence that makes each id when asked.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from htcgrid_core import keys


@dataclass(slots=True)
class Submitted:
    """One submission: its tasks ``<digest>-0`` .. ``<digest>-<count - 1>``."""

    digest: str
    count: int
    #: When it was sent (epoch seconds, this client's clock).
    sent_at: float
    #: Where its first task stands in its ``submit`` call's input.
    first: int
    #: A bit per task, set while the task's result is outstanding.
    pending: bytearray = field(init=False)
    left: int = field(init=False)

    def __post_init__(self) -> None:
        self.pending = bytearray(b"\xff" * (self.count // 8) + bytes([(1 << self.count % 8) - 1]))
        self.left = self.count

    def is_pending(self, index: int) -> bool:
        return 0 <= index < self.count and bool(self.pending[index >> 3] & (1 << (index & 7)))

    def settle(self, index: int) -> None:
        self.pending[index >> 3] &= ~(1 << (index & 7)) & 0xFF
        self.left -= 1


class Ledger:
    """The tasks a session submitted and the ones whose results are still outstanding."""

    def __init__(self) -> None:
        self._submitted: list[Submitted] = []
        self._by_digest: dict[str, Submitted] = {}
        self.outstanding = 0
        #: Where the round robin of ``next_outstanding`` goes on: a submission and a task.
        self._cursor = (0, 0)

    def add(self, digest: str, count: int, sent_at: float, first: int) -> None:
        """Record a submission's tasks as outstanding; one recorded before (a resubmission with
        the same token) is left as it is, so a result is never expected twice."""
        if digest in self._by_digest:
            return
        submitted = Submitted(digest, count, sent_at, first)
        self._submitted.append(submitted)
        self._by_digest[digest] = submitted
        self.outstanding += count

    def _find(self, task_id: str) -> tuple[Submitted, int] | None:
        parsed = keys.parse_task_id(task_id)
        if parsed is None:
            return None
        submitted = self._by_digest.get(parsed[0])
        return (submitted, parsed[1]) if submitted is not None else None

    def submitted_at(self, task_id: str) -> float | None:
        """When an outstanding task was submitted; None if it is not outstanding here."""
        found = self._find(task_id)
        if found is None or not found[0].is_pending(found[1]):
            return None
        return found[0].sent_at

    def sent_at(self, task_id: str) -> float | None:
        """When a task submitted here was sent, outstanding or not."""
        found = self._find(task_id)
        return None if found is None else found[0].sent_at

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and self.submitted_at(task_id) is not None

    def settle(self, task_id: str) -> None:
        """The task's result was handed over: it is outstanding no more."""
        found = self._find(task_id)
        if found is not None and found[0].is_pending(found[1]):
            found[0].settle(found[1])
            self.outstanding -= 1

    def position(self, task_id: str) -> int | None:
        """Where a task submitted here stands in its ``submit`` call's input."""
        found = self._find(task_id)
        return None if found is None else found[0].first + found[1]

    def next_outstanding(self, count: int) -> list[str]:
        """Up to ``count`` outstanding tasks, round robin in submission order: successive
        calls go on where the last stopped, so they cover every outstanding task."""
        picked: list[str] = []
        total = len(self._submitted)
        if total == 0 or self.outstanding == 0 or count <= 0:
            return picked
        entry, index = self._cursor
        # Each submission once, and the one resumed part way once more from its start.
        for _ in range(total + 1):
            submitted = self._submitted[entry % total]
            while submitted.left and index < submitted.count:
                if submitted.is_pending(index):
                    picked.append(f"{submitted.digest}-{index}")
                index += 1
                if len(picked) == count:
                    self._cursor = (entry % total, index)
                    return picked
            entry, index = entry + 1, 0
        self._cursor = (entry % total, 0)
        return picked


class TaskIds(Sequence[str]):
    """The task ids of a ``submit`` call, in input order, made on demand from its
    submissions' digests and sizes: compares equal to a list of the same ids."""

    def __init__(self, parts: Sequence[tuple[str, int]] = ()) -> None:
        self._digests: list[str] = []
        #: Input position of each submission's first task, and one past the last task.
        self._starts: list[int] = [0]
        for digest, count in parts:
            self.append(digest, count)

    def append(self, digest: str, count: int) -> None:
        self._digests.append(digest)
        self._starts.append(self._starts[-1] + count)

    def __len__(self) -> int:
        return self._starts[-1]

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("task index out of range")
        part = bisect.bisect_right(self._starts, index) - 1
        return f"{self._digests[part]}-{index - self._starts[part]}"

    def __iter__(self) -> Iterator[str]:
        for part, digest in enumerate(self._digests):
            for index in range(self._starts[part + 1] - self._starts[part]):
                yield f"{digest}-{index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TaskIds):
            return self._digests == other._digests and self._starts == other._starts
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable while a submit call builds it

    def __repr__(self) -> str:
        return f"TaskIds({len(self)} tasks in {len(self._digests)} submissions)"
