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
from htcgrid_core.models import TaskState


@pytest.mark.parametrize("terminal", [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED])
def test_terminal_states_never_change(terminal: TaskState) -> None:
    assert not any(is_legal(terminal, target) for target in TaskState)
    assert terminal.is_terminal


def test_unfinished_states_can_reach_every_terminal_state() -> None:
    for source in (TaskState.PENDING, TaskState.RUNNING):
        assert {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED} <= LEGAL_TRANSITIONS[
            source
        ]


def test_failure_goes_back_to_pending_while_budget_lasts() -> None:
    assert state_after_failure(1, 3, retryable=True) is TaskState.PENDING
    assert state_after_failure(2, 3, retryable=True) is TaskState.PENDING
    assert state_after_failure(3, 3, retryable=True) is TaskState.FAILED


def test_non_retryable_failure_fails_at_once() -> None:
    assert state_after_failure(1, 5, retryable=False) is TaskState.FAILED


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
