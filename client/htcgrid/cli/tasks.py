"""Commands on tasks: ``submit``, ``results`` (with ``--follow``), ``cancel``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator

from pydantic import JsonValue
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from htcgrid.cli.common import Context, UsageError, add_command
from htcgrid.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT
from htcgrid_core.models import TaskResult, TaskState

#: Unfinished tasks polled per status call by ``results --follow``, and its poll intervals.
FOLLOW_BATCH = 100
FOLLOW_POLL_S = (0.5, 5.0)


def _payloads(args: argparse.Namespace) -> Iterator[JsonValue]:
    for index, text in enumerate(args.payloads):
        try:
            yield json.loads(text)
        except ValueError as error:
            raise UsageError(f"payload {index + 1} is not JSON: {error}") from None
    if args.file:
        try:
            stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            raise UsageError(f"{args.file}: {error.strerror}") from error
        with stream:
            try:
                for number, line in enumerate(stream, start=1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except ValueError as error:
                            raise UsageError(f"{args.file}:{number} is not JSON: {error}") from None
            except UnicodeDecodeError as error:  # reading the file, not parsing a line
                raise UsageError(f"{args.file} is not UTF-8 text: {error}") from None


def progress_bar(context: Context, what: str) -> Progress:
    """A progress bar on the context's console (stderr with --json), off when not a terminal."""
    return Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=context.console,
        transient=True,
        disable=not context.console.is_terminal,
    )


def _emit_result(context: Context, result: TaskResult) -> None:
    value = context.grid.value_of(result)
    context.emit({**result.model_dump(mode="json"), "value": value})


def submit(context: Context) -> int:
    args = context.args
    payloads = list(_payloads(args))
    if not payloads:
        raise UsageError("nothing to submit: give JSON payloads or --file")
    grid = context.grid
    with grid.open_session(args.session, stream_results=args.wait) as session:
        task_ids = session.submit(
            payloads, priority=args.priority, timeout_s=args.timeout, max_attempts=args.max_attempts
        )
        if not context.json:
            context.console.print(f"session [bold]{session.id}[/]: {len(task_ids)} tasks submitted")
        if not args.wait:
            context.emit({"session_id": session.id, "task_ids": list(task_ids)})
            return EXIT_OK
        failed = 0
        with progress_bar(context, "results") as progress:
            bar = progress.add_task("results", total=len(task_ids))
            for done in session.results(args.wait_timeout):
                failed += not done.ok
                context.emit({**done.result.model_dump(mode="json"), "value": done.value})
                progress.advance(bar)
    return EXIT_FAILED if failed else EXIT_OK


def results(context: Context) -> int:
    args, grid = context.args, context.grid
    if args.task_id:
        page = grid.fetch_results(args.session, args.task_id)
        for result in page.results:
            _emit_result(context, result)
        for task_id in page.missing:
            context.console.print(f"[yellow]{task_id}: not finished or unknown[/]", highlight=False)
        return EXIT_OK
    if args.follow:
        return _follow(context)
    for result in grid.iter_results(args.session):
        _emit_result(context, result)
    return EXIT_OK


def _follow(context: Context) -> int:
    """Print every result of the session, those still to come included, until none is left.

    Each round that finds the session grown (first round included: its counters' total changed)
    lists the unfinished tasks *before* reading the finished ones, so a task that finishes in
    between is in one listing or the other (or both), never in neither."""
    args, grid = context.args, context.grid
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen: set[str] = set()
    unfinished: list[str] = []
    known = -1
    pause = FOLLOW_POLL_S[0]
    while True:
        total = grid.status(args.session).total
        if total != known:
            known = total
            states = [TaskState.PENDING, TaskState.RUNNING]
            listed = [t.task_id for t in grid.iter_tasks(args.session, states)]
            for result in grid.iter_results(args.session):
                if result.task_id not in seen:
                    seen.add(result.task_id)
                    _emit_result(context, result)
            unfinished = [t for t in dict.fromkeys([*unfinished, *listed]) if t not in seen]
        progressed = False
        for start in range(0, len(unfinished), FOLLOW_BATCH):
            page = grid.fetch_results(args.session, unfinished[start : start + FOLLOW_BATCH])
            for result in page.results:
                seen.add(result.task_id)
                _emit_result(context, result)
                progressed = True
        unfinished = [t for t in unfinished if t not in seen]
        if not unfinished and grid.status(args.session).total == known:
            return EXIT_OK
        if deadline is not None and time.monotonic() >= deadline:
            context.console.print(f"[yellow]{len(unfinished)} tasks still unfinished[/]")
            return EXIT_TIMEOUT
        pause = FOLLOW_POLL_S[0] if progressed else min(FOLLOW_POLL_S[1], pause * 2)
        time.sleep(pause)


def cancel(context: Context) -> int:
    report = context.grid.cancel(context.args.session, context.args.task_id)
    if context.json:
        context.emit(report.model_dump(mode="json"))
    else:
        context.console.print(
            f"session [bold]{report.session_id}[/]: {report.cancelled} tasks cancelled, "
            f"{report.already_finished} had already finished"
        )
    return EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``submit``, ``results`` and ``cancel``."""
    parser = add_command(
        commands,
        "submit",
        submit,
        "submit tasks, one per JSON payload (arguments or JSON lines)",
        "  htcgrid --local submit '{\"x\": 1}' '{\"x\": 2}'\n"
        "  htcgrid --local submit --file tasks.jsonl --priority 2 --session sweep-7 --wait\n"
        "  generate | htcgrid --json submit --file - > submitted.json",
    )
    parser.add_argument("payloads", nargs="*", help="JSON payloads, one task each")
    parser.add_argument("--file", help="a file of JSON lines, one payload per line ('-': stdin)")
    parser.add_argument("--session", help="add to this session (default: a new one)")
    parser.add_argument("--priority", type=int, help="priority level, 0 is the lowest")
    parser.add_argument("--timeout", type=int, help="task timeout in seconds")
    parser.add_argument("--max-attempts", type=int, help="attempt budget per task")
    parser.add_argument("--wait", action="store_true", help="wait for and print the results")
    parser.add_argument(
        "--wait-timeout", type=float, help="with --wait: give up after this many seconds"
    )

    parser = add_command(
        commands,
        "results",
        results,
        "results of a session's finished tasks (and, with --follow, of the rest as they finish)",
        "  htcgrid --local --json results 3f9c2a... > results.jsonl\n"
        "  htcgrid --local results 3f9c2a... --follow --timeout 600\n"
        "  htcgrid --local results 3f9c2a... --task-id 0c1f... --task-id 9a2b...",
    )
    parser.add_argument("session")
    parser.add_argument("--task-id", action="append", help="only these tasks (repeatable)")
    parser.add_argument("--follow", action="store_true", help="keep printing until all finish")
    parser.add_argument("--timeout", type=float, help="with --follow: stop after this many s")

    parser = add_command(
        commands,
        "cancel",
        cancel,
        "cancel a session's unfinished tasks, or some of them",
        "  htcgrid --local cancel 3f9c2a...\n  htcgrid --local cancel 3f9c2a... --task-id 0c1f...",
    )
    parser.add_argument("session")
    parser.add_argument("--task-id", action="append", help="only these tasks (repeatable)")
