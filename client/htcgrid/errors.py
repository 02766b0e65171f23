"""The client's exceptions: what can go wrong from a user's point of view."""

from __future__ import annotations


class GridError(Exception):
    """Base of every error the client raises."""


class GridNotFoundError(GridError):
    """The grid could not be found (no such stack, no local grid running, missing outputs)."""


class SubmissionFailedError(GridError):
    """The submit workflow rejected or failed a submission. ``error`` is the error name the
    workflow recorded (e.g. ``InvalidSubmissionError``), ``cause`` its message."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class QueryFailedError(GridError):
    """The status function rejected a query."""


class ResultsTimeoutError(GridError):
    """Results did not all arrive within the time given."""


class ResultsIncompleteError(GridError):
    """A session ran out of outstanding tasks before every submitted task's result was yielded
    (``Grid.map`` raises it rather than end early)."""
