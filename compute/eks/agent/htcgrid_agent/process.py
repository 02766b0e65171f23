"""Linux process controls the agent and its slots' children use (no-ops elsewhere)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Collection
from pathlib import Path

#: prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _prctl(option: int, value: int = 0) -> int:
    """prctl(2); -1 where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return -1
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, value, 0, 0, 0))


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies (a slot's child, when the
    agent is killed: its handler's work can never be recorded)."""
    parent = os.getppid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def become_subreaper() -> bool:
    """Have orphaned descendants (a killed handler's own subprocesses) reparented to this
    process rather than to init, so ``reap_orphans`` collects them. Whether it took effect."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0


def adopts_orphans() -> bool:
    """Whether orphaned descendants become this process's children: it is PID 1 (the agent
    in its container) or a subreaper."""
    if os.getpid() == 1:
        return True
    flag = ctypes.c_int(0)
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and bool(flag.value)


def reap_orphans(own: Collection[int]) -> list[int]:
    """Collect the exit status of exited children that are not in ``own`` (processes someone
    else waits for: the slots' children), so they do not linger as zombies. Returns their
    pids. Stops at the first exited child in ``own``: its owner collects it, and the rest wait
    for the next call."""
    reaped: list[int] = []
    while True:
        try:
            exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped  # no children at all
        if exited is None or exited.si_pid in own:
            return reaped
        os.waitpid(exited.si_pid, 0)
        reaped.append(exited.si_pid)


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
