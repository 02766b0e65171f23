"""How the client calls the grid's functions: what it retries and what it reports at once
(without AWS: the invoke itself is replaced by a scripted answer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from htcgrid import Grid, QueryFailedError
from htcgrid import grid as grid_module
from htcgrid.connection import GridEndpoints
from htcgrid_core.models import TaskState

Answer = tuple[dict[str, Any], str | None] | ClientError


class ScriptedGrid(Grid):
    """A grid whose function invokes answer from a script, in order."""

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
    return ClientError(
        {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke"
    )


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The back-offs taken (none actually waited)."""
    taken: list[int] = []
    monkeypatch.setattr(grid_module, "_back_off", taken.append)
    return taken


@pytest.mark.parametrize(
    "transient",
    [failure("RetryableError"), failure("Sandbox.Timedout"), throttled()],
    ids=["retryable error", "function timeout", "throttled"],
)
def test_a_transient_failure_is_retried_with_backoff(
    transient: Answer, waits: list[int], offline_endpoints: GridEndpoints
) -> None:
    grid = ScriptedGrid(offline_endpoints, [transient, transient, (STATUS, None)])
    assert grid.status("s1").counts[TaskState.SUCCEEDED] == 2
    assert grid.calls == 3
    assert waits == [1, 2]


def test_a_refused_query_is_reported_at_once(
    waits: list[int], offline_endpoints: GridEndpoints
) -> None:
    grid = ScriptedGrid(offline_endpoints, [failure("InvalidSubmissionError")])
    with pytest.raises(QueryFailedError, match="InvalidSubmissionError"):
        grid.status("s1")
    assert (grid.calls, waits) == (1, [])


def test_a_failure_that_lasts_is_reported_after_the_last_attempt(
    waits: list[int], offline_endpoints: GridEndpoints
) -> None:
    answers: list[Answer] = [failure("RetryableError")] * grid_module.QUERY_ATTEMPTS
    grid = ScriptedGrid(offline_endpoints, answers)
    with pytest.raises(QueryFailedError, match="RetryableError"):
        grid.status("s1")
    assert grid.calls == grid_module.QUERY_ATTEMPTS
