"""The grid's error types, raised in the core and mapped at the edges.

Lambda functions let these propagate: their class names are the ``ErrorEquals`` names the state
machines retry or catch. The client maps them to its own exceptions; the CLI to exit codes.
"""

from __future__ import annotations

from typing import Any


class HtcGridError(Exception):
    """Base of every error the grid raises on purpose."""


class InvalidSubmissionError(HtcGridError):
    """A submission or document broke a rule; the message names the field and the limit."""


class RetryableError(HtcGridError):
    """A transient failure: the same call may succeed later (throttling, a 5xx, a timeout)."""


class PermanentTaskError(HtcGridError):
    """Raised by a task handler to fail its task at once, without spending more attempts."""


class TransitionRejected(HtcGridError):
    """A conditional lifecycle write found the task in another state, attempt or lease.

    This is the normal outcome for a duplicate delivery or a late worker: the caller must not
    record anything else for that attempt.
    """

    def __init__(self, task_id: str, transition: str, current: Any = None) -> None:
        super().__init__(f"task {task_id}: {transition} rejected (state, attempt or lease changed)")
        self.task_id = task_id
        self.transition = transition
        #: The task's record as the rejected write found it (a ``TaskRecord``), None if absent.
        self.current = current


class PayloadIntegrityError(HtcGridError):
    """A payload or result read from S3 did not match its recorded size or SHA-256."""


class PayloadMissingError(HtcGridError):
    """A stored payload or result is missing, or the reader may not read it. S3 answers 403,
    not 404, for a missing key to a principal without s3:ListBucket (as grid agents are), so
    the two cannot be told apart."""


class PayloadNotJsonError(PayloadIntegrityError):
    """A payload or result read from S3 matched its size and SHA-256 but is not JSON (UTF-8):
    the stored object is not what its writer declared."""


class QueueMissingError(HtcGridError):
    """A queue named by URL does not exist: a session's result queue, deleted when the
    session was closed."""


class TaskNotFoundError(HtcGridError):
    """No task with that id exists in the session."""
