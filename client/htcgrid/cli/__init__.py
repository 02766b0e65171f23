"""``htcgrid``: submit tasks, check a session's status, read its results."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

from pydantic import JsonValue
from rich.console import Console
from rich.table import Table

from htcgrid.errors import GridError, GridNotFoundError, SubmissionFailedError
from htcgrid.grid import Grid
from htcgrid_core.errors import HtcGridError
from htcgrid_core.models import TaskState

EXAMPLES = """
examples:
  htcgrid --local submit '{"x": 1}' '{"x": 2}'          # two tasks, prints the session id
  htcgrid --local submit --file tasks.jsonl --priority 2 --wait
  htcgrid --stack htcgrid status 3f9c2a...
  htcgrid --local results 3f9c2a... --json > results.jsonl
  htcgrid --local cancel 3f9c2a...                          # the whole session

exit codes: 0 ok, 1 the grid refused or failed the request, 2 bad usage, 3 grid not found
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="htcgrid",
        description="Use an htcgrid deployment: submit tasks, see status, read results.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", default="htcgrid", help="CloudFormation stack (default htcgrid)")
    where.add_argument("--local", action="store_true", help="the local grid (htcgrid-local up)")
    parser.add_argument("--region", help="AWS region (boto3's default if unset)")
    parser.add_argument("--endpoint-url", help="send AWS calls here (an emulator)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", help="submit tasks (one per JSON payload)")
    submit.add_argument("payloads", nargs="*", help="JSON payloads, one task each")
    submit.add_argument("--file", help="a file of JSON lines, one payload per line ('-': stdin)")
    submit.add_argument("--session", help="add to this session (default: a new one)")
    submit.add_argument("--priority", type=int, help="priority level, 0 is the lowest")
    submit.add_argument("--timeout", type=int, help="task timeout in seconds")
    submit.add_argument("--max-attempts", type=int, help="attempt budget per task")
    submit.add_argument("--wait", action="store_true", help="wait for and print the results")

    status = commands.add_parser("status", help="tasks per state in a session")
    status.add_argument("session")

    cancel = commands.add_parser("cancel", help="cancel a session, or some of its tasks")
    cancel.add_argument("session")
    cancel.add_argument("--task-id", action="append", help="only these tasks (repeatable)")

    results = commands.add_parser("results", help="results of a session's finished tasks")
    results.add_argument("session")
    results.add_argument("--task-id", action="append", help="only these tasks (repeatable)")
    return parser


def _payloads(args: argparse.Namespace) -> Iterator[JsonValue]:
    for index, text in enumerate(args.payloads):
        try:
            yield json.loads(text)
        except ValueError as error:
            raise ValueError(f"payload {index + 1} is not JSON: {error}") from None
    if args.file:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        with stream:
            for number, line in enumerate(stream, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as error:
                        raise ValueError(f"{args.file}:{number} is not JSON: {error}") from None


def _connect(args: argparse.Namespace) -> Grid:
    if args.local:
        return Grid.local()
    return Grid.connect(args.stack, region=args.region, endpoint_url=args.endpoint_url)


def _emit(console: Console, as_json: bool, document: Any) -> None:
    if as_json:
        print(json.dumps(document))
    else:
        console.print_json(json.dumps(document))


def _submit(args: argparse.Namespace, grid: Grid, console: Console) -> int:
    payloads = list(_payloads(args))
    if not payloads:
        console.print("[red]nothing to submit:[/] give JSON payloads or --file")
        return EXIT_USAGE
    session = grid.open_session(args.session, stream_results=args.wait)
    with session:
        task_ids = session.submit(
            payloads,
            priority=args.priority,
            timeout_s=args.timeout,
            max_attempts=args.max_attempts,
        )
        if not args.json:
            console.print(f"session [bold]{session.id}[/]: {len(task_ids)} tasks submitted")
        if not args.wait:
            _emit(console, args.json, {"session_id": session.id, "task_ids": task_ids})
            return EXIT_OK
        failed = 0
        for done in session.results():
            failed += not done.ok
            _emit(console, args.json, {**done.result.model_dump(mode="json"), "value": done.value})
    return EXIT_FAILED if failed else EXIT_OK


def _status(args: argparse.Namespace, grid: Grid, console: Console) -> int:
    status = grid.status(args.session)
    if args.json:
        _emit(console, True, status.model_dump(mode="json"))
        return EXIT_OK
    table = Table(title=f"session {status.session_id}")
    table.add_column("state")
    table.add_column("tasks", justify="right")
    for state in TaskState:
        table.add_row(state.value, str(status.counts.get(state, 0)))
    table.add_row("[bold]total[/]", f"[bold]{status.total}[/]")
    console.print(table)
    return EXIT_OK


def _results(args: argparse.Namespace, grid: Grid, console: Console) -> int:
    if args.task_id:
        page = grid.fetch_results(args.session, args.task_id)
        results, missing = page.results, page.missing
    else:
        results, missing = list(grid.iter_results(args.session)), []
    for result in results:
        value = grid.payloads.decode(result.result) if result.result is not None else None
        _emit(console, args.json, {**result.model_dump(mode="json"), "value": value})
    for task_id in missing:
        console.print(f"[yellow]{task_id}: not finished or unknown[/]", highlight=False)
    return EXIT_OK


def _cancel(args: argparse.Namespace, grid: Grid, console: Console) -> int:
    report = grid.cancel(args.session, args.task_id)
    if args.json:
        _emit(console, True, report.model_dump(mode="json"))
    else:
        console.print(
            f"session [bold]{report.session_id}[/]: {report.cancelled} tasks cancelled, "
            f"{report.already_finished} had already finished"
        )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=args.json)
    commands = {"submit": _submit, "status": _status, "cancel": _cancel, "results": _results}
    try:
        return commands[args.command](args, _connect(args), console)
    except GridNotFoundError as error:
        console.print(f"[red]grid not found:[/] {error}")
        return EXIT_NOT_FOUND
    except SubmissionFailedError as error:
        console.print(f"[red]submission failed:[/] {error.error}: {error.cause}")
        return EXIT_FAILED
    except (GridError, HtcGridError) as error:
        console.print(f"[red]error:[/] {error}")
        return EXIT_FAILED
    except (ValueError, OSError) as error:  # pydantic's ValidationError is a ValueError
        console.print(f"[red]bad input:[/] {error}")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
