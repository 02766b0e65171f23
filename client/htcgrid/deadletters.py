"""Operator access to a grid's dead-letter queues: ``htcgrid dlq list`` and ``redrive``.

Needs more than a grid user's rights: attach the stack's ``OperatorPolicy`` (receive, delete
and re-send on the DLQs, and the conditional write that reopens a dead-lettered task).
"""

from __future__ import annotations

from collections.abc import Sequence

from htcgrid.errors import InvalidRequestError, raises_grid_errors
from htcgrid.grid import Grid
from htcgrid_core import deadletters
from htcgrid_core.deadletters import DeadLetter, DeadLetterQueueDepth, RedriveReport
from htcgrid_core.queues import Queues
from htcgrid_core.table import TaskTable


class DeadLetterQueues:
    """The DLQs of one grid (one per priority level)."""

    def __init__(self, grid: Grid) -> None:
        settings = grid.settings
        self._queues = Queues(
            grid.transport.client("sqs"), settings.queue_prefix, settings.priority_levels
        )
        self._table = TaskTable(grid.transport.client("dynamodb"), settings.table_name)

    def _levels(self, priority: int | None) -> Sequence[int]:
        levels = self._queues.priority_levels
        if priority is None:
            return range(levels)
        if not 0 <= priority < levels:
            raise InvalidRequestError(
                f"priority: {priority} is not a priority level of this grid (0 to {levels - 1})",
                "priority",
            )
        return [priority]

    @raises_grid_errors
    def depths(self) -> list[DeadLetterQueueDepth]:
        """Messages in each level's DLQ (visible, and being read right now)."""
        return deadletters.depths(self._queues)

    @raises_grid_errors
    def list(self, priority: int | None = None, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` messages per DLQ (of one level, if given), with their tasks."""
        return deadletters.peek(self._queues, self._table, self._levels(priority), limit)

    @raises_grid_errors
    def redrive(
        self, priority: int | None = None, session_id: str | None = None, limit: int = 1000
    ) -> RedriveReport:
        """Give dead-lettered tasks one more attempt and empty their DLQ messages."""
        return deadletters.redrive(
            self._queues, self._table, self._levels(priority), session_id, limit
        )
