"""Training: NLL minimisation in `tf.function` under a `tf.distribute` strategy.

`fit` starts a new run in a fresh run directory; `resume` continues one from its latest
checkpoint. Both share one epoch loop that keeps the best weights (lowest validation NLL),
stops early, checkpoints, and leaves the run directory complete (see `rundir.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfp_realnvp import auto, tables
from tfp_realnvp import data as data_lib
from tfp_realnvp import schedule as schedule_lib
from tfp_realnvp.config import STRATEGIES, FlowConfig, TrainConfig, settings
from tfp_realnvp.ensemble import FoldAffine, stacked_flow
from tfp_realnvp.errors import (
    ConfigError,
    DataError,
    TrainingDivergedError,
    TrainingInterruptedError,
)
from tfp_realnvp.flow import build_flow, context_kwargs
from tfp_realnvp.rundir import RunConfig, RunDir
from tfp_realnvp.summaries import tensorboard_writer

tfd = tfp.distributions

@dataclasses.dataclass
class EpochMetrics:
    """One epoch's figures: a row of the history in metrics.json (`to_dict()`), of the
    TensorBoard scalars, and what `on_epoch` gets.

    `gradient_norm` is the mean over the epoch's steps of the global norm of the summed
    (all replicas) gradient before clipping; `learning_rate` the rate of the epoch's last
    step; `steps_per_second` the training steps over the training time (validation not
    counted); `flow` the live flow (the current weights, not the best), for callbacks that
    score it (not in the history).
    """

    epoch: int
    train_nll: float
    validation_nll: float
    seconds: float
    gradient_norm: float | None = None
    learning_rate: float | None = None
    steps_per_second: float | None = None
    flow: tfd.Distribution | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.name != "flow"}


@dataclasses.dataclass
class FitResult:
    """A trained flow, its run directory and metrics.

    `chief` is False in a non-chief worker of a multi-worker run: its copy of the run went
    to a temporary directory that is removed; `run_dir` names the chief's.
    """

    flow: tfd.TransformedDistribution
    run_dir: Path
    metrics: dict[str, Any]
    chief: bool = True


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """`default`: the current (default) strategy; `mirrored`: MirroredStrategy over every
    visible device (on a CPU split into logical devices, one replica per device);
    `multiworker`: MultiWorkerMirroredStrategy over the cluster that `TF_CONFIG` describes
    (one process per worker, each running the same command).

    TensorFlow's rule for `multiworker`: the strategy must be created before any other
    TensorFlow op runs in the process (collective ops are configured at start-up); the CLI
    creates it first thing (`cli.start_tensorflow`).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return _mirrored_strategy(tuple(devices))
    if name == "multiworker":
        resolver = _tf_config_resolver()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        except RuntimeError as error:
            if "program startup" not in str(error):
                raise
            raise ConfigError(
                "A multi-worker strategy must be created before any other TensorFlow op runs "
                "in the process (TensorFlow configures collective ops at start-up): call "
                "make_strategy('multiworker') first.") from None
    raise ConfigError(f"'strategy' must be one of {STRATEGIES}; got {name!r}.")


@functools.cache
def _mirrored_strategy(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per process and device set, reused by every fit.

    Inside `tf.function` a MirroredStrategy all-reduces with collective ops whose keys each
    strategy numbers from the same start: two strategies training in one process hand
    different tensors the same collective instance ("Shape mismatch in the collective
    instance 100"). One shared strategy keeps numbering its collectives.
    """
    return tf.distribute.MirroredStrategy(list(devices))


TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def _tf_config_resolver() -> tf.distribute.cluster_resolver.TFConfigClusterResolver:
    """The cluster `TF_CONFIG` describes; ConfigError when it is missing or malformed (a
    worker without it would silently train alone)."""
    text = os.environ.get("TF_CONFIG", "")
    example = f"e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' on the first machine, index 1 on the next"
    if not text.strip():
        raise ConfigError(f"--strategy multiworker needs the TF_CONFIG environment variable "
                          f"naming the cluster and this worker's task; {example}.")
    try:
        spec = json.loads(text)
        workers = spec["cluster"]["worker"]
        task = spec["task"]
        index = int(task["index"])
        if task["type"] not in spec["cluster"] or not isinstance(workers, list):
            raise ValueError(f"task type {task['type']!r} is not in the cluster")
        if not 0 <= index < len(spec["cluster"][task["type"]]):
            raise ValueError(f"task index {index} is out of range")
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"TF_CONFIG is not a usable cluster description ({type(error).__name__}: "
                          f"{error}); {example}.") from None
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run (every process but a non-chief multi-worker one)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes training together: the workers of a multi-worker strategy, else 1."""
    return int(getattr(strategy.extended, "_num_workers", 1))


def _negative_log_prob(flow: tfd.TransformedDistribution, x: tf.Tensor,
                       context: tf.Tensor | None = None, per_member: bool = False) -> tf.Tensor:
    return -flow.log_prob(x, **context_kwargs(flow, context, per_member))


class _TrainingState(tf.Module):
    """Variables that make training resumable: epoch, and per member its best weights,
    best validation NLL and the epoch that reached it."""

    def __init__(self, variables: list[tf.Variable], num_members: int) -> None:
        super().__init__(name="training_state")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_epoch = tf.Variable(tf.zeros([num_members], tf.int64), trainable=False,
                                      name="best_epoch")
        self.best_validation_nll = tf.Variable(tf.fill([num_members], np.inf),
                                               trainable=False, name="best_validation_nll")
        self.initial_validation_nll = tf.Variable(tf.fill([num_members], np.inf),
                                                  trainable=False, name="initial_validation_nll")
        self.best_weights = [tf.Variable(v, trainable=False, name=f"best_{i}")
                             for i, v in enumerate(variables)]


class Trainer:
    """Owns the flow (one, or an ensemble's stacked members), optimizer, compiled steps and
    checkpoints of one run.

    Member m trains on `splits[m][0]` and is early-stopped on `splits[m][1]`. An ensemble's
    members are one stacked flow, so one compiled step updates every member: the batch is
    `[B, M, D]` (member m's rows in slice m), the loss the sum of the members' mean NLLs.
    For a conditional flow each row holds its event then its context (`D + C` columns), so
    a batch carries every row's context with it; dequantisation touches the event only.
    """

    def __init__(
        self,
        flow_config: FlowConfig,
        train_config: TrainConfig,
        splits: list[tuple[np.ndarray, np.ndarray]],
        strategy: tf.distribute.Strategy,
    ) -> None:
        self.flow_config = flow_config
        self.train_config = train_config
        self.strategy = strategy
        self.splits = splits
        self.num_members = len(splits)
        self.event_dim = flow_config.event_dim
        smallest = min(len(train) for train, _ in splits)
        self.global_batch = min(train_config.batch_size, smallest)
        self.steps_per_epoch = max(1, smallest // self.global_batch)
        if train_config.max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, train_config.max_steps_per_epoch)
        tf_keras.utils.set_random_seed(train_config.seed)
        with strategy.scope():
            self.schedule = (None if train_config.schedule == "constant" else
                             schedule_lib.SegmentedCosine(train_config.learning_rate,
                                                          self.steps_per_epoch))
            self.flow = build_flow(flow_config)
            self.stacked = stacked_flow(self.flow)
            self.variables = list(self.stacked.trainable_variables)
            self.optimizer = tf_keras.optimizers.AdamW(
                self.schedule or train_config.learning_rate,
                weight_decay=train_config.weight_decay,
                global_clipnorm=train_config.clip_norm,
            )
            self.optimizer.build(self.variables)
            self.state = _TrainingState(self.variables, self.num_members)
        schedule_state = {} if self.schedule is None else {
            "schedule_segment": self.schedule.segment}
        self.checkpoint = tf.train.Checkpoint(
            flow=self.flow, optimizer=self.optimizer, state=self.state, **schedule_state)
        rows, weights = _validation_layout([validation for _, validation in splits])
        self._validation_rows = tf.constant(rows)
        self._validation_weights = tf.constant(weights)
        self._loss_and_grads = tf.function(
            self._loss_and_grads_fn, jit_compile=train_config.jit_compile)
        self.train_epoch = tf.function(self._train_epoch_fn)
        self.validation_nll = tf.function(self._validation_nll_fn)
        self.keep_best = tf.function(self._keep_best_fn)
        self.restore_best = tf.function(self._restore_best_fn)
        self._sum_over_workers = tf.function(self._sum_over_workers_fn)

    def any_worker(self, *flags: bool) -> list[bool]:
        """Each flag, true if it is true in any worker: decisions a worker takes alone (a
        time budget on its own clock, a signal it received) are taken by all, so no worker
        waits forever in a collective the others left. One worker: the flags unchanged."""
        if num_workers(self.strategy) == 1:
            return list(flags)
        summed = self._sum_over_workers(tf.constant([float(f) for f in flags]))
        return [bool(v > 0) for v in summed.numpy()]

    def mean_over_workers(self, value: float) -> float:
        """`value` averaged over the workers (one worker: unchanged), so an estimate each
        worker makes from its own clock is the same number on all of them."""
        count = num_workers(self.strategy)
        if count == 1:
            return value
        return float(self._sum_over_workers(tf.constant([value], tf.float32))[0]) / count

    def _sum_over_workers_fn(self, values: tf.Tensor) -> tf.Tensor:
        per_replica = self.strategy.run(tf.identity, args=(values,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def set_fold_maps(self) -> None:
        """Starts each ensemble member at the Gaussian of its own training rows (in the
        shared data map's standardised space), so epoch 0 has not seen its held-out fold."""
        fold_maps = [b for b in self.stacked.bijector.bijectors if isinstance(b, FoldAffine)]
        if not fold_maps:
            return
        shared = self.stacked.bijector.bijectors[0]  # the data map, outermost in the chain
        for member, (train, _) in enumerate(self.splits):
            events = train[:, :self.event_dim]
            fold_maps[0].set_from_rows(member, shared.inverse(events).numpy())

    def start_epoch_schedule(self, epochs_remaining: float) -> None:
        """Moves the cosine schedule on by one epoch's segment, spreading what is left of
        the decay over `epochs_remaining` epochs (see `schedule.py`)."""
        if self.schedule is None:
            return
        start = self.schedule.segment_end
        end = schedule_lib.next_segment(start, self.mean_over_workers(epochs_remaining))
        self.schedule.set_segment(start, end)

    def _dequantize(self, batch: tf.Tensor) -> tf.Tensor:
        """Adds `step * (U(0, 1) - 1/2)` per column, seeded by (seed, step number): the same
        noise on a rerun or a resumed run."""
        steps = self.train_config.dequantize_steps
        if not steps or not any(steps):
            return batch
        seed = tf.stack([tf.constant(self.train_config.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        noise = tf.random.stateless_uniform(tf.shape(batch), seed=seed) - 0.5
        return batch + noise * tf.constant(steps, tf.float32)

    def _member_batch(self, batches: tuple[tf.Tensor, ...]) -> tf.Tensor:
        """One batch per member -> the stacked flow's `[B, M, D]` (or `[B, D]`)."""
        return batches[0] if self.num_members == 1 else tf.stack(batches, axis=1)

    def _events_and_context(self, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        """A batch's rows `[..., D + C]` -> (events `[..., D]`, context `[..., C]` or None)."""
        if not self.flow_config.context_dim:
            return rows, None
        return rows[..., :self.event_dim], rows[..., self.event_dim:]

    def _loss_and_grads_fn(self, *batches: tf.Tensor):
        x, context = self._events_and_context(self._member_batch(batches))
        x = self._dequantize(x)
        with tf.GradientTape() as tape:
            # [B] or [B, M]; an ensemble's members each see their own rows' contexts.
            nll = _negative_log_prob(self.stacked, x, context,
                                     per_member=self.num_members > 1)
            per_row = nll if self.num_members == 1 else tf.reduce_sum(nll, axis=-1)
            loss = tf.nn.compute_average_loss(per_row, global_batch_size=self.global_batch)
        return loss / self.num_members, tape.gradient(loss, self.variables)

    def _replica_step(self, *batches: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One optimizer step; returns this replica's loss and the global norm of the
        gradient summed over replicas (the one the optimizer clips and applies)."""
        loss, grads = self._loss_and_grads(*batches)
        # The optimizer's own all-reduce, done here so the norm is of the summed gradient;
        # the optimizer is then told not to aggregate again: no extra communication.
        pairs = self.optimizer.aggregate_gradients(list(zip(grads, self.variables, strict=True)))
        self.optimizer.apply_gradients(pairs, skip_gradients_aggregation=True)
        return loss, tf.linalg.global_norm([g for g, _ in pairs])

    def _train_epoch_fn(self, iterator) -> tuple[tf.Tensor, tf.Tensor]:
        """Runs one epoch of steps in-graph; returns the mean training NLL (over members)
        and the mean global gradient norm of its steps, both computed in the graph."""
        total = tf.constant(0.0)
        norms = tf.constant(0.0)
        mean = tf.distribute.ReduceOp.MEAN
        for _ in tf.range(self.steps_per_epoch):
            losses, norm = self.strategy.run(self._replica_step, args=next(iterator))
            total += self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
            norms += self.strategy.reduce(mean, norm, axis=None)  # equal on every replica
        return total / self.steps_per_epoch, norms / self.steps_per_epoch

    def learning_rate(self) -> float:
        """The learning rate of the last step taken (the schedule's value then)."""
        if self.schedule is None:
            return float(tf.convert_to_tensor(self.optimizer.learning_rate))
        return float(self.schedule(self.optimizer.iterations - 1))

    def _validation_nll_fn(self) -> tf.Tensor:
        """Each member's mean NLL on its own held-out rows: `[num_members]`."""
        rows, context = self._events_and_context(self._validation_rows)
        if self.num_members == 1:
            return tf.reduce_mean(_negative_log_prob(self.stacked, rows, context))[tf.newaxis]
        # Member m scores only its own rows (slice m of [V, M, D], with their contexts).
        nll = _negative_log_prob(self.stacked, rows, context, per_member=True)
        weights = self._validation_weights
        return tf.reduce_sum(nll * weights, axis=0) / tf.reduce_sum(weights, axis=0)

    def _keep_best_fn(self, epoch: tf.Tensor, nll: tf.Tensor) -> None:
        """Keeps the weights of every member whose validation NLL improved (an ensemble's
        variables carry the member axis first)."""
        improved = nll < self.state.best_validation_nll
        state = self.state
        state.best_epoch.assign(tf.where(improved, epoch, state.best_epoch))
        state.best_validation_nll.assign(tf.where(improved, nll, state.best_validation_nll))
        for live, kept in zip(self.variables, state.best_weights, strict=True):
            if self.num_members == 1:
                mask = improved[0]
            else:
                mask = tf.reshape(improved, [self.num_members] + [1] * (live.shape.rank - 1))
            kept.assign(tf.where(mask, live, kept))

    def _restore_best_fn(self) -> None:
        for best, live in zip(self.state.best_weights, self.variables, strict=True):
            live.assign(best)

    def checkpoint_manager(self, run: RunDir) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(self.checkpoint, run.checkpoint_dir, max_to_keep=2)

    def dataset_iterator(self, start_epoch: int):
        """Per member: its training rows in a fresh order every epoch, in batches; zipped and
        distributed over replicas (one element: a tuple of one batch per member).

        Epoch e's order is a function of (seed, member, e) alone, so a run resumed after
        epoch e sees exactly the batches the uninterrupted run saw.
        """
        def member_epochs(member: int, rows: np.ndarray) -> tf.data.Dataset:
            table = tf.constant(rows)

            def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
                seed = tf.stack([tf.constant(self.train_config.seed * 1000 + member,
                                             tf.int64), epoch])
                order = tf.random.experimental.stateless_shuffle(
                    tf.range(len(rows), dtype=tf.int64), seed=seed)
                return (tf.data.Dataset.from_tensor_slices(order)
                        .batch(self.global_batch, drop_remainder=True)
                        .take(self.steps_per_epoch)
                        .map(lambda index: tf.gather(table, index)))
            return tf.data.Dataset.range(start_epoch, 2**62).flat_map(one_epoch)

        datasets = tuple(member_epochs(m, train) for m, (train, _) in enumerate(self.splits))
        dataset = tf.data.Dataset.zip(datasets).prefetch(tf.data.AUTOTUNE)
        # Several workers: each global batch is split over the replicas of all workers (the
        # rows are in memory, so there are no files to shard by).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        dataset = dataset.with_options(options)
        return iter(self.strategy.experimental_distribute_dataset(dataset))


def _validation_layout(folds: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows of each member in the stacked flow's layout: one member, its rows
    `[V, D]` and weights `[V]` of 1; an ensemble, `[V, M, D]` with member m's rows in slice
    m (V the largest fold; a shorter fold is filled up by repeating its rows) and weights
    `[V, M]`, 1 on a member's own rows and 0 on the fill, so each member scores only its
    own fold, not every member's."""
    if len(folds) == 1:
        return folds[0], np.ones(len(folds[0]), np.float32)
    longest = max(len(fold) for fold in folds)
    rows = np.stack([np.resize(fold, (longest, fold.shape[1])) for fold in folds], axis=1)
    weights = np.stack([np.arange(longest) < len(fold) for fold in folds], axis=1)
    return rows, weights.astype(np.float32)


def software_versions() -> dict[str, str]:
    """The versions of the software that trained (or exported) a model."""
    from tfp_realnvp import __version__

    return {"tfp_realnvp": __version__, "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "tf_keras": tf_keras.__version__}


def weights_digest(variables: list[tf.Variable]) -> str:
    """sha256 over the variables' float bytes, in order: equal digests mean bit-identical
    weights (e.g. the workers of a multi-worker run agree)."""
    digest = hashlib.sha256()
    for variable in variables:
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def fit(
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
) -> FitResult:
    """Trains a new flow on the rows of `data` and leaves a complete run directory.

    With `context` (`[N, C]`, row i the context of data row i) the flow models
    `p(x | c)`: the context travels with its row through the split, the folds and every
    batch, and the flow standardises it itself (`context_shift`/`context_scale` in the
    config: the training context's column means and standard deviations), so `log_prob`,
    `sample`, the export's signatures and `load` all take raw context values.

    The flow config's `event_dim` and data map (the training rows' Gaussian) are set from
    the data. Training stops after `epochs`, after `time_budget` seconds, or when the
    validation NLL has not improved for `patience` epochs; the best weights are kept in
    `run_dir/model`. A config left out is chosen from the table's shape by `auto.choose`
    (recorded in config.json with its reasons).

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
    """
    data, context, layout = tables.fit_inputs(data, context, layout)
    data = tables.validate_array(data)
    data_lib.check_trainable(data, (data_info or {}).get("source", "data"))
    if context is not None:
        context = tables.validate_context(context, num_rows=len(data))
    chosen = auto.choose(*data.shape)
    settings = dict(settings or {})
    auto_record = {"rows": data.shape[0], "dim": data.shape[1],
                   "context_dim": 0 if context is None else context.shape[1],
                   "chosen": [name for name, config in (("flow", flow_config),
                                                        ("train", train_config))
                              if config is None],
                   "given": sorted(settings), "reasons": chosen.reasons}
    flow_config, train_config = _apply_settings(flow_config or chosen.flow,
                                                 train_config or chosen.train, settings)
    context_dim = _context_dim(flow_config, context)
    splits = _splits(_rows(data, context), flow_config, train_config)
    fitted_rows = np.concatenate([splits[0][0], splits[0][1]]) if len(splits) > 1 \
        else splits[0][0]
    events = fitted_rows[:, :data.shape[1]]
    flow_config = flow_config.replace(
        event_dim=data.shape[1], context_dim=context_dim,
        **data_lib.affine_stats(events, flow_config.whiten),
        **_context_stats(fitted_rows[:, data.shape[1]:]))
    train_config = train_config.replace(
        dequantize_steps=data_lib.grid_steps(events, train_config.dequantize))
    hashes = {"sha256": data_lib.content_hash(data)}
    if context is not None:
        hashes["context_sha256"] = data_lib.content_hash(context)
    strategy = strategy or make_strategy()
    with _worker_run_dir(run_dir, strategy) as own_dir:
        run = RunDir(own_dir)
        run.create()
        run.write_config(RunConfig(flow_config, train_config, {
            **(data_info or {}), **hashes,
            "num_train": len(splits[0][0]),
            "num_validation": len(splits[0][1])}, auto_record, layout))
        trainer = Trainer(flow_config, train_config, splits, strategy)
        trainer.set_fold_maps()
        result = _train(trainer, run, on_epoch, history=[], tensorboard=tensorboard)
    return dataclasses.replace(result, run_dir=Path(run_dir), chief=is_chief(strategy))


@contextlib.contextmanager
def _worker_run_dir(run_dir: str | Path, strategy: tf.distribute.Strategy) -> Iterator[Path]:
    """Where this process writes its run: `run_dir` for the chief (and any single-process
    run); for another worker of a multi-worker run, a temporary directory removed at the
    end. Every worker must still save checkpoints (saving may run collective ops), so the
    others write theirs where nobody reads them: TensorFlow's multi-worker convention."""
    if is_chief(strategy):
        yield Path(run_dir)
        return
    scratch = Path(tempfile.mkdtemp(prefix="tfp-realnvp-worker-"))
    try:
        yield scratch / "run"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


def _rows(data: np.ndarray, context: np.ndarray | None) -> np.ndarray:
    """The rows training splits and batches: the event, then its context."""
    return data if context is None else np.concatenate([data, context], axis=1)


def _context_stats(context: np.ndarray) -> dict[str, list | None]:
    """The context's standardisation (column means and standard deviations; a constant
    column gets scale 1), or None for no context."""
    if context.shape[1] == 0:
        return {"context_shift": None, "context_scale": None}
    stats = data_lib.affine_stats(context, whiten=False)
    return {"context_shift": stats["data_shift"], "context_scale": stats["data_scale"]}


def _apply_settings(flow_config: FlowConfig, train_config: TrainConfig,
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


def _splits(data: np.ndarray, flow_config: FlowConfig,
            train_config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, validation rows) per member: one hold-out split for a single flow,
    K folds for an ensemble of K (each member held out on its own fold). The split depends
    only on the number of rows and the seed, so a context's columns go with their row."""
    if flow_config.ensemble_size == 1:
        return [data_lib.train_validation_split(data, train_config.validation_fraction,
                                                train_config.seed)]
    return data_lib.kfold_splits(data, flow_config.ensemble_size, train_config.seed)


def resume(
    run_dir: str | Path,
    data: np.ndarray,
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
      run_dir: a run directory written by `fit`.
      data: the rows the run was trained on (the same split is taken again).
      strategy: a `tf.distribute` strategy (default: the current one).
      on_epoch: called after every epoch with its `EpochMetrics`.
      tensorboard: write TensorBoard summaries (steps continue the run's epochs); None:
        only if the run already has them.
      context: a conditional run's context, the rows it was trained with (checked).
      **changes: config fields to set; only resumable ones may differ from the run's.
    """
    run = RunDir(run_dir)
    stored = run.read_config()
    train_config = stored.train.replace(**_resumable_changes(stored, changes))
    if train_config != stored.train:
        run.write_config(dataclasses.replace(stored, train=train_config))
    data = tables.validate_array(data, expected_width=stored.flow.event_dim)
    context = _resume_context(run, stored, context, len(data))
    _check_hash(run, stored, data, "sha256", "data")
    if context is not None:
        _check_hash(run, stored, context, "context_sha256", "context")
    splits = _splits(_rows(data, context), stored.flow, train_config)
    trainer = Trainer(stored.flow, train_config, splits, strategy or make_strategy())
    manager = trainer.checkpoint_manager(run)
    history: list[dict[str, Any]] = []
    if manager.latest_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_consumed()
        history = run.read_metrics().get("history", [])[: int(trainer.state.epoch.numpy())]
    return _train(trainer, run, on_epoch, history, tensorboard)


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


def _check_hash(run: RunDir, stored: RunConfig, table: np.ndarray, key: str,
                what: str) -> None:
    recorded = stored.data.get(key)
    if recorded is not None and data_lib.content_hash(table) != recorded:
        raise DataError(
            f"{run.path} was trained on {stored.data.get('source', 'other data')} "
            f"({what} sha256 {recorded[:12]}...); the {what} given differs (sha256 "
            f"{data_lib.content_hash(table)[:12]}...). Resume with the run's own {what}.")


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


def _train(
    trainer: Trainer,
    run: RunDir,
    on_epoch: Callable[[EpochMetrics], None] | None,
    history: list[dict[str, Any]],
    tensorboard: bool | None = False,
) -> FitResult:
    """The epoch loop shared by `fit` and `resume`; ends by writing model/ and metrics.

    Holds the run's lock throughout. SIGINT/SIGTERM stop it at the end of the current
    epoch with a checkpoint there (TrainingInterruptedError); a loss that turns NaN/inf
    keeps the last good weights as the model (TrainingDivergedError).
    """
    with run.lock(), _StopSignals() as stop, \
            tensorboard_writer(run.path, trainer, tensorboard) as summaries:
        if summaries is None:
            return _epochs(trainer, run, on_epoch, history, stop)
        result = _epochs(trainer, run, _chain(on_epoch, summaries.write_epoch), history, stop)
        summaries.write_final(result.metrics["epochs_run"])
        return result


def _chain(*hooks: Callable[[EpochMetrics], None] | None) -> Callable[[EpochMetrics], None]:
    """One epoch hook calling each of `hooks` (None: skipped) in turn."""
    def on_epoch(record: EpochMetrics) -> None:
        for hook in hooks:
            if hook is not None:
                hook(record)
    return on_epoch


def _epochs(trainer: Trainer, run: RunDir, on_epoch: Callable[[EpochMetrics], None] | None,
            history: list[dict[str, Any]], stop: _StopSignals) -> FitResult:
    config = trainer.train_config
    manager = trainer.checkpoint_manager(run)
    state = trainer.state
    start_epoch = int(state.epoch.numpy())
    iterator = trainer.dataset_iterator(start_epoch)
    # Wall time counts only epochs kept in the history: time lost after the last
    # checkpoint of an interrupted run is not counted.
    started = time.perf_counter() - sum(h["seconds"] for h in history)

    def finish(status: str, stop_reason: str | None) -> dict[str, Any]:
        trainer.restore_best()
        run.save_weights(trainer.flow)
        metrics = _metrics(trainer, history, status, time.perf_counter() - started,
                           stop_reason)
        run.write_metrics(metrics)
        return metrics

    if start_epoch == 0:
        # Epoch 0 is the fresh flow: with the whitening data map, the training split's
        # Gaussian. Training keeps whatever beats it on validation, never worse.
        initial = trainer.validation_nll()
        state.initial_validation_nll.assign(initial)
        trainer.keep_best(tf.constant(0, tf.int64), initial)
    stop_reason = "epochs"
    best_nll = state.best_validation_nll.numpy()
    epoch_starts: list[float] = []  # this call's epochs, on the budget's clock
    for epoch in range(start_epoch + 1, config.epochs + 1):
        tick = time.perf_counter()
        epoch_starts.append(tick - started)
        trainer.start_epoch_schedule(schedule_lib.epochs_left(
            epoch, config.epochs, tick - started, config.time_budget,
            _steady_epoch_seconds(epoch_starts)))
        train_nll, gradient_norm = (float(v) for v in trainer.train_epoch(iterator))
        train_seconds = time.perf_counter() - tick
        member_nll = trainer.validation_nll()
        validation_nll = float(tf.reduce_mean(member_nll))
        if not (math.isfinite(train_nll) and math.isfinite(validation_nll)):
            finish("diverged", "diverged")
            raise TrainingDivergedError(
                f"Training diverged at epoch {epoch} (train NLL {train_nll}, validation NLL "
                f"{validation_nll}); the best weights before it (epoch "
                f"{int(state.best_epoch.numpy().max())}) are kept as the model in "
                f"{run.model_dir}. Lower the learning rate or the log-scale bound.")
        if np.any(member_nll.numpy() < best_nll):  # copy weights only when one improved
            trainer.keep_best(tf.constant(epoch, tf.int64), member_nll)
            best_nll = state.best_validation_nll.numpy()
        state.epoch.assign(epoch)
        record = EpochMetrics(epoch, train_nll, validation_nll, time.perf_counter() - tick,
                              _finite_or_none(gradient_norm), trainer.learning_rate(),
                              trainer.steps_per_epoch / train_seconds, trainer.flow)
        history.append(record.to_dict())
        if on_epoch is not None:
            callback_tick = time.perf_counter()
            on_epoch(record)
            started += time.perf_counter() - callback_tick  # not training time
        signalled, over_budget = trainer.any_worker(
            stop.signal_number is not None,
            config.time_budget is not None and time.perf_counter() - started > config.time_budget)
        if signalled:
            number = stop.signal_number or signal.SIGTERM  # another worker was stopped
            manager.save(checkpoint_number=epoch)
            run.write_metrics(_metrics(trainer, history, "interrupted",
                                       time.perf_counter() - started, "signal"))
            raise TrainingInterruptedError(
                f"Stopped by {signal.Signals(number).name} after epoch {epoch}; "
                f"a checkpoint is saved in {run.checkpoint_dir}. Resume the run to continue "
                "from it.", number)
        if epoch - int(state.best_epoch.numpy().max()) >= config.patience:
            stop_reason = "patience"
            break
        if over_budget:
            stop_reason = "time_budget"
            break
        if epoch % config.checkpoint_every == 0:
            manager.save(checkpoint_number=epoch)
            run.write_metrics(_metrics(trainer, history, "running",
                                       time.perf_counter() - started))
    manager.save(checkpoint_number=int(state.epoch.numpy()))
    return FitResult(trainer.flow, run.path, finish("completed", stop_reason))


def _steady_epoch_seconds(epoch_starts: list[float]) -> float | None:
    """The mean time of an epoch (everything between two epoch starts on the budget's
    clock), leaving out this call's first epoch: it traces and compiles the step. None
    before there is one to measure."""
    if len(epoch_starts) < 3:
        return None
    return (epoch_starts[-1] - epoch_starts[1]) / (len(epoch_starts) - 2)


class _StopSignals:
    """While active, SIGINT and SIGTERM only record that a stop was asked for; the epoch
    loop checks `signal_number` between epochs (a checkpoint at an epoch boundary keeps
    resume exact). Outside the main thread signals cannot be caught: nothing changes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame: Any) -> None:
        self.signal_number = number

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def _metrics(
    trainer: Trainer,
    history: list[dict[str, Any]],
    status: str,
    wall_time: float,
    stop_reason: str | None = None,
) -> dict[str, Any]:
    state = trainer.state
    best_epochs = state.best_epoch.numpy().tolist()
    best_nlls = [_finite_or_none(float(v)) for v in state.best_validation_nll.numpy()]
    finite = [v for v in best_nlls if v is not None]
    return {
        "status": status,
        "epochs_run": len(history),
        # One flow: its best epoch and validation NLL. An ensemble: the last member's best
        # epoch, and the mean over members of each one's best NLL on its own held-out
        # fold (a K-fold estimate of one member's NLL on fresh rows).
        "best_epoch": max(best_epochs),
        "best_validation_nll": float(np.mean(finite)) if len(finite) == len(best_nlls)
        else None,
        "members": [{"best_epoch": e, "best_validation_nll": v}
                    for e, v in zip(best_epochs, best_nlls, strict=True)],
        # Epoch 0: the fresh flow, i.e. the Gaussian of the training rows.
        "initial_validation_nll": _finite_or_none(
            float(np.mean(state.initial_validation_nll.numpy()))),
        "stopped_early": stop_reason in ("patience", "time_budget"),
        "stop_reason": stop_reason,
        "wall_time_s": wall_time,
        "steps_per_epoch": trainer.steps_per_epoch,
        "batch_size": trainer.global_batch,
        "num_replicas": trainer.strategy.num_replicas_in_sync,
        "num_workers": num_workers(trainer.strategy),
        "weights_sha256": weights_digest(trainer.variables),
        "versions": software_versions(),
        "history": history,
    }
