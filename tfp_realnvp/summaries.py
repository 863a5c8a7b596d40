"""TensorBoard event files of a training run (`fit --tensorboard`), written with `tf.summary`.

```none
RUN/tensorboard/events.out.tfevents.*     one file per training process (a resume adds one)
  nll/train, nll/validation               per epoch (step = epoch; validation has step 0:
                                          the Gaussian start), as in metrics.json's history
  optimizer/learning_rate                 the rate of the epoch's last step
  optimizer/gradient_norm                 mean global norm of the (summed) gradient, pre-clip
  speed/steps_per_second                  training steps over training time
  samples/training, samples/best_model    2-D data: a PNG of data, samples and log-density
```
The summaries are written with `tf.summary.write` and the plugin metadata TensorBoard's
own `tf.summary.scalar`/`image` attach (plugins "scalars" and "images"): TensorFlow 2.21
does not depend on the `tensorboard` package (its `tf.summary.scalar` fails without it),
and writing needs nothing more than TensorFlow. Viewing does: `pip install tensorboard`,
then `tensorboard --logdir RUN/tensorboard`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

if TYPE_CHECKING:
    from tfp_realnvp.train import EpochMetrics, Trainer

TENSORBOARD_DIR = "tensorboard"
IMAGES_PER_RUN = 10  # a samples image every epochs // 10 epochs (and one of the best model)


def _metadata(plugin: str) -> summary_pb2.SummaryMetadata:
    """What TensorBoard's own summaries attach: the plugin's name, and its plugin data
    proto at version 0 with no field set (which serialises to no bytes)."""
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin, content=b""))


def write_scalar(tag: str, value: float, step: int) -> None:
    """A float32 scalar as TensorBoard's scalar plugin stores it, into the default writer."""
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                     metadata=_metadata("scalars"))


def write_png(tag: str, png: bytes, width: int, height: int, step: int) -> None:
    """One PNG image as TensorBoard's image plugin stores it (`[width, height, png]`
    strings), into the default writer."""
    tensor = tf.constant([str(width).encode(), str(height).encode(), png])
    tf.summary.write(tag, tensor, step=step, metadata=_metadata("images"))


class TensorBoardWriter:
    """Writes one run's per-epoch scalars and, for 2-D data, samples images.

    Used by `train._train` around the epoch loop: `write_epoch` after every epoch (its
    step is the epoch number, so a resumed run continues the curves), `write_final` once
    the best weights are back. The flow is the trainer's live one: images during training
    show the weights of that epoch, `samples/best_model` the weights kept.
    """

    def __init__(self, logdir: str | Path, trainer: Trainer, image_every: int | None = None,
                 num_samples: int = 1000) -> None:
        self.logdir = Path(logdir)
        self.trainer = trainer
        self.rows = trainer.splits[0][0]  # member 0's training rows, drawn beside samples
        self.dim = self.rows.shape[1]
        self.image_every = image_every or max(1, trainer.train_config.epochs // IMAGES_PER_RUN)
        self.num_samples = num_samples
        self._writer = tf.summary.create_file_writer(str(self.logdir))

    def write_epoch(self, record: EpochMetrics) -> None:
        """The epoch's scalars (those `record` has), and an image every `image_every`."""
        with self._writer.as_default():
            if record.epoch == 1:
                initial = float(np.mean(self.trainer.state.initial_validation_nll.numpy()))
                write_scalar("nll/validation", initial, 0)
            scalars = {"nll/train": record.train_nll,
                       "nll/validation": record.validation_nll,
                       "optimizer/learning_rate": record.learning_rate,
                       "optimizer/gradient_norm": record.gradient_norm,
                       "speed/steps_per_second": record.steps_per_second}
            for tag, value in scalars.items():
                if value is not None:
                    write_scalar(tag, value, record.epoch)
            if self.dim == 2 and record.epoch % self.image_every == 0:
                self._write_samples("samples/training", record.epoch,
                                    f"weights of epoch {record.epoch}")
        self._writer.flush()

    def write_final(self, epoch: int) -> None:
        """The image of the kept (best) weights, at the last epoch's step."""
        if self.dim == 2:
            best = int(self.trainer.state.best_epoch.numpy().max())
            with self._writer.as_default():
                self._write_samples("samples/best_model", epoch,
                                    f"kept weights (best epoch {best})")
        self._writer.flush()

    def _write_samples(self, tag: str, step: int, title: str) -> None:
        from tfp_realnvp.plots import DPI, samples_figure

        figure = samples_figure(self.trainer.flow, self.rows, self.num_samples, title=title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        width, height = (int(round(v * DPI)) for v in figure.get_size_inches())
        write_png(tag, buffer.getvalue(), width, height, step)

    def close(self) -> None:
        self._writer.close()


@contextlib.contextmanager
def tensorboard_writer(run_path: Path, trainer: Trainer,
                       enabled: bool | None) -> Iterator[TensorBoardWriter | None]:
    """A writer into `run_path/tensorboard` while the block runs, or None.

    `enabled=None` (a resumed run not told either way) continues a run that already has
    event files. Only the worker that saves summaries writes (all but one worker of a
    multi-worker strategy do not).
    """
    logdir = Path(run_path) / TENSORBOARD_DIR
    if enabled is None:
        enabled = logdir.is_dir()
    if not enabled or not getattr(trainer.strategy.extended, "should_save_summary", True):
        yield None
        return
    writer = TensorBoardWriter(logdir, trainer)
    try:
        yield writer
    finally:
        writer.close()
