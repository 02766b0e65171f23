"""Commands on sessions: ``status`` (and task listings), ``sessions``, ``delete``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from typing import TypeVar

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from htcgrid.cli.common import Context, UsageError, add_command
from htcgrid.cli.exit_codes import EXIT_OK
from htcgrid_core.models import Document, SessionStatus, TaskState, TaskSummary

RowT = TypeVar("RowT", bound=Document)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def status_table(statuses: list[SessionStatus], title: str | None = None) -> Table:
    """Sessions as rows, tasks per state as columns."""
    table = Table(title=title)
    table.add_column("session")
    table.add_column("created")
    for state in TaskState:
        table.add_column(state.value.lower(), justify="right")
    table.add_column("total", justify="right")
    for status in statuses:
        table.add_row(
            status.session_id,
            _when(status.created_at),
            *(str(status.counts.get(state, 0)) for state in TaskState),
            f"[bold]{status.total}[/]",
        )
    return table


def _tasks_table(tasks: list[TaskSummary]) -> Table:
    table = Table()
    for column in ("task", "state", "attempt", "priority", "submitted", "finished"):
        table.add_column(column)
    for task in tasks:
        table.add_row(
            task.task_id,
            task.state.value,
            str(task.attempt),
            str(task.priority),
            _when(task.submitted_at),
            _when(task.finished_at),
        )
    return table


def status(context: Context) -> int:
    args, grid = context.args, context.grid
    if args.tasks is not None:
        return _list_tasks(context)
    found = grid.status(args.session, exact=args.exact)
    if context.json:
        context.emit(found.model_dump(mode="json"))
        return EXIT_OK
    context.console.print(status_table([found], title=f"session {found.session_id}"))
    if not found.exact:
        context.console.print(
            "[dim]from the session's counters: pending includes running tasks, and counts may "
            "trail by a second (or more, if an agent died); --exact reads every task[/]"
        )
    return EXIT_OK


def _print_pages(
    context: Context,
    fetch: Callable[[str | None], tuple[list[RowT], str | None]],
    render: Callable[[list[RowT], bool], Table],
) -> int:
    """Print the page at ``--next-token`` (or the first), or with ``--all`` every page after
    it: JSON lines or a table per page (``render(rows, first)``), then the token of what is
    left, if anything."""
    token, first = context.args.next_token, True
    while True:
        rows, token = fetch(token)
        if context.json:
            for row in rows:
                context.emit(row.model_dump(mode="json"))
        else:
            context.console.print(render(rows, first))
        first = False
        if token is None or not context.args.all:
            break
    if token is not None:
        if context.json:
            context.emit({"next_token": token})
        else:
            context.console.print(f"more: --next-token {token}", highlight=False)
    return EXIT_OK


def _list_tasks(context: Context) -> int:
    args, grid = context.args, context.grid
    states = [TaskState(s.upper()) for s in args.tasks] or None

    def fetch(token: str | None) -> tuple[list[TaskSummary], str | None]:
        page = grid.tasks_page(args.session, states, next_token=token, limit=args.limit)
        return page.tasks, page.next_token

    return _print_pages(context, fetch, lambda rows, _: _tasks_table(rows))


def sessions(context: Context) -> int:
    args, grid = context.args, context.grid

    def fetch(token: str | None) -> tuple[list[SessionStatus], str | None]:
        page = grid.sessions_page(args.limit, next_token=token)
        return page.sessions, page.next_token

    def render(rows: list[SessionStatus], first: bool) -> Table:
        title = "recent sessions" if first and not args.next_token else "older sessions"
        return status_table(rows, title=f"{title} (from counters)")

    return _print_pages(context, fetch, render)


def delete(context: Context) -> int:
    args, grid = context.args, context.grid
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("deleting a session cannot be undone: confirm with --yes")
        answer = context.console.input(
            f"delete session [bold]{args.session}[/] and its data? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            context.console.print("nothing deleted")
            return EXIT_OK
    with Progress(
        SpinnerColumn(),
        TextColumn(
            "[bold]deleting {task.fields[session]}[/]: {task.fields[records]} records, "
            "{task.fields[objects]} objects"
        ),
        TimeElapsedColumn(),
        console=context.console,
        transient=True,
        disable=not context.console.is_terminal,
    ) as progress:
        bar = progress.add_task("delete", session=args.session, records=0, objects=0)
        report = grid.delete_session(
            args.session,
            lambda records, objects: progress.update(bar, records=records, objects=objects),
        )
    if context.json:
        context.emit(report.model_dump(mode="json"))
    else:
        context.console.print(
            f"session [bold]{report.session_id}[/] deleted: {report.records_deleted} records, "
            f"{report.objects_deleted} objects"
        )
    return EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status``, ``sessions`` and ``delete``."""
    parser = add_command(
        commands,
        "status",
        status,
        "a session's tasks per state (from its counters), or a listing of its tasks",
        "  htcgrid --local status 3f9c2a...\n"
        "  htcgrid --local status 3f9c2a... --exact\n"
        "  htcgrid --local status 3f9c2a... --tasks failed --limit 50\n"
        "  htcgrid --local --json status 3f9c2a... --tasks pending running --all",
    )
    parser.add_argument("session")
    parser.add_argument("--exact", action="store_true", help="count every task's state")
    parser.add_argument(
        "--tasks",
        nargs="*",
        metavar="STATE",
        choices=[s.value.lower() for s in TaskState] + [s.value for s in TaskState],
        help="list the session's tasks (in these states, if given) instead of counting",
    )
    parser.add_argument("--limit", type=int, default=100, help="tasks per page (default 100)")
    parser.add_argument("--next-token", help="continue a listing where a page ended")
    parser.add_argument("--all", action="store_true", help="every page, not just the first")

    parser = add_command(
        commands,
        "sessions",
        sessions,
        "the most recently created sessions, with their counts",
        "  htcgrid --local sessions\n  htcgrid --json sessions --limit 100 --all",
    )
    parser.add_argument("--limit", type=int, default=20, help="per page (default 20, max 100)")
    parser.add_argument("--next-token", help="the next page, as the previous one printed")
    parser.add_argument("--all", action="store_true", help="every page, not just the first")

    parser = add_command(
        commands,
        "delete",
        delete,
        "delete a session: its task records, counters and S3 objects (cannot be undone)",
        "  htcgrid --local delete 3f9c2a...          # asks first\n"
        "  htcgrid --local delete 3f9c2a... --yes",
    )
    parser.add_argument("session")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
