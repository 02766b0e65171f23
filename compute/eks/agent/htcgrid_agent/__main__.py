"""``htcgrid-agent``: run a worker agent against the grid named by HTCGRID_* settings.

The flags are ``AgentConfig``'s fields, read by pydantic-settings' CLI source: each flag's
default, limit and help are written once, on its field. What argparse shows better than the
CLI source does (examples, the Lambda runtimes' group, one-of ``--bootstrap`` /
``--runtime-api-port``) is this module's root parser; a field's limit broken on the command
line is one argparse error naming the flag and the limit.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import start_http_server
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    CliApp,
    CliSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from htcgrid_agent.config import ENVIRONMENT, AgentConfig
from htcgrid_agent.health import HealthServer, Probes
from htcgrid_agent.process import become_subreaper, protect_memory
from htcgrid_agent.slots import HandlerLoadError
from htcgrid_agent.worker import Worker
from htcgrid_core.resources import GridResources
from htcgrid_core.settings import get_settings

PROG = "htcgrid-agent"
EXAMPLES = """
examples:
  htcgrid-agent --handler htcgrid_examples.pricing:handler --slots 2
  htcgrid-agent --handler mypkg.tasks:handler --burst          # drain the queues, then exit
  htcgrid-agent --bootstrap ./bootstrap --handler app.handler --slots 4   # any Lambda runtime
  htcgrid-agent --runtime-api-port 9001 --slots 2    # runtimes in sidecar containers
"""
#: The Lambda runtimes' flags (by the CLI source's dest: the field's alias, else its name), in
#: their own group of --help; the first two exclude each other.
RUNTIME_MODES: Final = ("bootstrap", "runtime_api_port")
RUNTIME_FLAGS: Final = (*RUNTIME_MODES, "task_root", "runtime_init_timeout")
#: Fields that are not flags.
NOT_FLAGS: Final = ("flush_interval_s",)
#: What a broken limit says, by pydantic's error type.
LIMITS: Final = {
    "greater_than_equal": "must be at least {ge:g}",
    "greater_than": "must be more than {gt:g}",
    "less_than_equal": "must be at most {le:g}",
    "less_than": "must be less than {lt:g}",
}


class _CommandLine(BaseSettings, AgentConfig):
    """AgentConfig read from flags, then from the two environment variables it has."""

    # Flags are the aliases only (``--long-poll``, never also ``--long-poll-s``); a bool is a
    # bare switch (``--burst``).
    model_config = SettingsConfigDict(
        validate_by_name=False,
        env_prefix="HTCGRID_",
        env_ignore_empty=True,
        cli_kebab_case=True,
        cli_implicit_flags="toggle",
        cli_hide_none_type=True,
        cli_avoid_json=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The CLI source goes first (the flags win); no dotenv or secrets files.
        return (_FlagEnvironment(settings_cls),)


class _FlagEnvironment(EnvSettingsSource):
    """``HTCGRID_<FIELD>`` for the fields in ``ENVIRONMENT`` only: HTCGRID_SLOTS sets nothing."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in ENVIRONMENT:
            return None, field_name, False
        return super().get_field_value(field, field_name)


def _flag(field_name: str) -> str:
    """The flag of a field (and its environment variable, if it has one)."""
    info = AgentConfig.model_fields[field_name]
    alias = info.validation_alias if isinstance(info.validation_alias, str) else field_name
    flag = "--" + alias.replace("_", "-")
    if field_name in ENVIRONMENT:
        flag += f" (or HTCGRID_{field_name.upper()})"
    return flag


def _field_of(alias: str) -> str:
    for name, info in AgentConfig.model_fields.items():
        if alias in (name, info.validation_alias):
            return name
    return alias  # pragma: no cover - every error names one of the model's fields


def explain(error: ValidationError) -> str:
    """A validation error as one line per problem, each naming the flag and the limit."""
    problems = []
    for problem in error.errors():
        if not problem["loc"]:  # the model's own checks say what is wrong in flag names
            problems.append(problem["msg"].removeprefix("Value error, "))
            continue
        flag = _flag(_field_of(str(problem["loc"][0])))
        limit = LIMITS.get(problem["type"])
        if limit is not None:
            bound = limit.format(**problem.get("ctx", {}))
            problems.append(f"{flag} {bound}, not {problem['input']}")
        else:
            problems.append(f"{flag}: {problem['msg'].lower()} (got {problem['input']!r})")
    return "; ".join(problems)


def parser() -> tuple[argparse.ArgumentParser, CliSettingsSource[argparse.ArgumentParser]]:
    """The root parser, and the CLI source that adds AgentConfig's fields to it as flags."""
    root = argparse.ArgumentParser(
        prog=PROG,
        description="Take tasks from the grid's priority queues and run a Lambda-style handler.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    runtime = root.add_argument_group(
        "Lambda runtimes", "run tasks in any Lambda runtime through the Runtime API"
    )
    modes = runtime.add_mutually_exclusive_group()

    def add_flag(parser: Any, *names: str, **options: Any) -> Any:
        dest = options["dest"]
        field = _field_of(dest)
        if field in NOT_FLAGS:
            return None
        extra = AgentConfig.model_fields[field].json_schema_extra
        if isinstance(extra, dict) and "metavar" in extra:
            options["metavar"] = extra["metavar"]
        # An empty default (--handler's) says nothing worth a "(default: )".
        options["help"] = options["help"].replace(" (default: )", "")
        group = modes if dest in RUNTIME_MODES else runtime if dest in RUNTIME_FLAGS else parser
        return group.add_argument(*names, **options)

    source: CliSettingsSource[argparse.ArgumentParser] = CliSettingsSource(
        _CommandLine,
        cli_prog_name=PROG,
        cli_parse_none_str="none",  # how --help shows an unset default
        root_parser=root,
        add_argument_method=add_flag,
    )
    return root, source


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    """The agent's configuration from ``argv`` (default ``sys.argv[1:]``) and its environment
    variables; a bad flag exits with argparse's usage and a message naming it."""
    root, source = parser()
    try:
        args = sys.argv[1:] if argv is None else argv
        read = CliApp.run(_CommandLine, cli_args=args, cli_settings_source=source)
    except ValidationError as error:
        root.error(explain(error))
    return AgentConfig.model_validate(read.model_dump())


def agent_resources() -> GridResources:
    """The grid's adapters as the agent uses them: its clients skip botocore's client-side
    check of each request against the API's model (a few % of the agent's CPU, once per AWS
    request). The agent's requests are built by the grid's own code from validated documents,
    and AWS refuses a malformed one all the same (a ``ClientError``, which the agent handles
    as any other: the message comes back)."""
    return GridResources.from_settings(get_settings(), validate_parameters=False)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    if not config.handler_credentials:
        # Handlers run as the agent's user: keep them out of its memory, which holds the
        # credentials it withholds from them (``process.protect_memory``).
        protect_memory()
    # Processes a killed handler left behind come to the agent, which collects them (as PID 1
    # of its container it gets them anyway).
    become_subreaper()
    if config.metrics_port is not None:
        start_http_server(config.metrics_port, addr=str(config.listen_address))
    try:
        worker = Worker(config, agent_resources())
    except (ValueError, BotoCoreError) as error:
        # Settings missing or wrong (pydantic's ValidationError is a ValueError), or no region.
        said = " ".join(str(error).split())  # a ValidationError spans lines: one line here
        print(
            f"htcgrid-agent: cannot find the grid: {said} (the HTCGRID_* settings come from "
            "the stack's outputs: compute/eks/stack-env.sh, or `htcgrid-local env`)",
            file=sys.stderr,
        )
        return 2
    health = None
    if config.health_port is not None:
        health = HealthServer(
            Probes(worker), config.health_port, str(config.listen_address)
        ).start()
    try:
        worker.work()
    except HandlerLoadError as error:
        print(f"htcgrid-agent: cannot load the handler: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        # Past botocore's retries before the loop began (no credentials, a queue that does
        # not exist): nothing was taken, so nothing is lost by stopping.
        print(f"htcgrid-agent: AWS failed: {error}", file=sys.stderr)
        return 1
    finally:
        if health is not None:
            health.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
