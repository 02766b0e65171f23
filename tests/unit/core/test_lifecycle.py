"""The task state machine, as pure rules: the ``expect_*`` builders are its one definition."""

import pytest

from htcgrid_core.lifecycle import (
    MAX_RETRY_DELAY_S,
    Expectation,
    expect_cancellable,
    expect_claimable,
    expect_failed_by,
    expect_holder,
    expect_redrivable,
    retry_delay_s,
    state_after_failure,
)
from htcgrid_core.models import FailureCause, InlineData, TaskError, TaskRecord, TaskState


def record(state: TaskState, attempt: int = 1, **fields: object) -> TaskRecord:
    return TaskRecord(
        session_id="s",
        task_id="t",
        state=state,
        attempt=attempt,
        max_attempts=3,
        priority=0,
        timeout_s=60,
        payload=InlineData(inline=None),
        submitted_at=0.0,
        **fields,  # type: ignore[arg-type]
    )


#: Every transition's expectation, as the table's writes build them (at attempt 1, now 100).
TRANSITIONS: dict[str, Expectation] = {
    "claim": expect_claimable(1),
    "finish unleased": expect_holder(1, None),
    "finish leased": expect_holder(1, "tok"),
    "fail by handler": expect_failed_by(FailureCause.HANDLER, 1, None, 100.0),
    "fail by reaper": expect_failed_by(FailureCause.LEASE_EXPIRED, 1, "tok", 100.0),
    "fail by DLQ sweep": expect_failed_by(FailureCause.DEAD_LETTERED, 1, None, 100.0),
    "cancel": expect_cancellable(),
    "redrive": expect_redrivable(1),
}


@pytest.mark.parametrize("terminal", [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED])
def test_terminal_states_never_change(terminal: TaskState) -> None:
    # A leased, long-expired record: nothing but its state keeps a write out.
    finished = record(terminal, lease_token="tok", lease_expires_at=1.0)
    assert terminal.is_terminal
    assert [name for name, e in TRANSITIONS.items() if e.admits(finished)] == []


def test_only_a_dead_lettered_failure_reopens_and_only_by_redrive() -> None:
    failed = record(TaskState.FAILED)
    admitted = [name for name, e in TRANSITIONS.items() if e.admits(failed, dead_lettered=True)]
    assert admitted == ["redrive"]
    assert not expect_redrivable(2).admits(failed, dead_lettered=True)  # another attempt's


def test_unfinished_states_can_reach_every_terminal_state() -> None:
    pending = record(TaskState.PENDING)
    running = record(TaskState.RUNNING, lease_token="tok", lease_expires_at=50.0)
    # PENDING -> SUCCEEDED, FAILED, CANCELLED (and RUNNING: a claim)
    for name in ("finish unleased", "fail by handler", "cancel", "claim", "fail by DLQ sweep"):
        assert TRANSITIONS[name].admits(pending), name
    # RUNNING -> SUCCEEDED, FAILED (the holder, or the reaper once the lease expired), CANCELLED
    for name in ("finish leased", "fail by reaper", "cancel", "fail by DLQ sweep"):
        assert TRANSITIONS[name].admits(running), name


def test_a_write_naming_another_attempt_or_lease_is_refused() -> None:
    pending = record(TaskState.PENDING, attempt=2)
    assert not expect_claimable(1).admits(pending)
    assert not expect_holder(1, None).admits(pending)
    running = record(TaskState.RUNNING, lease_token="mine", lease_expires_at=200.0)
    assert not expect_holder(1, "theirs").admits(running)
    assert not expect_holder(1, None).admits(running)  # an unleased finish of a leased task
    assert not expect_claimable(1).admits(None)  # no such task


def test_the_reaper_loses_to_a_lease_renewed_in_time() -> None:
    renewed = record(TaskState.RUNNING, lease_token="tok", lease_expires_at=150.0)
    assert not TRANSITIONS["fail by reaper"].admits(renewed)
    assert not TRANSITIONS["fail by DLQ sweep"].admits(renewed)
    expired = renewed.model_copy(update={"lease_expires_at": 99.0})
    assert TRANSITIONS["fail by reaper"].admits(expired)
    assert not expect_failed_by(FailureCause.LEASE_EXPIRED, 1, "other", 100.0).admits(expired)


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
