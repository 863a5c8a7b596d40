"""`AffineCoupling`: the RealNVP affine coupling step as a `tfp.bijectors.Bijector`."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

tfb = tfp.bijectors

Conditioner = Callable[[tf.Tensor], tf.Tensor]


def soft_clamp(raw: tf.Tensor, bound: float) -> tf.Tensor:
    """Smoothly bounds `raw` to `(-bound, bound)`: `bound * tanh(raw / bound)`.

    The map is the identity near 0 (slope 1), so a zero-initialised conditioner still starts
    the flow at the identity, and no log-scale can leave the interval: `exp(log_scale)`
    stays within `[exp(-bound), exp(bound)]` whatever the network outputs.
    """
    return bound * tf.math.tanh(raw / bound)


class AffineCoupling(tfb.Bijector):
    """Affine coupling: half of the event passes through and parameterises the other half.

    With `x = [x_a, x_b]` split on the last axis at `num_conditioning`, a conditioner
    network `(shift, raw) = NN([x_a, context])`, and `s = B * tanh(raw / B)` (B the
    log-scale bound):

    ```none
    forward:  y_a = x_a;  y_b = x_b * exp(s(x_a)) + shift(x_a)
    inverse:  x_a = y_a;  x_b = (y_b - shift(y_a)) * exp(-s(y_a))
    log-dets: fldj(x) = sum(s(x_a));  ildj(y) = -sum(s(y_a))
    ```

    The Jacobian is triangular, so the log-determinant is exact and costs nothing beyond
    the network call. The network runs once per direction: the forward (inverse) pass
    returns its log-det along with its output and TFP's bijector cache keeps it, so
    `log_prob` of a `TransformedDistribution` does not call the network a second time
    (TFP's own `tfb.RealNVP` does).

    The conditioner maps `[N, num_conditioning + context_dim]` to
    `[N, 2 * (event_dim - num_conditioning)]` (shift first, then raw log-scale); any
    batch shape is flattened to `N` around the call. With `context_dim > 0` every method
    takes `context=` (shape `[..., context_dim]`, broadcast against the batch), and the
    flow models `p(x | context)`; in a `tfb.Chain`, pass it by the coupling's name
    (`tfp_realnvp.context_kwargs` builds that dict).

    Example (run as a doctest by the test suite):

    >>> import tensorflow as tf
    >>> from tfp_realnvp.networks import make_conditioner
    >>> net = make_conditioner(input_dim=1, output_dim=2, hidden_units=32,
    ...                        num_hidden_layers=2)
    >>> coupling = AffineCoupling(event_dim=2, num_conditioning=1, conditioner=net)
    >>> x = tf.random.stateless_normal([8, 2], seed=[1, 2])
    >>> y = coupling.forward(x)
    >>> y.shape
    TensorShape([8, 2])
    >>> float(tf.reduce_max(tf.abs(y - x)))  # zero-initialised last layer: the identity
    0.0
    """

    # `_augmented_forward/_augmented_inverse` return (output, {"fldj", "ildj"}); the cache
    # stores those attributes so the log-det methods find them without a second pass.
    _cache = cache_util.BijectorCacheWithGreedyAttrs(
        forward_name="_augmented_forward", inverse_name="_augmented_inverse"
    )

    def __init__(
        self,
        event_dim: int,
        num_conditioning: int,
        conditioner: Conditioner,
        log_scale_bound: float = 3.0,
        context_dim: int = 0,
        validate_args: bool = False,
        name: str = "affine_coupling",
    ) -> None:
        parameters = dict(locals())
        if event_dim < 2:
            raise ValueError(f"'event_dim' must be >= 2; got {event_dim}.")
        if not 1 <= num_conditioning < event_dim:
            raise ValueError(
                f"'num_conditioning' must be in [1, {event_dim - 1}]; got {num_conditioning}."
            )
        if not log_scale_bound > 0:
            raise ValueError(f"'log_scale_bound' must be > 0; got {log_scale_bound}.")
        if context_dim < 0:
            raise ValueError(f"'context_dim' must be >= 0; got {context_dim}.")
        with tf.name_scope(name) as name:
            self._event_dim = int(event_dim)
            self._num_conditioning = int(num_conditioning)
            # Kept as an attribute so tf.Module tracks the network's variables.
            self._conditioner = conditioner
            self._log_scale_bound = float(log_scale_bound)
            self._context_dim = int(context_dim)
            super().__init__(
                forward_min_event_ndims=1,
                validate_args=validate_args,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}  # No tensor parameters: the conditioner carries the variables.

    @property
    def event_dim(self) -> int:
        return self._event_dim

    @property
    def num_conditioning(self) -> int:
        return self._num_conditioning

    @property
    def conditioner(self) -> Conditioner:
        return self._conditioner

    @property
    def log_scale_bound(self) -> float:
        return self._log_scale_bound

    @property
    def context_dim(self) -> int:
        return self._context_dim

    def _split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        width = x.shape[-1]
        if width is not None and width != self._event_dim:
            raise ValueError(
                f"{self.name}: expected events of width {self._event_dim} on the last "
                f"axis; got shape {x.shape}."
            )
        return x[..., : self._num_conditioning], x[..., self._num_conditioning :]

    @staticmethod
    def _merge(x_a: tf.Tensor, x_b: tf.Tensor) -> tf.Tensor:
        return tf.concat([x_a, x_b], axis=-1)

    def _conditioner_input(self, x_a: tf.Tensor, context: tf.Tensor | None) -> tf.Tensor:
        if self._context_dim == 0:
            if context is not None:
                raise ValueError(f"{self.name} was built with context_dim=0; got a context.")
            return x_a
        if context is None:
            raise ValueError(
                f"{self.name} is conditional: pass context= of shape [..., {self._context_dim}]."
            )
        context = tf.convert_to_tensor(context, dtype=x_a.dtype, name="context")
        if context.shape[-1] is not None and context.shape[-1] != self._context_dim:
            raise ValueError(
                f"{self.name}: expected context of width {self._context_dim}; "
                f"got shape {context.shape}."
            )
        batch_shape = tf.broadcast_dynamic_shape(tf.shape(x_a)[:-1], tf.shape(context)[:-1])
        x_a = tf.broadcast_to(x_a, tf.concat([batch_shape, [self._num_conditioning]], 0))
        context = tf.broadcast_to(context, tf.concat([batch_shape, [self._context_dim]], 0))
        return tf.concat([x_a, context], axis=-1)

    def _inner_bijector(self, x_a: tf.Tensor, context: tf.Tensor | None) -> tfb.Bijector:
        """Runs the conditioner once; returns `Shift(shift) o Scale(exp(s))` for x_b."""
        inputs = self._conditioner_input(x_a, context)
        flat = tf.reshape(inputs, [-1, self._num_conditioning + self._context_dim])
        raw = self._conditioner(flat)
        num_transformed = self._event_dim - self._num_conditioning
        raw = tf.reshape(raw, tf.concat([tf.shape(inputs)[:-1], [2 * num_transformed]], 0))
        shift, raw_log_scale = tf.split(raw, 2, axis=-1)
        log_scale = soft_clamp(raw_log_scale, self._log_scale_bound)
        return tfb.Chain([tfb.Shift(shift), tfb.Scale(log_scale=log_scale)])

    def _augmented_forward(self, x: tf.Tensor, context: tf.Tensor | None = None):
        x_a, x_b = self._split(x)
        inner = self._inner_bijector(x_a, context)
        fldj = inner.forward_log_det_jacobian(x_b, event_ndims=1)
        return self._merge(x_a, inner.forward(x_b)), {"fldj": fldj, "ildj": -fldj}

    def _augmented_inverse(self, y: tf.Tensor, context: tf.Tensor | None = None):
        y_a, y_b = self._split(y)
        inner = self._inner_bijector(y_a, context)
        ildj = inner.inverse_log_det_jacobian(y_b, event_ndims=1)
        return self._merge(y_a, inner.inverse(y_b)), {"ildj": ildj, "fldj": -ildj}

    def _forward(self, x, **kwargs):
        return self._augmented_forward(x, **kwargs)[0]

    def _inverse(self, y, **kwargs):
        return self._augmented_inverse(y, **kwargs)[0]

    # Reached only on a cache miss (the log-det asked for before the transformation):
    # the caller stores the value in the same cache attributes.
    def _forward_log_det_jacobian(self, x, **kwargs):
        return self._augmented_forward(x, **kwargs)[1]["fldj"]

    def _inverse_log_det_jacobian(self, y, **kwargs):
        return self._augmented_inverse(y, **kwargs)[1]["ildj"]
