"""Validated rows -> what training needs: train/validation splits, folds, the data map's
statistics, grid steps, content hashes. (Reading and checking tables: `tfp_realnvp.tables`.)"""

from __future__ import annotations

import hashlib

import numpy as np

from tfp_realnvp.errors import DataError


def content_hash(data: np.ndarray) -> str:
    """SHA-256 of a validated table's float32 values and shape: a run records it, and a
    resumed run checks its data against it."""
    table = np.ascontiguousarray(data, dtype=np.float32)
    digest = hashlib.sha256(str(table.shape).encode())
    digest.update(table.tobytes())
    return digest.hexdigest()


def check_trainable(data: np.ndarray, source: str = "data") -> None:
    """Refuses tables a density cannot be fitted to: too few rows, or a constant column
    (all its mass on one value: an infinite density, never a number)."""
    rows, columns = data.shape
    needed = max(10, columns + 2)
    if rows < needed:
        raise DataError(
            f"{source}: {rows} rows; fitting a {columns}-column flow and holding rows out "
            f"for validation needs at least {needed}.")
    constant = np.flatnonzero(np.ptp(data, axis=0) == 0)
    if constant.size:
        column = int(constant[0])
        raise DataError(
            f"{source}: column {column + 1} is constant (every row is "
            f"{data[0, column]:g}); a density over it would be infinite. Drop the column.")


def train_validation_split(
    data: np.ndarray, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffles rows with `seed`, then holds out `validation_fraction` of them (at least 1).

    Args:
      data: `[N, D]` rows.
      validation_fraction: share held out, in (0, 1).
      seed: the shuffle's seed.

    Returns:
      (training rows, validation rows).
    """
    if not 0 < validation_fraction < 1:
        raise DataError(f"'validation_fraction' must be in (0, 1); got {validation_fraction}.")
    if len(data) < 2:
        raise DataError(f"Need at least 2 rows to hold some out for validation; got {len(data)}.")
    order = np.random.default_rng(seed).permutation(len(data))
    num_validation = max(1, int(round(len(data) * validation_fraction)))
    return data[order[num_validation:]], data[order[:num_validation]]


def kfold_splits(data: np.ndarray, num_splits: int, seed: int,
                 min_folds: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) for `num_splits` ensemble members.

    Rows are shuffled with `seed` into `max(num_splits, min_folds)` folds; member k holds
    out fold k and trains on the rest. With fewer members than `min_folds`, the folds
    beyond the members are never held out, so every member still trains on at least 90%
    of the rows.
    """
    num_folds = max(num_splits, min(min_folds, len(data) // 2))
    if len(data) < 2 * num_folds:
        raise DataError(
            f"{num_splits} ensemble members hold out one of {num_folds} folds each and need "
            f"at least {2 * num_folds} rows; got {len(data)}. Use a single flow "
            "(ensemble_size=1).")
    folds = np.array_split(np.random.default_rng(seed).permutation(len(data)), num_folds)
    return [(data[np.concatenate(folds[:k] + folds[k + 1:])], data[folds[k]])
            for k in range(num_splits)]


CORRELATION_RIDGE = 1e-6


def affine_stats(data: np.ndarray, whiten: bool = True) -> dict[str, list]:
    """The flow's data map fitted on `data`: column means and standard deviations, and the
    Cholesky factor of the column correlations (None unless `whiten`).

    A constant column gets scale 1 (it cannot be divided by 0). The correlation matrix gets
    a ridge of 1e-6 on its diagonal, so the factor exists (and float32 solves with it stay
    accurate) even when columns are collinear or the table has fewer rows than columns.
    """
    mean = data.mean(axis=0, dtype=np.float64)
    std = data.std(axis=0, dtype=np.float64)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    stats = {"data_shift": mean.tolist(), "data_scale": std.tolist(), "data_tril": None}
    if whiten:
        standardised = (data - mean) / std
        correlation = standardised.T @ standardised / len(data)
        correlation += CORRELATION_RIDGE * np.eye(len(mean))
        stats["data_tril"] = np.linalg.cholesky(correlation).tolist()
    return stats


def grid_steps(data: np.ndarray, mode: str) -> list[float] | None:
    """Per-column width of the uniform dequantisation noise, from the training rows.

    A column's step is its smallest gap between distinct values. `mode="uniform"` gives
    every column its step; `"auto"` only the grid-valued ones: every value a whole number
    of steps from the smallest, and at most half as many distinct values as rows (integer
    counts, pixel levels, prices in cents). Other columns get 0 (no noise); `"none"` gives
    None. Training adds `step * (U(0, 1) - 1/2)` to each value, so the flow learns a
    density over the grid's cells instead of spikes on its points.
    """
    if mode == "none":
        return None
    steps = []
    for column in data.T.astype(np.float64):
        values = np.unique(column)
        if len(values) < 2:
            steps.append(0.0)
            continue
        step = float(np.diff(values).min())
        multiples = (values - values[0]) / step
        on_grid = np.allclose(multiples, np.round(multiples), atol=1e-3)
        grid_valued = on_grid and len(values) <= len(column) / 2
        steps.append(step if mode == "uniform" or grid_valued else 0.0)
    return steps
