"""Portfolio Monte Carlo risk on the local grid: the sharded run's VaR and ES equal the
single-process run's, bit for bit, and the client's last line says so."""

from __future__ import annotations

from htcgrid import Grid
from htcgrid_examples.risk.__main__ import HANDLER, PORTFOLIO, summary
from htcgrid_examples.risk.portfolio import load_portfolio
from htcgrid_examples.risk.run import Plan, run_on_grid, single_process
from htcgrid_local.grid import LocalGrid
from tests.e2e.runtimes.conftest import run_agent


def test_sharded_risk_equals_the_single_process_run(
    examples_grid: LocalGrid, examples_client: Grid
) -> None:
    # GIVEN the sample portfolio, 24 seeds of 1,000 scenarios in tasks of 5 seeds (the last of
    # 4): every shard keeps only part of the tail, so the merge has to prove it is whole
    portfolio = load_portfolio(PORTFOLIO)
    plan = Plan(run_seed=5, seeds=24, scenarios_per_seed=1000, seeds_per_task=5)
    seen: list[int] = []
    # WHEN an agent running the risk handler runs the shards
    with run_agent(examples_grid, "--handler", HANDLER, slots=2):
        run = run_on_grid(examples_client, portfolio, plan, seen.append, timeout_s=60)
    # THEN every task reported its scenarios, and VaR and ES are the single-process run's
    assert sorted(seen) == [4000] + [5000] * 4
    assert run.tasks == 5
    reference = single_process(portfolio, plan)
    assert run.measures == reference
    assert run.measures[10].var > run.measures[1].var > 0
    assert run.measures[1].es >= run.measures[1].var
    line = summary(run, reference, plan.scenarios)
    assert line.startswith("risk: VaR99 1d=")
    assert line.endswith("matches single-process: yes")
