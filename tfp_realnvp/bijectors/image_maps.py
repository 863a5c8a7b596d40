"""Image bijectors without networks: the logit pixel map, the 2x2 squeeze, actnorm.

Events are images `[..., H, W, C]` (event rank 3); every log-det is exact and summed over
the image. Each map is written in the *encoding* direction (data -> latent), as the RealNVP
paper describes the model; the image flow inverts the whole encoder once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.errors import ConfigError

tfb = tfp.bijectors


class LogitPixels(tfb.Bijector):
    """Dequantised pixels in `[0, L]` to logit space (RealNVP's pre-processing).

    With `p = a + (1 - 2a) x / L` (`a` = `alpha`, `L` = `levels`):

    ```none
    forward:  y = logit(p) = log p - log(1 - p)
    inverse:  x = L (sigmoid(y) - a) / (1 - 2a)
    log-dets: fldj(x) = sum[log((1 - 2a) / L) - log p - log(1 - p)];  ildj(y) = -fldj(x)
    ```
    The map is elementwise, so its Jacobian is diagonal: the log-det is exact. A model of
    `y` then scores `x` in the units of the levels (a pixel's bin has width 1), so its NLL
    is directly the dequantised NLL of the discrete image.

    >>> import tensorflow as tf
    >>> b = LogitPixels(levels=16)
    >>> float(b.forward(tf.constant(8.0)))  # the middle level maps to 0
    0.0
    """

    def __init__(self, levels: float, alpha: float = 0.05, validate_args: bool = False,
                 name: str = "logit_pixels") -> None:
        parameters = dict(locals())
        if not levels > 0:
            raise ConfigError(f"'levels' must be > 0; got {levels}.")
        if not 0 < alpha < 0.5:
            raise ConfigError(f"'alpha' must be in (0, 0.5); got {alpha}.")
        self._levels = float(levels)
        self._alpha = float(alpha)
        with tf.name_scope(name) as name:
            super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    @property
    def levels(self) -> float:
        return self._levels

    @property
    def alpha(self) -> float:
        return self._alpha

    def _p(self, x: tf.Tensor) -> tf.Tensor:
        return self._alpha + (1.0 - 2.0 * self._alpha) * x / self._levels

    def _forward(self, x):
        p = self._p(x)
        return tf.math.log(p) - tf.math.log1p(-p)

    def _inverse(self, y):
        return self._levels * (tf.math.sigmoid(y) - self._alpha) / (1.0 - 2.0 * self._alpha)

    def _forward_log_det_jacobian(self, x):
        p = self._p(x)
        constant = np.log((1.0 - 2.0 * self._alpha) / self._levels)
        return constant - tf.math.log(p) - tf.math.log1p(-p)

    def _inverse_log_det_jacobian(self, y):
        # log p + log(1 - p) = log sigmoid(y) + log sigmoid(-y), stable for any y
        constant = np.log((1.0 - 2.0 * self._alpha) / self._levels)
        return tf.math.log_sigmoid(y) + tf.math.log_sigmoid(-y) - constant


class Squeeze(tfb.Bijector):
    """2x2 space to depth: `[..., H, W, C] -> [..., H/2, W/2, 4C]` (a permutation).

    ```none
    forward:  y[i, j, (2a + b) C + c] = x[2i + a, 2j + b, c]     (tf.nn.space_to_depth)
    inverse:  x = depth_to_space(y)
    log-dets: fldj = ildj = 0                                    (a permutation)
    ```
    """

    def __init__(self, validate_args: bool = False, name: str = "squeeze") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            super().__init__(forward_min_event_ndims=3, inverse_min_event_ndims=3,
                             is_constant_jacobian=True, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    @staticmethod
    def _four_d(fn, x: tf.Tensor) -> tf.Tensor:
        """`fn` of the images `x` with any batch shape flattened to one axis around it."""
        shape = tf.shape(x)
        out = fn(tf.reshape(x, tf.concat([[-1], shape[-3:]], 0)), 2)
        return tf.reshape(out, tf.concat([shape[:-3], tf.shape(out)[1:]], 0))

    def _forward(self, x):
        return self._four_d(tf.nn.space_to_depth, x)

    def _inverse(self, y):
        return self._four_d(tf.nn.depth_to_space, y)

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], x.dtype)

    def _forward_event_shape(self, shape):
        h, w, c = shape[-3:]
        if h is not None and h % 2 or w is not None and w % 2:
            raise ConfigError(f"Squeeze needs an even height and width; got {shape}.")
        return shape[:-3].concatenate([h and h // 2, w and w // 2, c and 4 * c])

    def _inverse_event_shape(self, shape):
        h, w, c = shape[-3:]
        return shape[:-3].concatenate([h and 2 * h, w and 2 * w, c and c // 4])

    def _forward_event_shape_tensor(self, shape):
        return tf.concat([shape[:-3], shape[-3:] * tf.constant([1, 1, 4]) //
                          tf.constant([2, 2, 1])], 0)

    def _inverse_event_shape_tensor(self, shape):
        return tf.concat([shape[:-3], shape[-3:] * tf.constant([2, 2, 1]) //
                          tf.constant([1, 1, 4])], 0)


class ActNorm(tfb.Bijector):
    """Per-channel affine normalisation (Glow's actnorm), learned, with its log-det.

    With one `loc` and `log_scale` per channel and images `H x W`:

    ```none
    forward:  y = (x - loc) * exp(-log_scale)
    inverse:  x = y * exp(log_scale) + loc
    log-dets: fldj(x) = -H W sum_c log_scale_c;  ildj(y) = -fldj
    ```
    It starts as the identity; `initialize_from(x)` sets it, on the host, from a batch (or
    the training statistics) so its output has zero mean and unit variance per channel
    (the data-dependent initialisation that makes a deep flow start stable).
    """

    def __init__(self, channels: int, validate_args: bool = False,
                 name: str = "actnorm") -> None:
        parameters = dict(locals())
        if channels < 1:
            raise ConfigError(f"'channels' must be >= 1; got {channels}.")
        with tf.name_scope(name) as name:
            self.loc = tf.Variable(tf.zeros([channels]), name="loc")
            self.log_scale = tf.Variable(tf.zeros([channels]), name="log_scale")
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    def initialize_from(self, x: np.ndarray | tf.Tensor, floor: float = 1e-3) -> None:
        """Sets `loc` and `log_scale` to the channel means and log standard deviations of
        the images `x` (`[N, H, W, C]`); standard deviations below `floor` count as it."""
        values = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
        self.loc.assign(values.mean(axis=0).astype(np.float32))
        self.log_scale.assign(np.log(np.maximum(values.std(axis=0), floor)).astype(np.float32))

    def _area(self, x: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)
        return tf.cast(shape[-3] * shape[-2], x.dtype)

    def _forward(self, x):
        return (x - self.loc) * tf.exp(-self.log_scale)

    def _inverse(self, y):
        return y * tf.exp(self.log_scale) + self.loc

    def _forward_log_det_jacobian(self, x):
        return -self._area(x) * tf.reduce_sum(self.log_scale)

    def _inverse_log_det_jacobian(self, y):
        return self._area(y) * tf.reduce_sum(self.log_scale)
