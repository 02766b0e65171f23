"""An agent started without what it needs says so in one line, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "htcgrid_agent", "--handler", "x:y", "--burst"],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({}, "You must specify a region"),
        ({"AWS_DEFAULT_REGION": "us-east-1"}, "HTCGRID_RETRY_WORKFLOW_ARN is not set"),
        (
            {"AWS_DEFAULT_REGION": "us-east-1", "HTCGRID_PRIORITY_LEVELS": "many"},
            "priority_levels",
        ),
    ],
)
def test_an_agent_without_its_settings_says_which_in_one_line(
    env: dict[str, str], said: str
) -> None:
    finished = start(env)
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    (line,) = finished.stderr.strip().splitlines()
    assert line.startswith("htcgrid-agent: cannot find the grid: ")
    assert said in line
