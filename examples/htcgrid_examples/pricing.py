"""Monte Carlo pricing of European options: the demo's workload.

``handler`` prices one option by simulating terminal prices under geometric Brownian motion
(antithetic variates); ``black_scholes`` is the closed form the demo checks each price against,
within ``TOLERANCE_STDERRS`` standard errors of the estimate.
"""

from __future__ import annotations

import math
import random
from typing import Any, Literal

import numpy as np

#: A price is correct if it lies within this many standard errors of the closed form. At six,
#: a correct pricer fails a check with probability 2e-9, so 10,000 checks all pass unless the
#: pricer is wrong.
TOLERANCE_STDERRS = 6.0
#: Prices are resolved to one basis point of spot.
RESOLUTION_OF_SPOT = 1e-4


def handler(event: dict[str, Any], context: Any) -> dict[str, float]:
    """Price the option ``event`` describes: spot, strike, rate, volatility, maturity (years),
    kind ('call' or 'put'), paths and seed."""
    spot, strike = float(event["spot"]), float(event["strike"])
    rate, volatility = float(event["rate"]), float(event["volatility"])
    maturity, paths = float(event["maturity"]), int(event.get("paths", 20000))
    kind: Literal["call", "put"] = event.get("kind", "call")
    rng = np.random.default_rng(int(event.get("seed", 0)))
    normals = rng.standard_normal(paths // 2)
    drift = (rate - 0.5 * volatility**2) * maturity
    diffusion = volatility * math.sqrt(maturity)
    discount = math.exp(-rate * maturity)
    payoffs = []
    for z in (normals, -normals):  # antithetic pair: same draws, mirrored
        terminal = spot * np.exp(drift + diffusion * z)
        intrinsic = terminal - strike if kind == "call" else strike - terminal
        payoffs.append(np.maximum(intrinsic, 0.0))
    pair_means = discount * 0.5 * (payoffs[0] + payoffs[1])
    return {
        "price": float(pair_means.mean()),
        "stderr": float(pair_means.std(ddof=1) / math.sqrt(pair_means.size)),
        "paths": int(2 * pair_means.size),
    }


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(
    spot: float, strike: float, rate: float, volatility: float, maturity: float, kind: str
) -> float:
    """The closed-form Black-Scholes price of a European call or put."""
    d1 = (math.log(spot / strike) + (rate + 0.5 * volatility**2) * maturity) / (
        volatility * math.sqrt(maturity)
    )
    d2 = d1 - volatility * math.sqrt(maturity)
    discount = math.exp(-rate * maturity)
    if kind == "call":
        return spot * _norm_cdf(d1) - strike * discount * _norm_cdf(d2)
    return strike * discount * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


def random_option(seed: int, paths: int = 20000) -> dict[str, Any]:
    """A plausible option to price, drawn reproducibly from ``seed``."""
    draw = random.Random(seed)  # noqa: S311 - test data, not cryptography
    spot = round(draw.uniform(50, 150), 2)
    return {
        "spot": spot,
        # A trading book's strikes sit near the money; far out of it, 20,000 paths see no
        # payoff at all and the estimate is a meaningless zero.
        "strike": round(spot * draw.uniform(0.8, 1.25), 2),
        "rate": round(draw.uniform(0.0, 0.06), 4),
        "volatility": round(draw.uniform(0.1, 0.6), 3),
        "maturity": round(draw.uniform(0.1, 3.0), 3),
        "kind": draw.choice(["call", "put"]),
        "paths": paths,
        "seed": seed,
    }


def check(option: dict[str, Any], result: dict[str, Any]) -> bool:
    """Whether a Monte Carlo result agrees with the closed form within its error."""
    exact = black_scholes(
        option["spot"],
        option["strike"],
        option["rate"],
        option["volatility"],
        option["maturity"],
        option["kind"],
    )
    # Below one basis point of spot, a price is under what 20,000 paths resolve: a far
    # out-of-the-money option can see no payoff in any path (estimate 0, stderr 0).
    tolerance = TOLERANCE_STDERRS * float(result["stderr"]) + RESOLUTION_OF_SPOT * option["spot"]
    return bool(abs(float(result["price"]) - exact) <= tolerance)
