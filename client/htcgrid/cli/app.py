"""The ``htcgrid`` command line: its parser, built from the command groups, and the one place
where errors become a one-line message and an exit code.

A group is a module with a ``register(commands)`` function that adds its subcommands with
``common.add_command``; adding a group (say ``dlq list|redrive``) is a module with such a
function and one line in ``GROUPS``. A command gets a ``Context`` (arguments, console, the grid
on first use) and returns an exit code; every error the client raises is a ``GridError``, and
``run`` maps each kind to its exit code (``EXITS``), never printing a traceback for one.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from importlib.metadata import version

import boto3
from botocore.exceptions import ProfileNotFound
from rich.console import Console
from rich.markup import escape

from htcgrid.cli import dlq, sessions, tasks, top
from htcgrid.cli.common import Context, UsageError
from htcgrid.cli.exit_codes import (
    EXIT_ACCESS_DENIED,
    EXIT_CREDENTIALS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_THROTTLED,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from htcgrid.errors import (
    AccessDeniedError,
    CredentialsError,
    GridError,
    GridNotFoundError,
    InvalidRequestError,
    NotFoundError,
    ResultsTimeoutError,
    SubmissionFailedError,
    ThrottledError,
    UnreachableError,
    grid_error,
)
from htcgrid.grid import Grid

#: The environment variable that names the stack when ``--stack`` is not given.
STACK_VARIABLE = "HTCGRID_STACK"

#: Every command group, in ``--help`` order.
GROUPS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    tasks.register,
    sessions.register,
    top.register,
    dlq.register,
)

EXAMPLES = """
examples:
  htcgrid --local submit '{"x": 1}' '{"x": 2}' --wait   # two tasks, wait for their results
  htcgrid --local submit --file tasks.jsonl --priority 2 --session sweep-7
  htcgrid --local status sweep-7                       # tasks per state (--exact: recount)
  htcgrid --local status sweep-7 --tasks failed        # list the failed tasks
  htcgrid --local results sweep-7 --follow             # results as they come
  htcgrid --local sessions                             # recent sessions with counts
  htcgrid --local top                                  # live queues, states, throughput
  htcgrid --stack prod --region eu-west-1 cancel sweep-7
  htcgrid --local delete sweep-7 --yes                 # records and S3 objects
  htcgrid --local dlq list                             # dead letters and why
  htcgrid --local dlq redrive --session sweep-7        # one more attempt for them

Each command has --help with its own examples. --json writes one JSON document per line on
stdout (messages and progress go to stderr).

The stack is --stack, else $HTCGRID_STACK, else "htcgrid".

exit codes:
  0    ok
  1    the grid refused or failed the request (or, with --wait, a task failed)
  2    bad usage, or input refused (the field is named)
  3    stack, local grid or resource not found
  4    timed out waiting for results
  5    access denied (the action and resource are named)
  6    AWS credentials missing, expired or invalid
  7    throttled past every retry: try again later
  8    AWS or the emulator unreachable
  130  interrupted
"""

#: Each kind of error, most specific first: its exit code, and the label its line starts with.
EXITS: tuple[tuple[type[GridError], int, str], ...] = (
    (UsageError, EXIT_USAGE, "usage"),
    (InvalidRequestError, EXIT_USAGE, "invalid input"),
    (GridNotFoundError, EXIT_NOT_FOUND, "grid not found"),
    (NotFoundError, EXIT_NOT_FOUND, "not found"),
    (AccessDeniedError, EXIT_ACCESS_DENIED, "access denied"),
    (CredentialsError, EXIT_CREDENTIALS, "credentials"),
    (ThrottledError, EXIT_THROTTLED, "throttled"),
    (UnreachableError, EXIT_UNREACHABLE, "unreachable"),
    (ResultsTimeoutError, EXIT_TIMEOUT, "timed out"),
    (SubmissionFailedError, EXIT_FAILED, "submission failed"),
    (GridError, EXIT_FAILED, "error"),
)


def parser() -> argparse.ArgumentParser:
    """The ``htcgrid`` command line, every group registered."""
    top_parser = argparse.ArgumentParser(
        prog="htcgrid",
        description="Use an htcgrid deployment: submit tasks, follow sessions, read results.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top_parser.add_argument("--version", action="version", version=f"htcgrid {version('htcgrid')}")
    where = top_parser.add_mutually_exclusive_group()
    where.add_argument(
        "--stack",
        default=os.environ.get(STACK_VARIABLE) or "htcgrid",
        help=f"CloudFormation stack (default ${STACK_VARIABLE}, else htcgrid)",
    )
    where.add_argument("--local", action="store_true", help="the local grid (htcgrid-local up)")
    top_parser.add_argument("--region", help="AWS region (boto3's default if unset)")
    top_parser.add_argument("--profile", help="AWS profile (boto3's default chain if unset)")
    top_parser.add_argument("--endpoint-url", help="send AWS calls here (an emulator)")
    top_parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = top_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(commands)
    return top_parser


def _connect(args: argparse.Namespace) -> Grid:
    if args.local:
        return Grid.local()
    try:
        # A named profile needs a session of its own; the default chain needs none of ours.
        session = boto3.session.Session(profile_name=args.profile) if args.profile else None
    except ProfileNotFound as error:
        raise grid_error(error) from error
    return Grid.connect(
        args.stack, region=args.region, endpoint_url=args.endpoint_url, boto_session=session
    )


def exit_for(error: GridError) -> tuple[int, str]:
    """The exit code and label of an error (``EXITS``)."""
    return next((code, label) for kind, code, label in EXITS if isinstance(error, kind))


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run its command, and map what it raises to an exit code: one line on
    stderr for every ``GridError`` (the client raises nothing else on purpose)."""
    args = parser().parse_args(argv)
    context = Context(args, Console(stderr=args.json), lambda: _connect(args))
    try:
        try:
            code: int = args.run(context)
        finally:
            context.close()
    except GridError as error:
        code, label = exit_for(error)
        line = " ".join(str(error).split())  # AWS messages may span lines; one line here
        Console(stderr=True).print(
            f"[red]{label}:[/] {escape(line)}", highlight=False, soft_wrap=True
        )
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code
