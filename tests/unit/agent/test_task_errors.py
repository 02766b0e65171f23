"""What an attempt's error records, whatever text a handler or a failure hands the agent."""

import json

from htcgrid_agent.task_errors import unexpected_outcome
from htcgrid_core.errors import RetryableError
from htcgrid_core.models import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_ERROR_TYPE_CHARS,
    TaskError,
    compact_history,
)


def test_a_lone_surrogate_in_an_error_is_escaped_so_the_error_can_be_serialised() -> None:
    error = TaskError.bounded(
        type="FileNotFoundError", message="no such file: caf\udce9.txt", attempt=1, at=0.0
    )
    assert error.message == "no such file: caf\\udce9.txt"
    assert json.loads(error.model_dump_json())["message"] == error.message


def test_an_overlong_type_and_message_are_cut_to_their_limits_keeping_the_message_tail() -> None:
    error = TaskError.bounded(
        type="E" * 1000, message="x" * 5000 + "ValueError: the cause", attempt=2, at=0.0
    )
    assert error.type == "E" * MAX_ERROR_TYPE_CHARS
    assert len(error.message) == MAX_ERROR_MESSAGE_CHARS
    assert error.message.endswith("ValueError: the cause")


def test_errors_from_the_tasks_data_are_permanent_others_may_pass() -> None:
    not_json = unexpected_outcome(json.JSONDecodeError("Expecting value", "nope", 0))
    assert not_json.error_type == "JSONDecodeError"
    assert not not_json.retryable
    assert "could not process the task" in not_json.error_message
    assert not unexpected_outcome(TypeError("not a dict")).retryable
    assert unexpected_outcome(OSError("disk full")).retryable
    assert unexpected_outcome(RetryableError("throttled")).retryable


def test_an_error_message_is_cut_by_the_bytes_of_its_json_not_its_characters() -> None:
    for text in ("€" * 5000, "\x00" * 5000, "\n" * 5000, "a" * 5000):
        error = TaskError.bounded(type="E", message=text + "END", attempt=1, at=0.0)
        stored = json.dumps(error.message, ensure_ascii=False).encode()
        assert len(stored) - 2 <= MAX_ERROR_MESSAGE_CHARS
        assert len(stored) - 2 > MAX_ERROR_MESSAGE_CHARS - 6  # as much as fits, kept
        assert error.message.endswith("END")


def test_a_history_keeps_the_first_and_last_errors_whole_and_every_errors_place() -> None:
    errors = [
        TaskError(type="LeaseExpired" if n % 2 else "E" * 200, message=f"m{n}", attempt=n, at=0)
        for n in range(1, 31)
    ]
    compact = compact_history(errors)
    assert [e.attempt for e in compact] == list(range(1, 31))
    assert [e.retryable for e in compact] == [e.retryable for e in errors]
    assert [e.message for e in compact if e.message] == ["m1", *(f"m{n}" for n in range(21, 31))]
    assert {e.type for e in compact[1:20]} == {"LeaseExpired", "E" * 64}
    assert compact_history(compact) == compact
    assert compact_history(errors[:11]) == errors[:11]
