"""The picture of an image model: data, samples at two temperatures, each scale's latents,
and the NLL history."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tfp_realnvp.images.config import ImageConfig
from tfp_realnvp.images.model import encode, sample_images

GRID = 36  # images per grid panel


def space_to_depth(x: np.ndarray) -> np.ndarray:
    """NumPy's `tf.nn.space_to_depth(x, 2)`: `y[i, j, (2a + b) C + c] = x[2i + a, 2j + b, c]`."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        n, h // 2, w // 2, 4 * c)


def scale_latents(z: np.ndarray, num_scales: int) -> list[np.ndarray]:
    """The latent `z` `[N, H, W, C]` cut into each scale's factored-out part (the last
    scale: what reached it), as the encoder's unsqueezes left them."""
    parts = []
    for _ in range(num_scales - 1):
        squeezed = space_to_depth(z)
        half = squeezed.shape[-1] // 2
        parts.append(squeezed[..., :half])
        z = squeezed[..., half:]
    return parts + [z]


def _grid(images: np.ndarray, columns: int) -> np.ndarray:
    """`[N, H, W, C]` -> one `[rows (H + 1), columns (W + 1), C]` mosaic (NaN gaps)."""
    n, h, w, c = images.shape
    rows = int(np.ceil(n / columns))
    mosaic = np.full((rows * (h + 1), columns * (w + 1), c), np.nan)
    for i, image in enumerate(images):
        r, k = divmod(i, columns)
        mosaic[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = image
    return mosaic


def _show(axes: Axes, images: np.ndarray, title: str, low: float, high: float) -> None:
    mosaic = _grid(images, int(np.ceil(np.sqrt(len(images)))))
    shown = mosaic[..., 0] if mosaic.shape[-1] in (1, 2) else np.clip(
        (mosaic[..., :3] - low) / (high - low), 0, 1)
    axes.imshow(shown, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()


def plot_image_model(flow: Any, config: ImageConfig, images: np.ndarray,
                     metrics: dict[str, Any] | None, seed: int = 0,
                     title: str | None = None) -> Figure:
    """Row 1: data, samples at temperature 1 and 0.7, the train and validation NLL per epoch
    (nats per image); row 2: each scale's latents of the first data images (channel 0)."""
    figure = Figure(figsize=(12, 6.5), layout="constrained")
    top = figure.subplots(2, 4, gridspec_kw={"height_ratios": [1, 1]})
    levels = config.levels
    data = images[:GRID]
    _show(top[0, 0], data, "data", 0, levels)
    for axes, temperature in ((top[0, 1], 1.0), (top[0, 2], 0.7)):
        drawn = sample_images(flow, GRID, tf.constant([seed, 1], tf.int32), temperature)
        _show(axes, np.clip(drawn.numpy(), 0, levels), f"samples, T = {temperature:g}", 0,
              levels)
    _history(top[0, 3], metrics)
    noisy = (data + np.random.default_rng(seed).random(data.shape)).astype(np.float32)
    latents = scale_latents(encode(flow, noisy).numpy(), config.num_scales)
    for index in range(4):
        axes = top[1, index]
        if index >= len(latents):
            axes.set_axis_off()
            continue
        part = latents[index][:16, ..., :1]
        _show(axes, part, f"scale {index} latents {list(part.shape[1:3])} (channel 0 of "
              f"{latents[index].shape[-1]})", -3, 3)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def _history(axes: Axes, metrics: dict[str, Any] | None) -> None:
    history = (metrics or {}).get("history") or []
    if not history:
        axes.set_axis_off()
        axes.set_title("no training history", fontsize=9)
        return
    epochs = [h["epoch"] for h in history]
    axes.plot(epochs, [h["train_nll"] for h in history], label="train")
    axes.plot(epochs, [h["validation_nll"] for h in history], label="validation")
    axes.set_xlabel("epoch")
    axes.set_ylabel("NLL (nats per image)")
    axes.legend(fontsize=8)
