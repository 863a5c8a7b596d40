"""Tables out as they came in: `score_frame` (each row's NLL, its parts and the counts of
unseen and missing cells, in the table's row order) and `sample_frame` (rows named by the
layout, categories as labels), for mixed-table models and numeric flows alike.

```none
nll(row)            = -log P(c) - log p(x | c)     a MixedTableModel (the two parts kept)
                    = -log p(x [| context])        a numeric flow
missing categorical -> summed out exactly over its levels (the model does it, code -1)
missing numeric     -> NaN, counted, never averaged in
unseen label        -> the categorical model's unseen level (its smoothing mass), counted
```
This module imports no TensorFlow; a model's own scoring and sampling do.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.files import atomic_write
from tfp_realnvp.mixed.frames import (
    event_groups,
    frame_inputs,
    layout_or_default,
    samples_frame,
)
from tfp_realnvp.tables.layout import TableLayout

SCORE_COLUMNS = ("nll", "categorical_nll", "numeric_nll")
MAX_SAMPLE_ROUNDS = 1000  # draws of categories, rejecting unseen levels, before giving up


def is_mixed(model: Any) -> bool:
    """True for a `MixedTableModel` (told by its parts, so no TensorFlow is imported)."""
    return hasattr(model, "categorical") and hasattr(model, "log_prob_parts")


@dataclasses.dataclass(frozen=True)
class FrameScores:
    """The scores of a table's rows, in its row order.

    Attributes:
      nll: float64 `[N]` nats, `-log p(row)`; NaN for a row with a missing numeric cell.
      categorical_nll: `-log P(c)` `[N]` (a mixed model; None for a numeric flow).
      numeric_nll: `-log p(x | c)` `[N]` (a mixed model; None for a numeric flow).
      unseen: per categorical column, the cells holding a label outside its levels.
      missing_numeric: bool `[N]`, rows with a missing numeric cell (not scored).
      marginalised: bool `[N]`, scored rows with a missing categorical cell (summed out).
      frame: the table as read (every column).
      dim: the model's event columns (numeric and categorical), for bits per dimension.
    """

    nll: np.ndarray
    categorical_nll: np.ndarray | None
    numeric_nll: np.ndarray | None
    unseen: dict[str, int]
    missing_numeric: np.ndarray
    marginalised: np.ndarray
    frame: pd.DataFrame
    dim: int

    @property
    def scored(self) -> np.ndarray:
        return ~self.missing_numeric

    def counts(self) -> dict[str, Any]:
        """Rows read and scored, unseen labels per column, rows left unscored (a missing
        numeric cell) and rows whose missing categorical cells were summed out."""
        return {"rows": int(len(self.nll)), "n": int(self.scored.sum()),
                "unseen_labels": dict(self.unseen),
                "missing_numeric_rows": int(self.missing_numeric.sum()),
                "marginalised_rows": int(self.marginalised.sum())}

    def summary(self) -> dict[str, Any]:
        """The mean NLL of the scored rows (nats, bits/dim), median, p99, max, the counts,
        and for a mixed model the mean of each part; None where no row was scored."""
        kept = self.nll[self.scored]
        stats: dict[str, Any] = dict.fromkeys(("nll", "bits_per_dim", "median", "p99", "max"))
        if len(kept):
            mean = float(kept.mean())
            stats = {"nll": mean, "bits_per_dim": mean / (self.dim * math.log(2.0)),
                     "median": float(np.median(kept)), "p99": float(np.quantile(kept, 0.99)),
                     "max": float(kept.max())}
        if self.categorical_nll is not None:
            for key in SCORE_COLUMNS[1:]:
                part = getattr(self, key)[self.scored]
                stats[key] = float(part.mean()) if len(part) else None
        return {**stats, **self.counts()}

    def per_row(self, with_columns: bool = False) -> pd.DataFrame:
        """One row per input row, in order: `nll` (and for a mixed model its two parts),
        after the input's own columns when `with_columns` (a score column whose name the
        input already uses gets a `_score` suffix)."""
        scores = {key: getattr(self, key) for key in SCORE_COLUMNS
                  if getattr(self, key) is not None}
        if not with_columns:
            return pd.DataFrame(scores)
        out = self.frame.copy()
        out.columns = [str(c) for c in out.columns]
        for key, values in scores.items():
            name = key
            while name in out.columns:
                name += "_score"
            out[name] = values
        return out


def score_frame(model: Any, layout: TableLayout | None, table: Any,
                source: str = "data") -> FrameScores:
    """Scores every row of `table` (a DataFrame, a 2-D array, or a CSV / Parquet / `.npy`
    file) under `model`, finding its columns through `layout`.

    Args:
      model: a `MixedTableModel`, or a numeric flow (any TFP distribution over `[D]`; a
        conditional one takes its context from the layout's context columns).
      layout: the model's `TableLayout` (`find_model(path).layout`); None for a numeric
        flow trained from arrays (every column an event, by position).
      table: the rows; columns found by the layout's names (a header) else its positions;
        other columns are allowed and kept.
      source: the table's name in messages (a path names itself).

    Raises:
      DataError: a column the model needs is absent, or a cell is not what its column holds.
      ConfigError: `layout` does not fit `model`.
    """
    layout = _checked_layout(model, layout)
    inputs = frame_inputs(table, layout, source)
    ok = ~inputs.numeric_missing
    nll = np.full(len(inputs.frame), np.nan)
    parts: list[np.ndarray] | None = None
    if is_mixed(model):
        parts = [np.full(len(nll), np.nan), np.full(len(nll), np.nan)]
        if ok.any():
            numeric = inputs.numeric[ok] if model.flow is not None else None
            mass, density = model.log_prob_parts(numeric, inputs.codes[ok])
            parts[0][ok], parts[1][ok] = -mass, -density
            nll[ok] = parts[0][ok] + parts[1][ok]
    elif ok.any():
        from tfp_realnvp.scoring import per_row_nll

        context = None if inputs.context is None else inputs.context[ok]
        nll[ok] = per_row_nll(model, inputs.numeric[ok], context=context,
                              how="the context columns of its training table")
    marginalised = inputs.categorical_missing & ok
    return FrameScores(nll, None if parts is None else parts[0],
                       None if parts is None else parts[1], inputs.unseen, ~ok,
                       marginalised, inputs.frame, len(layout.events))


def _checked_layout(model: Any, layout: TableLayout | None) -> TableLayout:
    """The layout to read a table for `model`, checked against the model's widths."""
    if is_mixed(model):
        if layout is None:
            raise ConfigError("A mixed-table model needs its TableLayout (the run's "
                              "config.json 'layout') to find its columns.")
        numeric_at, categorical_at = event_groups(layout)
        levels = tuple(len(layout.columns[i].levels) for i in categorical_at)
        if levels != tuple(model.categorical.levels) or len(numeric_at) != model.numeric_dim:
            raise ConfigError(
                f"The layout has {len(numeric_at)} numeric and {len(categorical_at)} "
                f"categorical event column(s) with levels {list(levels)}; the model has "
                f"{model.numeric_dim} numeric and levels {list(model.categorical.levels)}.")
        if layout.context:
            raise ConfigError("A mixed-table model with its own context columns is not "
                              "supported here yet; score it with model.log_prob.")
        return layout
    dim = int(model.event_shape[-1])
    layout = layout_or_default(layout, dim)
    numeric_at, categorical_at = event_groups(layout)
    if categorical_at or len(numeric_at) != dim:
        raise ConfigError(f"The layout has {len(numeric_at)} numeric and "
                          f"{len(categorical_at)} categorical event column(s); the flow "
                          f"models {dim} numeric column(s) (load a mixed run with "
                          "tfp_realnvp.mixed.load_mixed).")
    return layout


def sample_frame(model: Any, layout: TableLayout | None, num: int, seed: int = 0,
                 context: Any = None) -> pd.DataFrame:
    """`num` rows drawn from `model` as a DataFrame named by `layout` (event columns in
    table order; categories as their labels, numbers as float64).

    A mixed model's categories are drawn from `P(c | every cell a seen level)` (draws
    holding the unseen level, which has no label, are drawn again), then the numbers from
    the flow given them; a numeric flow's rows are `sample_flow(model, num, seed, context)`.

    Args:
      model: a `MixedTableModel` or a numeric flow.
      layout: the model's `TableLayout` (None: a flow trained from arrays; columns 0..D-1).
      num: rows, >= 1.
      seed: the same seed gives the same rows.
      context: a conditional numeric flow's context (`[num, C]` or `[1, C]`).
    """
    if num < 1:
        raise ConfigError(f"'num' must be >= 1; got {num}.")
    layout = _checked_layout(model, layout)
    from tfp_realnvp.sampling import sample_flow

    if not is_mixed(model):
        return samples_frame(layout, sample_flow(model, num, seed, context), None)
    codes = seen_codes(model.categorical, num, seed)
    numeric = None if model.flow is None else \
        sample_flow(model.flow, num, seed, context=model.context(codes))
    return samples_frame(layout, numeric, codes)


def seen_codes(categorical: Any, num: int, seed: int) -> np.ndarray:
    """`num` draws of `P(c)` with every cell a seen level (exact: draws holding an unseen
    level are rejected and drawn again from the same generator)."""
    rng = np.random.default_rng(seed)
    levels = np.asarray(categorical.levels)
    kept: list[np.ndarray] = []
    have = 0
    for _ in range(MAX_SAMPLE_ROUNDS):
        draw = categorical.sample(num - have, rng)
        draw = draw[(draw < levels).all(axis=1)]
        kept.append(draw)
        have += len(draw)
        if have == num:
            return np.concatenate(kept)
    raise DataError(f"sampling: {MAX_SAMPLE_ROUNDS} rounds drew only {have} of {num} rows "
                    "with seen categories; the model's mass is almost all on unseen levels.")


def save_frame(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Writes `frame` atomically: Parquet for `*.parquet`, else CSV with a header (NaN
    written as `nan`, numbers with 8 significant digits)."""
    path = Path(path)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    with atomic_write(path) as tmp:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, na_rep="nan", float_format="%.8g")


def load_table_model(found: Any) -> Any:
    """The model behind `find_model(...)`'s `found`: a `MixedTableModel` for a run holding
    `categorical.json`, else what `found.load()` gives (TensorFlow is imported)."""
    from tfp_realnvp.mixed.model import CATEGORICAL_FILE, load_mixed

    if found.kind == "run" and (Path(found.path) / CATEGORICAL_FILE).is_file():
        return load_mixed(found.path)
    return found.load()


def is_table_model(found: Any) -> bool:
    """True for a run or export of a mixed table (categorical.json, or categorical
    columns in its layout); no TensorFlow."""
    if (Path(found.path) / "categorical.json").is_file():
        return True
    layout = found.layout
    return layout is not None and bool(event_groups(layout)[1])
