"""Matplotlib figures of a 2-D flow: data, log-density, samples, and the latent space."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from matplotlib.figure import Figure

from tfp_realnvp.flow import encode
from tfp_realnvp.sampling import stateless_seed

tfd = tfp.distributions


def plot_flow(flow: tfd.Distribution, data: np.ndarray, path: str | os.PathLike,
              num_samples: int = 3000, seed: int = 0, grid_size: int = 200) -> None:
    """Writes a four-panel figure: data, model log-density, model samples, data in latent z.

    Only for 2-D flows; raises ValueError otherwise.

    Args:
      flow: a 2-D flow (or ensemble; its latent panel uses member 0).
      data: `[N, 2]` rows in data units.
      path: the image file (its extension picks the format, e.g. `.png`).
      num_samples: model samples drawn for the third panel.
      seed: the samples' seed.
      grid_size: points per axis of the log-density map.
    """
    if data.ndim != 2 or data.shape[1] != 2 or int(flow.event_shape[-1]) != 2:
        raise ValueError(f"plot_flow draws 2-D flows and data; got data shape {data.shape}.")
    lo, hi = data.min(axis=0), data.max(axis=0)
    pad = 0.2 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid_size, dtype=np.float32)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    log_density = flow.log_prob(grid).numpy().reshape(grid_size, grid_size)
    samples = flow.sample(num_samples, seed=stateless_seed(seed)).numpy()
    latent = encode(flow, tf.constant(data)).numpy()

    # A bare Figure renders with the Agg canvas on savefig and leaves pyplot's backend
    # (and a notebook's inline figures) alone.
    figure = Figure(figsize=(16, 4))
    axes = figure.subplots(1, 4)
    axes[0].scatter(data[:, 0], data[:, 1], s=2, color="tab:blue")
    axes[0].set_title("data")
    image = axes[1].imshow(np.maximum(log_density, log_density.max() - 12), origin="lower",
                           extent=(xs[0], xs[-1], ys[0], ys[-1]), aspect="auto")
    figure.colorbar(image, ax=axes[1])
    axes[1].set_title("model log-density")
    axes[2].scatter(samples[:, 0], samples[:, 1], s=2, color="tab:orange")
    axes[2].set_title("model samples")
    axes[3].scatter(latent[:, 0], latent[:, 1], s=2, color="tab:green")
    axes[3].set_title("data mapped to latent z")
    for axis in axes[[0, 2]]:
        axis.set_xlim(xs[0], xs[-1])
        axis.set_ylim(ys[0], ys[-1])
    figure.tight_layout()
    figure.savefig(path, dpi=90)
