"""Log lines that follow a task: what the agent and the retry function log about an attempt
carries its session id, task id and attempt, and every field the Logs Insights queries of
docs/monitoring.md use is in the lines they are meant to find."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from htcgrid_agent import log as agent_log
from htcgrid_core import observability
from htcgrid_core.models import AttemptFailure, RetryRequest, TaskError, TaskMessage
from htcgrid_core.retries import decide
from tests.fakes import fake_grid
from tests.integration.builders import persist

PAGE = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
TASK_KEYS = {"session_id", "task_id", "attempt"}
#: Logs Insights' own words, not fields.
KEYWORDS = {"fields", "filter", "stats", "sort", "limit", "by", "as", "and", "or", "not", "asc"}
KEYWORDS |= {"desc", "count", "max", "min", "avg", "sum", "ispresent"}


@contextmanager
def lines_of(logger: Logger) -> Iterator[list[dict[str, Any]]]:
    """The JSON lines ``logger`` writes meanwhile (its handler's stream, swapped)."""
    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    found: list[dict[str, Any]] = []
    try:
        yield found
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
        found.extend(json.loads(line) for line in stream.getvalue().splitlines())


def failure(message: TaskMessage, retryable: bool) -> AttemptFailure:
    return AttemptFailure(
        session_id=message.session_id,
        task_id=message.task_id,
        attempt=message.attempt,
        max_attempts=message.max_attempts,
        error=TaskError(type="Boom", message="it broke", attempt=1, at=1.0, retryable=retryable),
    )


@pytest.fixture(scope="module")
def written() -> list[dict[str, Any]]:
    """Lines the grid writes for two tasks of one session: one succeeds on the agent, one
    fails there and is retried by the retry function; a third fails for good."""
    grid = fake_grid()
    batch = persist(grid, "logs-session", ["a", "b", "c"], max_attempts=3)
    ok, retried, failed = batch.messages
    with lines_of(agent_log.logger) as agent:
        with agent_log.task_keys(ok):
            agent_log.log_attempt_succeeded(2.5, 0.1, 0.01)
        for message in (retried, failed):
            with agent_log.task_keys(message):
                agent_log.log_attempt_failed("Boom", "it broke", message is retried)
    observability.route_core_logs()
    with lines_of(observability.logger) as lambdas:
        request = RetryRequest(failures=[failure(retried, True), failure(failed, False)])
        decide(request, grid, time.time())
    return agent + lambdas


def test_every_line_about_an_attempt_names_its_session_task_and_attempt(
    written: list[dict[str, Any]],
) -> None:
    about_attempts = {"attempt succeeded", "attempt failed", "failed attempt decided"}
    assert {line["message"] for line in written} >= about_attempts
    for line in written:
        if line["message"] in about_attempts:  # not the retry function's summary line
            assert line.keys() >= TASK_KEYS, line
            assert line["session_id"] == "logs-session"


def test_task_keys_are_each_slot_threads_own_and_gone_after_the_task() -> None:
    grid = fake_grid()
    first, second = persist(grid, "logs-threads", ["a", "b"]).messages
    inside, done = threading.Barrier(2), threading.Barrier(2)

    def work(message: TaskMessage) -> None:
        with agent_log.task_keys(message):
            inside.wait(5)  # both threads hold their keys at once
            agent_log.logger.info("working")
            done.wait(5)
        agent_log.logger.info("idle")

    with lines_of(agent_log.logger) as lines:
        threads = [threading.Thread(target=work, args=(m,)) for m in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    working = {line["task_id"] for line in lines if line["message"] == "working"}
    assert working == {first.task_id, second.task_id}
    assert all("task_id" not in line for line in lines if line["message"] == "idle")


def queries() -> list[str]:
    return re.findall(r"```logs-insights\n(.*?)```", PAGE.read_text(), re.S)


def matcher(query: str) -> Callable[[dict[str, Any]], bool]:
    """The lines the query's ``filter`` keeps: ``field = "value"`` (placeholders in capitals
    match any value) and ``ispresent(field)``, joined by ``and``."""
    (condition,) = re.findall(r"filter (.*)", query)
    equals = re.findall(r"(\w+) = \"([^\"]*)\"", condition)
    present = re.findall(r"ispresent\((\w+)\)", condition)

    def keeps(line: dict[str, Any]) -> bool:
        return all(
            name in line and (value.isupper() or line[name] == value) for name, value in equals
        ) and all(name in line for name in present)

    return keeps


@pytest.mark.parametrize("query", queries(), ids=lambda q: q.split("\n")[0][:40])
def test_a_logs_insights_query_finds_lines_with_every_field_it_uses(
    query: str, written: list[dict[str, Any]]
) -> None:
    found = [line for line in written if matcher(query)(line)]
    assert found, "the query finds none of the lines the grid writes"
    code = re.sub(r"\"[^\"]*\"", "", query)  # not the compared values
    used = set(re.findall(r"(?<![@\w])([a-z_]+)\b(?!\()", code)) - KEYWORDS
    named = set(re.findall(r"\bas (\w+)", code))  # the query's own results
    for field in used - named:
        assert any(field in line for line in found), f"no line it finds has {field!r}"
    for field in set(re.findall(r"\bby ([\w, ]+)", code)[0].split(", ") if " by " in code else []):
        assert all(field.strip() in line for line in found), field


def test_the_page_has_the_three_queries() -> None:
    assert len(queries()) == 3
