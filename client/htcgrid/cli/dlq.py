"""``htcgrid dlq list|redrive``: inspect and replay the dead-letter queues (operators)."""

from __future__ import annotations

import argparse
import datetime as dt

from rich.table import Table

from htcgrid.cli.common import Context, add_command
from htcgrid.cli.exit_codes import EXIT_OK
from htcgrid.deadletters import DeadLetterQueues


def _levels(context: Context) -> DeadLetterQueues:
    return DeadLetterQueues(context.grid)


def list_dead_letters(context: Context) -> int:
    args = context.args
    queues = _levels(context)
    letters = queues.list(args.priority, args.limit)
    depths = [d for d in queues.depths() if args.priority in (None, d.priority)]
    if context.json:
        for depth in depths:
            context.emit(
                {"priority": depth.priority, "visible": depth.visible, "in_flight": depth.in_flight}
            )
        for letter in letters:
            task = letter.task
            context.emit(
                {
                    "priority": letter.priority,
                    "message_id": letter.message_id,
                    "sent_at": letter.sent_at,
                    "session_id": letter.message.session_id if letter.message else None,
                    "task_id": letter.message.task_id if letter.message else None,
                    "attempt": letter.message.attempt if letter.message else None,
                    "problem": letter.problem,
                    "state": task.state.value if task else None,
                    "last_error": task.errors[-1].model_dump() if task and task.errors else None,
                }
            )
        return EXIT_OK
    summary = Table(title="dead-letter queues")
    for column in ("priority", "messages", "being read"):
        summary.add_column(column, justify="right")
    for depth in depths:
        summary.add_row(str(depth.priority), str(depth.visible), str(depth.in_flight))
    context.console.print(summary)
    if not letters:
        context.console.print("no dead letters")
        return EXIT_OK
    table = Table(title=f"{len(letters)} dead letters")
    for column in ("priority", "sent", "session", "task", "attempt", "state", "why"):
        table.add_column(column)
    for letter in letters:
        message, task = letter.message, letter.task
        why = letter.problem or (task.errors[-1].message if task and task.errors else "")
        table.add_row(
            str(letter.priority),
            dt.datetime.fromtimestamp(letter.sent_at).strftime("%Y-%m-%d %H:%M:%S"),
            message.session_id if message else "-",
            message.task_id if message else "(not a task)",
            str(message.attempt) if message else "-",
            task.state.value if task else "-",
            why[:80],
        )
    context.console.print(table)
    return EXIT_OK


def redrive(context: Context) -> int:
    args = context.args
    report = _levels(context).redrive(args.priority, args.session, args.limit)
    document = {
        "redriven": report.redriven,
        "requeued": report.requeued,
        "discarded": report.discarded,
        "left": report.left,
    }
    if context.json:
        context.emit(document)
    else:
        context.console.print(
            f"redriven {len(report.redriven)} (new attempt), requeued {len(report.requeued)} "
            f"(not yet failed), discarded {len(report.discarded)} (task finished without it), "
            f"left {report.left} (not a task, or another session)"
        )
    return EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "dlq",
        help="inspect and replay the dead-letter queues (needs the stack's OperatorPolicy)",
        description=(
            "Task messages delivered MaxReceiveCount times without an outcome land in their "
            "level's DLQ; the reaper marks their tasks FAILED (DeadLettered) and leaves the "
            "messages there until you list and redrive (or fix and redrive) them."
        ),
    )
    actions = group.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = add_command(
        actions,
        "list",
        list_dead_letters,
        "messages in the DLQs, with their tasks' state and last error",
        "  htcgrid dlq list\n  htcgrid --json dlq list --priority 2 --limit 20\n",
    )
    replay = add_command(
        actions,
        "redrive",
        redrive,
        "give dead-lettered tasks one more attempt and remove their DLQ messages",
        "  htcgrid dlq redrive\n  htcgrid dlq redrive --session sweep-7 --priority 0\n",
    )
    for parser in (listing, replay):
        parser.add_argument("--priority", type=int, help="one level's DLQ (default: all)")
    listing.add_argument("--limit", type=int, default=100, help="messages per DLQ (default 100)")
    replay.add_argument("--session", help="only this session's tasks")
    replay.add_argument("--limit", type=int, default=1000, help="messages per DLQ (default 1000)")
