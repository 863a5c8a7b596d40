"""`fit_images`: trains the image flow with the package's own trainer and epoch loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.config import TrainConfig
from tfp_realnvp.config import settings as config_settings
from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.images import config as config_lib
from tfp_realnvp.images import runs
from tfp_realnvp.images.config import ImageConfig
from tfp_realnvp.images.model import build_image_flow, initialize_actnorms
from tfp_realnvp.prepare import MemberData, PreparedData
from tfp_realnvp.rundir import RunConfig, RunDir
from tfp_realnvp.training.distribute import make_strategy
from tfp_realnvp.training.loop import train
from tfp_realnvp.training.records import EpochMetrics, FitResult
from tfp_realnvp.training.trainer import Trainer

# Images that set the actnorms before training (data-dependent initialisation).
INIT_IMAGES = 512


def default_train_config(count: int) -> TrainConfig:
    """The image default: batches of 64, a 90 s budget (like the table default's), a
    cosine decay over it, patience for the noisy validation of small image sets."""
    return TrainConfig(epochs=10_000, batch_size=min(64, count), learning_rate=1e-3,
                       time_budget=90.0, patience=50, clip_norm=50.0)


def dequantized(levels: np.ndarray, seed: int) -> np.ndarray:
    """`levels + U(0, 1)` (float32), seeded: the fixed noise of held-out images."""
    noise = np.random.default_rng([seed, 17]).random(levels.shape)
    return (levels + noise).astype(np.float32)


class ImageTrainer(Trainer):
    """The package's `Trainer` (step, validation, best weights, checkpoints) on the image
    flow: the flow is built from an `ImageConfig`, its actnorms set from the training
    images, and every step dequantises its batch of levels afresh, `x = level + U(0, 1)`,
    seeded by (seed, step) so a rerun or a resumed run sees the same noise."""

    def __init__(self, image_config: ImageConfig, train_config: TrainConfig,
                 prepared: PreparedData, strategy: tf.distribute.Strategy) -> None:
        self.image_config = image_config
        super().__init__(image_config, train_config, prepared, strategy)

    def make_flow(self):
        flow = build_image_flow(self.image_config)
        images = self.prepared.members[0].train_events[:INIT_IMAGES]
        initialize_actnorms(flow, dequantized(images, self.train_config.seed))
        return flow

    def set_fold_maps(self) -> None:
        """No fold maps: an image flow is one flow."""

    def _dequantize(self, batch: tf.Tensor) -> tf.Tensor:
        seed = tf.stack([tf.constant(self.train_config.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        return batch + tf.random.stateless_uniform(tf.shape(batch), seed=seed)


def prepare_images(levels: np.ndarray, train_config: TrainConfig) -> PreparedData:
    """The training levels (dequantised at each step) and the validation images
    (dequantised once, seeded), split by the training config's seed and fraction."""
    if len(levels) < 10:
        raise DataError(f"{len(levels)} images; fitting an image flow and holding some out "
                        "for validation needs at least 10.")
    train_rows, validation_rows = prepare_lib.train_validation_indices(
        len(levels), train_config.validation_fraction, train_config.seed)
    values = levels.astype(np.float32)
    member = MemberData(values[train_rows],
                        dequantized(values[validation_rows], train_config.seed))
    return PreparedData((member,), hashes={"sha256": prepare_lib.content_hash(values)})


def fit_images(levels: np.ndarray, num_levels: int, run_dir: str | Path,
               image_config: ImageConfig | None = None,
               train_config: TrainConfig | None = None,
               data_info: dict[str, Any] | None = None,
               on_epoch: Callable[[EpochMetrics], None] | None = None,
               settings: dict[str, Any] | None = None,
               strategy: tf.distribute.Strategy | None = None) -> FitResult:
    """Trains the multi-scale image flow on `levels` (`[N, H, W, C]` integers in
    `[0, num_levels)`) and leaves a run directory (config.json, image.json, checkpoints,
    model/, metrics.json) like a table run's.

    A config left out is chosen by `config.choose` from the image shape and count (its
    reasons recorded in config.json); `settings` overrides fields of either config. The
    NLLs in metrics.json are nats per image of the dequantised images (level units).
    """
    shape = tuple(int(v) for v in levels.shape[1:])
    chosen, reasons = config_lib.choose(shape, len(levels), num_levels)
    settings = dict(settings or {})
    image_config = _with(image_config or chosen, settings, ImageConfig)
    train_config = _with(train_config or default_train_config(len(levels)), settings,
                         TrainConfig)
    unknown = sorted(set(settings) - _fields(ImageConfig) - _fields(TrainConfig))
    if unknown:
        raise ConfigError(f"Settings {unknown} are not an image model's; it takes "
                          f"{sorted(_fields(ImageConfig) | _fields(TrainConfig))}.")
    prepared = prepare_images(levels, train_config)
    run = RunDir(Path(run_dir))
    run.create()
    auto = {"images": len(levels), "shape": list(shape), "given": sorted(settings),
            "reasons": {k: v for k, v in reasons.items() if k not in settings}}
    run.write_config(RunConfig(None, train_config, {
        **(data_info or {}), **prepared.hashes, "num_train": prepared.num_train,
        "num_validation": len(prepared.members[0].validation_events)}, auto))
    runs.write_image_config(run.path, image_config)
    trainer = ImageTrainer(image_config, train_config, prepared, strategy or make_strategy())
    result = train(trainer, run, on_epoch, history=[])
    return dataclasses.replace(result, run_dir=Path(run_dir))


def resume_images(run_dir: str | Path, levels: np.ndarray,
                  on_epoch: Callable[[EpochMetrics], None] | None = None,
                  strategy: tf.distribute.Strategy | None = None,
                  **changes: Any) -> FitResult:
    """Continues an image run from its latest checkpoint on the same images (checked by
    their sha256); `changes` may set the resumable `TrainConfig` fields (`epochs`,
    `patience`, `checkpoint_every`, `time_budget`), recorded in config.json."""
    run = RunDir(Path(run_dir))
    stored = run.read_config()
    resumable = {field.name for field, rule in config_settings(TrainConfig) if rule.resumable}
    fixed = sorted(k for k, v in changes.items()
                   if k not in resumable and v != getattr(stored.train, k, object()))
    if fixed:
        raise ConfigError(f"A resumed run keeps its architecture and optimisation; cannot "
                          f"change {fixed}. Only {sorted(resumable)} may change.")
    train_config = stored.train.replace(**{k: v for k, v in changes.items() if k in resumable})
    if train_config != stored.train:
        run.write_config(dataclasses.replace(stored, train=train_config))
    prepared = prepare_images(levels, train_config)
    if prepared.hashes["sha256"] != stored.data.get("sha256", prepared.hashes["sha256"]):
        raise DataError(f"{run.path} was trained on other images "
                        f"({stored.data.get('source', 'unknown')}); resume it with its own.")
    trainer = ImageTrainer(runs.read_image_config(run.path), train_config, prepared,
                           strategy or make_strategy())
    manager = trainer.checkpoint_manager(run)
    history: list[dict[str, Any]] = []
    if manager.latest_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_consumed()
        history = run.read_metrics().get("history", [])[: int(trainer.state.epoch.numpy())]
    return dataclasses.replace(train(trainer, run, on_epoch, history), run_dir=Path(run_dir))


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _with(config, settings: dict[str, Any], cls: type):
    return config.replace(**{k: v for k, v in settings.items() if k in _fields(cls)})
