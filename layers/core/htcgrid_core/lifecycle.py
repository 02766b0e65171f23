"""The task state machine: what each transition must find, and where a failed attempt goes.

Pure code, no AWS. ``table`` turns each ``Expectation`` into a DynamoDB ConditionExpression, so
every transition is one conditional write that names the state (and attempt, and lease) it
expects. That is what makes duplicate deliveries, dead workers and late results harmless. The
``expect_*`` builders are the one definition of which transition is legal from where:
``Expectation.admits`` is the same rule in Python, for in-memory stores and tests.

A short task (timeout within the lease threshold) runs without a lease write: the SQS message's
visibility timeout keeps other agents away, and its completion expects PENDING at its attempt.
A long task is claimed first (PENDING -> RUNNING with a lease token); its completion expects
RUNNING with that token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from htcgrid_core.backoff import backoff_s
from htcgrid_core.models import FailureCause, TaskError, TaskRecord, TaskState

PENDING, RUNNING = TaskState.PENDING, TaskState.RUNNING
FAILED = TaskState.FAILED

#: SQS caps a message delay at 15 minutes.
MAX_RETRY_DELAY_S = 900


@dataclass(frozen=True)
class Expectation:
    """What a conditional write requires of the task record before it may change it."""

    states: frozenset[TaskState]
    attempt: int | None = None
    #: If set, a RUNNING task must hold this lease token; a PENDING one needs none.
    lease_token: str | None = None
    #: If set, a RUNNING task's lease must have expired before this time (epoch seconds): a
    #: heartbeat that renewed the lease in time wins over the reaper.
    expired_by: float | None = None
    #: If set, the task must have been FAILED by the DLQ sweep (only those may be redriven).
    dead_lettered: bool = False

    def admits(self, record: TaskRecord | None, *, dead_lettered: bool = False) -> bool:
        """Whether a write expecting this may change ``record`` (None: no such task), as the
        table's condition expression decides it (``table.codec.condition_for``).
        ``dead_lettered``: whether the DLQ sweep FAILED the task (the record does not say)."""
        if record is None or record.state not in self.states:
            return False
        if self.attempt is not None and record.attempt != self.attempt:
            return False
        if self.lease_token is not None and record.lease_token != self.lease_token:
            return False
        if self.expired_by is not None and record.state is RUNNING:
            expires = record.lease_expires_at
            if expires is None or not expires < self.expired_by:
                return False
        return dead_lettered or not self.dead_lettered


def expect_claimable(attempt: int) -> Expectation:
    """A claim takes a PENDING task at the attempt its message carries."""
    return Expectation(states=frozenset({PENDING}), attempt=attempt)


def expect_holder(attempt: int, lease_token: str | None) -> Expectation:
    """Who may finish an attempt: the lease holder, or for an unleased short task, anyone at
    that attempt while it is still PENDING (the first to write wins, duplicates are rejected)."""
    if lease_token is None:
        return Expectation(states=frozenset({PENDING}), attempt=attempt)
    return Expectation(states=frozenset({RUNNING}), attempt=attempt, lease_token=lease_token)


def expect_failed_by(
    cause: FailureCause, attempt: int, lease_token: str | None, now: float
) -> Expectation:
    """What the write recording a failed attempt expects, by who saw the attempt fail.

    The agent running it holds the attempt (as for a success). The reaper acts on a lease that
    expired, and only if it is still the same lease, unrenewed. The DLQ sweep acts on an attempt
    nobody finished: still PENDING, or RUNNING under a lease that expired.
    """
    if cause is FailureCause.HANDLER:
        return expect_holder(attempt, lease_token)
    if cause is FailureCause.LEASE_EXPIRED:
        return Expectation(
            states=frozenset({RUNNING}), attempt=attempt, lease_token=lease_token, expired_by=now
        )
    return Expectation(states=frozenset({PENDING, RUNNING}), attempt=attempt, expired_by=now)


def expect_cancellable() -> Expectation:
    """Only unfinished tasks can be cancelled."""
    return Expectation(states=frozenset({PENDING, RUNNING}))


def expect_redrivable(attempt: int) -> Expectation:
    """A redrive reopens only a task the DLQ sweep FAILED at that attempt: never one that
    failed on its own errors, nor any other finished task."""
    return Expectation(states=frozenset({FAILED}), attempt=attempt, dead_lettered=True)


#: Errors that say a task's worker died, not that the task failed. They spend the task's
#: worker-loss budget (the same ``max_receive_count`` SQS grants a short task's redeliveries),
#: never its attempt budget: a task on spot capacity must not fail because nodes were reclaimed.
WORKER_LOSS_ERRORS = frozenset({"LeaseExpired"})


def state_after_failure(
    errors: Sequence[TaskError], max_attempts: int, max_worker_losses: int
) -> TaskState:
    """Where a task goes after the last of ``errors`` (every error it has had, oldest first):
    PENDING (another attempt) while neither budget is spent and the error allows a retry,
    else FAILED."""
    if not errors[-1].retryable:
        return FAILED
    losses = sum(error.type in WORKER_LOSS_ERRORS for error in errors)
    if len(errors) - losses >= max_attempts or losses >= max_worker_losses:
        return FAILED
    return PENDING


def retry_delay_s(attempt: int, *, base_s: float = 2.0, cap_s: int = MAX_RETRY_DELAY_S) -> int:
    """Delay before attempt ``attempt + 1``: exponential backoff with full jitter, capped.

    Full jitter (a uniform draw below the exponential bound) spreads retries of a failed batch
    so they do not come back as one wave.
    """
    return int(backoff_s(attempt - 1, base_s=base_s, cap_s=float(cap_s)))
