"""The Java 17 example runtime (``examples/runtimes/java``) as a worker, end to end on the local
grid: its JDK-only Runtime API client prices options with the example handler, reports a Java
exception with its class and stack trace, reports a handler class it cannot load, is replaced
after a timeout, and runs one JVM per slot. Its JSON reader and writer (the JDK has none) are
checked against Python's ``json`` first, without the grid."""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from htcgrid import Completed, Grid
from htcgrid_core.models import TaskState
from htcgrid_local.grid import LocalGrid
from tests.e2e.runtimes.conftest import built, run_agent

TRADE = {"spot": 100, "strike": 100, "rate": 0.05, "volatility": 0.2, "maturity": 1.0}
#: The American put on TRADE: what trees of 20,000 steps and more converge to.
AMERICAN_PUT = 6.0904


def java(handler: str = "example.OptionPricer") -> list[str]:
    """The agent's arguments that run the built Java runtime with ``handler``."""
    folder = built("java")
    return ["--bootstrap", f"{folder}/bootstrap", "--handler", handler, "--task-root", str(folder)]


@pytest.fixture(scope="class")
def pricer(runtime_grid: LocalGrid) -> Iterator[None]:
    """One agent of one slot running the pricer, shared by the tests of a class (an agent
    takes seconds to start and stop) and gone before any other agent starts."""
    with run_agent(runtime_grid, *java()):
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


#: Reads base64 lines of JSON text; prints "ok <Json.write(Json.parse(text))>" or "error <why>".
JSON_ROUND_TRIP = """
import htcgrid.runtime.Json;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

public class JsonRoundTrip {
    public static void main(String[] args) throws Exception {
        var in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        var out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        for (String line; (line = in.readLine()) != null; ) {
            String text = new String(Base64.getDecoder().decode(line), StandardCharsets.UTF_8);
            try {
                out.println("ok " + Json.write(Json.parse(text)));
            } catch (IllegalArgumentException refused) {
                out.println("error " + refused.getMessage());
            }
        }
    }
}
"""

VALID_JSON = [
    "{}",
    "[]",
    "0",
    "-0",
    "-0.0",
    "1.5e10",
    "1E-7",
    "-12.5e+3",
    "1e400",
    "2.5",
    "123456789012345678901234567890",
    "true",
    "false",
    "null",
    '""',
    ' { "a" : [ 1 , true , false , null ] , "b" : { } } ',
    '{"a": 1, "a": 2}',  # a repeated key: the last one wins, in both
    '"\\u00e9\\ud834\\udd1e \\/\\b\\f\\n\\r\\t\\"\\\\"',
    '"Zürich ☃ 𝄞"',
    '"\\u0000\\u001f"',
    '"\\ud800 lone"',
    "[" * 512 + "]" * 512,
]
INVALID_JSON = [
    "",
    " ",
    "{",
    "[1,]",
    '{"a": 1,}',
    "01",
    "1.",
    ".5",
    "+1",
    "-",
    "1e",
    "1e+",
    '"\\x"',
    '"\\u12"',
    '"abc',
    "tru",
    "nul",
    "[1 2]",
    '{"a" 1}',
    "{1: 2}",
    "'a'",
    '"a\tb"',
    "NaN",
    "Infinity",
    "1 2",
    "[] x",
    "1e9999999999",
]


def jdk_tool(name: str) -> str:
    """The JDK tool ``name`` on PATH, as the runtime's build found it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: the Java runtime's build needs a JDK 17")
    return path


def test_the_json_reader_and_writer_agree_with_python(tmp_path: Path) -> None:
    runtime_jar = built("java") / "runtime.jar"
    source = tmp_path / "JsonRoundTrip.java"
    source.write_text(JSON_ROUND_TRIP, encoding="utf-8")
    subprocess.run(
        [
            jdk_tool("javac"),
            "--release",
            "17",
            "-cp",
            f"{runtime_jar}",
            "-d",
            f"{tmp_path}",
            f"{source}",
        ],
        check=True,
    )
    cases = [*VALID_JSON, *INVALID_JSON, "[" * 513 + "]" * 513]
    answers = subprocess.run(
        [jdk_tool("java"), "-cp", f"{runtime_jar}:{tmp_path}", "JsonRoundTrip"],
        input="".join(base64.b64encode(case.encode()).decode() + "\n" for case in cases),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    ).stdout.splitlines()
    outcome = dict(zip(cases, answers, strict=True))
    for case in VALID_JSON:
        verdict, written = outcome[case].split(" ", 1)
        assert verdict == "ok", (case, written)
        assert json.loads(written) == json.loads(case), case
    for case in INVALID_JSON:
        assert outcome[case].startswith("error JSON: expected "), (case, outcome[case])
    # Deeper than Json.MAX_DEPTH is refused, though Python would read it.
    assert "at most 512 nested arrays and objects" in outcome["[" * 513 + "]" * 513]


def black_scholes(trade: dict[str, Any], call: bool) -> float:
    spot, strike, rate = trade["spot"], trade["strike"], trade["rate"]
    deviation = trade["volatility"] * math.sqrt(trade["maturity"])
    d1 = (math.log(spot / strike) + rate * trade["maturity"]) / deviation + deviation / 2
    d2 = d1 - deviation
    discounted = strike * math.exp(-rate * trade["maturity"])

    def n(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    if call:
        return float(spot * n(d1) - discounted * n(d2))
    return float(discounted * n(-d2) - spot * n(-d1))


@pytest.mark.usefixtures("pricer")
class TestOneSlot:
    """The pricer on one slot: results, a Java exception, a timeout."""

    def test_the_pricer_prices_european_and_american_options(self, client: Grid) -> None:
        book = {
            "european call": {**TRADE, "right": "call"},
            "european put": {**TRADE, "right": "put"},
            "out of the money call": {**TRADE, "strike": 120, "right": "call"},
            "american call": {**TRADE, "right": "call", "exercise": "american"},
            "american put": {**TRADE, "right": "put", "exercise": "american"},
        }
        # The id comes back as sent: the runtime passes JSON through byte for byte, and the
        # handler's JSON reader and writer keep strings, escapes and numbers whole.
        odd_id = {"book": "Zürich ☃ 𝄞", 'quote"s': "\\\n\t\u0001", "n": [2.5, 1e300, 2**64, None]}
        events = [{**trade, "steps": 1000, "id": name} for name, trade in book.items()]
        outcomes = run(client, [*events, {**TRADE, "id": odd_id}], max_attempts=1)
        price = {result(done)["id"]: result(done)["price"] for done in outcomes[:-1]}
        for name in ("european call", "european put", "out of the money call"):
            expected = black_scholes(book[name], call=book[name]["right"] == "call")
            assert price[name] == pytest.approx(expected, abs=0.005), name
        # Early exercise is worth nothing for a call on a stock without dividends; for a put it is.
        assert price["american call"] == pytest.approx(price["european call"], abs=1e-9)
        assert price["american put"] == pytest.approx(AMERICAN_PUT, abs=0.002)
        assert result(outcomes[-1])["id"] == odd_id

    def test_a_java_exception_is_recorded_with_its_class_message_and_stack_trace(
        self, client: Grid
    ) -> None:
        (done,) = run(client, [{**TRADE, "spot": "a lot"}], max_attempts=3)
        assert done.state is TaskState.FAILED
        assert done.error is not None
        assert done.error.type == "htcgrid.runtime.PermanentTaskError"
        # The stack trace first, from the throw down to the runtime's loop; the message last.
        lines = done.error.message.splitlines()
        assert lines[-1] == 'spot: "a lot" is not a number'
        assert lines[0].startswith("at example.OptionPricer.number(OptionPricer.java:")
        assert any(line.startswith("at example.OptionPricer.handleRequest(") for line in lines)
        assert any(line.startswith("at htcgrid.runtime.LambdaRuntime.serveOne(") for line in lines)
        # A PermanentTaskError is not retried, though the task allowed three attempts.
        assert not done.error.retryable
        assert done.error.attempt == 1

    def test_a_timeout_kills_the_jvm_and_the_next_task_runs_on_a_new_one(
        self, client: Grid
    ) -> None:
        before, slow, after = (
            run(client, [event], timeout_s=2, max_attempts=1)[0]
            for event in (TRADE, {**TRADE, "sleep_s": 60}, TRADE)
        )
        assert slow.error is not None
        assert slow.error.type == "TaskTimeout"
        assert result(after)["price"] == result(before)["price"]
        assert result(after)["pid"] != result(before)["pid"]


def test_a_handler_class_that_cannot_be_loaded_is_the_runtimes_init_error(
    runtime_grid: LocalGrid, client: Grid
) -> None:
    with run_agent(runtime_grid, *java("example.Missing")):
        (done,) = run(client, [TRADE], max_attempts=1)
    assert done.state is TaskState.FAILED
    assert done.error is not None
    assert done.error.type == "java.lang.ClassNotFoundException"
    assert "_HANDLER example.Missing: no class example.Missing" in done.error.message


def test_two_slots_price_on_two_jvms_at_once(runtime_grid: LocalGrid, client: Grid) -> None:
    with run_agent(runtime_grid, *java(), slots=2):
        first, second = run(client, [{**TRADE, "sleep_s": 2}] * 2, max_attempts=1)
    assert result(first)["pid"] != result(second)["pid"]
    # Both ran within the same span of time, as the agent recorded their attempts.
    starts = [done.result.started_at or math.inf for done in (first, second)]
    ends = [done.result.finished_at or -math.inf for done in (first, second)]
    assert max(starts) < min(ends)
