"""Training: NLL minimisation in `tf.function` under a `tf.distribute` strategy.

A run directory holds everything about one training run:

```none
RUN_DIR/config.json     {"flow": FlowConfig, "train": TrainConfig, "data": {...}}
RUN_DIR/checkpoints/    training state (weights, optimizer, best weights, epoch) for resume
RUN_DIR/model/          the best weights (lowest validation NLL), what `load_run` restores
RUN_DIR/metrics.json    per-epoch train/validation NLL, best epoch, wall time, ...
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfp_realnvp import data as data_lib
from tfp_realnvp.flow import FlowConfig, build_flow

tfd = tfp.distributions

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
MODEL_DIR = "model"
MODEL_PREFIX = "weights"
SCHEDULES = ("cosine", "constant")
STRATEGIES = ("default", "mirrored")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults are tuned for two moons on a 2-core CPU."""

    epochs: int = 400
    batch_size: int = 256
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    weight_decay: float = 0.0
    clip_norm: float = 10.0
    validation_fraction: float = 0.1
    patience: int = 100
    seed: int = 0
    jit_compile: bool = False
    checkpoint_every: int = 25

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "'epochs' must be >= 1", self.epochs),
            (self.batch_size >= 1, "'batch_size' must be >= 1", self.batch_size),
            (self.learning_rate > 0, "'learning_rate' must be > 0", self.learning_rate),
            (self.schedule in SCHEDULES, f"'schedule' must be one of {SCHEDULES}",
             self.schedule),
            (self.weight_decay >= 0, "'weight_decay' must be >= 0", self.weight_decay),
            (self.clip_norm > 0, "'clip_norm' must be > 0", self.clip_norm),
            (0 < self.validation_fraction < 1, "'validation_fraction' must be in (0, 1)",
             self.validation_fraction),
            (self.patience >= 1, "'patience' must be >= 1", self.patience),
            (self.checkpoint_every >= 1, "'checkpoint_every' must be >= 1",
             self.checkpoint_every),
        ]
        for ok, message, value in checks:
            if not ok:
                raise ValueError(f"{message}; got {value!r}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return cls(**values)


@dataclasses.dataclass
class EpochMetrics:
    epoch: int
    train_nll: float
    validation_nll: float
    seconds: float


@dataclasses.dataclass
class FitResult:
    flow: tfd.TransformedDistribution
    run_dir: Path
    metrics: dict[str, Any]


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """`default`: the current (default) strategy; `mirrored`: MirroredStrategy over every
    visible device (on a CPU split into logical devices, one replica per device)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"'strategy' must be one of {STRATEGIES}; got {name!r}.")


def mean_nll(flow: tfd.TransformedDistribution, data: np.ndarray, batch_size: int = 65536) -> float:
    """Mean negative log-likelihood of `data` under `flow`, in nats (data units)."""
    total = 0.0
    for start in range(0, len(data), batch_size):
        chunk = tf.constant(data[start : start + batch_size])
        total += float(tf.reduce_sum(_negative_log_prob(flow, chunk)))
    return total / len(data)


def _negative_log_prob(flow: tfd.TransformedDistribution, x: tf.Tensor) -> tf.Tensor:
    return -flow.log_prob(x)


class _TrainingState(tf.Module):
    """Variables that make training resumable: epoch, best weights and their score."""

    def __init__(self, flow: tfd.TransformedDistribution) -> None:
        super().__init__(name="training_state")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self.best_validation_nll = tf.Variable(
            np.inf, dtype=tf.float32, trainable=False, name="best_validation_nll"
        )
        self.best_weights = [
            tf.Variable(v, trainable=False, name=f"best_{i}")
            for i, v in enumerate(flow.trainable_variables)
        ]


class Trainer:
    """Owns the flow, optimizer, compiled steps and checkpoints of one run."""

    def __init__(
        self,
        flow_config: FlowConfig,
        train_config: TrainConfig,
        num_train: int,
        strategy: tf.distribute.Strategy,
    ) -> None:
        self.flow_config = flow_config
        self.train_config = train_config
        self.strategy = strategy
        self.global_batch = min(train_config.batch_size, num_train)
        self.steps_per_epoch = max(1, num_train // self.global_batch)
        tf_keras.utils.set_random_seed(train_config.seed)
        with strategy.scope():
            self.flow = build_flow(flow_config)
            self.variables = list(self.flow.trainable_variables)
            self.optimizer = tf_keras.optimizers.AdamW(
                self._learning_rate(),
                weight_decay=train_config.weight_decay,
                global_clipnorm=train_config.clip_norm,
            )
            self.optimizer.build(self.variables)
            self.state = _TrainingState(self.flow)
        self.checkpoint = tf.train.Checkpoint(
            flow=self.flow, optimizer=self.optimizer, state=self.state
        )
        self._loss_and_grads = tf.function(
            self._loss_and_grads_fn, jit_compile=train_config.jit_compile
        )
        self.train_epoch = tf.function(self._train_epoch_fn)
        self.validation_nll = tf.function(self._validation_nll_fn)
        self.keep_best = tf.function(self._keep_best_fn)
        self.restore_best = tf.function(self._restore_best_fn)

    def _learning_rate(self):
        config = self.train_config
        if config.schedule == "constant":
            return config.learning_rate
        return tf_keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * self.steps_per_epoch, alpha=0.02
        )

    def _loss_and_grads_fn(self, batch: tf.Tensor):
        with tf.GradientTape() as tape:
            nll = _negative_log_prob(self.flow, batch)
            loss = tf.nn.compute_average_loss(nll, global_batch_size=self.global_batch)
        return loss, tape.gradient(loss, self.variables)

    def _replica_step(self, batch: tf.Tensor) -> tf.Tensor:
        loss, grads = self._loss_and_grads(batch)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return loss

    def _train_epoch_fn(self, iterator) -> tf.Tensor:
        """Runs one epoch of steps in-graph; returns the mean training NLL."""
        total = tf.constant(0.0)
        for _ in tf.range(self.steps_per_epoch):
            losses = self.strategy.run(self._replica_step, args=(next(iterator),))
            total += self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        return total / self.steps_per_epoch

    def _validation_nll_fn(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(_negative_log_prob(self.flow, x))

    def _keep_best_fn(self, epoch: tf.Tensor, nll: tf.Tensor) -> None:
        self.state.best_epoch.assign(epoch)
        self.state.best_validation_nll.assign(nll)
        for best, live in zip(self.state.best_weights, self.variables, strict=True):
            best.assign(live)

    def _restore_best_fn(self) -> None:
        for best, live in zip(self.state.best_weights, self.variables, strict=True):
            live.assign(best)

    def dataset_iterator(self, train: np.ndarray, epoch_offset: int):
        """Shuffled, repeated batches of the training rows, distributed over replicas."""
        dataset = (
            tf.data.Dataset.from_tensor_slices(train)
            .shuffle(len(train), seed=self.train_config.seed + epoch_offset,
                     reshuffle_each_iteration=True)
            .batch(self.global_batch, drop_remainder=True)
            .repeat()
            .prefetch(tf.data.AUTOTUNE)
        )
        return iter(self.strategy.experimental_distribute_dataset(dataset))


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Writes JSON atomically: a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _prepare_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise FileExistsError(f"{run_dir}: nothing to resume (no {CONFIG_FILE}).")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(
            f"{run_dir} already exists and is not empty; choose another output directory "
            "or resume that run."
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's config.json as a dict with `flow` and `train` parsed into dataclasses."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no {CONFIG_FILE}).")
    raw = json.loads(path.read_text())
    return {
        **raw,
        "flow": FlowConfig.from_dict(raw["flow"]),
        "train": TrainConfig.from_dict(raw["train"]),
    }


def save_model_weights(flow: tfd.TransformedDistribution, run_dir: Path) -> None:
    """Writes the flow's weights to RUN_DIR/model atomically (temp dir, then rename)."""
    final = run_dir / MODEL_DIR
    tmp = run_dir / f".{MODEL_DIR}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.train.Checkpoint(flow=flow).write(str(tmp / MODEL_PREFIX))
    if final.exists():
        old = run_dir / f".{MODEL_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


def load_run(run_dir: str | os.PathLike) -> tfd.TransformedDistribution:
    """Rebuilds a trained flow from a run directory (config + best weights)."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)["flow"]
    weights = run_dir / MODEL_DIR / MODEL_PREFIX
    if not Path(f"{weights}.index").is_file():
        raise FileNotFoundError(f"{run_dir}: no trained weights in {MODEL_DIR}/ (did fit finish?).")
    flow = build_flow(config)
    tf.train.Checkpoint(flow=flow).read(str(weights)).assert_existing_objects_matched()
    return flow


def fit(
    data: np.ndarray,
    run_dir: str | os.PathLike,
    flow_config: FlowConfig | None = None,
    train_config: TrainConfig | None = None,
    data_info: dict[str, Any] | None = None,
    strategy: tf.distribute.Strategy | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
) -> FitResult:
    """Trains a flow on the rows of `data` and leaves a complete run directory.

    The flow config's `event_dim` and standardisation statistics are set from the training
    split. Training stops after `epochs` or when the validation NLL has not improved for
    `patience` epochs; the best weights are kept. With `resume=True`, the configs stored in
    `run_dir` are used and training continues from its latest checkpoint.
    """
    run_dir = Path(run_dir)
    if resume:
        stored = read_run_config(run_dir)
        flow_config, train_config = stored["flow"], stored["train"]
    data = data_lib.validate_array(
        data, expected_width=flow_config.event_dim if resume else None)
    train_config = train_config or TrainConfig()
    train, validation = data_lib.train_validation_split(
        data, train_config.validation_fraction, train_config.seed
    )
    if not resume:
        shift, scale = data_lib.standardisation_stats(train)
        flow_config = (flow_config or FlowConfig()).replace(
            event_dim=data.shape[1], data_shift=shift, data_scale=scale
        )
    _prepare_run_dir(run_dir, resume)
    if not resume:
        _write_json(run_dir / CONFIG_FILE, {
            "flow": flow_config.to_dict(),
            "train": train_config.to_dict(),
            "data": {**(data_info or {}), "num_train": len(train),
                     "num_validation": len(validation)},
        })
    trainer = Trainer(flow_config, train_config, len(train), strategy or make_strategy())
    return _run_epochs(trainer, train, validation, run_dir, resume, on_epoch)


def _run_epochs(
    trainer: Trainer,
    train: np.ndarray,
    validation: np.ndarray,
    run_dir: Path,
    resume: bool,
    on_epoch: Callable[[EpochMetrics], None] | None,
) -> FitResult:
    config = trainer.train_config
    manager = tf.train.CheckpointManager(trainer.checkpoint, run_dir / CHECKPOINT_DIR, 2)
    history: list[dict[str, Any]] = []
    if resume and manager.latest_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_consumed()
        history = _read_history(run_dir)[: int(trainer.state.epoch.numpy())]
    state = trainer.state
    start_epoch = int(state.epoch.numpy())
    iterator = trainer.dataset_iterator(train, start_epoch)
    validation_x = tf.constant(validation)
    # Wall time counts only epochs kept in the history: time lost after the last
    # checkpoint of an interrupted run is not counted.
    started = time.perf_counter() - sum(h["seconds"] for h in history)
    stopped_early = False
    for epoch in range(start_epoch + 1, config.epochs + 1):
        tick = time.perf_counter()
        train_nll = float(trainer.train_epoch(iterator))
        validation_nll = float(trainer.validation_nll(validation_x))
        if not (math.isfinite(train_nll) and math.isfinite(validation_nll)):
            raise FloatingPointError(
                f"Training diverged at epoch {epoch} (train NLL {train_nll}, validation NLL "
                f"{validation_nll}); lower --learning-rate or --log-scale-bound."
            )
        if validation_nll < float(state.best_validation_nll.numpy()):
            trainer.keep_best(tf.constant(epoch, tf.int64), tf.constant(validation_nll))
        state.epoch.assign(epoch)
        record = EpochMetrics(epoch, train_nll, validation_nll, time.perf_counter() - tick)
        history.append(dataclasses.asdict(record))
        if on_epoch is not None:
            on_epoch(record)
        if epoch - int(state.best_epoch.numpy()) >= config.patience:
            stopped_early = True
            break
        if epoch % config.checkpoint_every == 0:
            manager.save(checkpoint_number=epoch)
            _write_metrics(run_dir, trainer, history, "running", time.perf_counter() - started)
    manager.save(checkpoint_number=int(state.epoch.numpy()))
    trainer.restore_best()
    save_model_weights(trainer.flow, run_dir)
    metrics = _write_metrics(
        run_dir, trainer, history, "completed", time.perf_counter() - started, stopped_early
    )
    return FitResult(trainer.flow, run_dir, metrics)


def _read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS_FILE
    return json.loads(path.read_text())["history"] if path.is_file() else []


def _write_metrics(
    run_dir: Path,
    trainer: Trainer,
    history: list[dict[str, Any]],
    status: str,
    wall_time: float,
    stopped_early: bool = False,
) -> dict[str, Any]:
    state = trainer.state
    epochs_run = len(history)
    metrics = {
        "status": status,
        "epochs_run": epochs_run,
        "best_epoch": int(state.best_epoch.numpy()),
        "best_validation_nll": _finite_or_none(float(state.best_validation_nll.numpy())),
        "stopped_early": stopped_early,
        "wall_time_s": wall_time,
        "steps_per_epoch": trainer.steps_per_epoch,
        "batch_size": trainer.global_batch,
        "num_replicas": trainer.strategy.num_replicas_in_sync,
        "history": history,
    }
    _write_json(run_dir / METRICS_FILE, metrics)
    return metrics


def record_test_metrics(run_dir: str | os.PathLike, values: dict[str, Any]) -> dict[str, Any]:
    """Adds `test_*` entries (e.g. the NLL on fresh data) to the run's metrics.json."""
    path = Path(run_dir) / METRICS_FILE
    metrics = json.loads(path.read_text())
    metrics.update({f"test_{k}": v for k, v in values.items()})
    _write_json(path, metrics)
    return metrics
