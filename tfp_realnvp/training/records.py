"""What a run reports: each epoch's figures, the result of a fit, and metrics.json."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfp_realnvp.training.distribute import num_workers

if TYPE_CHECKING:
    from tfp_realnvp.training.trainer import Trainer

tfd = tfp.distributions

NOT_IN_HISTORY = ("flow", "planned_epochs")


@dataclasses.dataclass
class EpochMetrics:
    """One epoch's figures: a row of the history in metrics.json (`to_dict()`), of the
    TensorBoard scalars, and what `on_epoch` gets.

    `gradient_norm` is the mean over the epoch's steps of the global norm of the summed
    (all replicas) gradient before clipping; `learning_rate` the rate of the epoch's last
    step; `steps_per_second` the training steps over the training time (validation not
    counted). Not in the history: `flow`, the live flow (the current weights, not the
    best), for callbacks that score it; `planned_epochs`, the epochs the run is set to
    train (`TrainConfig.epochs`; a stop rule may end it sooner), e.g. a progress bar's
    length.
    """

    epoch: int
    train_nll: float
    validation_nll: float
    seconds: float
    gradient_norm: float | None = None
    learning_rate: float | None = None
    steps_per_second: float | None = None
    flow: tfd.Distribution | None = dataclasses.field(default=None, repr=False, compare=False)
    planned_epochs: int | None = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.name not in NOT_IN_HISTORY}


@dataclasses.dataclass
class FitResult:
    """A trained flow, its run directory and metrics.

    `chief` is False in a non-chief worker of a multi-worker run: its copy of the run went
    to a temporary directory that is removed; `run_dir` names the chief's. A table with
    categorical columns also gives `model`, its `MixedTableModel` (`flow` is then the
    conditional flow of its numbers, None for an all-categorical table).
    """

    flow: tfd.TransformedDistribution | None
    run_dir: Path
    metrics: dict[str, Any]
    chief: bool = True
    model: Any = None  # a table with categorical columns: its `MixedTableModel`


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


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_metrics(
    trainer: Trainer,
    history: list[dict[str, Any]],
    status: str,
    wall_time: float,
    stop_reason: str | None = None,
) -> dict[str, Any]:
    """The content of metrics.json: the run's status, its best epoch(s) and validation
    NLL(s), how it stopped, its shape (steps, batch, replicas, workers), a digest of its
    weights, the software versions and the per-epoch history."""
    state = trainer.state
    best_epochs = state.best_epoch.numpy().tolist()
    best_nlls = [finite_or_none(float(v)) for v in state.best_validation_nll.numpy()]
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
        "initial_validation_nll": finite_or_none(
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
