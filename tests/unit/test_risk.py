"""The risk example's logic without a grid: the definitions of VaR and ES, the exactness of the
shard-tail reduction, the correlation checks, and the revaluation functions."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from htcgrid_examples.risk.__main__ import PORTFOLIO
from htcgrid_examples.risk.handler import InvalidShardError, handler
from htcgrid_examples.risk.portfolio import (
    CorrelationError,
    Portfolio,
    Swap,
    cholesky_factor,
    load_portfolio,
)
from htcgrid_examples.risk.revaluation import Book, normal_cdf
from htcgrid_examples.risk.run import Plan, single_process
from htcgrid_examples.risk.tail import (
    IncompleteTailError,
    ShardTail,
    merge_tails,
    risk_measures,
    shard_keep,
    tail_size,
)


def test_var_and_es_follow_their_definition() -> None:
    # GIVEN 250 losses 1..250: j = floor(0.01 * 250) = 2 lie beyond the VaR
    losses = [float(loss) for loss in range(250, 0, -1)]
    measures = risk_measures(losses[: tail_size(250)], 250)
    # THEN VaR is the 3rd largest loss, ES weighs the 2 largest and half of the 3rd
    assert measures.var == 248.0
    assert measures.es == pytest.approx((250 + 249 + 0.5 * 248) / 2.5, rel=1e-15)


def test_es_is_the_mean_of_the_worst_percent_when_it_is_whole() -> None:
    losses = [float(loss) for loss in range(1000, 0, -1)]
    measures = risk_measures(losses[: tail_size(1000)], 1000)
    assert (measures.var, measures.es) == (990.0, sum(range(991, 1001)) / 10)


def test_merged_shard_tails_equal_sorting_every_loss() -> None:
    # GIVEN 20,000 losses in uneven shards, each keeping only its margin's worth of its tail
    draw = random.Random(7)
    sizes = [3000, 5000, 1234, 7766, 3000]
    every = [draw.gauss(0, 1) ** 3 for _ in range(sum(sizes))]
    shards, start = [], 0
    for size in sizes:
        own = sorted(every[start : start + size], reverse=True)
        shards.append(ShardTail(size, own[: shard_keep(size, len(every))]))
        start += size
    assert all(not shard.complete for shard in shards)
    # WHEN the tails are merged THEN they are the run's largest losses, value for value
    merged = merge_tails(shards)
    assert merged == sorted(every, reverse=True)[: tail_size(len(every))]
    assert risk_measures(merged, len(every)) == risk_measures(
        sorted(every, reverse=True)[:201], len(every)
    )


def test_a_shard_that_may_hide_tail_losses_is_named_to_run_again() -> None:
    # GIVEN a shard holding most of the run's large losses but returning only 5 of them
    heavy = sorted((100.0 + i for i in range(50)), reverse=True)
    light = sorted((float(i) / 1000 for i in range(5000)), reverse=True)
    shards = [ShardTail(50, heavy[:5]), ShardTail(5000, light[:60])]
    # WHEN merged THEN the merge refuses and names it, with the whole tail to keep
    with pytest.raises(IncompleteTailError) as raised:
        merge_tails(shards)
    assert (raised.value.shards, raised.value.keep) == ([0], tail_size(5050))
    # AND once it returns that many, the merge is the run's tail
    shards[0] = ShardTail(50, heavy[: raised.value.keep])
    assert merge_tails(shards) == sorted(heavy + light, reverse=True)[: tail_size(5050)]


def test_sharded_tasks_equal_one_process_bit_for_bit() -> None:
    # GIVEN the sample portfolio, 17 seeds of 400 scenarios, tasks of 5 seeds (the last of 2)
    portfolio = load_portfolio(PORTFOLIO)
    plan = Plan(run_seed=11, seeds=17, scenarios_per_seed=400, seeds_per_task=5)
    tails: dict[int, list[ShardTail]] = {1: [], 10: []}
    for first, seeds in plan.shards():
        # The payload goes through JSON, as it does on the grid.
        result = handler(json.loads(json.dumps(plan.payload(portfolio, first, seeds))), None)
        result = json.loads(json.dumps(result))
        for days in tails:
            tails[days].append(ShardTail(result["scenarios"], result["losses"][str(days)]))
    sharded = {days: risk_measures(merge_tails(t), plan.scenarios) for days, t in tails.items()}
    # THEN VaR and ES equal the single-process run's exactly
    assert sharded == single_process(portfolio, plan)


def test_normal_cdf_agrees_with_erfc() -> None:
    x = np.linspace(-38.0, 38.0, 76001)
    exact = np.array([0.5 * math.erfc(-value / math.sqrt(2)) for value in x])
    assert np.max(np.abs(normal_cdf(x) - exact)) < 1e-15
    # Relative error down to 5 standard deviations (N = 3e-7); below, values are tiny and the
    # approximation's relative error grows to about 1e-8 (measured), harmless to a price.
    tail = (x < 0) & (x >= -5.0)
    assert np.max(np.abs(normal_cdf(x[tail]) / exact[tail] - 1)) < 1e-10


def test_a_correlation_matrix_that_is_not_positive_definite_is_named() -> None:
    names = ["A", "B", "C"]
    # Pairwise fine, jointly impossible: A~B and B~C strongly, A and C opposed.
    matrix = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]
    with pytest.raises(CorrelationError, match="correlation matrix of portfolio 'book-x'") as e:
        cholesky_factor(matrix, names, "book-x")
    assert "not positive definite" in str(e.value)
    assert "A, B, C" in str(e.value)


@pytest.mark.parametrize(
    ("matrix", "says"),
    [
        ([[1.0, 0.5], [0.4, 1.0]], r"not symmetric: \[0\]\[1\] \(A, B\)"),
        ([[1.0, 0.5], [0.5, 0.9]], "diagonal"),
        ([[1.0]], "is 1x1; the 2 factors need 2x2"),
    ],
)
def test_a_matrix_that_is_no_correlation_matrix_says_why(
    matrix: list[list[float]], says: str
) -> None:
    with pytest.raises(CorrelationError, match=says):
        cholesky_factor(matrix, ["A", "B"], "book")


def test_a_hostile_payload_fails_its_task_at_once() -> None:
    portfolio = json.loads(PORTFOLIO.read_text())
    payload = Plan(1, 1, 10, 1).payload(Portfolio.model_validate(portfolio), 0, 1)
    with pytest.raises(InvalidShardError, match="scenarios_per_seed") as raised:
        handler({**payload, "scenarios_per_seed": 10**9}, None)
    assert raised.value.retryable is False


def test_a_swap_at_its_par_rate_is_worth_nothing() -> None:
    book = Book.of(load_portfolio(PORTFOLIO))
    rates = np.array([[0.048, 0.0455, 0.042, 0.0425, 0.0445]])
    spots = np.zeros((1, 6))
    annuity = sum(book.curve.discount(rates, float(t))[0] for t in range(1, 8))
    par = (1 - book.curve.discount(rates, 7.0)[0]) / annuity
    swap = Swap(
        kind="swap", id="S", notional=1e6, fixed_rate=par, maturity=7, frequency=1, pay_fixed=True
    )
    alone = Book.of(book.portfolio.model_copy(update={"positions": [swap]}))
    assert abs(alone.value(spots, rates)[0]) < 1e-8
