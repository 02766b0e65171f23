"""How long after a task finishes does the client see its result?

For each result, the delay is the client's clock when ``Session.results()`` yields it minus the
task's ``finished_at`` (the agent's clock when it recorded the outcome: same machine, same
clock). It covers the agent's reporter flush, the notice's trip through the session's SQS
queue, and the client's long poll. Two runs on a local grid (2 agents, 4 slots, prefetch 10):

* ``burst``: ``--tasks`` tasks submitted at once (agents busy: notices batched per flush);
* ``trickle``: ``--trickle`` single tasks one after another (agents idle between them: each
  result is flushed at once).

    python local/bench/notification_delay.py --tasks 300 --trickle 50
"""

from __future__ import annotations

import argparse

from htcgrid import Completed, Grid
from htcgrid.connection import GridEndpoints
from htcgrid_core.percentiles import percentile
from htcgrid_local.grid import LocalGrid

HANDLER = "htcgrid_examples.scripted:handler"


def delays_ms(results: list[Completed]) -> list[float]:
    return [
        (done.received_at - done.result.finished_at) * 1000
        for done in results
        if done.result.finished_at is not None
    ]


def describe(name: str, delays: list[float]) -> str:
    p50, p90, p99 = (percentile(delays, fraction) for fraction in (0.5, 0.9, 0.99))
    return (
        f"{name:<8} n={len(delays):<4} p50 {p50:7.1f} ms   p90 {p90:7.1f} ms   "
        f"p99 {p99:7.1f} ms   max {max(delays):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=300, help="tasks of the burst run")
    parser.add_argument("--trickle", type=int, default=50, help="tasks of the trickle run")
    args = parser.parse_args()
    with LocalGrid(
        agents=2,
        handler=HANDLER,
        slots=4,
        stack_name="htcgrid-delay",
        agent_args=["--prefetch", "10"],
    ) as local:
        grid = Grid(GridEndpoints.for_emulator(dict(local.outputs), local.endpoint_url))
        with grid.open_session() as warmup:  # cold starts (imports, queue lookups) out of the way
            warmup.submit([{"value": i} for i in range(20)])
            warmup.wait(timeout=120)
        with grid.open_session() as session:
            session.submit([{"value": i} for i in range(args.tasks)])
            burst = delays_ms(session.wait(timeout=600))
        trickle: list[float] = []
        with grid.open_session() as session:
            for i in range(args.trickle):
                session.submit([{"value": i}])
                trickle.extend(delays_ms(session.wait(timeout=60)))
    print("notification delay: task finished (agent) -> result yielded (client)")
    print(describe("burst", burst))
    print(describe("trickle", trickle))


if __name__ == "__main__":
    main()
