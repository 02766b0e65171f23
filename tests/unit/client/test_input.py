"""What the client refuses itself, naming the field, before any AWS call: session ids and
submission tokens the grid would refuse, priorities the grid has not, and documents the grid
would refuse (no network: a call would fail the test). Each is an ``InvalidRequestError``, a
``GridError`` (and a ``ValueError``) whose ``field`` names the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pydantic
import pytest

from htcgrid import Grid, GridError, InvalidRequestError
from htcgrid.connection import GridEndpoints
from htcgrid.session import MAX_TOKEN_CHARS, Session
from htcgrid_core.errors import InvalidSubmissionError
from htcgrid_core.payloads import PayloadStore

#: Session ids the grid refuses: a path, a separator, Unicode, too long, a leading
#: dash, a trailing newline, a space.
BAD_SESSION_IDS = ["../other", "a/b", "café", "s" * 49, "-x", "x\n", "x y"]


@pytest.fixture
def grid(offline_endpoints: GridEndpoints, monkeypatch: pytest.MonkeyPatch) -> Grid:
    """A grid whose every AWS client, asked for, fails the test."""
    connected = Grid(offline_endpoints)

    def no_call(service: str) -> Any:
        pytest.fail(f"the client reached for {service} with input it should have refused")

    monkeypatch.setattr(offline_endpoints, "client", no_call)
    return connected


@pytest.mark.parametrize("session_id", BAD_SESSION_IDS)
@pytest.mark.parametrize("stream_results", [True, False], ids=["streaming", "not streaming"])
def test_a_session_id_the_grid_refuses_is_refused_before_any_call(
    grid: Grid, session_id: str, stream_results: bool
) -> None:
    with pytest.raises(InvalidRequestError, match=r"^session_id: .* is not a session id") as raised:
        grid.open_session(session_id, stream_results=stream_results)
    assert raised.value.field == "session_id"
    with pytest.raises(InvalidRequestError, match=r"^session_id: "):
        Session(grid.transport, session_id, None)


@pytest.mark.parametrize("session_id", ["../other", "café", "s" * 49])
@pytest.mark.parametrize(
    "query",
    [
        lambda grid, s: grid.status(s),
        lambda grid, s: grid.fetch_results(s, ["t1"]),
        lambda grid, s: grid.tasks_page(s),
        lambda grid, s: grid.cancel(s),
        lambda grid, s: grid.delete_session(s),
        lambda grid, s: next(grid.iter_results(s)),
    ],
    ids=["status", "results", "tasks", "cancel", "delete", "iter_results"],
)
def test_a_query_for_a_session_id_the_grid_refuses_names_the_field_before_any_call(
    grid: Grid, session_id: str, query: Callable[[Grid, str], object]
) -> None:
    # The query's document refuses it: pydantic's ValidationError, mapped to the client's own,
    # which is still a ValueError; the original is its cause.
    with pytest.raises(InvalidRequestError, match=r"^session_id: String should match") as raised:
        query(grid, session_id)
    assert raised.value.field == "session_id"
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value.__cause__, pydantic.ValidationError)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("t" * (MAX_TOKEN_CHARS + 1), f"at most {MAX_TOKEN_CHARS}"),
        ("../t", "is not a token"),
        ("tök", "is not a token"),
        ("t t", "is not a token"),
    ],
)
def test_a_submission_token_the_grid_refuses_is_refused_before_any_call(
    grid: Grid, token: str, why: str
) -> None:
    session = Session(grid.transport, "s1", None)
    with pytest.raises(InvalidRequestError, match=rf"^submission_token: .*{why}") as raised:
        session.submit([{"x": 1}], submission_token=token)
    assert raised.value.field == "submission_token"


@pytest.mark.parametrize("priority", [-1, 3, 99])
def test_a_priority_the_grid_has_not_is_refused_before_any_call(grid: Grid, priority: int) -> None:
    session = Session(grid.transport, "s1", None)
    with pytest.raises(InvalidRequestError, match=rf"^priority: {priority} .*\(0 to 2\)") as raised:
        session.submit([{"x": 1}], priority=priority)
    assert raised.value.field == "priority"


def test_a_payload_above_the_largest_the_grid_stores_is_refused_before_any_call(
    grid: Grid, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a grid storing payloads of up to 20,000 bytes (5 GiB on a real one: S3's largest PUT)
    small = PayloadStore(cast(Any, None), "bucket", grid.settings.inline_threshold_bytes, 20_000)
    monkeypatch.setattr(grid.transport, "_payloads", small)
    session = Session(grid.transport, "s1", None)
    # THEN submitting a bigger one is refused, naming it, before anything is uploaded or sent
    with pytest.raises(
        InvalidRequestError, match=r"^payloads\[1\]: 30002 bytes .* 20000"
    ) as raised:
        session.submit([{"x": 1}, "y" * 30_000])
    assert isinstance(raised.value.__cause__, InvalidSubmissionError)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": 43_201}, "timeout_s"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_a_task_override_the_grid_refuses_names_the_field_before_any_call(
    grid: Grid, overrides: dict[str, Any], field: str
) -> None:
    session = Session(grid.transport, "s1", None)
    with pytest.raises(InvalidRequestError) as raised:
        session.submit([{"x": 1}], **overrides)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert isinstance(raised.value.__cause__, pydantic.ValidationError)


def test_a_payload_json_cannot_hold_is_refused_naming_it(grid: Grid) -> None:
    session = Session(grid.transport, "s1", None)
    with pytest.raises(InvalidRequestError, match=r"payloads\[1\]") as raised:
        session.submit([{"x": 1}, {"x": float("nan")}])
    assert isinstance(raised.value, GridError)
