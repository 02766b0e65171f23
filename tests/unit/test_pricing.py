"""The demo's workload: Monte Carlo prices agree with Black-Scholes, and the check can fail."""

from htcgrid_examples.pricing import black_scholes, check, handler, random_option


def test_black_scholes_matches_a_textbook_value() -> None:
    # Hull, Options, Futures and Other Derivatives: S=42, K=40, r=10%, sigma=20%, T=0.5.
    assert abs(black_scholes(42, 40, 0.1, 0.2, 0.5, "call") - 4.76) < 0.01
    assert abs(black_scholes(42, 40, 0.1, 0.2, 0.5, "put") - 0.81) < 0.01


def test_monte_carlo_prices_pass_the_check() -> None:
    for seed in range(200):
        option = random_option(seed)
        assert check(option, handler(option, None)), option


def test_check_rejects_a_wrong_price() -> None:
    option = random_option(7)
    result = handler(option, None)
    result["price"] = result["price"] * 1.5 + 1.0
    assert not check(option, result)
