"""The built-in 2-D toy sets (two moons, circles, blobs, swiss roll) as float32 rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tfp_realnvp.config import TOY_DATASET_NAMES
from tfp_realnvp.errors import DataError


def _sklearn():
    """scikit-learn's generators, imported on first use (it costs seconds; `--help` and a
    CSV read should not pay for it)."""
    from sklearn import datasets

    return datasets


TOY_DATASETS: dict[str, Callable[[int, float, int], np.ndarray]] = {
    "moons": lambda n, noise, seed: _sklearn().make_moons(
        n, noise=noise, random_state=seed)[0],
    "circles": lambda n, noise, seed: _sklearn().make_circles(
        n, noise=noise, factor=0.5, random_state=seed
    )[0],
    "blobs": lambda n, noise, seed: _sklearn().make_blobs(
        n, n_features=2, centers=3, cluster_std=max(noise, 1e-3) * 10, random_state=seed
    )[0],
    "swissroll": lambda n, noise, seed: _sklearn().make_swiss_roll(
        n, noise=noise, random_state=seed
    )[0][:, [0, 2]] / 5.0,
}
assert tuple(TOY_DATASETS) == TOY_DATASET_NAMES


def make_toy(name: str, num_points: int = 3000, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Samples `num_points` rows of a built-in 2-D toy set as float32.

    Args:
      name: one of `TOY_DATASETS` (moons, circles, blobs, swissroll).
      num_points: rows to draw.
      noise: the toy set's noise level (e.g. `make_moons(noise=...)`).
      seed: the same seed gives the same rows.
    """
    if name not in TOY_DATASETS:
        raise DataError(
            f"Unknown dataset {name!r}; choose one of {', '.join(sorted(TOY_DATASETS))}, "
            "or load your own table."
        )
    if num_points < 1:
        raise DataError(f"'num_points' must be >= 1; got {num_points}.")
    return TOY_DATASETS[name](num_points, noise, seed).astype(np.float32)
