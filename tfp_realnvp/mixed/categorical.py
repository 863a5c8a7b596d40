"""`CategoricalModel`: an exact probability mass over the cells of K categorical columns.

A cell is a row of integer codes `c = (c_1, ..., c_K)`, `c_k` in `0..L_k` where `0..L_k-1`
are the levels seen in training and `L_k` is column k's "unseen" level (any category
training never saw). The mass is a Dirichlet-smoothed joint frequency shrunk towards the
independence model:

```none
q_k(l) = (n_k(l) + 1) / (N + L_k + 1)          add-one column frequencies (unseen: n = 0)
Q(c)   = prod_k q_k(c_k)                        the independence model
P(c)   = (n(c) + a Q(c)) / (N + a)              n(c): training rows in cell c
```
so `P = N/(N+a) * empirical + a/(N+a) * Q`: a mixture of two distributions, each summing
to 1 over the `prod_k (L_k + 1)` cells, hence exact (no bound) and never zero. The strength
`a` is the grid value with the best K-fold held-out log-mass. A missing cell (code -1 in
some columns) gets its exact marginal in closed form:
`P(c_obs) = (n(c_obs) + a prod_{k observed} q_k(c_k)) / (N + a)`, `n(c_obs)` the training
rows that agree on the observed columns.

NumPy only: `tfp_realnvp.mixed.mass_tf` evaluates the same mass with TensorFlow ops.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfp_realnvp.errors import ConfigError, DataError

DEFAULT_STRENGTHS = tuple(float(a) for a in np.geomspace(1e-2, 1e5, 29))
DEFAULT_FOLDS = 5
MAX_INDEX = 2**62  # mixed-radix cell indices above this use text keys instead
MISSING = -1


def validate_codes(codes: Any, width: int | None = None, source: str = "codes",
                   allow_missing: bool = True) -> np.ndarray:
    """`codes` as int64 `[N, K]`; DataError naming the first bad row and column otherwise.

    Codes are >= 0, or -1 for a missing cell when `allow_missing`.
    """
    array = np.asarray(codes)
    if array.ndim != 2:
        raise DataError(f"{source}: expected integer codes of shape [rows, categorical "
                        f"columns]; got shape {array.shape}.")
    if width is not None and array.shape[1] != width:
        raise DataError(f"{source}: {array.shape[1]} categorical column(s); the model has "
                        f"{width} (shape [N, {width}]).")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        as_float = np.asarray(array, np.float64) if np.issubdtype(array.dtype, np.number) \
            else None
        if as_float is None or not np.all(as_float == np.round(as_float)):
            raise DataError(f"{source}: expected integer codes (encode labels with "
                            f"tfp_realnvp.mixed.encoding.encode); got dtype {array.dtype}.")
    array = array.astype(np.int64)
    low = MISSING if allow_missing else 0
    bad = np.argwhere(array < low)
    if len(bad):
        row, column = bad[0]
        what = "-1 (missing) is not allowed here: drop or impute that row" if \
            array[row, column] == MISSING else "codes are >= 0, or -1 for a missing cell"
        raise DataError(f"{source}: row {row + 1}, column {column + 1} holds "
                        f"{array[row, column]}; {what}.")
    return array


class CategoricalModel:
    """The fitted mass `P(c) = (n(c) + a Q(c)) / (N + a)` (see the module docstring).

    Attributes:
      levels: `L_k` per column (seen levels); code `L_k` is the unseen level.
      cells: `[M, K]` int64, the distinct training cells (sorted by key).
      counts: `[M]` int64, `n(c)` of each.
      strength: `a` > 0.
      num_rows: `N`.
      log_q: per column, `[L_k + 1]` float64 `log q_k` (last entry: unseen).

    Example:
      >>> model = CategoricalModel.fit(codes)           # codes: int [N, K]
      >>> model.log_mass(codes[:5]); model.sample(10, np.random.default_rng(0))
    """

    def __init__(self, levels: Sequence[int], cells: np.ndarray, counts: np.ndarray,
                 strength: float, scores: dict[float, float] | None = None) -> None:
        self.levels = tuple(int(v) for v in levels)
        if not self.levels or min(self.levels) < 1:
            raise ConfigError(f"'levels' must be >= 1 per column; got {list(self.levels)}.")
        if not (math.isfinite(strength) and strength > 0):
            raise ConfigError(f"'strength' must be finite and > 0; got {strength!r}.")
        self.strength = float(strength)
        self.scores = dict(scores or {})
        cells = np.asarray(cells, np.int64).reshape(-1, len(self.levels))
        counts = np.asarray(counts, np.int64).reshape(-1)
        keys = self.cell_keys(cells)
        order = np.argsort(keys, kind="stable")
        self.cells, self.counts, self.keys = cells[order], counts[order], keys[order]
        self.num_rows = int(self.counts.sum())
        self.column_counts = [np.bincount(self.cells[:, k], self.counts, self.sizes[k])
                              for k in range(self.width)]
        self.log_q = [np.log((n + 1.0) / (self.num_rows + len(n))) for n in self.column_counts]

    @property
    def width(self) -> int:
        """K, the number of categorical columns."""
        return len(self.levels)

    @property
    def sizes(self) -> tuple[int, ...]:
        """`L_k + 1`: each column's levels, the unseen one included."""
        return tuple(v + 1 for v in self.levels)

    @property
    def index_keys(self) -> bool:
        """True: cells are keyed by their mixed-radix index; False: by text ("2,0,1")."""
        return math.prod(self.sizes) < MAX_INDEX

    @property
    def strides(self) -> np.ndarray:
        """Mixed-radix strides: `index(c) = sum_k c_k * prod_{j > k} (L_j + 1)`."""
        sizes = self.sizes
        return np.array([math.prod(sizes[k + 1:]) for k in range(self.width)], np.int64) \
            if self.index_keys else np.zeros(self.width, np.int64)

    # -- fitting -------------------------------------------------------------------------

    @classmethod
    def fit(cls, codes: Any, levels: Sequence[int] | None = None,
            strengths: Sequence[float] = DEFAULT_STRENGTHS, folds: int = DEFAULT_FOLDS,
            seed: int = 0) -> CategoricalModel:
        """Counts the training cells and picks `a` from `strengths` by `folds`-fold
        held-out log-mass (the mean of `log P_train(c_heldout)` over the folds).

        Args:
          codes: `[N, K]` integer codes, no missing cells (N >= 1).
          levels: `L_k` per column (default: the largest code + 1).
          strengths: the grid of `a` values (> 0).
          folds: the number of folds (at most N; with N < 2 the grid's middle is kept).
          seed: the folds' shuffle.
        """
        codes = validate_codes(codes, allow_missing=False)
        if len(codes) == 0:
            raise DataError("codes: no rows; the categorical model needs at least one.")
        levels = _levels(codes, levels)
        grid = np.asarray(sorted(float(a) for a in strengths), np.float64)
        if len(grid) == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
            raise ConfigError(f"'strengths' must be finite values > 0; got {list(strengths)}.")
        scores = _cross_validate(codes, levels, grid, folds, seed)
        best = float(grid[np.argmax(scores)]) if scores is not None else \
            float(grid[len(grid) // 2])
        cells, counts = np.unique(codes, axis=0, return_counts=True)
        table = None if scores is None else dict(zip(grid.tolist(), scores.tolist(), strict=True))
        return cls(levels, cells, counts, best, table)

    # -- the mass ------------------------------------------------------------------------

    def cell_keys(self, codes: np.ndarray) -> np.ndarray:
        """Each complete row's key: its mixed-radix index (int64), or its codes as text."""
        if self.index_keys:
            return codes @ self.strides
        return np.array([",".join(map(str, row)) for row in codes.tolist()], dtype=object)

    def clip_unseen(self, codes: np.ndarray) -> np.ndarray:
        """Codes beyond a column's seen levels become its unseen level `L_k` (-1 stays)."""
        return np.where(codes >= 0, np.minimum(codes, np.asarray(self.levels)), codes)

    def counts_of(self, codes: np.ndarray) -> np.ndarray:
        """`n(c)` for complete rows (0 for a cell training never saw)."""
        keys = self.cell_keys(codes)
        position = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        return np.where(self.keys[position] == keys, self.counts[position], 0)

    def log_mass(self, codes: Any) -> np.ndarray:
        """`log P(c)` per row, float64 `[N]`; -1 cells are marginalised exactly."""
        codes = self.clip_unseen(validate_codes(codes, self.width))
        observed = codes >= 0
        log_q = sum(np.where(observed[:, k], self.log_q[k][np.maximum(codes[:, k], 0)], 0.0)
                    for k in range(self.width))
        counts = np.zeros(len(codes), np.float64)
        complete = observed.all(axis=1)
        counts[complete] = self.counts_of(codes[complete])
        for row in np.flatnonzero(~complete):
            agree = (self.cells == codes[row]) | ~observed[row]
            counts[row] = self.counts[agree.all(axis=1)].sum()
        with np.errstate(divide="ignore"):
            joint = np.logaddexp(np.log(counts), math.log(self.strength) + log_q)
        return joint - math.log(self.num_rows + self.strength)

    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """`num` exact draws `[num, K]`: with probability `N / (N + a)` a training row's
        cell (uniform over rows), else each column independently from `q_k`."""
        if num < 0:
            raise ConfigError(f"'num' must be >= 0; got {num}.")
        empirical = rng.random(num) < self.num_rows / (self.num_rows + self.strength)
        out = np.empty((num, self.width), np.int64)
        picks = rng.choice(len(self.cells), empirical.sum(), p=self.counts / self.num_rows)
        out[empirical] = self.cells[picks]
        rest = int((~empirical).sum())
        for k in range(self.width):
            out[~empirical, k] = rng.choice(self.sizes[k], rest, p=np.exp(self.log_q[k]))
        return out

    def all_cells(self, limit: int = 1_000_000) -> np.ndarray:
        """Every cell `[prod_k (L_k + 1), K]`, unseen levels included (for checks)."""
        total = math.prod(self.sizes)
        if total > limit:
            raise ConfigError(f"{total} cells exceed limit={limit}; raise the limit.")
        return np.array(list(itertools.product(*map(range, self.sizes))),
                        np.int64).reshape(total, self.width)

    # -- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "version": 1, "levels": list(self.levels),
                "cells": self.cells.tolist(), "counts": self.counts.tolist(),
                "strength": self.strength,
                "scores": [[a, s] for a, s in self.scores.items()]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CategoricalModel:
        if values.get("kind") != "categorical":
            raise ConfigError(f"Not a categorical model (kind={values.get('kind')!r}).")
        return cls(values["levels"], np.asarray(values["cells"], np.int64),
                   values["counts"], values["strength"],
                   {float(a): float(s) for a, s in values.get("scores", [])})


def _levels(codes: np.ndarray, levels: Sequence[int] | None) -> tuple[int, ...]:
    seen = codes.max(axis=0) + 1
    if levels is None:
        return tuple(int(v) for v in seen)
    levels = tuple(int(v) for v in levels)
    if len(levels) != codes.shape[1]:
        raise ConfigError(f"'levels' must have {codes.shape[1]} entries (one per column); "
                          f"got {len(levels)}.")
    too_big = [k for k in range(len(levels)) if seen[k] > levels[k]]
    if too_big:
        k = too_big[0]
        raise DataError(f"codes: column {k + 1} holds code {seen[k] - 1} but levels gives it "
                        f"{levels[k]} level(s) (codes 0..{levels[k] - 1}).")
    return levels


def _cross_validate(codes: np.ndarray, levels: tuple[int, ...], grid: np.ndarray,
                    folds: int, seed: int) -> np.ndarray | None:
    """Total held-out log-mass per strength in `grid` over `folds` folds (None if N < 2)."""
    folds = min(int(folds), len(codes))
    if folds < 2:
        return None
    order = np.random.default_rng(seed).permutation(len(codes))
    totals = np.zeros(len(grid))
    for held in np.array_split(order, folds):
        kept = np.setdiff1d(order, held)
        cells, counts = np.unique(codes[kept], axis=0, return_counts=True)
        part = CategoricalModel(levels, cells, counts, 1.0)
        n = part.counts_of(codes[held]).astype(np.float64)
        log_q = sum(part.log_q[k][codes[held, k]] for k in range(codes.shape[1]))
        with np.errstate(divide="ignore"):
            joint = np.logaddexp(np.log(n)[None, :], np.log(grid)[:, None] + log_q[None, :])
        totals += (joint - np.log(len(kept) + grid)[:, None]).sum(axis=1)
    return totals
