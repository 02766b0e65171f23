"""The Black-Scholes-Merton closed form of a European option and its Greeks, written out here
(``math.erfc``) so the client checks QuantLib's analytic engine against an independent formula.

The inputs are the trade's market: spot, dividend yield and volatility as quoted, and the
risk-free rate as the continuously compounded zero rate of the currency's curve to the option's
maturity, ``r = -ln(D(T)) / T``: the one number of the curve a European option depends on."""

from __future__ import annotations

import math


def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black_scholes(
    kind: str,
    spot: float,
    strike: float,
    rate: float,
    dividend: float,
    volatility: float,
    years: float,
) -> dict[str, float]:
    """NPV, delta, gamma, vega, theta (per year), rho and dividend rho (per unit of rate) of a
    European ``kind`` ('call' or 'put') option maturing in ``years``."""
    s, k, r, q, sigma, t = spot, strike, rate, dividend, volatility, years
    root_t = math.sqrt(t)
    d1 = (math.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / (sigma * root_t)
    d2 = d1 - sigma * root_t
    sign = 1.0 if kind == "call" else -1.0
    growth, discount = math.exp(-q * t), math.exp(-r * t)
    return {
        "npv": sign * (s * growth * _cdf(sign * d1) - k * discount * _cdf(sign * d2)),
        "delta": sign * growth * _cdf(sign * d1),
        "gamma": growth * _pdf(d1) / (s * sigma * root_t),
        "vega": s * growth * _pdf(d1) * root_t,
        "theta": -s * growth * _pdf(d1) * sigma / (2.0 * root_t)
        - sign * r * k * discount * _cdf(sign * d2)
        + sign * q * s * growth * _cdf(sign * d1),
        "rho": sign * k * t * discount * _cdf(sign * d2),
        "dividend_rho": -sign * s * t * growth * _cdf(sign * d1),
    }
