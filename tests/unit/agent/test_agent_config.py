"""``htcgrid-agent``'s flags: each one's name, default, environment variable and limit, read into
``AgentConfig`` by pydantic-settings' CLI source."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from pydantic import ValidationError

from htcgrid_agent.__main__ import parse_args
from htcgrid_agent.config import AgentConfig


@pytest.fixture(autouse=True)
def no_agent_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTCGRID_HANDLER", raising=False)
    monkeypatch.delenv("HTCGRID_HANDLER_CREDENTIALS", raising=False)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one-line error ``htcgrid-agent`` exits with (status 2, after the usage)."""
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: htcgrid-agent")
    return err.strip().splitlines()[-1].removeprefix("htcgrid-agent: error: ")


def test_without_flags_every_field_has_its_documented_default() -> None:
    assert parse_args(["--handler", "m:f"]) == AgentConfig(handler="m:f")
    assert AgentConfig(handler="m:f").model_dump() == {
        "handler": "m:f",
        "slots": 1,
        "prefetch": 10,
        "burst": False,
        "max_tasks": None,
        "max_idle_s": None,
        "starvation_weight": None,
        "long_poll_s": 5,
        "flush_interval_s": 0.25,
        "slot_memory_mb": None,
        "handler_credentials": False,
        "metrics_port": None,
        "health_port": None,
        "listen_address": IPv4Address("0.0.0.0"),  # noqa: S104 - the documented default
        "name": "htcgrid-agent",
        "bootstrap": None,
        "runtime_api_port": None,
        "task_root": None,
        "runtime_init_timeout_s": 30.0,
    }


@pytest.mark.parametrize(
    ("flags", "field", "value"),
    [
        (["--slots", "4"], "slots", 4),
        (["--prefetch", "0"], "prefetch", 0),
        (["--burst"], "burst", True),
        (["--max-tasks", "7"], "max_tasks", 7),
        (["--max-idle", "2.5"], "max_idle_s", 2.5),
        (["--starvation-weight", "3"], "starvation_weight", 3),
        (["--long-poll", "1"], "long_poll_s", 1),
        (["--metrics-port", "9100"], "metrics_port", 9100),
        (["--health-port", "8081"], "health_port", 8081),
        (["--listen-address", "127.0.0.1"], "listen_address", IPv4Address("127.0.0.1")),
        (["--slot-memory-mb", "768"], "slot_memory_mb", 768),
        (["--handler-credentials"], "handler_credentials", True),
        (["--name", "a-7"], "name", "a-7"),
        (["--bootstrap", "./bootstrap"], "bootstrap", "./bootstrap"),
        (["--runtime-api-port", "9001"], "runtime_api_port", 9001),
        (["--task-root", "/var/task"], "task_root", "/var/task"),
        (["--runtime-init-timeout", "4"], "runtime_init_timeout_s", 4.0),
    ],
)
def test_each_flag_sets_its_field(flags: list[str], field: str, value: object) -> None:
    assert getattr(parse_args(["--handler", "m:f", *flags]), field) == value


def test_a_field_is_set_by_its_flag_only_not_by_its_field_name() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--handler", "m:f", "--long-poll-s", "1"])
    with pytest.raises(SystemExit):
        parse_args(["--handler", "m:f", "--flush-interval-s", "1"])  # no flag at all


def test_the_handler_and_handler_credentials_come_from_the_environment_and_a_flag_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTCGRID_HANDLER", "env:handler")
    monkeypatch.setenv("HTCGRID_HANDLER_CREDENTIALS", "true")
    monkeypatch.setenv("HTCGRID_SLOTS", "9")  # not a variable of the agent's

    config = parse_args([])
    assert (config.handler, config.handler_credentials, config.slots) == ("env:handler", True, 1)
    assert parse_args(["--handler", "flag:handler"]).handler == "flag:handler"
    monkeypatch.setenv("HTCGRID_HANDLER_CREDENTIALS", "")  # empty is unset
    assert not parse_args([]).handler_credentials


def test_a_config_built_in_code_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTCGRID_HANDLER", "env:handler")
    monkeypatch.setenv("HTCGRID_HANDLER_CREDENTIALS", "1")

    config = AgentConfig(bootstrap="./bootstrap")
    assert (config.handler, config.handler_credentials) == ("", False)


def test_a_lambda_runtime_needs_no_handler_and_python_children_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args(["--bootstrap", "./bootstrap"]).handler == ""
    assert parse_args(["--runtime-api-port", "9001"]).uses_runtime_api
    assert parse_args(["--bootstrap", "./b", "--handler", "app.handler"]).handler == "app.handler"
    assert refused(["--slots", "2"], capsys).startswith(
        "--handler (or HTCGRID_HANDLER) is required"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--slots", "0"], "--slots must be at least 1, not 0"),
        (["--prefetch", "-1"], "--prefetch must be at least 0, not -1"),
        (["--max-tasks", "0"], "--max-tasks must be at least 1, not 0"),
        (["--max-idle", "-1"], "--max-idle must be at least 0, not -1"),
        (["--starvation-weight", "0"], "--starvation-weight must be at least 1, not 0"),
        (["--long-poll", "21"], "--long-poll must be at most 20, not 21"),
        (["--metrics-port", "70000"], "--metrics-port must be at most 65535, not 70000"),
        (["--health-port", "0"], "--health-port must be at least 1, not 0"),
        (["--slot-memory-mb", "63"], "--slot-memory-mb must be at least 64, not 63"),
        (["--runtime-init-timeout", "0"], "--runtime-init-timeout must be more than 0"),
        (
            ["--runtime-api-port", "65534", "--slots", "2"],
            "--runtime-api-port must leave room for 2 ports below 65536 (one per slot), not 65534",
        ),
        (["--slots", "two"], "--slots: input should be a valid integer"),
        (
            ["--slots", "0", "--prefetch", "-2"],
            "--slots must be at least 1, not 0; --prefetch must be at least 0, not -2",
        ),
    ],
)
def test_a_flag_beyond_its_limit_is_refused_naming_the_flag_and_the_limit(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert refused(["--handler", "m:f", *flags], capsys).startswith(message)


def test_a_bad_environment_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HTCGRID_HANDLER_CREDENTIALS", "sometimes")
    assert refused(["--handler", "m:f"], capsys).startswith(
        "--handler-credentials (or HTCGRID_HANDLER_CREDENTIALS): input should be a valid boolean"
    )


def test_bootstrap_and_runtime_api_port_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = refused(["--bootstrap", "./b", "--runtime-api-port", "9001"], capsys)
    assert message == "argument --runtime-api-port: not allowed with argument --bootstrap"
    with pytest.raises(ValidationError, match="--bootstrap and --runtime-api-port exclude"):
        AgentConfig(bootstrap="./b", runtime_api_port=9001)


def test_help_shows_each_flag_with_its_default_the_runtimes_group_and_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert "[--bootstrap CMD | --runtime-api-port PORT]" in shown
    assert "--slot-memory-mb MB" in shown
    assert "(default: 10)" in shown  # --prefetch's
    assert "Lambda runtimes:" in shown
    assert "examples:\n  htcgrid-agent --handler htcgrid_examples.pricing:handler" in shown
    assert "flush" not in shown
