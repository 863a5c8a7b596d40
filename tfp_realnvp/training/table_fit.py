"""`fit` of a table (a file or a DataFrame): kinds and blanks first, then a flow, a mixed
run, or the categories' mass alone.

```none
numeric columns only      the flow p(x) (or p(x | context)): a run as before
numeric + categorical     log p(row) = log P(c) + log p(x | one_hot(c) [, context])
                          the conditional flow's run + categorical.json (`MixedTableModel`)
categorical only          P(c): config.json (layout, data info; no flow) + categorical.json
```
The categorical model is fitted on every kept row (its strength by K-fold held-out mass);
the flow holds out its own validation rows as for any table.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfp_realnvp import tables
from tfp_realnvp.mixed.categorical import CategoricalModel
from tfp_realnvp.mixed.model import MixedTableModel
from tfp_realnvp.rundir import RunConfig, RunDir
from tfp_realnvp.training.records import FitResult, software_versions

TABLE_OPTIONS = ("context_columns", "categorical", "numeric", "ignore", "missing",
                 "drop_nonfinite")


def is_table(data: Any, context: Any) -> bool:
    """Whether `fit` reads `data` as a table (its kinds found): a path, a DataFrame or
    `TableRows`, given without a separate context."""
    return context is None and isinstance(data, (str, os.PathLike, pd.DataFrame,
                                                 tables.TableRows))


def read_table(data: Any, options: dict[str, Any]) -> tables.TableRows:
    """The table's modelled rows (`tables.read_training_frame`) unless already read."""
    if isinstance(data, tables.TableRows):
        return data
    given = {k: v for k, v in options.items() if v is not None}
    return tables.read_training_frame(data, **given)


def table_info(table: tables.TableRows, data: Any,
               data_info: dict[str, Any] | None) -> dict[str, Any]:
    """config.json's data info: the source, rows kept and dropped, ignored columns."""
    info = table.info()
    if not isinstance(data, (pd.DataFrame, tables.TableRows)):
        info["source"] = str(data)
    if table.layout.context:
        names = table.layout.names
        info["context_columns"] = [names[i] if names else i for i in table.layout.context]
    return {**info, **(data_info or {})}


def fit_table(data: Any, run_dir: str | Path, fit_arrays: Callable[..., FitResult],
              options: dict[str, Any], data_info: dict[str, Any] | None, seed: int,
              **kwargs: Any) -> FitResult:
    """Fits a table (module docstring) with `fit_arrays` (the package's array `fit`) for
    the flow; `kwargs` go to it. `FitResult.model` is the `MixedTableModel` of a table
    with categorical columns."""
    table = read_table(data, options)
    info = table_info(table, data, data_info)
    if not table.codes.shape[1]:
        return fit_arrays(table.numeric, run_dir, context=table.context,
                          layout=table.layout, data_info=info, **kwargs)
    vocabularies = table.vocabularies
    categorical = CategoricalModel.fit(table.codes, [v.size for v in vocabularies], seed=seed)
    mass_only = MixedTableModel(categorical, None, vocabularies)
    if not table.numeric.shape[1]:
        return _fit_categorical(mass_only, table, run_dir, info)
    context = mass_only.context(table.codes)
    if table.context is not None:
        context = np.concatenate([context, table.context], axis=1)
    result = fit_arrays(table.numeric, run_dir, context=context, layout=table.layout,
                        data_info=info,
                        on_create=lambda path: mass_only.save_categorical(path, numeric=True),
                        **kwargs)
    metrics = result.metrics
    if result.chief:
        metrics = RunDir(result.run_dir).update_metrics(categorical_metrics(categorical))
    return dataclasses.replace(result, metrics=metrics,
                               model=MixedTableModel(categorical, result.flow, vocabularies))


def categorical_metrics(categorical: CategoricalModel) -> dict[str, Any]:
    """What metrics.json records of the categorical model: its strength and held-out mass
    (nats per row, K-fold; None when too few rows to fold)."""
    score = categorical.scores.get(categorical.strength)
    return {"categorical_strength": categorical.strength,
            "categorical_cv_nll": None if score is None else
            -float(score) / categorical.num_rows}


def _fit_categorical(model: MixedTableModel, table: tables.TableRows, run_dir: str | Path,
                     info: dict[str, Any]) -> FitResult:
    """An all-categorical table's run: config.json (no flow), categorical.json, metrics."""
    run = RunDir(run_dir)
    run.create()
    run.write_config(RunConfig(None, None, info, {}, table.layout))
    model.save_categorical(run.path)
    metrics = {"status": "finished", "model": "categorical",
               **categorical_metrics(model.categorical), "versions": software_versions()}
    run.write_metrics(metrics)
    return FitResult(None, run.path, metrics, model=model)


def resume_inputs(run: RunDir, stored: RunConfig, data: Any,
                  drop_nonfinite: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(numbers, flow context) of a table run's own table (a path or a DataFrame), laid out
    by the run's recorded layout, for `resume`: the context of a mixed run is the one-hot of
    its categories (categorical.json's model) then its context columns."""
    from tfp_realnvp.errors import DataError
    from tfp_realnvp.mixed.model import CATEGORICAL_FILE, load_categorical

    if stored.flow is None:
        raise DataError(f"{run.path} is an all-categorical table's run: it has no flow to "
                        "train further; fit it again.")
    if stored.layout is None:
        raise DataError(f"{run.path} records no table layout; resume it with its arrays.")
    frame = data if isinstance(data, pd.DataFrame) else tables.read_frame(data)
    table = tables.table_rows(frame, stored.layout, str(data) if isinstance(
        data, (str, os.PathLike)) else "data", drop_nonfinite=drop_nonfinite)
    context = table.context
    if table.codes.shape[1]:
        if not (run.path / CATEGORICAL_FILE).is_file():
            raise DataError(f"{run.path}: no {CATEGORICAL_FILE}; the run was stopped before "
                            "its categorical model was written. Fit it again.")
        hot = MixedTableModel(load_categorical(run.path), None).context(table.codes)
        context = hot if context is None else np.concatenate([hot, context], axis=1)
    return table.numeric, context
