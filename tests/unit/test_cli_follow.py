"""``htcgrid results --follow`` prints every task's result once, however the listings race the
tasks finishing (a fresh-clone run once lost a task that finished between two listings)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from htcgrid.cli import tasks
from htcgrid.cli.common import Context
from htcgrid.cli.exit_codes import EXIT_OK
from htcgrid_core.models import TaskState

TASKS = ["t0", "t1", "t2"]


@dataclass
class _Result:
    task_id: str
    result: None = None

    def model_dump(self, mode: str) -> dict[str, Any]:
        return {"task_id": self.task_id, "state": "SUCCEEDED"}


class ScriptedGrid:
    """The client's Grid interface over a session whose tasks finish at given moments: every
    call is one tick, and task ``i`` is finished from tick ``finish_at[i]`` on."""

    def __init__(self, finish_at: Sequence[int]) -> None:
        self.finish_at = dict(zip(TASKS, finish_at, strict=True))
        self.tick = 0

    def _now(self) -> int:
        self.tick += 1
        return self.tick

    def _finished(self, now: int) -> list[str]:
        return [t for t in TASKS if self.finish_at[t] <= now]

    def value_of(self, result: _Result) -> None:
        return result.result

    def status(self, session_id: str) -> SimpleNamespace:
        self._now()
        return SimpleNamespace(total=len(TASKS))

    def iter_tasks(
        self, session_id: str, states: Sequence[TaskState] | None = None
    ) -> Iterator[SimpleNamespace]:
        now = self._now()
        assert set(states or []) == {TaskState.PENDING, TaskState.RUNNING}
        yield from (SimpleNamespace(task_id=t) for t in TASKS if t not in self._finished(now))

    def iter_results(self, session_id: str) -> Iterator[_Result]:
        now = self._now()
        yield from (_Result(t) for t in self._finished(now))

    def fetch_results(self, session_id: str, task_ids: list[str]) -> SimpleNamespace:
        finished = self._finished(self._now())
        return SimpleNamespace(
            results=[_Result(t) for t in task_ids if t in finished],
            missing=[t for t in task_ids if t not in finished],
        )


def follow(grid: ScriptedGrid) -> tuple[int, list[str]]:
    out = io.StringIO()
    args = argparse.Namespace(session="s", task_id=None, follow=True, timeout=30, json=True)
    context = Context(args, Console(file=io.StringIO()), lambda: grid)  # type: ignore[arg-type,return-value]
    with redirect_stdout(out):
        code = tasks.results(context)
    return code, [json.loads(line)["task_id"] for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("moment", range(1, 8))
def test_a_task_finishing_at_any_moment_is_printed_exactly_once(
    moment: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one task finished before the command starts, one finishing at `moment` (between
    # or during any of the command's listings) and one finishing much later
    monkeypatch.setattr(tasks, "FOLLOW_POLL_S", (0.0, 0.0))
    grid = ScriptedGrid(finish_at=[0, moment, 12])

    code, printed = follow(grid)

    assert code == EXIT_OK
    assert sorted(printed) == TASKS
