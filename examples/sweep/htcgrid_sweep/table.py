"""A sweep's results as a table: checked batch by batch, written to Parquet, drawn as maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from htcgrid_sweep.definition import Sweep

#: The columns a task's result holds, one value per point of its batch.
MEASURES = ("winding", "period", "velocity_amplitude")


class BadResultError(ValueError):
    """A task's result is not the batch it claims to be."""


def check_batch(sweep: Sweep, value: Any) -> tuple[int, dict[str, np.ndarray]]:
    """The batch number and columns of a task's result, once it is shown to be a whole batch of
    ``sweep`` (a result is data from elsewhere: it is read as such)."""
    if not isinstance(value, dict) or not isinstance(value.get("batch"), int):
        raise BadResultError("result: not a sweep batch (no integer 'batch')")
    batch = value["batch"]
    try:
        size = len(sweep.span(batch))
    except ValueError as error:
        raise BadResultError(f"result.batch: {error}") from error
    columns = {}
    for name in MEASURES:
        column = np.asarray(value.get(name), dtype=np.int64 if name == "period" else np.float64)
        if column.shape != (size,):
            raise BadResultError(f"result.{name}: {column.shape}, not the batch's {size} points")
        columns[name] = column
    return batch, columns


def write_parquet(sweep: Sweep, batches: dict[int, dict[str, np.ndarray]], path: Path) -> int:
    """Write the finished batches' points, in point order, to ``path`` (replaced whole, via a
    temporary file, so an interrupted write never leaves half a file); returns the rows."""
    parts = []
    for batch in sorted(batches):
        amplitude, frequency = sweep.parameters(batch)
        span = sweep.span(batch)
        parts.append(
            pa.table(
                {
                    "point": np.arange(span.start, span.stop),
                    "drive_amplitude": amplitude,
                    "drive_frequency": frequency,
                    **batches[batch],
                }
            )
        )
    table = pa.concat_tables(parts) if parts else pa.table({"point": pa.array([], pa.int64())})
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(table, partial)
    partial.replace(path)
    return int(table.num_rows)


def plot(sweep: Sweep, path: Path, image: Path) -> None:
    """Two maps of the sweep from its Parquet file: the period of the motion and its winding."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed on a server or in CI
    import matplotlib.pyplot as plt

    table = pq.read_table(path)
    grid = np.full(sweep.points, np.nan)
    shape = (sweep.amplitude.count, sweep.frequency.count)
    extent = (
        sweep.frequency.start,
        sweep.frequency.stop,
        sweep.amplitude.start,
        sweep.amplitude.stop,
    )
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    points = table["point"].to_numpy()
    for axes, name, title, cmap in (
        (left, "period", "period of the motion (drive periods; 0: none, chaotic)", "tab10"),
        (right, "winding", "winding (turns per drive period)", "coolwarm"),
    ):
        grid[:] = np.nan
        grid[points] = table[name].to_numpy()
        shown = axes.imshow(
            grid.reshape(shape),
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap=cmap,
            interpolation="nearest",
        )
        axes.set(
            xlabel="drive frequency / natural frequency", ylabel="drive amplitude", title=title
        )
        figure.colorbar(shown, ax=axes)
    figure.suptitle(f"damped driven pendulum, damping {sweep.damping}: {sweep.points:,} points")
    figure.savefig(image, dpi=110)
    plt.close(figure)
