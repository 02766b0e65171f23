"""The damped driven pendulum, integrated for a batch of drive parameters at once.

    theta'' + damping * theta' + sin(theta) = amplitude * cos(frequency * t)

Each point starts at rest, runs ``TRANSIENT_PERIODS`` drive periods to settle, then is sampled
``SAMPLES_PER_PERIOD`` times a period for ``SAMPLED_PERIODS`` periods. Time is rescaled to the
drive's phase (tau = frequency * t), so every point of a batch has the same period (2 pi) and
the batch is one system of 2 x points equations for ``solve_ivp``: numpy does the arithmetic
of all points at once, which is what makes a point cost about half a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

TRANSIENT_PERIODS = 48
SAMPLED_PERIODS = 32
SAMPLES_PER_PERIOD = 16
#: Longest period told apart; a point whose motion repeats with none up to this is 0
#: ("no period": chaotic, or quasi-periodic).
MAX_PERIOD = 8
#: Two stroboscopic states (angle mod 2 pi, angular velocity) closer than this are the same.
SAME_STATE = 1e-3
#: One tolerance for a whole batch: scipy's error norm is the RMS over all the batch's
#: equations, so it is kept tight enough that one point's share of it stays small.
RTOL, ATOL = 1e-7, 1e-9


@dataclass(frozen=True)
class Motion:
    """What a point's steady motion looks like, one array entry per point."""

    #: Mean turns per drive period (0 for an oscillation, +-1 for a phase-locked rotation).
    winding: np.ndarray
    #: Drive periods after which the motion repeats (1 to MAX_PERIOD), or 0 if none does.
    period: np.ndarray
    #: Half the peak-to-peak angular velocity (sampled: at most cos(pi/16) = 2 % low).
    velocity_amplitude: np.ndarray


def simulate(amplitude: np.ndarray, frequency: np.ndarray, damping: float) -> Motion:
    """Integrate one pendulum per (amplitude, frequency) pair from rest and describe its
    motion once the transient has died down."""
    points = amplitude.size
    steps = np.arange(SAMPLED_PERIODS * SAMPLES_PER_PERIOD + 1)
    taus = 2 * np.pi * (TRANSIENT_PERIODS + steps / SAMPLES_PER_PERIOD)

    def slope(tau: float, state: np.ndarray) -> np.ndarray:
        angle, velocity = state[:points], state[points:]
        accel = -damping * velocity - np.sin(angle) + amplitude * np.cos(tau)
        return np.concatenate((velocity / frequency, accel / frequency))

    solution = solve_ivp(
        slope,
        (0.0, float(taus[-1])),
        np.zeros(2 * points),
        method="DOP853",
        t_eval=taus,
        rtol=RTOL,
        atol=ATOL,
    )
    if not solution.success:
        raise RuntimeError(f"the integration failed: {solution.message}")
    angle, velocity = solution.y[:points], solution.y[points:]
    winding = (angle[:, -1] - angle[:, 0]) / (2 * np.pi * SAMPLED_PERIODS)
    strobe = slice(None, None, SAMPLES_PER_PERIOD)
    return Motion(
        winding=winding,
        period=_periods(angle[:, strobe], velocity[:, strobe]),
        velocity_amplitude=(velocity.max(axis=1) - velocity.min(axis=1)) / 2,
    )


def _periods(angle: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """The smallest p such that every stroboscopic state equals the one p periods later."""
    found = np.zeros(angle.shape[0], dtype=np.int64)
    for p in range(MAX_PERIOD, 0, -1):  # smallest last, so it wins
        turned = np.angle(np.exp(1j * (angle[:, p:] - angle[:, :-p])))  # difference mod 2 pi
        apart = np.hypot(turned, velocity[:, p:] - velocity[:, :-p]).max(axis=1)
        found[apart < SAME_STATE] = p
    return found


def linear_velocity_amplitude(amplitude: float, frequency: float, damping: float) -> float:
    """The steady angular-velocity amplitude of the small-angle (linear) pendulum: what
    ``simulate`` must find for small drives."""
    return amplitude * frequency / float(np.hypot(1 - frequency**2, damping * frequency))
