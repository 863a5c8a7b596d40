"""A new run from prepared data: base and blend chosen, configs completed and written, the
flow trained; shared by `fit` of arrays and `fit` of a streamed table."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp import base_fit, blend_fit
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.config import FlowConfig, TrainConfig
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.rundir import RunConfig, RunDir
from tfp_realnvp.tables import TableLayout
from tfp_realnvp.training.distill import after_training
from tfp_realnvp.training.distribute import is_chief, make_strategy, worker_run_dir
from tfp_realnvp.training.loop import train
from tfp_realnvp.training.records import EpochMetrics, FitResult
from tfp_realnvp.training.trainer import Trainer


def fit_prepared(prepared: prepare_lib.PreparedData, run_dir: str | Path,
                 flow_config: FlowConfig, train_config: TrainConfig,
                 auto_record: dict[str, Any], settings: dict[str, Any],
                 data_info: dict[str, Any] | None, rows: np.ndarray, context_dim: int,
                 layout: TableLayout | None = None,
                 strategy: tf.distribute.Strategy | None = None,
                 on_epoch: Callable[[EpochMetrics], None] | None = None,
                 tensorboard: bool = False,
                 on_create: Callable[[Path], Any] | None = None) -> FitResult:
    """Chooses the base (and blend), fills the flow config's data fields from `prepared`,
    writes config.json (then `on_create(run_dir)`) and trains. `rows` are the events
    distillation draws against (a streamed table: its sample)."""
    base = base_fit.choose_base(prepared, flow_config.base_components, train_config.seed,
                                prepared.dequantize_steps)
    if flow_config.base_components == 0:
        auto_record["reasons"]["base_components"] = base.reason()
    blend = blend_mixtures(prepared, flow_config, train_config)
    if blend is not None and "blend" not in settings:
        auto_record["reasons"]["blend"] = blend.reason()
    flow_config = flow_config.replace(event_dim=rows.shape[1], context_dim=context_dim,
                                      base_components=base.components,
                                      blend_components=0 if blend is None else blend.components,
                                      **prepared.data_map, **prepared.context_map)
    train_config = train_config.replace(dequantize_steps=prepared.dequantize_steps)
    strategy = strategy or make_strategy()
    with worker_run_dir(run_dir, strategy) as own_dir:
        run = RunDir(own_dir)
        run.create()
        run.write_config(RunConfig(flow_config, train_config, {
            **(data_info or {}), **prepared.hashes,
            "num_train": prepared.num_train,
            "num_validation": prepared.num_validation}, auto_record, layout))
        if on_create is not None:
            on_create(own_dir)
        trainer = Trainer(flow_config, train_config, prepared, strategy)
        trainer.set_fold_maps()
        trainer.set_base_mixtures(base.mixtures)
        trainer.set_blend_mixtures(blend)
        result = train(trainer, run, on_epoch, history=[], tensorboard=tensorboard)
        result = after_training(run, result, flow_config, train_config, rows, layout,
                                strategy)
    return dataclasses.replace(result, run_dir=Path(run_dir), chief=is_chief(strategy))


def blend_mixtures(prepared: prepare_lib.PreparedData, flow_config: FlowConfig,
                   train_config: TrainConfig,
                   components: int | None = None) -> blend_fit.BlendMixtures | None:
    """The mixtures a blended flow (`FlowConfig.blend`) is blended with (None: no blend);
    `components` fixed for a resumed run, else chosen on held-out rows."""
    if not flow_config.blend or prepared.conditional:  # conditional: FlowConfig refuses it
        return None
    return blend_fit.choose_mixtures(prepared, train_config.seed, prepared.dequantize_steps,
                                     components)


def apply_settings(flow_config: FlowConfig, train_config: TrainConfig,
                   settings: dict[str, Any]) -> tuple[FlowConfig, TrainConfig]:
    """The configs with `settings` (field name -> value) applied; ConfigError for a name
    that is a field of neither."""
    flow_names = {f.name for f in dataclasses.fields(FlowConfig)}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - flow_names - train_names)
    if unknown:
        raise ConfigError(f"Unknown settings {unknown}; known: {sorted(flow_names | train_names)}.")
    return (flow_config.replace(**{k: v for k, v in settings.items() if k in flow_names}),
            train_config.replace(**{k: v for k, v in settings.items() if k in train_names}))
