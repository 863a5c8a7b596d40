"""The public entry points: `fit` starts a run, `resume` continues one from its checkpoint."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from tfp_realnvp import auto, blend_fit, firstpass, tables
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.config import FlowConfig, TrainConfig, settings
from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.rundir import IMAGE_FILE, RunConfig, RunDir
from tfp_realnvp.tables import shards
from tfp_realnvp.training import stream_fit, table_fit
from tfp_realnvp.training.distill import after_training
from tfp_realnvp.training.distribute import make_strategy
from tfp_realnvp.training.loop import train
from tfp_realnvp.training.prepared_fit import apply_settings, blend_mixtures, fit_prepared
from tfp_realnvp.training.records import EpochMetrics, FitResult
from tfp_realnvp.training.trainer import Trainer


def fit(
    data: np.ndarray | pd.DataFrame | str | os.PathLike | tables.TableRows,
    run_dir: str | Path,
    flow_config: FlowConfig | None = None,
    train_config: TrainConfig | None = None,
    data_info: dict[str, Any] | None = None,
    strategy: tf.distribute.Strategy | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    settings: dict[str, Any] | None = None,
    tensorboard: bool = False,
    context: np.ndarray | None = None,
    layout: tables.TableLayout | None = None,
    *,
    context_columns: str | Sequence[str | int] | None = None,
    categorical: str | Sequence[str | int] | None = None,
    numeric: str | Sequence[str | int] | None = None,
    ignore: str | Sequence[str | int] | None = None,
    missing: str = "drop",
    drop_nonfinite: bool = False,
    given: Sequence[str] | None = None,
    stream: str = "auto",
) -> FitResult:
    """Trains a new flow on the rows of `data` and leaves a complete run directory.

    A table (a file's path, a DataFrame, or `tables.TableRows`) given without `context`
    has its column kinds found (`tables.infer_layout`: continuous, grid, categorical,
    ignored; `categorical`, `numeric`, `ignore` override them, `context_columns` picks the
    context) and its rows with a blank cell left out (`missing="drop"`, counted in
    config.json) or refused (`missing="error"`). With categorical columns the run is a
    mixed run: `log p(row) = log P(c) + log p(x | one_hot(c))`, the flow conditional on
    the one-hot categories (then the context columns), `categorical.json` beside it, and
    `FitResult.model` the `MixedTableModel` (see `training/table_fit.py`).

    With `context` (`[N, C]`, row i the context of data row i) the flow models
    `p(x | c)`: the context travels with its row through the split, the folds and every
    batch, and the flow standardises it itself (`context_shift`/`context_scale` in the
    config: the training context's column means and standard deviations), so `log_prob`,
    `sample`, the export's signatures and `load` all take raw context values.

    The flow config's `event_dim` and data map (the training rows' Gaussian) are set from
    the data. Training stops after `epochs`, after `time_budget` seconds, or when the
    validation NLL has not improved for `patience` epochs; the best weights are kept in
    `run_dir/model`. A config left out is chosen from the table's shape by `auto.choose`
    (recorded in config.json with its reasons); `on_epoch` sees the epochs planned in
    `EpochMetrics.planned_epochs`. An unconditional ensemble whose TrainConfig says
    `distill` then trains one student flow on its draws into `run_dir/student`, which
    `load` and `export` serve (`training/distill.py`); `FitResult.flow` is the ensemble.

    Args:
      data: `[N, D]` rows (validated here: finite, at least 2 columns).
      run_dir: a new or empty folder for the run (RunExistsError otherwise).
      flow_config: the architecture (default: `auto.choose`); data fields are filled in.
      train_config: the optimisation settings (default: `auto.choose`).
      data_info: where the data came from, recorded in config.json (used by resume).
      strategy: a `tf.distribute` strategy (default: the current one).
      on_epoch: called after every epoch with its `EpochMetrics`.
      settings: `FlowConfig`/`TrainConfig` field values that override the configs (given
        or chosen), e.g. the options a user typed.
      tensorboard: also write TensorBoard summaries into `run_dir/tensorboard` (see
        `summaries.py`).
      context: `[N, C]` raw context values aligned with `data`'s rows (validated here:
        finite, 2-D, one row per data row), or None for an unconditional flow.
      layout: where the source table's columns went (`tables.TableLayout`), saved in the
        run and its exports; a DataFrame's column names give it when left out.
      context_columns, categorical, numeric, ignore: a table's columns (header names or
        0-based positions; "a,b" or a list) that are the context, categorical, numeric,
        left out.
      missing: "drop" (default) or "error": what a table's blank cells do.
      drop_nonfinite: leave out a table's rows holding NaN or inf instead of refusing them.
      given: the setting names config.json records as `auto.given`, the ones the user
        gave (default: the keys of `settings`); the CLI passes these when `settings` also
        holds values derived from them (`--seed` sets `seed` and `mixing_seed`).
      stream: for a path (one file, a folder or a glob of Parquet/CSV shards): "auto"
        streams a table above `firstpass.STREAM_BYTES` from its files (`training/
        stream_fit.py`: one flow, numeric columns), "always"/"never" force it; recorded
        in config.json's data as `input` and `input_reason`.
    """
    options = {"context_columns": context_columns, "categorical": categorical,
               "numeric": numeric, "ignore": ignore, "missing": missing,
               "drop_nonfinite": drop_nonfinite}
    if isinstance(data, (str, os.PathLike)) and context is None and layout is None:
        streamed, why = firstpass.choose_input(data, stream)
        if streamed:
            return stream_fit.fit_stream(
                data, run_dir, options, data_info, why, flow_config, train_config, strategy,
                on_epoch, settings, tensorboard, given)
        data_info = {"source": str(data), **(data_info or {}), "input": "memory",
                     "input_reason": why}
        if shards.is_shard_source(data):
            data = shards.read_all(data)
    if table_fit.is_table(data, context) and layout is None:
        seed = (settings or {}).get("seed", train_config.seed if train_config else 0)
        return table_fit.fit_table(
            data, run_dir, functools.partial(_fit_arrays, given=given), options, data_info,
            seed, flow_config=flow_config,
            train_config=train_config, strategy=strategy, on_epoch=on_epoch,
            settings=settings, tensorboard=tensorboard)
    return _fit_arrays(data, run_dir, flow_config, train_config, data_info, strategy,
                       on_epoch, settings, tensorboard, context, layout, given=given)


def _fit_arrays(
    data: np.ndarray | pd.DataFrame,
    run_dir: str | Path,
    flow_config: FlowConfig | None = None,
    train_config: TrainConfig | None = None,
    data_info: dict[str, Any] | None = None,
    strategy: tf.distribute.Strategy | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    settings: dict[str, Any] | None = None,
    tensorboard: bool = False,
    context: np.ndarray | None = None,
    layout: tables.TableLayout | None = None,
    on_create: Callable[[Path], Any] | None = None,
    given: Sequence[str] | None = None,
) -> FitResult:
    """`fit` of arrays (or a DataFrame with its context): the flow alone; `on_create`
    writes extra files into the new run directory once config.json is there; `given`
    as `fit`'s."""
    data, context, layout = tables.fit_inputs(data, context, layout)
    data = tables.validate_array(data)
    prepare_lib.check_trainable(data, (data_info or {}).get("source", "data"))
    if context is not None:
        context = tables.validate_context(context, num_rows=len(data))
    chosen = auto.choose(*data.shape, conditional=context is not None)
    settings = dict(settings or {})
    auto_record = {"rows": data.shape[0], "dim": data.shape[1],
                   "context_dim": 0 if context is None else context.shape[1],
                   "chosen": [name for name, config in (("flow", flow_config),
                                                        ("train", train_config))
                              if config is None],
                   "given": sorted(settings if given is None else given),
                   # the reasons of the values that run: none for a setting overridden
                   "reasons": {k: v for k, v in chosen.reasons.items() if k not in settings}}
    flow_config, train_config = apply_settings(flow_config or chosen.flow,
                                                 train_config or chosen.train, settings)
    context_dim = _context_dim(flow_config, context)
    prepared = prepare_lib.prepare(data, context, flow_config, train_config)
    return fit_prepared(prepared, run_dir, flow_config, train_config, auto_record, settings,
                        data_info, data, context_dim, layout, strategy, on_epoch,
                        tensorboard, on_create)


def _context_dim(flow_config: FlowConfig, context: np.ndarray | None) -> int:
    """The context width `fit` trains with; ConfigError when a config asks for another."""
    width = 0 if context is None else context.shape[1]
    if flow_config.context_dim and flow_config.context_dim != width:
        got = "no context" if context is None else f"a context of {width} column(s)"
        raise ConfigError(
            f"The flow config has context_dim={flow_config.context_dim} but fit got {got}; "
            "pass context= with that many columns (one row per data row), or leave "
            "context_dim unset.")
    return width


def resume(
    run_dir: str | Path,
    data: np.ndarray | pd.DataFrame | str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    tensorboard: bool | None = None,
    context: np.ndarray | None = None,
    **changes: Any,
) -> FitResult:
    """Continues a run from its latest checkpoint, on the same data.

    `changes` may set the `TrainConfig` fields marked resumable (`epochs`, `patience`,
    `checkpoint_every`); they are recorded in the run's config.json. A change of any other
    `FlowConfig` or `TrainConfig` field is refused with ConfigError (repeating the value the
    run already has is fine): the architecture and the optimisation of a run are fixed.

    Args:
      run_dir: a run directory written by `fit` (an image run: see `images.train`).
      data: the rows the run was trained on (the same split is taken again); for an image
        run its images (`[N, H, W, C]` levels, or the path `fit --data` read); for a run of
        a table, its table (a path or a DataFrame), read by the run's layout (a mixed run's
        categories become the flow's one-hot context again).
      strategy: a `tf.distribute` strategy (default: the current one).
      on_epoch: called after every epoch with its `EpochMetrics`.
      tensorboard: write TensorBoard summaries (steps continue the run's epochs); None:
        only if the run already has them.
      context: a conditional run's context, the rows it was trained with (checked).
      **changes: config fields to set; only resumable ones may differ from the run's.
    """
    run = RunDir(run_dir)
    if (run.path / IMAGE_FILE).is_file():
        return _resume_images(run, data, strategy, on_epoch, tensorboard, context, changes)
    stored = run.read_config()
    train_config = stored.train.replace(**_resumable_changes(stored, changes))
    if stored.data.get("input") == "stream":
        prepared, data = stream_fit.resumed_data(run, stored, data)
        _record_changes(run, stored, train_config)
        return _continue(run, stored, train_config, prepared, data, strategy, on_epoch,
                         tensorboard)
    if table_fit.is_table(data, context):
        data, context = table_fit.resume_inputs(run, stored, data)
    _record_changes(run, stored, train_config)
    data = tables.validate_array(data, expected_width=stored.flow.event_dim)
    context = _resume_context(run, stored, context, len(data))
    hashes = prepare_lib.content_hashes(data, context)
    for key, what in (("sha256", "data"), ("context_sha256", "context")):
        _check_hash(run, stored, hashes.get(key), key, what)
    # The run's own configs: the same splits; its data map is the stored one.
    prepared = prepare_lib.prepare(data, context, stored.flow, train_config, hashes)
    return _continue(run, stored, train_config, prepared, data, strategy, on_epoch,
                     tensorboard)


def _record_changes(run: RunDir, stored: RunConfig, train_config: TrainConfig) -> None:
    """Writes a resumed run's changed settings into its config.json."""
    if train_config != stored.train:
        run.write_config(dataclasses.replace(stored, train=train_config))


def _continue(run: RunDir, stored: RunConfig, train_config: TrainConfig,
              prepared: prepare_lib.PreparedData, data: np.ndarray,
              strategy: tf.distribute.Strategy | None,
              on_epoch: Callable[[EpochMetrics], None] | None,
              tensorboard: bool | None) -> FitResult:
    """Trains a run further from its latest checkpoint on `prepared` (`data`: its events,
    which a distilling run draws against)."""
    trainer = Trainer(stored.flow, train_config, prepared, strategy or make_strategy())
    if stored.flow.blend_components:
        trainer.set_blend_mixtures(blend_mixtures(
            prepared, stored.flow, train_config,
            max(1, stored.flow.blend_components // blend_fit.BAGS)))
    manager = trainer.checkpoint_manager(run)
    history: list[dict[str, Any]] = []
    if manager.latest_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_consumed()
        history = run.read_metrics().get("history", [])[: int(trainer.state.epoch.numpy())]
    result = train(trainer, run, on_epoch, history, tensorboard)
    return after_training(run, result, stored.flow, train_config, data, stored.layout,
                          trainer.strategy)


def _resume_images(run: RunDir, data: Any, strategy: tf.distribute.Strategy | None,
                   on_epoch: Callable[[EpochMetrics], None] | None, tensorboard: bool | None,
                   context: np.ndarray | None, changes: dict[str, Any]) -> FitResult:
    """`resume` of an image run (`images.train.resume_images`) on its images: an array of
    levels `[N, H, W, C]` or the source `fit --data` read (a .npy, a folder, `digits-images`)."""
    from tfp_realnvp.images import data as image_data
    from tfp_realnvp.images.runs import read_image_config
    from tfp_realnvp.images.train import resume_images

    if context is not None or tensorboard:
        raise ConfigError(f"{run.path} is an image run: it takes no context and writes no "
                          "TensorBoard summaries; resume it with its images alone.")
    if isinstance(data, str | os.PathLike):
        data = image_data.read_images(data, read_image_config(run.path).levels)[0]
    return resume_images(run.path, np.asarray(data, np.float32), on_epoch=on_epoch,
                         strategy=strategy, **changes)


def _resume_context(run: RunDir, stored: RunConfig, context: np.ndarray | None,
                    num_rows: int) -> np.ndarray | None:
    """The validated context of a resumed run; DataError when a conditional run gets none
    or an unconditional one gets one."""
    width = stored.flow.context_dim
    if not width:
        if context is not None:
            raise DataError(f"{run.path} is an unconditional run; resume it without a context.")
        return None
    if context is None:
        raise DataError(f"{run.path} is conditional ({width} context column(s)); resume it with "
                        "the context it was trained with (context=).")
    return tables.validate_context(context, num_rows=num_rows, width=width)


def _check_hash(run: RunDir, stored: RunConfig, got: str | None, key: str, what: str) -> None:
    """DataError when the run recorded a hash under `key` and `got` differs from it."""
    recorded = stored.data.get(key)
    if recorded is not None and got is not None and got != recorded:
        raise DataError(
            f"{run.path} was trained on {stored.data.get('source', 'other data')} "
            f"({what} sha256 {recorded[:12]}...); the {what} given differs (sha256 "
            f"{got[:12]}...). Resume with the run's own {what}.")


def _resumable_changes(stored: RunConfig, changes: dict[str, Any]) -> dict[str, Any]:
    """The `TrainConfig` changes a resumed run may take; ConfigError names any other."""
    resumable = {field.name for field, rule in settings(TrainConfig) if rule.resumable}
    current = {**stored.flow.to_dict(), **stored.train.to_dict()}
    unknown = sorted(set(changes) - set(current))
    if unknown:
        raise ConfigError(f"Unknown settings {unknown}; known: {sorted(current)}.")
    fixed = sorted(k for k, v in changes.items() if k not in resumable and v != current[k])
    if fixed:
        raise ConfigError(
            f"A resumed run keeps its architecture and optimisation; cannot change {fixed} "
            f"(the run has {', '.join(f'{k}={current[k]!r}' for k in fixed)}). Only "
            f"{sorted(resumable)} may change; start a new run for the rest.")
    return {k: v for k, v in changes.items() if k in resumable}
