"""The agent's fetch order: strict priority by default, anti-starvation with a weight."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from htcgrid_agent.scheduling import FetchOrder


def simulate(order: FetchOrder, backlog: dict[int, int], fetches: int) -> list[int]:
    """The level each fetch is served from, one message per fetch, as the worker asks them:
    the first level in the order that has work."""
    served: list[int] = []
    for _ in range(fetches):
        for level in order.next_order():
            if backlog.get(level, 0) > 0:
                backlog[level] -= 1
                order.served([level])
                served.append(level)
                break
    return served


def test_without_a_weight_the_highest_level_is_always_asked_first() -> None:
    order = FetchOrder(levels=3)
    assert [order.next_order() for _ in range(5)] == [[2, 1, 0]] * 5


def test_a_sustained_high_backlog_starves_lower_levels_without_a_weight() -> None:
    served = simulate(FetchOrder(levels=3), {2: 1000, 1: 1000, 0: 1000}, fetches=100)
    assert set(served) == {2}


def test_with_a_weight_every_level_with_work_gets_a_turn() -> None:
    # GIVEN a backlog on every level and a weight of 4
    served = simulate(FetchOrder(levels=3, weight=4), {2: 1000, 1: 1000, 0: 1000}, fetches=300)
    # THEN each lower level is served about once per weight-plus-contention fetches...
    shares = Counter(served)
    assert shares[0] >= 300 // (4 + 2)
    assert shares[1] >= 300 // (4 + 2)
    # ...and the top level still gets most of them
    assert shares[2] > shares[1] + shares[0]
    # AND no lower level ever waits longer than weight + levels - 1 fetches
    for level in (0, 1):
        turns = [i for i, served_level in enumerate(served) if served_level == level]
        assert max(b - a for a, b in pairwise(turns)) <= 4 + 2


def test_an_empty_lower_level_costs_the_high_level_nothing() -> None:
    # GIVEN only the top level has work
    order = FetchOrder(levels=3, weight=2)
    served = simulate(order, {2: 50}, fetches=50)
    # THEN every fetch is still served, all from the top level
    assert served == [2] * 50


def test_a_served_level_waits_a_full_weight_again() -> None:
    order = FetchOrder(levels=2, weight=3)
    assert order.next_order() == [1, 0]
    assert order.next_order() == [1, 0]
    assert order.next_order() == [0, 1]  # third fetch unserved: its turn
    order.served([0])
    assert order.next_order() == [1, 0]


@pytest.mark.parametrize(("levels", "weight"), [(0, None), (3, -1)])
def test_nonsense_settings_are_refused(levels: int, weight: int | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        FetchOrder(levels, weight)
