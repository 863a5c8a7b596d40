"""`fit` and `resume` of a table streamed from its files: the first pass, the streaming
constraints (one flow, numeric columns), and the saved pass a resumed run reuses."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from tfp_realnvp import auto, firstpass
from tfp_realnvp.config import FlowConfig, TrainConfig
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.rundir import RunConfig, RunDir
from tfp_realnvp.tables.shards import open_shards
from tfp_realnvp.training.prepared_fit import apply_settings, fit_prepared
from tfp_realnvp.training.records import EpochMetrics, FitResult


def fit_stream(source: str | os.PathLike, run_dir: str | Path, options: dict[str, Any],
               data_info: dict[str, Any] | None, why: str,
               flow_config: FlowConfig | None = None, train_config: TrainConfig | None = None,
               strategy: tf.distribute.Strategy | None = None,
               on_epoch: Callable[[EpochMetrics], None] | None = None,
               settings: dict[str, Any] | None = None, tensorboard: bool = False,
               given: Sequence[str] | None = None) -> FitResult:
    """A new run of the table in `source`'s shards, streamed (`firstpass` module docstring):
    settings chosen from its shape, one first pass, then training from the files.

    A streamed table trains one flow (no ensemble, no blend: what `auto.choose` picks above
    500,000 rows anyway) of numeric columns; `options` are `fit`'s table options
    (`context_columns`, `ignore`; `categorical` is refused; a row with a blank, NaN or inf
    cell is dropped unless `missing="error"`)."""
    _refuse_multiworker(strategy)
    shards = open_shards(source)
    layout = firstpass.stream_layout(shards, options.get("context_columns"),
                                     options.get("ignore"), options.get("categorical"))
    dim, context_dim = len(layout.events), len(layout.context)
    chosen = auto.choose(max(firstpass.estimated_rows(shards), 10), dim,
                         conditional=context_dim > 0)
    settings = dict(settings or {})
    reasons = {k: v for k, v in chosen.reasons.items() if k not in settings}
    chosen_names = [name for name, config in (("flow", flow_config), ("train", train_config))
                    if config is None]
    flow_config, train_config = apply_settings(flow_config or chosen.flow,
                                               train_config or chosen.train, settings)
    flow_config = _one_flow(flow_config, settings, reasons)
    drop = options.get("missing", "drop") != "error" or bool(options.get("drop_nonfinite"))
    first = firstpass.first_pass(shards, layout, train_config.seed,
                                 train_config.validation_fraction, flow_config.whiten,
                                 train_config.dequantize, drop)
    record = first.record
    auto_record = {"rows": record["num_rows"], "dim": dim, "context_dim": context_dim,
                   "chosen": chosen_names,
                   "given": sorted(settings if given is None else given), "reasons": reasons}
    info = {**(data_info or {}), "source": str(source), "input": "stream",
            "input_reason": why, "num_rows": record["num_rows"],
            "dropped_rows": record["dropped"], "shards": len(shards.paths)}
    prepared = first.prepared(shards)
    return fit_prepared(prepared, run_dir, flow_config, train_config, auto_record, settings,
                        info, first.sample[:, :dim], context_dim, layout, strategy,
                        on_epoch, tensorboard, on_create=first.save)


def resumed_data(run: RunDir, stored: RunConfig, source: str | os.PathLike | None):
    """(prepared data, sample rows) of a streamed run for `resume`: its saved first pass
    (no second pass over the files: the same statistics and validation rows), reading
    the shards in `source` (default: the recorded source), checked to be the run's own."""
    first = firstpass.FirstPass.load(run.path)
    shards = open_shards(source if source is not None else stored.data["source"])
    firstpass.check_same_shards(first.record, shards, run.path)
    return first.prepared(shards), first.sample[:, :first.record["event_dim"]]


def _one_flow(flow_config: FlowConfig, settings: dict[str, Any],
              reasons: dict[str, str]) -> FlowConfig:
    """The flow config with one member and no blend; ConfigError when the user asked for
    an ensemble or a blend."""
    for name, single in (("ensemble_size", 1), ("blend", False)):
        if getattr(flow_config, name) == single:
            continue
        if name in settings:
            raise ConfigError(f"{name}={settings[name]!r}: a streamed table trains one flow; "
                              f"leave {name} out, or train in memory (--stream never).")
        flow_config = flow_config.replace(**{name: single})
        reasons[name] = "a streamed table trains one flow (no ensemble or blend)"
    return flow_config


def _refuse_multiworker(strategy: tf.distribute.Strategy | None) -> None:
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise ConfigError("A streamed table cannot be trained under --strategy multiworker "
                          "yet (each worker would read every shard); use --strategy default "
                          "or mirrored, or --stream never.")
