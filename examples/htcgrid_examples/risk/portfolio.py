"""The portfolio file: risk factors with their volatilities, their correlation matrix, and the
positions, as frozen pydantic documents with their limits (a task's payload carries one, and a
payload may be hostile).

Risk factors are equity spots (lognormal, annual volatility) and the key-tenor zero rates of one
curve (normal, annual volatility in absolute terms: 0.009 is 90 bp a year). Positions are
revalued in full (``revaluation``): stocks, European options, fixed-rate bonds, and vanilla
interest-rate swaps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_FACTORS = 200
MAX_POSITIONS = 10_000
#: Cash flows of a bond or swap at most this many years out, at most this many a year.
MAX_MATURITY_YEARS = 50.0
MAX_FREQUENCY = 12
#: The correlation matrix is symmetric to this many units in the last place of its entries.
SYMMETRY_TOLERANCE = 1e-12

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Maturity = Annotated[float, Field(gt=0, le=MAX_MATURITY_YEARS, allow_inf_nan=False)]


class Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EquityFactor(Document):
    """An equity's spot: lognormal, its return shocked by ``vol * sqrt(h) * z``."""

    kind: Literal["equity"]
    name: Name
    spot: Positive
    vol: Annotated[float, Field(gt=0, le=5, allow_inf_nan=False)]


class RateFactor(Document):
    """The zero rate (continuously compounded) at one key tenor of the curve, shocked by
    ``vol * sqrt(h) * z`` in absolute terms."""

    kind: Literal["rate"]
    name: Name
    tenor: Maturity
    zero_rate: Annotated[float, Field(ge=-0.2, le=1, allow_inf_nan=False)]
    vol: Annotated[float, Field(gt=0, le=0.5, allow_inf_nan=False)]


Factor = Annotated[EquityFactor | RateFactor, Field(discriminator="kind")]


class Stock(Document):
    kind: Literal["stock"]
    id: Name
    underlying: Name
    quantity: Finite


class Option(Document):
    """A European option on an equity factor, Black-Scholes with its implied volatility held
    and its rate from the curve at its maturity."""

    kind: Literal["option"]
    id: Name
    underlying: Name
    type: Literal["call", "put"]
    strike: Positive
    maturity: Maturity
    implied_vol: Annotated[float, Field(gt=0, le=5, allow_inf_nan=False)]
    quantity: Finite


class Bond(Document):
    """A fixed-rate bullet bond: ``frequency`` coupons a year, the next one a full period away."""

    kind: Literal["bond"]
    id: Name
    notional: Finite
    coupon: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    maturity: Maturity
    frequency: Annotated[int, Field(ge=1, le=MAX_FREQUENCY)]


class Swap(Document):
    """A spot-starting vanilla swap on its reset date: the floating leg is worth par, so it is
    ``notional * (1 - DF(maturity))``; the fixed leg pays ``fixed_rate`` ``frequency`` times a
    year. ``pay_fixed``: the holder pays the fixed leg and receives the floating one."""

    kind: Literal["swap"]
    id: Name
    notional: Positive
    fixed_rate: Annotated[float, Field(ge=-0.2, le=1, allow_inf_nan=False)]
    maturity: Maturity
    frequency: Annotated[int, Field(ge=1, le=MAX_FREQUENCY)]
    pay_fixed: bool


Position = Annotated[Stock | Option | Bond | Swap, Field(discriminator="kind")]


class Portfolio(Document):
    """Risk factors, their correlation (row and column i are factor i), and the positions."""

    name: Name
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    factors: Annotated[list[Factor], Field(min_length=1, max_length=MAX_FACTORS)]
    correlation: list[list[Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]]]
    positions: Annotated[list[Position], Field(min_length=1, max_length=MAX_POSITIONS)]

    @model_validator(mode="after")
    def _consistent(self) -> Portfolio:
        names = [factor.name for factor in self.factors]
        if len(set(names)) != len(names):
            raise ValueError("factors: two factors share a name")
        has_rates = any(isinstance(factor, RateFactor) for factor in self.factors)
        if not has_rates and any(isinstance(p, Option | Bond | Swap) for p in self.positions):
            raise ValueError("factors: options, bonds and swaps need at least one rate factor")
        equities = {f.name for f in self.factors if isinstance(f, EquityFactor)}
        for position in self.positions:
            if isinstance(position, Stock | Option) and position.underlying not in equities:
                raise ValueError(
                    f"positions: {position.id}'s underlying {position.underlying!r} is not an "
                    "equity factor"
                )
        cholesky_factor(self.correlation, names, self.name)
        return self


class CorrelationError(ValueError):
    """The correlation matrix is not a correlation matrix of the factors."""


def cholesky_factor(correlation: list[list[float]], names: list[str], source: str) -> np.ndarray:
    """The lower-triangular ``L`` with ``L @ L.T == correlation``: correlated normals are
    ``z @ L.T``. Raises ``CorrelationError`` naming the matrix unless it is square over the
    factors, symmetric, with a unit diagonal, and positive definite."""
    matrix = np.asarray(correlation, dtype=float)
    what = f"the correlation matrix of portfolio {source!r}"
    if matrix.shape != (len(names), len(names)):
        raise CorrelationError(
            f"correlation: {what} is {'x'.join(map(str, matrix.shape))}; the "
            f"{len(names)} factors need {len(names)}x{len(names)}"
        )
    if not np.array_equal(np.diag(matrix), np.ones(len(names))):
        raise CorrelationError(f"correlation: {what} has a diagonal entry other than 1")
    if not np.allclose(matrix, matrix.T, rtol=0, atol=SYMMETRY_TOLERANCE):
        row, column = np.unravel_index(np.argmax(np.abs(matrix - matrix.T)), matrix.shape)
        raise CorrelationError(
            f"correlation: {what} is not symmetric: [{row}][{column}] "
            f"({names[row]}, {names[column]}) is {matrix[row, column]}, "
            f"[{column}][{row}] is {matrix[column, row]}"
        )
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh(matrix)[0])
        raise CorrelationError(
            f"correlation: {what} ({len(names)}x{len(names)}, factors {', '.join(names)}) is "
            f"not positive definite (smallest eigenvalue {smallest:.3g}): no Cholesky factor, "
            "so no correlated scenarios; repair it (e.g. nearest correlation matrix) first"
        ) from None


class PortfolioFileError(ValueError):
    """A portfolio file that cannot be read or is not a valid portfolio."""


def load_portfolio(path: Path) -> Portfolio:
    """The portfolio in ``path`` (JSON); ``PortfolioFileError`` names the file and the field."""
    try:
        return Portfolio.model_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as error:
        raise PortfolioFileError(f"{path}: {error}") from error
    except ValidationError as error:
        raise PortfolioFileError(f"{path}: not a valid portfolio:\n{error}") from error
