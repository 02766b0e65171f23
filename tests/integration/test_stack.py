"""``python -m htcgrid_core.stack`` and ``compute/eks/stack-env.sh``: a deployed stack's outputs
as the agents' environment, read from a stack on the emulator."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from htcgrid_core import aws
from htcgrid_core.settings import EnvironmentSettings, GridSettings
from htcgrid_core.stack import main, read_outputs
from tests.conftest import REPO

STACK = "htcgrid-shared"  # the stack of the ``shared_settings`` fixture


def parse_env_file(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def settings_of(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> GridSettings:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return GridSettings.model_validate(EnvironmentSettings().model_dump())


def test_the_printed_environment_gives_an_agent_the_stacks_settings_and_keda_its_queues(
    shared_settings: GridSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint_url = shared_settings.endpoint_url
    assert endpoint_url is not None

    assert main([STACK, "--endpoint-url", endpoint_url, "--region", "us-east-1"]) == 0

    printed = capsys.readouterr().out
    assert printed.startswith(f"# From stack {STACK} (us-east-1) by ")
    environment = parse_env_file(printed)
    queues = {n: environment.pop(n) for n in list(environment) if "TASK_QUEUE_URL" in n}
    outputs = read_outputs(aws.client("cloudformation", endpoint_url, "us-east-1"), STACK)
    assert queues == {
        f"HTCGRID_TASK_QUEUE_URL_P{level}": outputs[f"TaskQueueUrlP{level}"]
        for level in range(shared_settings.priority_levels)
    }
    assert queues["HTCGRID_TASK_QUEUE_URL_P2"].endswith(f"/{shared_settings.queue_name(2)}")
    assert settings_of(environment, monkeypatch) == shared_settings


def test_stack_env_sh_writes_the_same_file_with_boto3s_endpoint_and_no_emulator_url(
    shared_settings: GridSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint_url = shared_settings.endpoint_url
    assert endpoint_url is not None
    env = {
        **os.environ,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint_url,
        "PYTHON": sys.executable,
    }

    run = subprocess.run(
        ["bash", str(REPO / "compute/eks/stack-env.sh"), STACK],  # noqa: S607 - bash from PATH
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    environment = parse_env_file(run.stdout)
    assert "HTCGRID_ENDPOINT_URL" not in environment
    assert environment["HTCGRID_REGION"] == "us-east-1"
    agent = settings_of(environment, monkeypatch)
    assert agent == shared_settings.model_copy(update={"endpoint_url": None})


def test_a_stack_that_does_not_exist_is_one_line_naming_it(
    shared_settings: GridSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint_url = shared_settings.endpoint_url
    assert endpoint_url is not None

    assert main(["no-such-stack", "--endpoint-url", endpoint_url, "--region", "us-east-1"]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("python -m htcgrid_core.stack: stack no-such-stack: ")
    assert "does not exist" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
