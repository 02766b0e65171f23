"""How the client calls the grid's functions: what it retries and what it reports at once
(without AWS: the invoke itself is replaced by a scripted answer, a throttle by the
``ClientError`` botocore raises for one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from htcgrid import Grid, QueryFailedError, ThrottledError, Transport
from htcgrid import _transport as transport_module
from htcgrid.connection import GridEndpoints
from htcgrid_core import aws
from htcgrid_core.models import TaskState

Answer = tuple[dict[str, Any], str | None] | ClientError


class ScriptedTransport(Transport):
    """A transport whose function invokes answer from a script, in order."""

    def __init__(self, endpoints: GridEndpoints, answers: list[Answer]) -> None:
        super().__init__(endpoints)
        self.answers: Iterator[Answer] = iter(answers)
        self.calls = 0

    def _invoke(self, function_name: str, body: bytes) -> tuple[dict[str, Any], str | None]:
        self.calls += 1
        answer = next(self.answers)
        if isinstance(answer, ClientError):
            raise answer
        return answer


STATUS = {"session_id": "s1", "counts": {"SUCCEEDED": 2}, "exact": False}


def failure(error_type: str) -> tuple[dict[str, Any], str | None]:
    return {"errorType": error_type, "errorMessage": f"{error_type} happened"}, error_type


def throttled() -> ClientError:
    """What botocore raises once its own retries of a throttled invoke are spent."""
    response: Any = {
        "Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
        "ResponseMetadata": {"HTTPStatusCode": 429},
    }
    return ClientError(response, "Invoke")


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float, float]]:
    """The back-offs taken (none actually waited): the core's, with the client's timing."""
    taken: list[tuple[int, float, float]] = []

    def back_off(attempt: int, *, base_s: float, cap_s: float) -> None:
        taken.append((attempt, base_s, cap_s))

    monkeypatch.setattr(aws, "back_off", back_off)
    return taken


@pytest.mark.parametrize(
    "transient",
    [failure("RetryableError"), failure("Sandbox.Timedout"), throttled()],
    ids=["retryable error", "function timeout", "throttled"],
)
def test_a_transient_failure_is_retried_with_backoff(
    transient: Answer, waits: list[tuple[int, float, float]], offline_endpoints: GridEndpoints
) -> None:
    transport = ScriptedTransport(offline_endpoints, [transient, transient, (STATUS, None)])
    assert Grid(transport).status("s1").counts[TaskState.SUCCEEDED] == 2
    assert transport.calls == 3
    base, cap = transport_module.RETRY_BASE_S, transport_module.RETRY_CAP_S
    assert waits == [(1, base, cap), (2, base, cap)]


def test_a_refused_query_is_reported_at_once(
    waits: list[tuple[int, float, float]], offline_endpoints: GridEndpoints
) -> None:
    transport = ScriptedTransport(offline_endpoints, [failure("InvalidSubmissionError")])
    with pytest.raises(QueryFailedError, match="InvalidSubmissionError") as raised:
        Grid(transport).status("s1")
    assert raised.value.error_type == "InvalidSubmissionError"
    assert (transport.calls, waits) == (1, [])


def test_a_failure_that_lasts_is_reported_after_the_last_attempt(
    waits: list[tuple[int, float, float]], offline_endpoints: GridEndpoints
) -> None:
    answers: list[Answer] = [failure("RetryableError")] * transport_module.QUERY_ATTEMPTS
    transport = ScriptedTransport(offline_endpoints, answers)
    with pytest.raises(QueryFailedError, match="RetryableError"):
        Grid(transport).status("s1")
    assert transport.calls == transport_module.QUERY_ATTEMPTS


def test_throttling_past_every_retry_is_a_throttled_error_naming_the_call(
    waits: list[tuple[int, float, float]], offline_endpoints: GridEndpoints
) -> None:
    answers: list[Answer] = [throttled()] * transport_module.QUERY_ATTEMPTS
    transport = ScriptedTransport(offline_endpoints, answers)
    with pytest.raises(ThrottledError, match="lambda:InvokeFunction throttled") as raised:
        Grid(transport).status("s1")
    assert transport.calls == transport_module.QUERY_ATTEMPTS
    assert len(waits) == transport_module.QUERY_ATTEMPTS - 1
    assert isinstance(raised.value.__cause__, ClientError)


def test_an_answer_that_is_not_the_expected_document_is_a_query_failure(
    waits: list[tuple[int, float, float]], offline_endpoints: GridEndpoints
) -> None:
    transport = ScriptedTransport(offline_endpoints, [({"unexpected": True}, None)])
    with pytest.raises(QueryFailedError, match="no SessionStatus") as raised:
        Grid(transport).status("s1")
    assert raised.value.error_type == "UnexpectedAnswer"
