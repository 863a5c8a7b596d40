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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

TENSORBOARD_DIR = "tensorboard"
IMAGES_PER_RUN = 10  # a samples image every epochs // 10 epochs (and one of the best model)
# tag -> the key of an epoch's figures (a row of metrics.json's history)
SCALARS = {"nll/train": "train_nll",
           "nll/validation": "validation_nll",
           "optimizer/learning_rate": "learning_rate",
           "optimizer/gradient_norm": "gradient_norm",
           "speed/steps_per_second": "steps_per_second"}


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
    """Writes one run's per-epoch scalars and, for an unconditional flow of 2-D events
    (`event_dim == 2`, `context_dim == 0`: the picture draws p(x), which a conditional
    flow only has given a context), samples images.

    Used around the epoch loop (`training.loop`): `write_epoch` after every epoch (its
    step is the epoch number, so a resumed run continues the curves), `write_final` once
    the best weights are back. `flow` is the live flow: images during training show the
    weights of that epoch, `samples/best_model` the weights kept. `rows` are training
    events `[N, event_dim]` drawn beside the samples; `epochs` the epochs planned.
    """

    def __init__(self, logdir: str | Path, flow: Any, event_dim: int, rows: np.ndarray,
                 epochs: int, context_dim: int = 0, image_every: int | None = None,
                 num_samples: int = 1000) -> None:
        self.logdir = Path(logdir)
        self.flow = flow
        self.rows = rows
        self.pictures = event_dim == 2 and not context_dim
        self.image_every = image_every or max(1, epochs // IMAGES_PER_RUN)
        self.num_samples = num_samples
        self._writer = tf.summary.create_file_writer(str(self.logdir))

    def write_epoch(self, figures: Mapping[str, Any],
                    initial_validation_nll: float | None = None) -> None:
        """An epoch's scalars (`figures`: its history row, those of `SCALARS` it holds,
        step `figures["epoch"]`), the initial validation NLL at step 0 when given, and an
        image every `image_every` epochs."""
        epoch = int(figures["epoch"])
        with self._writer.as_default():
            if initial_validation_nll is not None:
                write_scalar("nll/validation", initial_validation_nll, 0)
            for tag, key in SCALARS.items():
                if figures.get(key) is not None:
                    write_scalar(tag, figures[key], epoch)
            if self.pictures and epoch % self.image_every == 0:
                self._write_samples("samples/training", epoch, f"weights of epoch {epoch}")
        self._writer.flush()

    def write_final(self, epoch: int, best_epoch: int) -> None:
        """The image of the kept (best) weights, at the last epoch's step."""
        if self.pictures:
            with self._writer.as_default():
                self._write_samples("samples/best_model", epoch,
                                    f"kept weights (best epoch {best_epoch})")
        self._writer.flush()

    def _write_samples(self, tag: str, step: int, title: str) -> None:
        from tfp_realnvp.plots import DPI, samples_figure

        figure = samples_figure(self.flow, self.rows, self.num_samples, title=title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        width, height = (int(round(v * DPI)) for v in figure.get_size_inches())
        write_png(tag, buffer.getvalue(), width, height, step)

    def close(self) -> None:
        self._writer.close()


@contextlib.contextmanager
def tensorboard_writer(run_path: str | Path, enabled: bool | None, flow: Any, event_dim: int,
                       rows: np.ndarray, epochs: int, context_dim: int = 0,
                       writes: bool = True) -> Iterator[TensorBoardWriter | None]:
    """A writer into `run_path/tensorboard` while the block runs, or None.

    `enabled=None` (a resumed run not told either way) continues a run that already has
    event files. `writes=False` (a process that does not save summaries: all but one
    worker of a multi-worker strategy) gives None. The other arguments are the writer's.
    """
    logdir = Path(run_path) / TENSORBOARD_DIR
    if enabled is None:
        enabled = logdir.is_dir()
    if not enabled or not writes:
        yield None
        return
    writer = TensorBoardWriter(logdir, flow, event_dim, rows, epochs, context_dim)
    try:
        yield writer
    finally:
        writer.close()
