"""CPU seconds of a process and its descendants, from /proc (Linux), without psutil.

The agent runs each slot's handler in a spawned child: the agent's cost per task is the CPU of
the whole tree minus what the handler itself used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:  # the process exited between listing and reading
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` alone (0 if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(3) ppid(4) ... utime(14) stime(15) -> indices 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(roots: Iterable[int]) -> set[int]:
    """``roots`` and every live process below them."""
    parents = _parents()
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def tree_cpu_seconds(roots: Iterable[int]) -> dict[int, float]:
    """CPU seconds of every live process in the trees under ``roots``, by pid. Compare two
    snapshots pid by pid: a child that exited between them takes its CPU with it."""
    return {pid: cpu_seconds(pid) for pid in descendants(roots)}
