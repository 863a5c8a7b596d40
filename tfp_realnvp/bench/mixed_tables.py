"""Mixed-table quality: held-out nats per row, `-log P(categories) - log p(numbers |
categories)`, of the flow model (`fit_mixed`) against two classical baselines.

Methods (each fitted on the training 80%, scored on the held-out 20%):
- `independent`: `P(c) = prod_k q_k(c_k)`, `q_k(l) = (n_k(l) + 1) / (N + L_k + 1)` (add-one,
  the unseen level included), times one full-covariance Gaussian `N(x; xbar, S)`.
- `location`: the general location model (Olkin & Tate 1961).
  ```none
  P(c)     = (n(c) + alpha) / (N + alpha M)        M = prod_k (L_k + 1) cells
  mu_c     = (n_c xbar_c + lambda xbar) / (n_c + lambda)
  Sigma    = (1/N) sum_i (x_i - mu_{c_i})(x_i - mu_{c_i})^T     (pooled)
  p(x | c) = N(x; mu_c, Sigma)
  ```
  `alpha` and `lambda` chosen on a 20% validation split of the training rows.
- `flow`: `tfp_realnvp.fit` of the training DataFrame with no flags (kinds found, automatic
  settings).

Tables (offline, scikit-learn): iris + species, wine + class, breast_cancer + diagnosis,
diabetes with `sex` as a category, and `synthetic` (two categorical columns whose cells
shift and bend three numeric ones). Grid-valued numeric columns (`grid_steps(...,
"auto")`) get `U(-step/2, step/2)` noise once, before the split, the same for every method.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as skdata

from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.mixed import encoding

MIXED_TABLES = ("iris", "wine", "breast_cancer", "diabetes", "synthetic")
MIXED_METHODS = ("independent", "location", "flow")
ALPHAS = tuple(float(a) for a in np.geomspace(1e-4, 10.0, 11))
LAMBDAS = (0.0, 0.5, 2.0, 8.0, 32.0, 128.0, 1e9)


@dataclasses.dataclass(frozen=True)
class MixedTable:
    """A split mixed table: numeric `[N, D]` float64 and codes `[N, K]` per split."""

    name: str
    train_numeric: np.ndarray
    train_codes: np.ndarray
    test_numeric: np.ndarray
    test_codes: np.ndarray
    vocabularies: tuple[encoding.Vocabulary, ...]

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(v.size for v in self.vocabularies)


def _synthetic(rng: np.random.Generator, rows: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    colour = rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2])
    square = rng.random(rows) < np.where(colour == "red", 0.8, 0.25)
    shape = np.where(square, "square", "circle")
    t = rng.standard_normal(rows)
    shift = np.select([colour == "green", colour == "blue"], [3.0, -2.0], 0.0)
    bend = np.where(square, -0.7, 1.0)
    numeric = np.stack([shift + t, bend * t**2 + 0.3 * rng.standard_normal(rows),
                        0.5 * t + 0.5 * shift + 0.5 * rng.standard_normal(rows)], axis=1)
    return numeric, np.stack([colour, shape], axis=1).astype(object)


def _raw_table(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(numeric float64 [N, D], labels object [N, K]) of a benchmark table."""
    def labelled(bunch):
        return bunch.data, np.asarray(bunch.target_names)[bunch.target][:, None].astype(object)

    if name == "iris":
        return labelled(skdata.load_iris())
    if name == "wine":
        return labelled(skdata.load_wine())
    if name == "breast_cancer":
        return labelled(skdata.load_breast_cancer())
    if name == "diabetes":
        data = skdata.load_diabetes(scaled=False).data
        sex = np.where(data[:, 1] == data[:, 1].min(), "sex_a", "sex_b")
        return np.delete(data, 1, axis=1), sex[:, None].astype(object)
    if name == "synthetic":
        return _synthetic(rng)
    raise ConfigError(f"Unknown mixed table {name!r}; choose from {MIXED_TABLES}.")


def load_mixed_table(name: str, seed: int = 0) -> MixedTable:
    """The table dequantised (grid columns), split 80/20 by `seed`, labels encoded with
    vocabularies of the training rows (test labels outside them are unseen levels)."""
    rng = np.random.default_rng(seed)
    numeric, labels = _raw_table(name, rng)
    numeric = np.asarray(numeric, np.float64)
    steps = np.asarray(prepare_lib.grid_steps(numeric, "auto"))
    numeric = numeric + steps * (rng.random(numeric.shape) - 0.5)
    order = rng.permutation(len(numeric))
    test, train = order[:int(round(0.2 * len(order)))], order[int(round(0.2 * len(order))):]
    vocabularies = tuple(encoding.fit_vocabularies(labels[train]))
    return MixedTable(name, numeric[train], encoding.encode(labels[train], vocabularies),
                      numeric[test], encoding.encode(labels[test], vocabularies),
                      vocabularies)


# -- the baselines (NumPy) -----------------------------------------------------------------

def _gaussian_logpdf(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """`log N(x; mean, cov)` per row (mean `[D]` or `[N, D]`), a tiny ridge for safety."""
    dim = x.shape[1]
    cov = cov + 1e-9 * np.trace(cov) / dim * np.eye(dim)
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (x - mean).T)
    return -0.5 * (z**2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * dim * math.log(2 * math.pi)


def _column_log_q(codes: np.ndarray, levels: Sequence[int]) -> list[np.ndarray]:
    """Add-one `log q_k` over `L_k + 1` levels (the last: unseen)."""
    return [np.log((np.bincount(codes[:, k], minlength=size + 1)[:size + 1] + 1.0)
                   / (len(codes) + size + 1)) for k, size in enumerate(levels)]


def _clip(codes: np.ndarray, levels: Sequence[int]) -> np.ndarray:
    return np.minimum(codes, np.asarray(levels))


@dataclasses.dataclass
class IndependentModel:
    """`prod_k q_k(c_k) * N(x; xbar, S)`."""

    log_q: list[np.ndarray]
    levels: tuple[int, ...]
    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def fit(cls, numeric: np.ndarray, codes: np.ndarray, levels: Sequence[int]):
        return cls(_column_log_q(codes, levels), tuple(levels), numeric.mean(0),
                   np.cov(numeric.T, bias=True).reshape(numeric.shape[1], -1))

    def log_mass(self, codes: np.ndarray) -> np.ndarray:
        codes = _clip(codes, self.levels)
        return sum(q[codes[:, k]] for k, q in enumerate(self.log_q))

    def log_density(self, numeric: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return _gaussian_logpdf(numeric, self.mean, self.cov)


@dataclasses.dataclass
class LocationModel:
    """The general location model (module docstring), cells keyed by their codes."""

    levels: tuple[int, ...]
    cell_counts: dict[tuple[int, ...], int]
    cell_means: dict[tuple[int, ...], np.ndarray]
    grand_mean: np.ndarray
    cov: np.ndarray
    alpha: float
    num_rows: int

    @classmethod
    def fit(cls, numeric: np.ndarray, codes: np.ndarray, levels: Sequence[int],
            alpha: float, shrinkage: float) -> LocationModel:
        levels = tuple(levels)
        codes = _clip(codes, levels)
        cells, inverse, counts = np.unique(codes, axis=0, return_inverse=True,
                                           return_counts=True)
        inverse = inverse.reshape(-1)
        grand = numeric.mean(0)
        means = {}
        for index, (cell, count) in enumerate(zip(cells, counts, strict=True)):
            cell_mean = numeric[inverse == index].mean(0)
            means[tuple(cell)] = (count * cell_mean + shrinkage * grand) / (count + shrinkage)
        fitted = np.stack([means[tuple(c)] for c in cells])[inverse]
        residual = numeric - fitted
        return cls(levels, {tuple(c): int(n) for c, n in zip(cells, counts, strict=True)},
                   means, grand, residual.T @ residual / len(numeric), float(alpha),
                   len(numeric))

    @property
    def num_cells(self) -> int:
        return math.prod(v + 1 for v in self.levels)

    def log_mass(self, codes: np.ndarray) -> np.ndarray:
        codes = _clip(codes, self.levels)
        counts = np.array([self.cell_counts.get(tuple(c), 0) for c in codes], np.float64)
        return np.log(counts + self.alpha) - math.log(self.num_rows + self.alpha *
                                                      self.num_cells)

    def log_density(self, numeric: np.ndarray, codes: np.ndarray) -> np.ndarray:
        codes = _clip(codes, self.levels)
        means = np.stack([self.cell_means.get(tuple(c), self.grand_mean) for c in codes])
        return _gaussian_logpdf(numeric, means, self.cov)


def fit_location(numeric: np.ndarray, codes: np.ndarray, levels: Sequence[int],
                 seed: int = 0) -> LocationModel:
    """The location model with `alpha` and `lambda` picked (separately: the mass and the
    density are separate terms) on a 20% validation split, then refitted on every row."""
    rows = np.random.default_rng(seed).permutation(len(numeric))
    held, kept = rows[:max(1, len(rows) // 5)], rows[max(1, len(rows) // 5):]

    def score(alpha: float, shrinkage: float) -> tuple[float, float]:
        model = LocationModel.fit(numeric[kept], codes[kept], levels, alpha, shrinkage)
        return (model.log_mass(codes[held]).mean(),
                model.log_density(numeric[held], codes[held]).mean())

    alpha = max(ALPHAS, key=lambda a: score(a, 1.0)[0])
    shrinkage = max(LAMBDAS, key=lambda s: score(1.0, s)[1])
    return LocationModel.fit(numeric, codes, levels, alpha, shrinkage)


# -- the benchmark -------------------------------------------------------------------------

def _parts_independent(table: MixedTable, seed: int, time_budget: float | None):
    model = IndependentModel.fit(table.train_numeric, table.train_codes, table.levels)
    return (model.log_mass(table.test_codes),
            model.log_density(table.test_numeric, table.test_codes), "add-one, full cov")


def _parts_location(table: MixedTable, seed: int, time_budget: float | None):
    model = fit_location(table.train_numeric, table.train_codes, table.levels, seed)
    return (model.log_mass(table.test_codes),
            model.log_density(table.test_numeric, table.test_codes),
            f"alpha {model.alpha:.3g}, {len(model.cell_counts)} cells")


def training_frame(table: MixedTable) -> pd.DataFrame:
    """The training rows as a user's DataFrame: numeric columns `x1..xD`, then the
    categorical ones `c1..cK` as text labels."""
    labels = encoding.decode(table.train_codes, table.vocabularies)
    columns = {f"x{j + 1}": table.train_numeric[:, j]
               for j in range(table.train_numeric.shape[1])}
    columns.update({f"c{k + 1}": labels[:, k] for k in range(labels.shape[1])})
    return pd.DataFrame(columns)


def _parts_flow(table: MixedTable, seed: int, time_budget: float | None):
    """The default `tfp_realnvp.fit` of the training DataFrame, no flags: it finds the
    kinds itself; scored with the `MixedTableModel` it returns."""
    import tfp_realnvp

    settings: dict[str, Any] = {"seed": seed, "mixing_seed": seed}
    if time_budget is not None:
        settings["time_budget"] = time_budget
    with tempfile.TemporaryDirectory() as tmp:
        result = tfp_realnvp.fit(training_frame(table), f"{tmp}/run", settings=settings)
        model = result.model
        if [v.labels for v in model.vocabularies] != [v.labels for v in table.vocabularies]:
            raise ConfigError(f"{table.name}: fit found other categories than the table's.")
        mass, density = model.log_prob_parts(table.test_numeric.astype(np.float32),
                                             table.test_codes)
        from tfp_realnvp.rundir import RunDir

        config = RunDir(f"{tmp}/run").read_config().flow
    detail = (f"a {model.categorical.strength:.3g}, {config.ensemble_size} x "
              f"{config.coupling}, {result.metrics['epochs_run']} epochs")
    return mass, density, detail


METHOD_PARTS: dict[str, Callable] = {"independent": _parts_independent,
                                     "location": _parts_location, "flow": _parts_flow}


def run_mixed_quality(tables: Sequence[str] = MIXED_TABLES, seeds: Sequence[int] = (0,),
                      time_budget: float | None = None,
                      methods: Sequence[str] = MIXED_METHODS,
                      on_result: Callable[[dict[str, Any]], None] | None = None
                      ) -> list[dict[str, Any]]:
    """One record per (table, seed, method): `nll` (nats per held-out row) with its
    `categorical` (`-log P(c)`) and `numeric` (`-log p(x | c)`) parts, and `seconds`.

    Args:
      tables: names from `MIXED_TABLES`.
      seeds: each seed draws its own split and dequantisation noise, and seeds the fits.
      time_budget: seconds of flow training per fit (None: `fit`'s automatic budget).
      methods: names from `MIXED_METHODS`.
      on_result: called with each record as soon as it is measured.
    """
    unknown = sorted(set(methods) - set(METHOD_PARTS))
    if unknown:
        raise ConfigError(f"Unknown methods {unknown}; choose from {MIXED_METHODS}.")
    records = []
    for name in tables:
        for seed in seeds:
            table = load_mixed_table(name, seed)
            for method in methods:
                tick = time.perf_counter()
                mass, density, detail = METHOD_PARTS[method](table, seed, time_budget)
                record = {"table": name, "seed": seed, "method": method,
                          "nll": float(-np.mean(mass + density)),
                          "categorical": float(-np.mean(mass)),
                          "numeric": float(-np.mean(density)),
                          "seconds": time.perf_counter() - tick, "detail": detail,
                          "rows": [len(table.train_codes), len(table.test_codes)],
                          "dims": [table.train_numeric.shape[1], len(table.levels)]}
                records.append(record)
                if on_result is not None:
                    on_result(record)
    return records


def format_mixed_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown: per table, `nll (categorical + numeric)` per method."""
    methods = [m for m in MIXED_METHODS if any(r["method"] == m for r in records)]
    lines = [f"| table (train, D num, K cat) | {' | '.join(methods)} |",
             f"| --- | {' | '.join('---:' for _ in methods)} |"]
    for name in dict.fromkeys(r["table"] for r in records):
        cells = []
        for method in methods:
            mine = [r for r in records if r["table"] == name and r["method"] == method]
            cells.append("" if not mine else
                         f"{np.mean([r['nll'] for r in mine]):.3f} "
                         f"({np.mean([r['categorical'] for r in mine]):.3f} + "
                         f"{np.mean([r['numeric'] for r in mine]):.3f})")
        first = next(r for r in records if r["table"] == name)
        lines.append(f"| {name} ({first['rows'][0]}, {first['dims'][0]}, {first['dims'][1]}) "
                     f"| {' | '.join(cells)} |")
    lines.append("\nnats per held-out row: total (-log P(categories) + -log p(numbers | "
                 "categories)).")
    return "\n".join(lines)
