"""``htcgrid``: use a grid from a shell.

Commands come in groups, one module each (``tasks``, ``sessions``, ``top``). A group is a
``register(commands)`` function that adds its subcommands with ``common.add_command``; adding a
group (say ``dlq list|redrive``) is a module with such a function and one line in ``GROUPS``.
A command gets a ``Context`` (arguments, console, the grid on first use) and returns an exit
code; errors are mapped to exit codes here, in one place.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from rich.console import Console

from htcgrid.cli import dlq, sessions, tasks, top
from htcgrid.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Context,
    UsageError,
)
from htcgrid.errors import (
    GridError,
    GridNotFoundError,
    QueryFailedError,
    ResultsTimeoutError,
    SubmissionFailedError,
)
from htcgrid.grid import Grid
from htcgrid_core.errors import HtcGridError

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

exit codes: 0 ok, 1 the grid refused or failed the request (or a task failed, with --wait),
2 bad usage, 3 grid not found, 4 timed out, 130 interrupted
"""


def parser() -> argparse.ArgumentParser:
    """The ``htcgrid`` command line, every group registered."""
    top_parser = argparse.ArgumentParser(
        prog="htcgrid",
        description="Use an htcgrid deployment: submit tasks, follow sessions, read results.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = top_parser.add_mutually_exclusive_group()
    where.add_argument("--stack", default="htcgrid", help="CloudFormation stack (default htcgrid)")
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
    import boto3  # only for a named profile; the default chain needs no session of ours

    session = boto3.session.Session(profile_name=args.profile) if args.profile else None
    return Grid.connect(
        args.stack, region=args.region, endpoint_url=args.endpoint_url, boto_session=session
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(stderr=args.json)
    context = Context(args, console, lambda: _connect(args))
    try:
        code: int = args.run(context)
    except UsageError as error:
        console.print(f"[red]usage:[/] {error}")
        return EXIT_USAGE
    except GridNotFoundError as error:
        console.print(f"[red]grid not found:[/] {error}")
        return EXIT_NOT_FOUND
    except SubmissionFailedError as error:
        console.print(f"[red]submission failed:[/] {error}", highlight=False)
        return EXIT_FAILED
    except ResultsTimeoutError as error:
        console.print(f"[yellow]timed out:[/] {error}")
        return EXIT_TIMEOUT
    except (QueryFailedError, GridError, HtcGridError) as error:
        console.print(f"[red]error:[/] {error}")
        return EXIT_FAILED
    except (ValueError, OSError) as error:  # pydantic's ValidationError is a ValueError
        console.print(f"[red]bad input:[/] {error}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
