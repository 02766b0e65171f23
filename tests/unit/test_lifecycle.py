"""The task state machine, as pure rules."""

import pytest

from htcgrid_core.lifecycle import (
    LEGAL_TRANSITIONS,
    MAX_RETRY_DELAY_S,
    expect_holder,
    is_legal,
    retry_delay_s,
    state_after_failure,
)
from htcgrid_core.models import TaskError, TaskState


@pytest.mark.parametrize("terminal", [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED])
def test_terminal_states_never_change(terminal: TaskState) -> None:
    assert not any(is_legal(terminal, target) for target in TaskState)
    assert terminal.is_terminal


def test_unfinished_states_can_reach_every_terminal_state() -> None:
    for source in (TaskState.PENDING, TaskState.RUNNING):
        assert {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED} <= LEGAL_TRANSITIONS[
            source
        ]


def errors(*types: str, retryable: bool = True) -> list[TaskError]:
    return [
        TaskError(type=t, message=t, attempt=i + 1, at=0.0, retryable=retryable)
        for i, t in enumerate(types)
    ]


def test_failure_goes_back_to_pending_while_budget_lasts() -> None:
    assert state_after_failure(errors("E"), 3, 5) is TaskState.PENDING
    assert state_after_failure(errors("E", "E"), 3, 5) is TaskState.PENDING
    assert state_after_failure(errors("E", "E", "E"), 3, 5) is TaskState.FAILED


def test_non_retryable_failure_fails_at_once() -> None:
    assert state_after_failure(errors("E", retryable=False), 5, 5) is TaskState.FAILED


def test_dead_workers_spend_their_own_budget_not_the_attempts() -> None:
    lost = "LeaseExpired"
    # three workers lost and one handler error: still within both budgets
    assert state_after_failure(errors(lost, lost, lost, "E"), 2, 5) is TaskState.PENDING
    # the handler's second error spends the attempt budget, however many workers were lost
    assert state_after_failure(errors(lost, "E", lost, "E"), 2, 5) is TaskState.FAILED
    # and losing max_worker_losses workers fails the task (as SQS dead-letters a short task)
    assert state_after_failure(errors(lost, lost, lost), 3, 3) is TaskState.FAILED


def test_unleased_holder_expects_pending_and_leased_holder_expects_its_token() -> None:
    unleased = expect_holder(2, None)
    assert unleased.states == {TaskState.PENDING}
    assert unleased.lease_token is None
    leased = expect_holder(2, "tok")
    assert leased.states == {TaskState.RUNNING}
    assert leased.lease_token == "tok"
    assert leased.attempt == unleased.attempt == 2


def test_retry_delay_is_bounded_by_exponential_backoff_and_cap() -> None:
    for attempt in range(1, 20):
        delays = {retry_delay_s(attempt) for _ in range(50)}
        assert all(0 <= d <= min(MAX_RETRY_DELAY_S, 2 * 2 ** (attempt - 1)) for d in delays)
    assert max(retry_delay_s(30) for _ in range(200)) > 60  # jitter spreads up to the cap
