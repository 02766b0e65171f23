"""``htcgrid``: use a grid from a shell.

Commands come in groups, one module each (``tasks``, ``sessions``, ``top``, ``dlq``); ``app``
builds the command line from them and maps every error to a one-line message and an exit code
(``exit_codes``), in one place. The command line needs rich, which a library install of the
client leaves out: ``pip install 'htcgrid[cli]'``.
"""

from __future__ import annotations

import sys

from htcgrid.cli.exit_codes import EXIT_FAILED

INSTALL_HINT = "pip install 'htcgrid[cli]'"


def main(argv: list[str] | None = None) -> int:
    """Run the ``htcgrid`` command line; its exit code."""
    # Imported here, not at the top: ``htcgrid.cli`` must import without rich, so that a
    # library install (no ``cli`` extra) gets this message from the command, not a traceback.
    try:
        from htcgrid.cli import app
    except ModuleNotFoundError as missing:
        if (missing.name or "").partition(".")[0] != "rich":
            raise
        print(
            f"htcgrid: the command line needs the 'rich' package, which the client's 'cli' "
            f"extra installs: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return app.run(argv)
