"""The ``htcgrid`` command's exit codes (the table is in ``docs/client.md`` and ``--help``).

Kept apart from the commands so the entry point can use them without rich installed.
"""

#: The command did what was asked.
EXIT_OK = 0
#: The grid refused or failed the request, a task failed (``submit --wait``), or the command
#: line's own packages are not installed.
EXIT_FAILED = 1
#: Bad usage, or input the client or the grid refuses (the message names the field).
EXIT_USAGE = 2
#: No such stack or local grid, or a resource the grid names is gone.
EXIT_NOT_FOUND = 3
#: Results did not all arrive within the time given.
EXIT_TIMEOUT = 4
#: AWS refused the caller an action on a resource (both named).
EXIT_ACCESS_DENIED = 5
#: No AWS credentials, or expired or invalid ones.
EXIT_CREDENTIALS = 6
#: AWS kept throttling a call past every retry: try again later.
EXIT_THROTTLED = 7
#: AWS, or the emulator at ``--endpoint-url``, could not be reached.
EXIT_UNREACHABLE = 8
#: Ctrl-C.
EXIT_INTERRUPTED = 130
