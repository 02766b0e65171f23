"""The submit and reap workflows read on their own: every state says what it does, and every
task that calls AWS retries transient failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, those inside Map states included."""
    for name, state in definition["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])


@pytest.mark.parametrize("workflow", ["submit", "reap"])
def test_every_state_has_a_comment_and_every_task_retries(workflow: str) -> None:
    definition = json.loads((REPO / "statemachines" / f"{workflow}.asl.json").read_text())
    for name, state in states(definition):
        assert state.get("Comment"), f"{workflow}: {name} has no Comment"
        if state["Type"] == "Task":
            retried = {e for retry in state.get("Retry", []) for e in retry["ErrorEquals"]}
            assert retried, f"{workflow}: {name} retries nothing"
