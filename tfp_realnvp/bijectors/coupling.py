"""Coupling bijectors: the `Coupling` base and `AffineCoupling` (RealNVP).

A coupling is a `tfp.bijectors.Bijector` whose first `num_conditioning` coordinates pass
through and feed a conditioner network; the network's output parameterises an elementwise
inner bijector of the others. `Coupling` holds the shared machinery (split, merge, context,
one network call per direction, the conditioner's widths); a subclass says how many
parameters each transformed coordinate needs and which inner bijector they make
(`SplineCoupling`, in `spline.py`, is the other kind).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

from tfp_realnvp.bijectors.augmented import LogDetWithMap
from tfp_realnvp.bijectors.context import ContextInput
from tfp_realnvp.errors import ConfigError

if TYPE_CHECKING:
    from tfp_realnvp.config import FlowConfig

tfb = tfp.bijectors

Conditioner = Callable[[tf.Tensor], tf.Tensor]


def soft_clamp(raw: tf.Tensor, bound: float) -> tf.Tensor:
    """Smoothly bounds `raw` to `(-bound, bound)`: `bound * tanh(raw / bound)`.

    The map is the identity near 0 (slope 1), so a zero-initialised conditioner still starts
    the flow at the identity, and no log-scale can leave the interval: `exp(log_scale)`
    stays within `[exp(-bound), exp(bound)]` whatever the network outputs.
    """
    return bound * tf.math.tanh(raw / bound)


class Coupling(ContextInput, LogDetWithMap, tfb.Bijector):
    """Base of the coupling bijectors: `y_a = x_a`, `y_b = g(x_b; NN([x_a, context]))`.

    ```none
    forward:  y = [x_a, g_theta(x_b)]            theta = NN([x_a, context])
    inverse:  x = [y_a, g_theta^-1(y_b)]         theta = NN([y_a, context])
    log-dets: fldj(x) = sum log|g_theta'(x_b)|;  ildj(y) = -fldj(x)
    ```
    The Jacobian is block-triangular, so its log-determinant is the inner bijector's,
    exact. `_augmented_forward/_augmented_inverse` return the log-det with the output and
    TFP's greedy bijector cache keeps it: `log_prob` calls each network once (TFP's own
    `tfb.RealNVP` calls it twice).

    The conditioner maps `[N, num_conditioning + context_dim]` to
    `[N, (event_dim - num_conditioning) * params_per_dim]` (`conditioner_inputs` and
    `conditioner_outputs` give those widths); any batch shape is flattened to
    `N` around the call. With `num_members = M > 1` the coupling is M couplings stacked (an
    ensemble's members): events are `[..., M, event_dim]`, member m's slice goes through
    member m's network, and the conditioner maps `[N, M, in]` to `[N, M, out]`. With
    `context_dim > 0` every method takes `context=` (shape `[..., context_dim]`, broadcast
    against the batch, the same for every member) or, for an ensemble whose members see
    different rows (training), `member_context=` (shape `[..., M, context_dim]`, member m's
    in slice m); in a `tfb.Chain`, pass it by the coupling's name
    (`tfp_realnvp.bijector_kwargs` builds that dict). The context is given in raw units and
    standardised here, `(c - context_shift) / context_scale`, before the network sees it.
    """

    _cache = cache_util.BijectorCacheWithGreedyAttrs(
        forward_name="_augmented_forward", inverse_name="_augmented_inverse")

    params_per_dim: int = 0  # each subclass sets it from `params_per_dim_for`

    @classmethod
    def settings_from(cls, config: FlowConfig) -> dict[str, Any]:
        """The constructor arguments of this coupling kind that `config` sets."""
        raise NotImplementedError

    @classmethod
    def params_per_dim_for(cls, **settings: Any) -> int:
        """Parameters per transformed coordinate for these constructor settings (the one
        rule of the kind: the instance's `params_per_dim` and the network's width use it)."""
        raise NotImplementedError

    @staticmethod
    def conditioner_inputs(num_conditioning: int, context_dim: int) -> int:
        """The conditioner's input width: the conditioning coordinates, then the context."""
        return num_conditioning + context_dim

    @classmethod
    def conditioner_outputs(cls, num_transformed: int, config: FlowConfig) -> int:
        """The conditioner's output width for a coupling of this kind built from `config`:
        `num_transformed * params_per_dim`."""
        return num_transformed * cls.params_per_dim_for(**cls.settings_from(config))

    def __init__(self, event_dim: int, num_conditioning: int, conditioner: Conditioner,
                 context_dim: int, num_members: int, parameters: dict, validate_args: bool,
                 name: str, context_shift: Sequence[float] | None = None,
                 context_scale: Sequence[float] | None = None) -> None:
        if event_dim < 2:
            raise ConfigError(f"'event_dim' must be >= 2; got {event_dim}.")
        if not 1 <= num_conditioning < event_dim:
            raise ConfigError(
                f"'num_conditioning' must be in [1, {event_dim - 1}]; got {num_conditioning}.")
        self._init_context(context_dim, num_members, context_shift, context_scale)
        with tf.name_scope(name) as name:
            self._event_dim = int(event_dim)
            self._num_conditioning = int(num_conditioning)
            # Kept as an attribute so tf.Module tracks the network's variables.
            self._conditioner = conditioner
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             parameters=parameters, name=name)

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
    def num_transformed(self) -> int:
        return self._event_dim - self._num_conditioning

    @property
    def conditioner(self) -> Conditioner:
        return self._conditioner

    def _split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        width = x.shape[-1]
        if width is not None and width != self._event_dim:
            raise ValueError(
                f"{self.name}: expected events of width {self._event_dim} on the last "
                f"axis; got shape {x.shape}.")
        return x[..., : self._num_conditioning], x[..., self._num_conditioning :]

    @staticmethod
    def _merge(x_a: tf.Tensor, x_b: tf.Tensor) -> tf.Tensor:
        return tf.concat([x_a, x_b], axis=-1)

    def _conditioner_output(self, x_a: tf.Tensor, context: tf.Tensor | None,
                            member_context: tf.Tensor | None = None) -> tf.Tensor:
        """Runs the conditioner once: `[..., num_transformed, params_per_dim]`."""
        inputs = self._conditioner_input(x_a, context, member_context)
        width = self.conditioner_inputs(self._num_conditioning, self._context_dim)
        flat = tf.reshape(inputs, [-1, width] if self._num_members == 1 else
                          [-1, self._num_members, width])
        raw = self._conditioner(flat)
        shape = tf.concat([tf.shape(inputs)[:-1], [self.num_transformed, self.params_per_dim]],
                          0)
        return tf.reshape(raw, shape)

    def _inner_bijector(self, params: tf.Tensor) -> tfb.Bijector:
        """The elementwise bijector of `x_b` that `params` describe."""
        raise NotImplementedError

    def _inner_dtype(self, inverse: bool) -> tf.DType | None:
        """The dtype the inner bijector computes in, in the direction asked for (None: the
        events' own)."""
        return None

    def _transform(self, x_a: tf.Tensor, values: tf.Tensor, context: tf.Tensor | None,
                   member_context: tf.Tensor | None,
                   inverse: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """The inner bijector's map of `values` (its inverse if asked), with parameters
        from `x_a`, and its log-det over the event; computed in `_inner_dtype(inverse)`,
        returned in the values' dtype."""
        params = self._conditioner_output(x_a, context, member_context)
        dtype = self._inner_dtype(inverse)
        inside = values
        if dtype is not None:
            params, inside = tf.cast(params, dtype), tf.cast(values, dtype)
        out, log_det = self._inner_map(self._inner_bijector(params), inside, inverse)
        return tf.cast(out, values.dtype), tf.cast(log_det, values.dtype)

    def _inner_map(self, inner: tfb.Bijector, values: tf.Tensor,
                   inverse: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """The elementwise map and its log-det summed over the event (a subclass whose inner
        bijector computes both in one pass overrides this)."""
        if inverse:
            return inner.inverse(values), inner.inverse_log_det_jacobian(values, event_ndims=1)
        return inner.forward(values), inner.forward_log_det_jacobian(values, event_ndims=1)

    def _augmented_forward(self, x: tf.Tensor, context: tf.Tensor | None = None,
                           member_context: tf.Tensor | None = None):
        x_a, x_b = self._split(x)
        y_b, fldj = self._transform(x_a, x_b, context, member_context, inverse=False)
        return self._merge(x_a, y_b), {"fldj": fldj, "ildj": -fldj}

    def _augmented_inverse(self, y: tf.Tensor, context: tf.Tensor | None = None,
                           member_context: tf.Tensor | None = None):
        y_a, y_b = self._split(y)
        x_b, ildj = self._transform(y_a, y_b, context, member_context, inverse=True)
        return self._merge(y_a, x_b), {"ildj": ildj, "fldj": -ildj}


class AffineCoupling(Coupling):
    """Affine coupling (RealNVP): `y_b = x_b * exp(s) + t`, `(t, raw) = NN([x_a, context])`.

    With `s = B * tanh(raw / B)` (B the log-scale bound):

    ```none
    forward:  y_a = x_a;  y_b = x_b * exp(s(x_a)) + t(x_a)
    inverse:  x_a = y_a;  x_b = (y_b - t(y_a)) * exp(-s(y_a))
    log-dets: fldj(x) = sum(s(x_a));  ildj(y) = -sum(s(y_a))
    ```
    The inner bijector is `Shift(t) o Scale(log_scale=s)`; the conditioner's output holds
    `(t, raw)` interleaved per transformed coordinate.

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

    def __init__(self, event_dim: int, num_conditioning: int, conditioner: Conditioner,
                 log_scale_bound: float = 3.0, context_dim: int = 0, num_members: int = 1,
                 validate_args: bool = False, name: str = "affine_coupling",
                 context_shift: Sequence[float] | None = None,
                 context_scale: Sequence[float] | None = None) -> None:
        parameters = dict(locals())
        if not log_scale_bound > 0:
            raise ConfigError(f"'log_scale_bound' must be > 0; got {log_scale_bound}.")
        self._log_scale_bound = float(log_scale_bound)
        self.params_per_dim = self.params_per_dim_for(log_scale_bound=log_scale_bound)
        super().__init__(event_dim, num_conditioning, conditioner, context_dim, num_members,
                         parameters, validate_args, name, context_shift, context_scale)

    @classmethod
    def settings_from(cls, config: FlowConfig) -> dict[str, Any]:
        return {"log_scale_bound": config.log_scale_bound}

    @classmethod
    def params_per_dim_for(cls, **settings: Any) -> int:
        """2: a shift and a raw log-scale per transformed coordinate."""
        return 2

    @property
    def log_scale_bound(self) -> float:
        return self._log_scale_bound

    def _inner_bijector(self, params: tf.Tensor) -> tfb.Bijector:
        shift, raw_log_scale = tf.unstack(params, axis=-1)
        log_scale = soft_clamp(raw_log_scale, self._log_scale_bound)
        return tfb.Chain([tfb.Shift(shift), tfb.Scale(log_scale=log_scale)])
