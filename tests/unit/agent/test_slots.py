"""Slots run the handler in a child process: results, errors, timeouts and crashes."""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from htcgrid_agent.__main__ import parse_args
from htcgrid_agent.context import TaskContext
from htcgrid_agent.slots import CREDENTIAL_VARIABLES, HandlerLoadError, Slot, handler_environment
from tests.waiting import wait_for

HANDLER = "htcgrid_examples.scripted:handler"


def context(
    task_id: str = "t1", timeout_s: float = 30, attempt: int = 1, trace_id: str | None = None
) -> TaskContext:
    return TaskContext(
        function_name="test",
        aws_request_id=task_id,
        session_id="s",
        attempt=attempt,
        memory_limit_in_mb=128,
        deadline=time.time() + timeout_s,
        trace_id=trace_id,
    )


@pytest.fixture(scope="module")
def slot() -> Iterator[Slot]:
    slot = Slot(HANDLER)
    yield slot
    slot.close()


def run(slot: Slot, payload: object, timeout_s: float = 30, attempt: int = 1) -> object:
    return slot.run(
        json.dumps(payload).encode(),
        context("t1", timeout_s, attempt),
        timeout_s,
        threading.Event(),
    )


def test_handler_result_comes_back_as_json_with_the_lambda_context(slot: Slot) -> None:
    outcome = run(slot, {"value": [1, 2]})
    assert outcome.succeeded
    result = json.loads(outcome.result)
    assert result["value"] == [1, 2]
    assert result["task_id"] == "t1"
    assert 0 < result["remaining_ms"] <= 30_000


def test_each_task_runs_in_its_own_trace_where_lambda_puts_it(slot: Slot) -> None:
    traced = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    payload = json.dumps({"trace": True}).encode()
    first = slot.run(payload, context(trace_id=traced), 30, threading.Event())
    assert json.loads(first.result)["trace_id"] == traced
    # a task without one does not inherit the previous task's trace
    second = slot.run(payload, context(), 30, threading.Event())
    assert json.loads(second.result)["trace_id"] is None


def test_handler_exception_is_a_retryable_failure_named_by_its_class(slot: Slot) -> None:
    outcome = run(slot, {"fail": "always"})
    assert outcome.error_type == "TransientTaskError"
    assert outcome.retryable
    assert "scripted failure on attempt 1" in outcome.error_message


def test_non_retryable_exception_is_marked_permanent(slot: Slot) -> None:
    outcome = run(slot, {"fail": "permanent"})
    assert outcome.error_type == "PermanentScriptedError"
    assert not outcome.retryable


def test_unserialisable_result_is_a_permanent_failure_saying_why(slot: Slot) -> None:
    outcome = run(slot, {"unserializable": True})
    assert outcome.error_type == "ResultNotSerializable"
    assert not outcome.retryable
    assert "JSON" in outcome.error_message


def test_overrunning_handler_is_stopped_at_its_timeout_and_the_slot_recovers(slot: Slot) -> None:
    started = time.monotonic()
    outcome = run(slot, {"sleep": 30}, timeout_s=1)
    assert outcome.error_type == "TaskTimeout"
    assert outcome.retryable
    assert time.monotonic() - started < 10
    assert run(slot, {"value": "after"}).succeeded


def test_crashing_handler_is_a_failure_and_the_slot_recovers(slot: Slot) -> None:
    outcome = run(slot, {"crash": True})
    assert outcome.error_type == "HandlerCrashed"
    assert run(slot, {"value": "after"}).succeeded


@pytest.mark.parametrize(
    ("payload", "how"),
    [
        ({"exit": 0}, "exited with code 0"),
        ({"exit": 3}, "exited with code 3"),
        ({"interrupt": 1}, "ended by SIGINT"),
        ({"segfault": 1}, "ended by SIGSEGV"),
        ({"crash": 1}, "ended by SIGKILL"),
    ],
    ids=["sys.exit(0)", "sys.exit(3)", "KeyboardInterrupt", "segfault", "SIGKILL"],
)
def test_a_handler_that_ends_its_process_is_a_retryable_crash_and_the_slot_recovers(
    payload: dict[str, int], how: str
) -> None:
    # GIVEN a handler that leaves its process by sys.exit() or another BaseException (as a
    # Lambda runtime would end on it), crashes it, or kills it
    slot = Slot(HOSTILE)
    try:
        outcome = run(slot, payload)
        # THEN the attempt failed as a crash, saying how (another attempt may not repeat it)
        assert (outcome.error_type, outcome.retryable) == ("HandlerCrashed", True)
        assert how in outcome.error_message
        # AND the slot, restarted, runs the next task
        assert json.loads(run(slot, {"value": "after"}).result) == {"value": "after"}
    finally:
        slot.close()


@pytest.mark.parametrize("number", ["nan", "inf", "-inf"])
def test_a_result_with_a_number_json_cannot_hold_is_a_permanent_failure(number: str) -> None:
    slot = Slot(HOSTILE)
    try:
        outcome = run(slot, {"float": number})
        assert (outcome.error_type, outcome.retryable) == ("ResultNotSerializable", False)
        assert "Out of range float values are not JSON compliant" in outcome.error_message
    finally:
        slot.close()


def test_abort_stops_a_running_handler(slot: Slot) -> None:
    abort = threading.Event()
    threading.Timer(0.5, abort.set).start()
    outcome = slot.run(json.dumps({"sleep": 30}).encode(), context(), 60, abort)
    assert outcome.aborted


def test_a_handler_that_cannot_be_imported_fails_at_start() -> None:
    with pytest.raises(HandlerLoadError, match="no_such_module"):
        Slot("no_such_module:handler")
    with pytest.raises(HandlerLoadError, match="module:function"):
        Slot("just_a_name")


HOSTILE = "tests.unit.agent.hostile:handler"


def test_a_result_holding_a_lone_surrogate_is_a_permanent_failure() -> None:
    slot = Slot(HOSTILE)
    try:
        outcome = run(slot, {"surrogate_result": 1})
        assert outcome.error_type == "ResultNotSerializable"
        assert not outcome.retryable
        assert "surrogate" in outcome.error_message
    finally:
        slot.close()


def test_a_handler_that_cannot_be_reimported_after_a_timeout_leaves_the_slot_stopped_until_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    monkeypatch.setenv("HTCGRID_TEST_BROKEN_IMPORT", str(broken))
    slot = Slot(HOSTILE)
    try:
        # GIVEN a task that overruns while its handler's module became unimportable
        broken.touch()
        outcome = run(slot, {"sleep": 30}, timeout_s=0.5)
        # THEN the task still gets its own outcome, and the slot is stopped, saying why
        assert outcome.error_type == "TaskTimeout"
        assert not slot.started
        assert slot.load_failures == 1
        assert "broken on purpose" in slot.load_error
        # AND once the handler loads again, the slot starts and runs tasks
        broken.unlink()
        assert run(slot, {"value": "after"}).succeeded
        assert slot.started
        assert slot.load_failures == 0
    finally:
        slot.close()


def test_handlers_run_without_the_agents_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an agent with credentials in its environment, as Pod Identity and IRSA give them
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/secrets/token")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/agent")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks/token")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    slot = Slot(HOSTILE)
    try:
        # WHEN its handler looks for them
        found = json.loads(run(slot, {"environment": 1}).result)
    finally:
        slot.close()
    # THEN neither its environment (as it started) nor an AWS SDK finds any
    assert not set(found["aws_variables"]) & CREDENTIAL_VARIABLES
    assert {"AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED"} <= set(found["aws_variables"])
    assert not found["initial_environment_has_keys"]
    assert not found["sdk_credentials"]


def test_an_agent_option_passes_its_credentials_on_to_handlers() -> None:
    slot = Slot(HOSTILE, handler_environment(os.environ, with_credentials=True))
    try:
        found = json.loads(run(slot, {"environment": 1}).result)
    finally:
        slot.close()
    assert "AWS_SECRET_ACCESS_KEY" in found["aws_variables"]
    assert found["sdk_credentials"]
    assert parse_args(["--handler", "m:f", "--handler-credentials"]).handler_credentials
    assert not parse_args(["--handler", "m:f"]).handler_credentials


def test_the_environment_without_credentials_keeps_everything_else() -> None:
    environ = {name: "x" for name in CREDENTIAL_VARIABLES} | {"HOME": "/tmp", "AWS_REGION": "r"}
    assert handler_environment(environ) == {
        "HOME": "/tmp",
        "AWS_REGION": "r",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    assert handler_environment(environ, with_credentials=True) == environ


def test_what_handler_code_sends_the_agent_is_never_unpickled(tmp_path: Path) -> None:
    # GIVEN handler code that writes a pickle to its slot's socket, which would run code
    # in the agent (and its credentials) if the agent unpickled it
    target = tmp_path / "made-by-the-agent"
    slot = Slot(HOSTILE)
    try:
        outcome = run(slot, {"pickle_to_agent": str(target)}, timeout_s=10)
    finally:
        slot.close()
    # THEN the agent takes it for a broken child, and ran nothing
    assert outcome.error_type == "HandlerCrashed"
    assert not target.exists()


def test_the_agent_can_make_its_memory_unreadable_to_its_handlers() -> None:
    code = (
        "from htcgrid_agent.process import protect_memory, is_memory_protected as p;"
        "before = p(); protect_memory(); print(before, p())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_a_handler_over_its_slots_memory_fails_with_out_of_memory_and_the_slot_goes_on() -> None:
    slot = Slot(HOSTILE, memory_limit_mb=256)
    try:
        # GIVEN a slot capped at 256 MiB, WHEN its handler allocates a gigabyte
        outcome = run(slot, {"allocate_mb": 1024})
        # THEN that task fails for good, saying why; the agent is untouched
        assert (outcome.error_type, outcome.retryable) == ("OutOfMemory", False)
        assert "256 MiB" in outcome.error_message
        # AND the slot, restarted, runs what fits
        assert json.loads(run(slot, {"allocate_mb": 16}).result) == {"allocated": 16 * 2**20}
    finally:
        slot.close()


def test_a_payload_that_is_not_json_is_a_permanent_failure_found_in_the_slot(slot: Slot) -> None:
    outcome = slot.run(b"\x00 not JSON", context(), 30, threading.Event())
    assert (outcome.error_type, outcome.retryable) == ("PayloadNotJsonError", False)
    assert run(slot, {"value": "after"}).succeeded


def test_a_result_above_the_limit_is_refused_unread_and_the_slot_goes_on() -> None:
    slot = Slot(HOSTILE, max_result_bytes=2**20)
    try:
        outcome = run(slot, {"result_mb": 4})
        assert (outcome.error_type, outcome.retryable) == ("ResultTooLarge", False)
        assert "the limit is 1048576 bytes" in outcome.error_message
        assert run(slot, {"value": "after"}).succeeded
    finally:
        slot.close()


def test_the_slot_memory_is_an_agent_option() -> None:
    assert parse_args(["--handler", "m:f", "--slot-memory-mb", "768"]).slot_memory_mb == 768
    assert parse_args(["--handler", "m:f"]).slot_memory_mb is None


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie waiting to be collected)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("stop", ["timeout", "abort", "close"])
def test_stopping_a_handler_stops_the_processes_it_started(tmp_path: Path, stop: str) -> None:
    # GIVEN a handler running a subprocess of its own (an external solver, say)
    pid_file = tmp_path / "solver.pid"
    slot = Slot(HOSTILE)
    abort = threading.Event()
    payload = json.dumps({"spawn": str(pid_file)}).encode()
    runner = threading.Thread(
        target=slot.run, args=(payload, context(), 1 if stop == "timeout" else 60, abort)
    )
    runner.start()
    solver = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), what="the solver"))
    assert running(solver)
    # WHEN the handler overruns its timeout, the agent aborts, or the slot is closed
    if stop == "abort":
        abort.set()
    if stop != "close":
        runner.join(30)
    slot.close()
    runner.join(30)
    # THEN the solver is stopped with it
    wait_for(lambda: not running(solver), timeout_s=10, what="the solver to stop")


def test_an_agent_that_adopts_orphans_collects_them() -> None:
    code = (
        "import subprocess, time\n"
        "from htcgrid_agent.process import adopts_orphans, become_subreaper, reap_orphans\n"
        "assert not adopts_orphans() and become_subreaper() and adopts_orphans()\n"
        "pid = int(subprocess.run(['sh', '-c', 'sleep 0.2 & echo $!'], capture_output=True,"
        " text=True, check=True).stdout)\n"
        "deadline = time.monotonic() + 10\n"
        "reaped = []\n"
        "while pid not in reaped and time.monotonic() < deadline:\n"
        "    reaped += reap_orphans(set())\n"
        "    time.sleep(0.05)\n"
        "print(reaped == [pid], reap_orphans(set()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "[]"]
