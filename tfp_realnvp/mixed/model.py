"""`MixedTableModel`: the exact likelihood of table rows with categorical and numeric cells,
`log P(c) + log p(x | c)`, and `fit_mixed` / `load_mixed`.

```none
log p(row) = log P(c)            CategoricalModel: an exact mass over the category cells
           + log p(x | c)        the package's conditional flow, context = one_hot(c)
```
The context of a cell is its one-hot encoding (`sum_k L_k` columns); an unseen level's
block is that column's training frequencies, which the flow's own context
standardisation maps to 0 (the average context). A missing categorical cell (-1) is
summed out exactly:

```none
log p(x, c_obs) = logsumexp over the missing columns' levels l (unseen included) of
                  log P(c_obs, l) + log p(x | c_obs, l)
```
A table without numeric columns is the categorical model alone.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_probability as tfp

from tfp_realnvp import tables
from tfp_realnvp.errors import ConfigError, DataError, RunExistsError
from tfp_realnvp.mixed.categorical import DEFAULT_STRENGTHS, CategoricalModel, validate_codes
from tfp_realnvp.mixed.encoding import Vocabulary, one_hot

tfd = tfp.distributions

CATEGORICAL_FILE = "categorical.json"
MAX_COMBINATIONS = 100_000  # levels enumerated to marginalise one row's missing cells
SCORE_CELLS = 200_000  # (row, combination) pairs scored per flow call


class MixedTableModel:
    """`P(c) p(x | c)` over rows of numeric cells `x` `[D]` and category codes `c` `[K]`.

    Args:
      categorical: the fitted `CategoricalModel`.
      flow: the conditional flow `p(x | one_hot(c))` (`context_dim = sum_k L_k`), or None
        for a table without numeric columns.
      vocabularies: the columns' labels (optional; kept for decoding and saving).

    Example:
      >>> model = fit_mixed(numeric, codes, "runs/mixed")
      >>> model.log_prob(numeric, codes); x, c = model.sample(100, seed=0)
    """

    def __init__(self, categorical: CategoricalModel, flow: tfd.Distribution | None = None,
                 vocabularies: Sequence[Vocabulary] | None = None) -> None:
        self.categorical = categorical
        self.flow = flow
        self.vocabularies = list(vocabularies) if vocabularies is not None else None
        if flow is not None:
            from tfp_realnvp.flow import flow_context_dim

            width = flow_context_dim(flow)
            if width < sum(categorical.levels):
                raise ConfigError(f"The flow's context has {width} column(s); the categorical "
                                  f"model's one-hot needs {sum(categorical.levels)}.")

    @property
    def extra_context_dim(self) -> int:
        """The user's own context columns after the one-hot (0: p(x, c) unconditional)."""
        if self.flow is None:
            return 0
        from tfp_realnvp.flow import flow_context_dim

        return flow_context_dim(self.flow) - sum(self.categorical.levels)

    @property
    def numeric_dim(self) -> int:
        return 0 if self.flow is None else int(self.flow.event_shape[-1])

    def context(self, codes: np.ndarray, extra: Any = None) -> np.ndarray:
        """The flow's context `[N, sum_k L_k (+ E)]` for complete codes (unseen: the
        column's training frequencies), then the user's own context `extra` `[N, E]`."""
        model = self.categorical
        unseen = [n[:-1] / model.num_rows for n in model.column_counts]
        hot = one_hot(model.clip_unseen(codes), model.levels, unseen)
        if not self.extra_context_dim:
            if extra is not None:
                raise DataError("context: this model takes no context beyond its categories.")
            return hot
        if extra is None:
            raise DataError(f"context: this model also needs {self.extra_context_dim} context "
                            "column(s) of its own (context=); got None.")
        extra = tables.validate_context(np.broadcast_to(
            np.asarray(extra, np.float32), (len(codes), self.extra_context_dim)),
            width=self.extra_context_dim)
        return np.concatenate([hot, extra], axis=1)

    def _numeric(self, numeric: Any, rows: int) -> np.ndarray | None:
        if self.flow is None:
            if numeric is not None and np.size(numeric):
                raise DataError("numeric: this model has no numeric columns; pass None.")
            return None
        if numeric is None:
            raise DataError(f"numeric: this model needs {self.numeric_dim} numeric column(s); "
                            "got None.")
        numeric = tables.validate_array(numeric, "numeric", self.numeric_dim)
        if len(numeric) != rows:
            raise DataError(f"numeric: {len(numeric)} rows; codes has {rows} (one numeric "
                            "row per codes row).")
        return numeric

    def log_density(self, numeric: np.ndarray, codes: np.ndarray,
                    context: Any = None) -> np.ndarray:
        """`log p(x | c)` for complete codes, float64 `[N]` (0 without numeric columns)."""
        if self.flow is None:
            return np.zeros(len(codes))
        from tfp_realnvp.scoring import per_row_nll

        return -per_row_nll(self.flow, numeric, context=self.context(codes, context))

    def log_prob(self, numeric: Any, codes: Any, context: Any = None) -> np.ndarray:
        """`log P(c) + log p(x | c)` per row, float64 `[N]`; -1 cells summed out exactly.
        `context`: the user's own context columns `[N, E]` when the model has them."""
        codes = self.categorical.clip_unseen(validate_codes(codes, self.categorical.width))
        numeric = self._numeric(numeric, len(codes))
        if numeric is None:
            return self.categorical.log_mass(codes)
        out = np.empty(len(codes))
        if context is not None:
            context = np.broadcast_to(np.asarray(context, np.float32),
                                      (len(codes), np.shape(context)[-1]))
        complete = (codes >= 0).all(axis=1)
        if complete.any():
            out[complete] = self.categorical.log_mass(codes[complete]) + \
                self.log_density(numeric[complete], codes[complete],
                                 None if context is None else context[complete])
        patterns = codes < 0
        for pattern in {tuple(p) for p in patterns[~complete]}:
            rows = np.flatnonzero((patterns == pattern).all(axis=1))
            out[rows] = self._marginal(numeric[rows], codes[rows], np.flatnonzero(pattern),
                                       None if context is None else context[rows])
        return out

    def _marginal(self, numeric: np.ndarray, codes: np.ndarray,
                  missing: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """logsumexp over every level combination of the `missing` columns (shared by the
        rows) of `log P(c) + log p(x | c)`."""
        sizes = [self.categorical.sizes[k] for k in missing]
        total = math.prod(sizes)
        if total > MAX_COMBINATIONS:
            raise DataError(f"codes: {len(missing)} missing cell(s) in one row span {total} "
                            f"level combinations (limit {MAX_COMBINATIONS}); impute some.")
        fills = np.array(list(itertools.product(*map(range, sizes))), np.int64)
        out = np.empty(len(codes))
        step = max(1, SCORE_CELLS // total)
        for start in range(0, len(codes), step):
            part = slice(start, start + step)
            full = np.repeat(codes[part], total, axis=0)
            full[:, missing] = np.tile(fills, (len(codes[part]), 1))
            x = np.repeat(numeric[part], total, axis=0)
            extra = None if context is None else np.repeat(context[part], total, axis=0)
            terms = (self.categorical.log_mass(full) + self.log_density(x, full, extra))
            out[part] = _logsumexp(terms.reshape(-1, total))
        return out

    def log_prob_parts(self, numeric: Any, codes: Any,
                       context: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """`(log P(c), log p(x | c))` per row; with missing cells `log P(c_obs)` and
        `log p(x | c_obs) = log_prob - log P(c_obs)`, so the parts always sum to log_prob."""
        codes = validate_codes(codes, self.categorical.width)
        mass = self.categorical.log_mass(codes)
        return mass, self.log_prob(numeric, codes, context) - mass

    def sample(self, num: int, seed: int = 0,
               context: Any = None) -> tuple[np.ndarray | None, np.ndarray]:
        """`num` rows: codes from the categorical model (NumPy generator seeded by `seed`),
        then the numeric cells from the flow given them (stateless seed `seed`) and the
        user's own `context` (one row for all, or one per sample) if the model has one."""
        codes = self.categorical.sample(num, np.random.default_rng(seed))
        if self.flow is None or num == 0:
            empty = None if self.flow is None else np.zeros((0, self.numeric_dim), np.float32)
            return empty, codes
        from tfp_realnvp.sampling import sample_flow

        return sample_flow(self.flow, num, seed, context=self.context(codes, context)), codes

    def save_categorical(self, run_dir: str | Path, numeric: bool | None = None) -> Path:
        """Writes `categorical.json` (model and vocabularies) into `run_dir` atomically;
        `numeric`: whether the run has a flow (default: whether this model has one)."""
        from tfp_realnvp.files import atomic_write

        path = Path(run_dir) / CATEGORICAL_FILE
        numeric = self.flow is not None if numeric is None else numeric
        values = {"categorical": self.categorical.to_dict(), "numeric": numeric,
                  "vocabularies": None if self.vocabularies is None else
                  [v.to_dict() for v in self.vocabularies]}
        with atomic_write(path) as tmp:
            Path(tmp).write_text(json.dumps(values))
        return path


def _logsumexp(values: np.ndarray) -> np.ndarray:
    top = values.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(values - top).sum(axis=1, keepdims=True)))[:, 0]


def fit_mixed(numeric: Any, codes: Any, run_dir: str | Path, flow_config: Any = None,
              train_config: Any = None, settings: dict[str, Any] | None = None,
              vocabularies: Sequence[Vocabulary] | None = None,
              strengths: Sequence[float] = DEFAULT_STRENGTHS, seed: int = 0,
              **fit_kwargs: Any) -> MixedTableModel:
    """Fits the categorical mass in NumPy, then the conditional flow on the numeric cells
    with the package's `fit(numeric, run_dir, ..., context=one_hot(codes))` (its automatic
    settings when no config is given); writes `run_dir/categorical.json` last.

    Args:
      numeric: `[N, D]` numbers (D >= 2), or None / `[N, 0]` for an all-categorical table.
      codes: `[N, K]` integer codes without missing cells (from `encoding.encode`).
      run_dir: a new or empty folder.
      flow_config, train_config, settings, fit_kwargs: passed on to `fit`.
      vocabularies: the columns' labels (their sizes fix `L_k`; default: the codes').
      strengths: the grid of the categorical model's shrinkage `a`.
      seed: the categorical model's folds.
    """
    codes = validate_codes(codes, allow_missing=False)
    levels = None if vocabularies is None else [v.size for v in vocabularies]
    categorical = CategoricalModel.fit(codes, levels, strengths, seed=seed)
    if numeric is None or np.size(numeric) == 0:
        _new_run_dir(run_dir)
        model = MixedTableModel(categorical, None, vocabularies)
    else:
        numeric = np.asarray(numeric)
        if numeric.ndim != 2 or numeric.shape[0] != len(codes):
            raise DataError(f"numeric: shape {numeric.shape}; expected [{len(codes)}, D] "
                            "(one row per codes row).")
        if numeric.shape[1] < 2:
            raise ConfigError("numeric: the flow needs at least 2 numeric columns; got 1. "
                              "Model a single numeric column with another (e.g. a "
                              "categorical binning) or add a column.")
        from tfp_realnvp.training import fit

        probe = MixedTableModel(categorical, None, vocabularies)
        result = fit(numeric, run_dir, flow_config, train_config, settings=settings,
                     context=probe.context(codes), **fit_kwargs)
        model = MixedTableModel(categorical, result.flow, vocabularies)
    model.save_categorical(run_dir)
    return model


def _new_run_dir(run_dir: str | Path) -> None:
    path = Path(run_dir)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunExistsError(f"{path} exists and is not an empty folder; choose a new one.")
    path.mkdir(parents=True, exist_ok=True)


def _read_categorical(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CATEGORICAL_FILE
    if not path.is_file():
        from tfp_realnvp.errors import ModelNotFoundError

        raise ModelNotFoundError(f"{run_dir}: no {CATEGORICAL_FILE}; not a mixed-table run "
                                 "(fit it with tfp_realnvp.mixed.fit_mixed).")
    return json.loads(path.read_text())


def load_categorical(run_dir: str | Path) -> CategoricalModel:
    """The categorical model of a mixed run (its categorical.json), without the flow."""
    return CategoricalModel.from_dict(_read_categorical(run_dir)["categorical"])


def load_mixed(run_dir: str | Path) -> MixedTableModel:
    """The model `fit_mixed` left in `run_dir` (flow weights and categorical.json)."""
    flow = None
    if _read_categorical(run_dir).get("numeric"):
        from tfp_realnvp.rundir import RunDir

        flow = RunDir(run_dir).load_flow()
    return read_mixed(Path(run_dir) / CATEGORICAL_FILE, flow)


def read_mixed(path: str | Path, flow: tfd.Distribution | None) -> MixedTableModel:
    """The model of a `categorical.json` (a run's, or an export's assets.extra) with `flow`."""
    values = json.loads(Path(path).read_text())
    vocabularies = None if values.get("vocabularies") is None else \
        [Vocabulary.from_dict(v) for v in values["vocabularies"]]
    return MixedTableModel(CategoricalModel.from_dict(values["categorical"]),
                           flow if values.get("numeric") else None, vocabularies)
