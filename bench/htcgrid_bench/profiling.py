"""Where the CPU goes during a burst: py-spy on the emulator and the agents, cProfile on the
client. Prints, per process, the functions with the most samples holding the GIL (self and
inclusive).

    python -m htcgrid_bench.profiling --tasks 3000 --py-spy /path/to/py-spy

py-spy is not a dependency (it needs ptrace and a binary wheel): install it apart, e.g.
``python -m venv /tmp/tools && /tmp/tools/bin/pip install py-spy==0.4.1``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from htcgrid_bench import runs


def _frames(line: str) -> tuple[list[str], int]:
    """A py-spy raw (collapsed) line: frames root first, and its sample count."""
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


def summarise(raw: Path, top: int, keep: str = "") -> str:
    """The ``top`` functions by self and by inclusive samples in a py-spy raw file (frames
    shortened to ``function (file)``; idle waits are samples too, so read shares of busy)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        if not line.strip() or not line.rpartition(" ")[2].isdigit():
            continue  # not a stack line
        frames, count = _frames(line)
        names = [frame.split(":")[0].strip() for frame in frames]
        total += count
        own[names[-1]] += count
        for name in set(names):
            if keep in name:
                inclusive[name] += count
    lines = [f"{total} samples"]
    lines += ["  self:"] + [
        f"    {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)
    ]
    lines += ["  inclusive:"] + [
        f"    {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--prefetch", type=int, default=10)
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy executable")
    parser.add_argument(
        "--rate", type=int, default=100, help="py-spy's samples per second (more: finer, dearer)"
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="htcgrid-prof-")))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with runs.local_grid(args.agents, args.slots, args.prefetch, count_requests=False) as grid:
        runs.run_burst(grid, 200)  # warm-up
        targets = {"emulator": grid.emulator.pid if grid.emulator else None}
        targets |= {f"agent-{i}": agent.pid for i, agent in enumerate(grid.agents)}
        spies = {
            name: subprocess.Popen(
                [
                    args.py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    str(args.rate),
                    # Only threads holding the GIL: the emulator is GIL-bound, so that is its CPU.
                    "--gil",
                    "--output",
                    str(args.out / f"{name}.txt"),
                    "--nonblocking",
                    "--subprocesses",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in targets.items()
            if pid is not None
        }
        profiler = cProfile.Profile()
        profiler.enable()
        burst = runs.run_burst(grid, args.tasks)
        profiler.disable()
        for spy in spies.values():
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        for spy in spies.values():
            spy.wait(30)
    print(f"{args.tasks} tasks at {burst.tasks_per_s:.0f} tasks/s; raw stacks in {args.out}")
    for name in spies:
        print(f"\n== {name}\n{summarise(args.out / f'{name}.txt', args.top)}")
    print("\n== client (cProfile, cumulative)")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
