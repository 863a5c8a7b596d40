"""Distillation: one student flow trained on rows drawn from an ensemble, early-stopped on
real rows, so a model serves at the price of one flow (`distill`).

```none
teacher     p_E(x) = (1/M) sum_m p_m(x)            (a trained FlowEnsemble)
draws       x_1..x_N ~ p_E                          (stateless, seeded)
student     q = argmin_q  -(1/N) sum_i log q(x_i)   (= KL(p_E || q) + const as N grows)
stopping    the epoch of best mean -log q(v) over the real rows v
```
The student keeps a member's architecture (`ensemble_size=1`); its data map is the draws'
Gaussian. Drawing costs one pass of every member per row for affine and spline couplings,
but `event_dim` sequential passes per layer for an autoregressive flow in its density
direction: distil those only if that is paid for.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import auto, base_fit
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.config import FlowConfig, TrainConfig
from tfp_realnvp.rundir import STUDENT_DIR, RunConfig, RunDir
from tfp_realnvp.sampling import stateless_seed
from tfp_realnvp.scoring import per_row_nll
from tfp_realnvp.tables.layout import TableLayout
from tfp_realnvp.training.distribute import make_strategy
from tfp_realnvp.training.loop import train
from tfp_realnvp.training.records import FitResult
from tfp_realnvp.training.trainer import Trainer

tfd = tfp.distributions

DRAW_CHUNK = 5000  # rows drawn per call (bounds the stacked flow's [chunk, M, D] memory)
MIN_DRAWS, MAX_DRAWS = 20000, 200000  # the student trains on max(MIN, min(rows, MAX)) draws


def draw(flow: tfd.Distribution, num_rows: int, seed: int) -> np.ndarray:
    """`num_rows` float32 rows from `flow`, drawn `DRAW_CHUNK` at a time, each chunk with
    its own stateless seed `[chunk index, seed]`."""
    parts = [flow.sample(min(DRAW_CHUNK, num_rows - start),
                         seed=stateless_seed(seed, batch=start // DRAW_CHUNK)).numpy()
             for start in range(0, num_rows, DRAW_CHUNK)]
    return np.concatenate(parts).astype(np.float32)


def student_configs(teacher: FlowConfig, num_draws: int,
                    time_budget: float | None) -> tuple[FlowConfig, TrainConfig]:
    """A member's architecture as one flow, trained as `auto` trains a table of
    `num_draws` rows (its batch size, learning rate, patience and steps per epoch). The
    student is not blended: a blended teacher's mixture is already in its draws."""
    chosen = auto.choose(num_draws, teacher.event_dim, time_budget=time_budget,
                         conditional=True)  # the affine branch's training rules
    return teacher.replace(ensemble_size=1, blend=False, blend_components=0), chosen.train


def distill(teacher: tfd.Distribution, teacher_config: FlowConfig, real_rows: np.ndarray,
            run_dir: str | Path, num_draws: int = 20000, seed: int = 0,
            time_budget: float | None = None,
            strategy: tf.distribute.Strategy | None = None,
            train_changes: dict[str, Any] | None = None,
            layout: TableLayout | None = None) -> FitResult:
    """Trains a student flow on `num_draws` rows of `teacher` into the new run `run_dir`
    and returns it (its metrics as `fit`'s).

    Args:
      teacher: the trained (ensemble) flow, unconditional.
      teacher_config: its FlowConfig.
      real_rows: `[N, D]` real rows, the student's validation set (it never trains on them).
      run_dir: a new or empty folder: a complete run directory (`load`, `export` take it).
      num_draws: rows drawn from the teacher to train on.
      seed: seeds the draws, the student's weights and its batches.
      time_budget: seconds of training (default: auto's).
      strategy: a `tf.distribute` strategy (default: the current one).
      train_changes: TrainConfig fields that override the chosen ones (e.g. `epochs`).
      layout: the training table's layout, kept in the student's run.
    """
    if teacher_config.context_dim:
        raise ValueError("distill takes an unconditional teacher; a conditional one needs "
                         "contexts to draw with.")
    rows = draw(teacher, num_draws, seed)
    flow_config, train_config = student_configs(teacher_config, num_draws, time_budget)
    train_config = train_config.replace(seed=seed, **(train_changes or {}))
    prepared = prepare_lib.PreparedData(
        members=(prepare_lib.MemberData(rows, np.asarray(real_rows, np.float32)),),
        data_map=prepare_lib.affine_stats(rows, flow_config.whiten),
        hashes=prepare_lib.content_hashes(rows, None))
    base = base_fit.choose_base(prepared, teacher_config.base_components, seed)
    flow_config = flow_config.replace(base_components=base.components, **prepared.data_map)
    strategy = strategy or make_strategy()
    run = RunDir(Path(run_dir))
    run.create()
    record: dict[str, Any] = {"source": "distilled", "num_train": len(rows),
                              "num_validation": len(real_rows), **prepared.hashes}
    run.write_config(RunConfig(flow_config, train_config, record,
                               {"distilled_from": teacher_config.ensemble_size}, layout))
    trainer = Trainer(flow_config, train_config, prepared, strategy)
    trainer.set_fold_maps()
    trainer.set_base_mixtures(base.mixtures)
    return train(trainer, run, None, history=[])


def distills(flow_config: FlowConfig, train_config: TrainConfig) -> bool:
    """Whether a run distils: asked for (`TrainConfig.distill`), an ensemble, unconditional."""
    return train_config.distill and flow_config.ensemble_size > 1 and not flow_config.context_dim


def distil_run(run: RunDir, teacher: tfd.Distribution, flow_config: FlowConfig,
               train_config: TrainConfig, rows: np.ndarray, layout: TableLayout | None,
               strategy: tf.distribute.Strategy) -> dict[str, Any]:
    """Distils a finished ensemble run into `RUN/student` (replacing an older student; at
    most the run's epochs and time budget) and
    records it in the run's metrics as `distilled` (returned): members, draws, the
    student's and the teacher's mean NLL on the real rows, epochs and seconds."""
    target = run.path / STUDENT_DIR
    if target.exists():
        shutil.rmtree(target)
    tick = time.perf_counter()
    num_draws = max(MIN_DRAWS, min(len(rows), MAX_DRAWS))
    epochs = min(train_config.epochs, student_configs(flow_config, num_draws, None)[1].epochs)
    result = distill(teacher, flow_config, rows, target, num_draws, train_config.seed,
                     train_config.time_budget, strategy, {"epochs": epochs}, layout)
    teacher_nll = float(np.mean(per_row_nll(teacher, rows)))
    record = {"student": STUDENT_DIR, "members": flow_config.ensemble_size,
              "num_draws": num_draws, "real_rows": len(rows),
              "student_nll_real_rows": result.metrics["best_validation_nll"],
              "ensemble_nll_real_rows": teacher_nll,
              "epochs_run": result.metrics["epochs_run"],
              "wall_time_s": time.perf_counter() - tick,
              "note": "load and export serve the student; export --ensemble the ensemble. "
                      "The real rows are the ensemble's training rows: its NLL there is "
                      "optimistic, the student never trained on them."}
    run.update_metrics({"distilled": record})
    return record


def after_training(run: RunDir, result: FitResult, flow_config: FlowConfig,
                   train_config: TrainConfig, rows: np.ndarray, layout: TableLayout | None,
                   strategy: tf.distribute.Strategy) -> FitResult:
    """What `fit` and `resume` do once the run's flow is trained: distil it when the run
    distils (`distills`), else remove a student left by an earlier distillation (it no
    longer matches the ensemble). The result's metrics are the run's, `distilled` added."""
    if not distills(flow_config, train_config):
        if (run.path / STUDENT_DIR).exists():
            shutil.rmtree(run.path / STUDENT_DIR)
            metrics = run.read_metrics()
            metrics.pop("distilled", None)
            run.write_metrics(metrics)
        return result
    distil_run(run, result.flow, flow_config, train_config, rows, layout, strategy)
    return dataclasses.replace(result, metrics=run.read_metrics())
