"""RealNVP's multi-scale factor-out: half the channels leave, the rest go one scale deeper."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

from tfp_realnvp.bijectors.augmented import LogDetWithMap
from tfp_realnvp.errors import ConfigError

tfb = tfp.bijectors


class FactorOut(LogDetWithMap, tfb.Bijector):
    """Passes the first `num_out` channels through (factored out: they are latents now) and
    maps the rest with the `inner` bijector (the next scale, event rank 3, shape-keeping):

    ```none
    forward:  y = [x_out, g(x_rest)]         (split and concatenated on the channel axis)
    inverse:  x = [y_out, g^-1(y_rest)]
    log-dets: fldj(x) = fldj_g(x_rest);  ildj(y) = ildj_g(y_rest)
    ```
    The Jacobian is block-diagonal (identity, then g's), so the log-det is g's, exact.
    With every scale's output unsqueezed back, the final latent is the whole tensor of the
    image's own shape, and a standard Normal on it is RealNVP's factored-out Gaussian at
    every scale. The map returns its log-det with it (one pass of `g`, cached).
    """

    _cache = cache_util.BijectorCacheWithGreedyAttrs(
        forward_name="_augmented_forward", inverse_name="_augmented_inverse")

    def __init__(self, num_out: int, inner: tfb.Bijector, validate_args: bool = False,
                 name: str = "factor_out") -> None:
        parameters = dict(locals())
        if num_out < 1:
            raise ConfigError(f"'num_out' must be >= 1; got {num_out}.")
        with tf.name_scope(name) as name:
            self._num_out = int(num_out)
            self._inner = inner  # an attribute: tf.Module tracks its variables
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    @property
    def num_out(self) -> int:
        return self._num_out

    @property
    def inner(self) -> tfb.Bijector:
        return self._inner

    def _split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return x[..., : self._num_out], x[..., self._num_out :]

    def _augmented_forward(self, x: tf.Tensor):
        x_out, x_rest = self._split(x)
        y_rest = self._inner.forward(x_rest)
        fldj = self._inner.forward_log_det_jacobian(x_rest, event_ndims=3)
        return tf.concat([x_out, y_rest], -1), {"fldj": fldj, "ildj": -fldj}

    def _augmented_inverse(self, y: tf.Tensor):
        y_out, y_rest = self._split(y)
        x_rest = self._inner.inverse(y_rest)
        ildj = self._inner.inverse_log_det_jacobian(y_rest, event_ndims=3)
        return tf.concat([y_out, x_rest], -1), {"ildj": ildj, "fldj": -ildj}
