"""Masked affine couplings of images: RealNVP's checkerboard and channel-wise masks.

A binary mask `m` (1: passes through and conditions, 0: transformed) of shape `[H, W, 1]`
(checkerboard) or `[1, 1, C]` (channel halves); the conditioner is a convolutional
network of the masked image, called once per direction (TFP's greedy cache keeps the
log-det with the map, as for the vector couplings).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

from tfp_realnvp.bijectors.augmented import LogDetWithMap
from tfp_realnvp.bijectors.coupling import soft_clamp
from tfp_realnvp.errors import ConfigError

tfb = tfp.bijectors

MASKS = ("checkerboard", "channel")


def checkerboard_mask(height: int, width: int, parity: int) -> np.ndarray:
    """`[H, W, 1]`: 1 where `(i + j + parity)` is even, else 0."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return ((i + j + parity) % 2 == 0).astype(np.float32)[..., None]


def channel_mask(channels: int, parity: int) -> np.ndarray:
    """`[1, 1, C]`: 1 on the first half of the channels (parity 0) or on the second half
    (parity 1), the first half being `C // 2` channels."""
    first = np.arange(channels) < channels // 2
    return (first if parity == 0 else ~first).astype(np.float32)[None, None, :]


def make_mask(kind: str, shape: tuple[int, int, int], parity: int) -> np.ndarray:
    """The mask of `kind` for images of `shape` `(H, W, C)`; ConfigError for an unknown
    kind or a channel mask of a one-channel image."""
    height, width, channels = shape
    if kind == "checkerboard":
        return checkerboard_mask(height, width, parity)
    if kind == "channel":
        if channels < 2:
            raise ConfigError(f"A channel mask needs >= 2 channels; got shape {shape}.")
        return channel_mask(channels, parity)
    raise ConfigError(f"'mask' must be one of {MASKS}; got {kind!r}.")


class MaskedImageCoupling(LogDetWithMap, tfb.Bijector):
    """Affine coupling of images with a binary mask `m` (RealNVP, section 3.4).

    The conditioner maps `[N, H, W, C + 1]` (the masked image `m * x` and the mask) to
    `[N, H, W, 2C]` (shift `t` and raw log-scale), zero-initialised last layer; with
    `s = (1 - m) * B tanh(raw / B)` and `t' = (1 - m) t`:

    ```none
    forward:  y = m x + (1 - m) (x exp(s) + t)  = x exp(s) + t'     (s, t' from m x)
    inverse:  x = (y - t') exp(-s)                                   (m y = m x)
    log-dets: fldj(x) = sum_{h,w,c} s;  ildj(y) = -fldj(x)
    ```
    `s` and `t'` depend on `m x` only and vanish where `m = 1`, so the Jacobian is
    triangular with diagonal `exp(s)`: the log-det is exact. The inner bijector is
    `Shift(t') o Scale(log_scale=s)`.
    """

    _cache = cache_util.BijectorCacheWithGreedyAttrs(
        forward_name="_augmented_forward", inverse_name="_augmented_inverse")

    def __init__(self, mask: np.ndarray, conditioner: Callable[[tf.Tensor], tf.Tensor],
                 log_scale_bound: float = 3.0, validate_args: bool = False,
                 name: str = "image_coupling") -> None:
        parameters = dict(locals())
        if not log_scale_bound > 0:
            raise ConfigError(f"'log_scale_bound' must be > 0; got {log_scale_bound}.")
        if np.ndim(mask) != 3:
            raise ConfigError(f"'mask' must have rank 3 ([H, W, 1] or [1, 1, C]); got shape "
                              f"{np.shape(mask)}.")
        with tf.name_scope(name) as name:
            self._mask = tf.constant(mask, tf.float32)
            self._log_scale_bound = float(log_scale_bound)
            # Kept as an attribute so tf.Module tracks the network's variables.
            self._conditioner = conditioner
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    @property
    def mask(self) -> tf.Tensor:
        return self._mask

    @property
    def conditioner(self) -> Callable[[tf.Tensor], tf.Tensor]:
        return self._conditioner

    def _inner_bijector(self, fixed: tf.Tensor) -> tfb.Bijector:
        """`Shift(t') o Scale(log_scale=s)` from the conditioner's output on `m x`."""
        shape = tf.shape(fixed)
        images = tf.reshape(fixed, tf.concat([[-1], shape[-3:]], 0))
        mask = tf.broadcast_to(self._mask, tf.shape(images)[1:])
        ones = tf.ones_like(images[..., :1])
        mask_channel = ones * tf.reduce_max(mask, axis=-1, keepdims=True)
        raw = self._conditioner(tf.concat([images, mask_channel], axis=-1))
        raw = tf.reshape(raw, tf.concat([shape, [2]], 0))
        free = 1.0 - self._mask
        shift = raw[..., 0] * free
        log_scale = soft_clamp(raw[..., 1], self._log_scale_bound) * free
        return tfb.Chain([tfb.Shift(shift), tfb.Scale(log_scale=log_scale)])

    def _augmented_forward(self, x: tf.Tensor):
        inner = self._inner_bijector(x * self._mask)
        fldj = inner.forward_log_det_jacobian(x, event_ndims=3)
        return inner.forward(x), {"fldj": fldj, "ildj": -fldj}

    def _augmented_inverse(self, y: tf.Tensor):
        inner = self._inner_bijector(y * self._mask)
        ildj = inner.inverse_log_det_jacobian(y, event_ndims=3)
        return inner.inverse(y), {"ildj": ildj, "fldj": -ildj}
