"""Before and after, side by side: ``python -m htcgrid_bench.compare --base REV [--head REV]``.

Runs the bench (``--repeats 1``) alternately on two commits (each checked out as a git
worktree under ``.htcgrid/compare/``; the working tree if ``--head`` is not given),
``--rounds`` times, swapping which goes first each round, and prints the median of each
measure for both and their ratio. Alternating in one run is what makes the ratio trustworthy
on a noisy, shared machine: both sides see the same noise. Each side runs entirely from its
own tree (client, Lambdas, agents, emulator and bench), through ``PYTHONPATH``, which Python
searches before the editable installs of the venv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from htcgrid_core.percentiles import percentile

#: The package roots of a source tree, as ``make dev`` installs them.
PACKAGE_ROOTS = ("layers/core", "client", "compute/eks/agent", "local", "bench", "examples")

Results = dict[str, Any]


def _median(rows: str, key: str) -> Callable[[Results], float]:
    """The median of ``key`` over one run's ``rows`` (bursts, sleepers or request summaries)."""
    return lambda results: statistics.median(float(row[key]) for row in results[rows])


def _submit_rate(results: Results) -> float:
    return statistics.median(float(b["tasks"]) / float(b["submit_s"]) for b in results["bursts"])


def _cpu_ms(results: Results, process: str) -> float:
    def per_task(burst: dict[str, Any]) -> float:
        # Runs from before the Lambdas had processes of their own have no "lambdas_s": their
        # Lambdas' CPU is in the emulator's.
        used = sum(burst["cpu"].get(f"{name}_s", 0.0) for name in process.split("+"))
        if process == "agents":
            used -= burst["handler_cpu_s"]
        return 1000 * float(used) / float(burst["tasks"])

    return statistics.median(per_task(b) for b in results["bursts"])


def _latency_ms(results: Results, fraction: float) -> float:
    totals = [1000 * float(sum(sample)) for repeat in results["latencies"] for sample in repeat]
    return percentile(totals, fraction)


#: What is compared: a name, how to read it from one run's results, and which way is better.
MEASURES: list[tuple[str, Callable[[Results], float], str]] = [
    ("(a) no-op tasks/s", _median("bursts", "tasks_per_s"), "higher"),
    ("(a) submit rate, tasks/s", _submit_rate, "higher"),
    ("(b) 10 ms tasks/s", _median("sleepers", "tasks_per_s"), "higher"),
    ("(c) latency p50, ms", lambda r: _latency_ms(r, 0.5), "lower"),
    ("(c) latency p90, ms", lambda r: _latency_ms(r, 0.9), "lower"),
    ("(d) agent CPU ms/task", lambda r: _cpu_ms(r, "agents"), "lower"),
    ("(d) emulator CPU ms/task", lambda r: _cpu_ms(r, "emulator"), "lower"),
    ("(d) Lambda CPU ms/task", lambda r: _cpu_ms(r, "lambdas"), "lower"),
    ("(d) emulator + Lambda CPU ms/task", lambda r: _cpu_ms(r, "emulator+lambdas"), "lower"),
    ("(d) client CPU ms/task", lambda r: _cpu_ms(r, "client"), "lower"),
    ("DynamoDB WRU/task", _median("summaries", "dynamodb_wru"), "lower"),
    ("SQS requests/task", _median("summaries", "sqs_requests"), "lower"),
]


def git(*args: str, cwd: Path | None = None) -> str:
    executable = shutil.which("git")
    if executable is None:
        raise SystemExit("compare needs git on the PATH")
    done = subprocess.run([executable, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def worktree(repo: Path, revision: str) -> Path:
    """A detached worktree of ``revision`` (made once, reused)."""
    commit = git("rev-parse", "--short", revision, cwd=repo)
    path = repo / ".htcgrid" / "compare" / commit
    if not path.exists():
        git("worktree", "add", "--detach", str(path), commit, cwd=repo)
    return path


def run_once(tree: Path, bench_args: list[str], out: Path, env: dict[str, str]) -> Results:
    """One bench run (``--repeats 1``) entirely from ``tree``'s sources."""
    paths = [str(tree / root) for root in PACKAGE_ROOTS]
    environment = os.environ | env | {"PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "htcgrid_bench", "--repeats", "1", "--json", str(out)]
    subprocess.run([*command, *bench_args], cwd=tree, env=environment, check=True)
    results: Results = json.loads(out.read_text(encoding="utf-8"))
    return results


def report(label_runs: dict[str, list[Results]], console: Console) -> None:
    (base, base_runs), (head, head_runs) = label_runs.items()
    table = Table(title=f"median of {len(head_runs)} alternating runs each", title_justify="left")
    for column in ("measure", base, head, f"{head} / {base}", "better"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, read, better in MEASURES:
        try:
            before = statistics.median(read(r) for r in base_runs)
            after = statistics.median(read(r) for r in head_runs)
        except (KeyError, IndexError, ZeroDivisionError):
            continue  # a measure one side's bench does not produce
        ratio = after / before if before else float("nan")
        table.add_row(name, f"{before:.2f}", f"{after:.2f}", f"{ratio:.3f}", better)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--head", help="the commit to compare (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for both sides' grids, e.g. HTCGRID_FAULTS=... (repeatable)",
    )
    parser.add_argument(
        "bench_args",
        nargs="*",
        help="passed to `python -m htcgrid_bench` after `--`, e.g. -- --burst-tasks 2000",
    )
    args = parser.parse_args(argv)
    repo = Path(git("rev-parse", "--show-toplevel"))
    env = dict(item.split("=", 1) for item in args.env)
    head = (args.head, worktree(repo, args.head)) if args.head else ("working tree", repo)
    trees = {args.base: worktree(repo, args.base), head[0]: head[1]}
    out_dir = repo / ".htcgrid" / "compare" / "runs"
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console()
    label_runs: dict[str, list[Results]] = {label: [] for label in trees}
    for round_ in range(args.rounds):
        order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
        for label, tree in order:
            console.rule(f"round {round_ + 1}/{args.rounds}: {label}")
            out = out_dir / f"{label.replace(' ', '-')}-{round_}.json"
            label_runs[label].append(run_once(tree, args.bench_args, out, env))
    report(label_runs, console)
    (out_dir / "compare.json").write_text(json.dumps(label_runs), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
