"""Linux process controls the agent and its slots' children use (no-ops elsewhere)."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

#: prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int = 0) -> int:
    """prctl(2); -1 where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return -1
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, value, 0, 0, 0))


def protect_memory() -> bool:
    """Make this process non-dumpable: processes of the same user (handlers in slots) can no
    longer read its memory or environment through /proc or attach to it with ptrace, so the
    AWS credentials it holds stay out of their reach. Whether it took effect."""
    return _prctl(PR_SET_DUMPABLE, 0) == 0


def is_memory_protected() -> bool:
    """Whether this process is non-dumpable (``protect_memory``)."""
    return _prctl(PR_GET_DUMPABLE) == 0


#: Where a container's memory limit is: cgroup v2, then v1.
_CGROUP_MEMORY_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def memory_mb() -> int:
    """The memory this process may use, in MiB: its container's (cgroup) limit if it has one,
    else the machine's."""
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_MEMORY_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means none; v1 says none with a huge number
            return min(int(text), machine) // 2**20
    return machine // 2**20
