"""``htcgrid submit`` with payloads that are not JSON: exit code 2, naming the argument or the
file's line, before it connects to any grid (so nothing of the input is submitted)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from htcgrid import cli
from htcgrid.cli import app
from htcgrid.cli.exit_codes import EXIT_USAGE


@pytest.fixture(autouse=True)
def no_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(args: argparse.Namespace) -> None:
        pytest.fail("the command connected to a grid with input it should have refused")

    monkeypatch.setattr(app, "_connect", connect)


def submit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["--json", "submit", *args])
    return code, " ".join(capsys.readouterr().err.split())


def test_an_argument_that_is_not_json_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, said = submit(capsys, '{"x": 1}', "{not json")
    assert code == EXIT_USAGE
    assert "payload 2 is not JSON" in said


def test_a_line_of_the_file_that_is_not_json_is_bad_usage_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a file of JSON lines whose third (blank lines aside) is not JSON
    payloads = tmp_path / "tasks.jsonl"
    payloads.write_text('{"x": 1}\n\n{"x": 2}\n{"x": 3,}\n{"x": 4}\n', encoding="utf-8")
    # THEN the command refuses the whole file, naming the line, and submits nothing
    code, said = submit(capsys, "--file", str(payloads))
    assert code == EXIT_USAGE
    assert f"{payloads}:4 is not JSON" in said


def test_a_file_that_is_not_utf_8_is_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payloads = tmp_path / "tasks.jsonl"
    payloads.write_bytes(b'{"x": "caf\xe9"}\n')
    code, said = submit(capsys, "--file", str(payloads))
    assert code == EXIT_USAGE
    assert f"{payloads} is not UTF-8 text" in said


def test_a_missing_file_is_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, said = submit(capsys, "--file", str(tmp_path / "none.jsonl"))
    assert code == EXIT_USAGE
    assert "none.jsonl" in said
