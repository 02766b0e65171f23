"""The shell example runtime (``examples/runtimes/shell``: a bash and curl ``bootstrap`` as in
AWS's custom runtime tutorial, with ``wordcount.sh``) as a worker, end to end on the local grid:
results, a handler's failures with their type, message and failing command, a handler it cannot
find, and a timeout after which a new runtime serves."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from htcgrid import Completed, Grid
from htcgrid_core.models import TaskState
from htcgrid_local.grid import LocalGrid
from tests.e2e.runtimes.conftest import built, run_agent


def shell(handler: str = "wordcount.handler") -> list[str]:
    """The agent's arguments that run the built shell runtime with ``handler``."""
    folder = built("shell")
    return ["--bootstrap", f"{folder}/bootstrap", "--handler", handler, "--task-root", str(folder)]


@pytest.fixture(scope="class")
def counter(runtime_grid: LocalGrid) -> Iterator[None]:
    """One agent of one slot running wordcount.handler, shared by the tests of a class (an
    agent takes seconds to start and stop) and gone before any other agent starts."""
    with run_agent(runtime_grid, *shell()):
        yield


def run(client: Grid, events: list[dict[str, Any]], **options: Any) -> list[Completed]:
    """Submit one task per event in a session; their outcomes, in the events' order."""
    with client.open_session() as session:
        task_ids = list(session.submit(events, **options))
        done = {completed.task_id: completed for completed in session.wait(timeout=60)}
    return [done[task_id] for task_id in task_ids]


def result(done: Completed) -> dict[str, Any]:
    assert done.ok, done.error
    assert isinstance(done.value, dict)
    return done.value


@pytest.mark.usefixtures("counter")
class TestOneSlot:
    """wordcount.handler on one slot: results, failures, a timeout."""

    def test_the_handler_counts_and_hashes_the_text(self, client: Grid) -> None:
        texts = [
            "hello world",
            "  spaces\tand tabs\nand lines\r\n\n",
            "Zürich ☃ 𝄞\u00a0non-breaking",
            'quotes " and \\ backslashes',
            "",
        ]
        odd_id = {"k": ["é", 1.5, None, True], 'q"': "\\\n"}
        events: list[dict[str, Any]] = [{"text": text, "id": i} for i, text in enumerate(texts)]
        outcomes = run(client, [*events, {"id": odd_id}], max_attempts=1)
        for i, (text, done) in enumerate(zip(texts, outcomes[:-1], strict=True)):
            assert result(done) == {
                "id": i,
                "words": len(text.split()),
                "bytes": len(text.encode()),
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
                "pid": result(outcomes[0])["pid"],
            }
        no_text = result(outcomes[-1])  # no text counts as empty
        assert no_text["id"] == odd_id
        assert no_text["sha256"] == hashlib.sha256(b"").hexdigest()

    def test_a_handler_that_fails_is_recorded_with_its_type_message_and_command(
        self, client: Grid
    ) -> None:
        refused, failed = run(
            client, [{"text": 5}, {"text": "x", "sleep_s": "soon"}], max_attempts=1
        )
        # `fail PermanentTaskError MESSAGE` names the type: not retried.
        assert refused.state is TaskState.FAILED
        assert refused.error is not None
        assert refused.error.type == "PermanentTaskError"
        assert refused.error.message == 'text: not a string (the event is {"text": "..."})'
        assert not refused.error.retryable
        # A command that fails ends the handler (set -e): the failing command, then its stderr.
        assert failed.error is not None
        assert failed.error.type == "HandlerError"
        command, *stderr = failed.error.message.splitlines()
        assert command.startswith("wordcount.sh:")
        assert command.endswith(': sleep "$seconds" (exit status 1)')
        assert "invalid time interval" in stderr[0]
        assert failed.error.retryable

    def test_a_timeout_kills_the_runtime_and_the_next_task_runs_on_a_new_one(
        self, client: Grid
    ) -> None:
        before, slow, after = (
            run(client, [event], timeout_s=2, max_attempts=1)[0]
            for event in ({"text": "a b"}, {"text": "a b", "sleep_s": 60}, {"text": "a b"})
        )
        assert slow.error is not None
        assert slow.error.type == "TaskTimeout"
        assert result(after)["words"] == 2
        assert result(after)["pid"] != result(before)["pid"]


def test_a_handler_that_cannot_be_found_is_the_runtimes_init_error(
    runtime_grid: LocalGrid, client: Grid
) -> None:
    with run_agent(runtime_grid, *shell("wordcount.missing")):
        (done,) = run(client, [{"text": "x"}], max_attempts=1)
    assert done.state is TaskState.FAILED
    assert done.error is not None
    assert done.error.type == "Runtime.HandlerNotFound"
    assert done.error.message.endswith("wordcount.sh defines no missing")
