"""What every ``htcgrid`` command shares: the invocation context, output, and exit codes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from htcgrid.errors import InvalidRequestError
from htcgrid.grid import Grid

#: A command: the context in, an exit code out (``exit_codes``).
Command = Callable[["Context"], int]


class UsageError(InvalidRequestError):
    """The command line makes no sense (exit code 2)."""


@dataclass
class Context:
    """One invocation: its arguments, where output goes, and the grid (connected on first use,
    so ``--help`` and usage errors need no grid)."""

    args: argparse.Namespace
    #: Human-readable output and progress; on stderr with ``--json`` so stdout stays data.
    console: Console
    connect: Callable[[], Grid]
    _grid: Grid | None = field(default=None, init=False)

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    @property
    def grid(self) -> Grid:
        if self._grid is None:
            self._grid = self.connect()
        return self._grid

    def close(self) -> None:
        """Close the grid, if the command connected to one."""
        if self._grid is not None:
            self._grid.close()

    def emit(self, document: Any) -> None:
        """One JSON document: a line on stdout with ``--json``, pretty-printed otherwise."""
        if self.json:
            print(json.dumps(document), flush=True)
        else:
            self.console.print_json(json.dumps(document))


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Command,
    help_text: str,
    examples: str = "",
) -> argparse.ArgumentParser:
    """Add one subcommand that runs ``run``; its ``--help`` ends with ``examples``."""
    parser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"examples:\n{examples}" if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)
    return parser
