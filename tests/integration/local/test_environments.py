"""The local grid keeps Lambda's execution model: an environment runs one invocation at a time,
concurrent invocations get environments of their own (kept warm and reused), functions and
stacks share no module state or environment variable, and a timeout or a crash ends only the
environment it happened in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from htcgrid_local import sandbox
from htcgrid_local.emulator import Emulator
from htcgrid_local.provision import StackOutputs, provision_stack
from htcgrid_local.template import translate
from tests.integration.local.conftest import FIXTURE_TEMPLATE, REPO_TEMPLATE
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(180)


def invoke(aws: Callable[[str], Any], function: str, event: dict[str, Any]) -> dict[str, Any]:
    """The function's answer; a function error as ``{"FunctionError": ..., **body}``."""
    reply = aws("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    body: dict[str, Any] = json.loads(reply["Payload"].read())
    if reply.get("FunctionError"):
        return {"FunctionError": reply["FunctionError"], **body}
    return body


def concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent to read its status.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def test_concurrent_invocations_get_environments_of_their_own_and_warm_ones_are_reused(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    probe = fixture_stack["ProbeFunctionName"]

    # WHEN three invocations run at once, each keeping its own value in module state
    answers = concurrently(
        [lambda v=value: invoke(aws, probe, {"value": v, "sleep": 1.0}) for value in range(3)]
    )

    # THEN each ran in a process of its own and saw only its own value
    assert sorted(a["value"] for a in answers) == [0, 1, 2]
    first_pids = {a["pid"] for a in answers}
    assert len(first_pids) == 3

    # WHEN more invocations come one after another, THEN they reuse the warm environments
    later = [invoke(aws, probe, {"value": f"later-{n}"}) for n in range(3)]
    assert {a["pid"] for a in later} <= first_pids
    assert [a["value"] for a in later] == ["later-0", "later-1", "later-2"]


def test_functions_share_no_environment_variable(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    mark = f"PROBE_MARK_{uuid.uuid4().hex[:8]}"

    wrote = invoke(aws, fixture_stack["ProbeFunctionName"], {"set_environ": mark})
    read = invoke(aws, fixture_stack["ProbeTwinFunctionName"], {"read_environ": [mark]})

    assert wrote["name"] == "ProbeA"
    assert read["name"] == "ProbeB"
    assert read["environ"] == {mark: None}


def test_each_functions_metrics_are_published_under_its_own_service(
    aws: Callable[[str], Any], fixture_stack: StackOutputs, local_emulator: Emulator
) -> None:
    # GIVEN two functions that record into one Metrics object of their shared layer, as the
    # grid's functions do into htcgrid_core.observability's
    assert local_emulator.log_path is not None
    start = local_emulator.log_path.stat().st_size
    names = {
        "ProbeA": fixture_stack["ProbeFunctionName"],
        "ProbeB": fixture_stack["ProbeTwinFunctionName"],
    }
    runs = 12

    # WHEN both run many times at once
    concurrently(
        [lambda f=function: invoke(aws, f, {"sleep": 0.05}) for function in names.values()] * runs
    )

    # THEN every EMF document names only its own function's metric, and none is lost
    def published() -> Counter[tuple[str, str]]:
        with local_emulator.log_path.open("rb") as log:  # type: ignore[union-attr]
            log.seek(start)
            lines = log.read().decode("utf-8", "replace").splitlines()
        counts: Counter[tuple[str, str]] = Counter()
        for line in lines:
            if not line.startswith("{") or '"_aws"' not in line:
                continue
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    values = document[metric["Name"]]  # Powertools writes a list of values
                    counts[(document["service"], metric["Name"])] += int(sum(values))
        return counts

    wait_for(lambda: sum(published().values()) >= 2 * runs, 30, "every invocation's metrics")
    assert published() == {
        ("probe-a", "ProbeAInvocations"): runs,
        ("probe-b", "ProbeBInvocations"): runs,
    }


def test_stacks_on_one_emulator_run_with_their_own_environment(
    aws: Callable[[str], Any], fixture_stack: StackOutputs, local_emulator: Emulator
) -> None:
    # GIVEN a second stack of the same app on the same emulator, with another greeting
    other = provision_stack(
        local_emulator.endpoint_url, FIXTURE_TEMPLATE, "fixture-fr", {"Greeting": "bonjour"}
    )
    echoes = {"hello": fixture_stack["EchoFunctionName"], "bonjour": other["EchoFunctionName"]}

    # WHEN both stacks' functions are invoked at once, many times
    calls = [
        lambda g=greeting, f=function: (g, invoke(aws, f, {"input": {}}))
        for greeting, function in echoes.items()
    ] * 8
    answers = concurrently(calls)

    # THEN each always answered with its own stack's settings
    assert all(answer["greeting"] == greeting for greeting, answer in answers)


def test_a_timeout_ends_the_environment_and_what_its_handler_started(
    aws: Callable[[str], Any], fixture_stack: StackOutputs, tmp_path: Path
) -> None:
    probe = fixture_stack["ProbeFunctionName"]
    pid_file = tmp_path / "child.pid"

    # WHEN a handler that started a child process runs past the function's 3 s timeout
    answer = invoke(aws, probe, {"sleep": 30, "child_pid_file": str(pid_file)})

    # THEN the invocation fails as Lambda's do, and the child is killed with the environment
    assert answer["FunctionError"] == "Unhandled"
    assert answer["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 3.00 seconds" in answer["errorMessage"]
    child = int(pid_file.read_text())
    wait_for(lambda: not alive(child), 10, "the handler's child process killed")
    # AND the function goes on in another environment
    assert invoke(aws, probe, {"value": "after"})["value"] == "after"


def test_an_environment_whose_process_exits_is_replaced(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    probe = fixture_stack["ProbeTwinFunctionName"]
    before = invoke(aws, probe, {})

    answer = invoke(aws, probe, {"exit": 3})

    assert answer["errorType"] == "Runtime.ExitError"
    after = invoke(aws, probe, {"value": "next"})
    assert after["value"] == "next"
    # The environment that exited is gone; a warm one or a new one served the next call.
    assert before["pid"] == after["pid"] or alive(after["pid"])


def test_a_failed_init_fails_each_invocation_with_lambdas_error(
    aws: Callable[[str], Any], fixture_stack: StackOutputs
) -> None:
    for _ in range(2):  # Lambda tries the init again on the next invocation
        answer = invoke(aws, fixture_stack["BrokenFunctionName"], {})

        assert answer["FunctionError"] == "Unhandled"
        assert answer["errorType"] == "Runtime.ImportModuleError"
        assert "Unable to import module 'app'" in answer["errorMessage"]
        assert "this module cannot be imported" in answer["errorMessage"]


def test_invocations_beyond_reserved_concurrency_are_throttled(
    local_emulator: Emulator, fixture_stack: StackOutputs, tmp_path: Path
) -> None:
    # A client that does not retry throttles, so the answer itself is seen.
    lambda_ = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client(
        "lambda",
        endpoint_url=local_emulator.endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    solo = fixture_stack["SoloProbeFunctionName"]
    marker = tmp_path / "running"
    with ThreadPoolExecutor(max_workers=1) as pool:
        # GIVEN the function's one environment busy
        busy = pool.submit(
            lambda: lambda_.invoke(
                FunctionName=solo,
                Payload=json.dumps({"sleep": 3, "running_file": str(marker)}),
            )
        )
        wait_for(marker.exists, 30, "the first invocation running")

        # WHEN another invocation comes
        with pytest.raises(ClientError) as throttled:
            lambda_.invoke(FunctionName=solo, Payload=b"{}")

        # THEN Lambda's throttle answers it, and the first one finishes normally
        assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
        assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert "FunctionError" not in busy.result()


def test_preloaded_modules_read_only_variables_every_function_shares() -> None:
    """Environments are forked from a base that imported these modules once (sandbox.PRELOAD):
    a variable read at import must not be one a function could set differently."""
    probe = (
        "import collections.abc, importlib, json, os\n"
        "read = set()\n"
        "class Watch(collections.abc.MutableMapping):\n"
        "    def __init__(self, environ): self.environ = environ\n"
        "    def __getitem__(self, key): read.add(key); return self.environ[key]\n"
        "    def __setitem__(self, key, value): self.environ[key] = value\n"
        "    def __delitem__(self, key): del self.environ[key]\n"
        "    def __iter__(self): read.add('*'); return iter(self.environ)\n"
        "    def __len__(self): return len(self.environ)\n"
        "os.environ = Watch(os.environ)\n"
        "from htcgrid_local import sandbox\n"
        "for name in sandbox.PRELOAD: importlib.import_module(name)\n"
        "print(json.dumps(sorted(read)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    )
    read = set(json.loads(done.stdout))

    # The runtime's own (set alike in bases and functions: environments.RUNTIME_VARIABLES) and
    # the interpreter's; then library switches, which no function of the grid sets.
    shared = {"AWS_EXECUTION_ENV", "AWS_LAMBDA_INITIALIZATION_TYPE", "HOME", "PYTHONTZPATH"}
    switches = {"POWERTOOLS_DEBUG", "AWS_NEW_RETRIES_2026", "PYDANTIC_DISABLE_PLUGINS"}
    interpreter = {name for name in read if re.match(r"_?PYTHON", name)}
    assert read - interpreter <= shared | switches
    translated = translate(REPO_TEMPLATE, staging_bucket="stage", region="us-east-1")
    for resource in translated.template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert not switches & set(variables)
    assert sandbox.PRELOAD
