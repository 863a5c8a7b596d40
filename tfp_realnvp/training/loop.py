"""The epoch loop: stop rules (epochs, patience, time budget, signals), checkpoints, the run."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp import schedule as schedule_lib
from tfp_realnvp.errors import TrainingDivergedError, TrainingInterruptedError
from tfp_realnvp.rundir import RunDir
from tfp_realnvp.summaries import TensorBoardWriter, tensorboard_writer
from tfp_realnvp.training.distribute import saves_summaries
from tfp_realnvp.training.records import EpochMetrics, FitResult, finite_or_none, run_metrics
from tfp_realnvp.training.trainer import Trainer

EpochHook = Callable[[EpochMetrics], None]


def train(trainer: Trainer, run: RunDir, on_epoch: EpochHook | None,
          history: list[dict[str, Any]], tensorboard: bool | None = False) -> FitResult:
    """The epoch loop shared by `fit` and `resume`; ends by writing model/ and metrics.

    Holds the run's lock throughout. SIGINT/SIGTERM stop it at the end of the current
    epoch with a checkpoint there (TrainingInterruptedError); a loss that turns NaN/inf
    keeps the last good weights as the model (TrainingDivergedError).
    """
    member = trainer.prepared.members[0]
    config = trainer.flow_config
    with run.lock(), _StopSignals() as stop, tensorboard_writer(
            run.path, tensorboard, trainer.flow, config.event_dim, member.train_events,
            trainer.train_config.epochs, config.context_dim,
            writes=saves_summaries(trainer.strategy)) as summaries:
        if summaries is None:
            return _epochs(trainer, run, on_epoch, history, stop)
        hooks = _chain(on_epoch, _summaries_hook(summaries, trainer))
        result = _epochs(trainer, run, hooks, history, stop)
        summaries.write_final(result.metrics["epochs_run"],
                              int(trainer.state.best_epoch.numpy().max()))
        return result


def _summaries_hook(summaries: TensorBoardWriter, trainer: Trainer) -> EpochHook:
    """Writes each epoch's history row; with epoch 1, the initial validation NLL."""
    def write(record: EpochMetrics) -> None:
        initial = None if record.epoch != 1 else float(
            np.mean(trainer.state.initial_validation_nll.numpy()))
        summaries.write_epoch(record.to_dict(), initial)
    return write


def _chain(*hooks: EpochHook | None) -> EpochHook:
    """One epoch hook calling each of `hooks` (None: skipped) in turn."""
    def on_epoch(record: EpochMetrics) -> None:
        for hook in hooks:
            if hook is not None:
                hook(record)
    return on_epoch


def _epochs(trainer: Trainer, run: RunDir, on_epoch: EpochHook | None,
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
        flow_weight = trainer.set_blend_weight()
        run.save_weights(trainer.flow)
        metrics = run_metrics(trainer, history, status, time.perf_counter() - started,
                              stop_reason)
        if flow_weight is not None:
            metrics["blend_flow_weight"] = flow_weight
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
                              finite_or_none(gradient_norm), trainer.learning_rate(),
                              trainer.steps_per_epoch / train_seconds, trainer.flow,
                              config.epochs)
        history.append(record.to_dict())
        if on_epoch is not None:
            callback_tick = time.perf_counter()
            on_epoch(record)
            started += time.perf_counter() - callback_tick  # not training time
        signalled, over_budget = trainer.workers.any(
            stop.signal_number is not None,
            config.time_budget is not None and time.perf_counter() - started > config.time_budget)
        if signalled:
            number = stop.signal_number or signal.SIGTERM  # another worker was stopped
            manager.save(checkpoint_number=epoch)
            run.write_metrics(run_metrics(trainer, history, "interrupted",
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
            run.write_metrics(run_metrics(trainer, history, "running",
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
