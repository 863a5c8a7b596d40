"""Validated rows -> the data a run trains on: splits or folds, statistics, hashes (no TF)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from tfp_realnvp.config import FlowConfig, TrainConfig
from tfp_realnvp.errors import DataError

CORRELATION_RIDGE = 1e-6


@dataclasses.dataclass(frozen=True)
class MemberData:
    """One member's rows: events `[n, D]` and their contexts `[n, C]` (None: unconditional),
    for training and for validation (its held-out split or fold)."""

    train_events: np.ndarray
    validation_events: np.ndarray
    train_context: np.ndarray | None = None
    validation_context: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """Everything a run takes from its rows, computed once by `prepare`.

    `members[m]` is member m's split (a single flow: one member, a hold-out split; an
    ensemble of K: K folds). `data_map` holds the flow config's data-map fields
    (`data_shift`, `data_scale`, `data_tril`: see `affine_stats`), `context_map` its
    `context_shift`/`context_scale` (None without a context), `dequantize_steps` the
    training config's noise widths (see `grid_steps`), `hashes` the content hashes a run
    records (`sha256`, and `context_sha256` for a conditional run).
    """

    members: tuple[MemberData, ...]
    data_map: dict[str, list | None] = dataclasses.field(default_factory=dict)
    context_map: dict[str, list | None] = dataclasses.field(default_factory=lambda: {
        "context_shift": None, "context_scale": None})
    dequantize_steps: list[float] | None = None
    hashes: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def conditional(self) -> bool:
        return self.members[0].train_context is not None

    @property
    def num_train(self) -> int:
        return len(self.members[0].train_events)

    @property
    def train_sizes(self) -> list[int]:
        """Each member's number of training rows."""
        return [len(member.train_events) for member in self.members]

    @property
    def num_validation(self) -> int:
        return len(self.members[0].validation_events)


def prepare(data: np.ndarray, context: np.ndarray | None, flow_config: FlowConfig,
            train_config: TrainConfig, hashes: dict[str, str] | None = None) -> PreparedData:
    """The prepared data of validated events `[N, D]` and context `[N, C]` (or None).

    The split depends only on N, `ensemble_size`, `validation_fraction` and `seed`, so a
    resumed run given the same rows gets exactly the same splits; a row's context goes
    wherever the row goes. The statistics are fitted on the rows the flow learns from:
    member 0's training rows for one flow, all rows (member 0's order) for an ensemble,
    whose members each start at their own fold's Gaussian in training.

    Args:
      data: validated events.
      context: validated context, one row per event, or None.
      flow_config: gives `ensemble_size` and `whiten`.
      train_config: gives `validation_fraction`, `seed` and `dequantize`.
      hashes: the content hashes if already computed (`content_hashes`).
    """
    members = tuple(
        MemberData(data[train], data[validation],
                   None if context is None else context[train],
                   None if context is None else context[validation])
        for train, validation in split_indices(len(data), flow_config.ensemble_size,
                                               train_config.validation_fraction,
                                               train_config.seed))
    first = members[0]

    def fitted(train: np.ndarray, validation: np.ndarray) -> np.ndarray:
        one = flow_config.ensemble_size == 1
        return train if one else np.concatenate([train, validation])

    events = fitted(first.train_events, first.validation_events)
    return PreparedData(
        members=members,
        data_map=affine_stats(events, flow_config.whiten),
        context_map=_context_stats(None if context is None else fitted(
            first.train_context, first.validation_context)),
        dequantize_steps=grid_steps(events, train_config.dequantize),
        hashes=hashes if hashes is not None else content_hashes(data, context))


def split_indices(num_rows: int, num_members: int, validation_fraction: float,
                  seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training row indices, validation row indices) per member: one hold-out split for a
    single flow (`train_validation_indices`), K folds for an ensemble of K
    (`kfold_indices`, each member held out on its own fold)."""
    if num_members == 1:
        return [train_validation_indices(num_rows, validation_fraction, seed)]
    return kfold_indices(num_rows, num_members, seed)


def train_validation_indices(num_rows: int, validation_fraction: float,
                             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffles `range(num_rows)` with `seed`, then holds out `validation_fraction` of it
    (at least 1 row): (training indices, validation indices)."""
    if not 0 < validation_fraction < 1:
        raise DataError(f"'validation_fraction' must be in (0, 1); got {validation_fraction}.")
    if num_rows < 2:
        raise DataError(f"Need at least 2 rows to hold some out for validation; got {num_rows}.")
    order = np.random.default_rng(seed).permutation(num_rows)
    num_validation = max(1, int(round(num_rows * validation_fraction)))
    return order[num_validation:], order[:num_validation]


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
    train, validation = train_validation_indices(len(data), validation_fraction, seed)
    return data[train], data[validation]


def kfold_indices(num_rows: int, num_splits: int, seed: int,
                  min_folds: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training indices, held-out indices) for `num_splits` ensemble members.

    Rows are shuffled with `seed` into `max(num_splits, min_folds)` folds; member k holds
    out fold k and trains on the rest. With fewer members than `min_folds`, the folds
    beyond the members are never held out, so every member still trains on at least 90%
    of the rows.
    """
    num_folds = max(num_splits, min(min_folds, num_rows // 2))
    if num_rows < 2 * num_folds:
        raise DataError(
            f"{num_splits} ensemble members hold out one of {num_folds} folds each and need "
            f"at least {2 * num_folds} rows; got {num_rows}. Use a single flow "
            "(ensemble_size=1).")
    folds = np.array_split(np.random.default_rng(seed).permutation(num_rows), num_folds)
    return [(np.concatenate(folds[:k] + folds[k + 1:]), folds[k]) for k in range(num_splits)]


def kfold_splits(data: np.ndarray, num_splits: int, seed: int,
                 min_folds: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) for `num_splits` ensemble members (`kfold_indices`)."""
    return [(data[train], data[held_out])
            for train, held_out in kfold_indices(len(data), num_splits, seed, min_folds)]


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


def _context_stats(context: np.ndarray | None) -> dict[str, list | None]:
    """The context's standardisation (column means and standard deviations; a constant
    column gets scale 1), or None for no context."""
    if context is None:
        return {"context_shift": None, "context_scale": None}
    stats = affine_stats(context, whiten=False)
    return {"context_shift": stats["data_shift"], "context_scale": stats["data_scale"]}


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
    return [grid_step(np.unique(column), len(column), mode)
            for column in data.T.astype(np.float64)]


def grid_step(values: np.ndarray, num_rows: int, mode: str) -> float:
    """The noise width of one column from its sorted distinct `values` over `num_rows`
    rows: its smallest gap where `mode` is "uniform", or where the values sit on a regular
    grid and repeat (at most `num_rows / 2` of them); else 0."""
    if len(values) < 2:
        return 0.0
    step = float(np.diff(values).min())
    multiples = (values - values[0]) / step
    on_grid = np.allclose(multiples, np.round(multiples), atol=1e-3)
    grid_valued = on_grid and len(values) <= num_rows / 2
    return step if mode == "uniform" or grid_valued else 0.0


def content_hash(data: np.ndarray) -> str:
    """SHA-256 of a validated table's float32 values and shape: a run records it, and a
    resumed run checks its data against it."""
    table = np.ascontiguousarray(data, dtype=np.float32)
    digest = hashlib.sha256(str(table.shape).encode())
    digest.update(table.tobytes())
    return digest.hexdigest()


def content_hashes(data: np.ndarray, context: np.ndarray | None) -> dict[str, str]:
    """The hashes a run records: `sha256` of the events, `context_sha256` of a context."""
    hashes = {"sha256": content_hash(data)}
    if context is not None:
        hashes["context_sha256"] = content_hash(context)
    return hashes


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
