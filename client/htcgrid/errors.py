"""The client's exceptions: what can go wrong from a user's point of view."""

from __future__ import annotations

from collections.abc import Sequence


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


class PartialSubmissionError(SubmissionFailedError):
    """``submit`` stopped part way: some of its submissions were accepted, the rest not.

    ``task_ids`` are the accepted tasks (in input order; they run, and the session yields
    their results). Resubmit the same payloads with ``submission_token`` to submit the rest:
    the accepted ones are not submitted twice. ``error`` and ``cause`` name what stopped it
    (also the exception's ``__cause__``).
    """

    def __init__(
        self, submission_token: str, task_ids: Sequence[str], failure: BaseException
    ) -> None:
        if isinstance(failure, SubmissionFailedError):
            super().__init__(failure.error, failure.cause)
        else:
            super().__init__(type(failure).__name__, str(failure))
        self.submission_token = submission_token
        self.task_ids = task_ids

    def __str__(self) -> str:
        return (
            f"{self.error}: {self.cause} ({len(self.task_ids)} tasks were accepted; resubmit "
            f"the same payloads with submission_token={self.submission_token!r} for the rest)"
        )


class QueryFailedError(GridError):
    """The status function rejected a query."""


class ResultsTimeoutError(GridError):
    """Results did not all arrive within the time given."""


class ResultsIncompleteError(GridError):
    """A session ran out of outstanding tasks before every submitted task's result was yielded
    (``Grid.map`` raises it rather than end early)."""
