"""`MaskedAutoregressiveSpline`: a masked autoregressive flow layer of rational-quadratic
splines (MAF with spline transformers; with `direction="sampling"`, an IAF)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

from tfp_realnvp.bijectors.augmented import LogDetWithMap
from tfp_realnvp.bijectors.context import ContextInput
from tfp_realnvp.bijectors.coupling import Conditioner
from tfp_realnvp.bijectors.spline import SplineCoupling, SplineParams
from tfp_realnvp.errors import ConfigError

if TYPE_CHECKING:
    from tfp_realnvp.config import FlowConfig

tfb = tfp.bijectors


class MaskedAutoregressiveSpline(ContextInput, LogDetWithMap, tfb.Bijector):
    """Every coordinate through a rational-quadratic spline whose bins, heights and slopes
    for coordinate i come from a MADE network of the coordinates before i.

    The maths and direction conventions of TFP's `tfb.MaskedAutoregressiveFlow`, with
    `SplineCoupling`'s spline (`SplineParams`: bins on `[-bound, bound]`, identity tails,
    minimum slope). With `direction="density"` (a MAF, the default) the spline runs from
    data to latent, parameterised by the data:

    ```none
    inverse (density, one MADE pass):    x_i = RQS_theta_i(y_i),   theta = MADE(y)
    forward (sampling, D MADE passes):   y_i = RQS_theta_i^-1(x_i) for i = 1..D in turn
    log-dets: ildj(y) = sum_i log RQS_theta_i'(y_i);  fldj(x) = -ildj(y)
    ```
    so training and `log_prob` cost one network call per layer (kept with the output in
    TFP's cache, never recomputed: TFP's own class calls its network twice), while
    `sample` solves the D coordinates one after the other: D network calls per layer (a
    `tf.while_loop`), in float64 like `SplineCoupling`'s inverse. `direction="sampling"`
    swaps the two (an inverse autoregressive flow: the MADE reads the latent; sampling is
    one pass, the density D). The Jacobian is triangular, so the log-dets are exact.

    The MADE (`tfp_realnvp.made.make_made`) maps `[N, D]` to `[N, D * (3K - 1)]` (for an
    ensemble of `num_members = M`: `[N, M, D]` to `[N, M, ...]`, one masked network per
    member, events `[..., M, D]`); its last layer starts at zero, so a fresh layer is the
    identity. The order is the coordinates' own (1..D): a permutation between layers
    changes it. With `context_dim > 0` the MADE also reads the context (every parameter
    may depend on it) and every method takes `context=` or `member_context=`, raw values
    standardised here, as for the couplings (`ContextInput`).
    """

    _cache = cache_util.BijectorCacheWithGreedyAttrs(
        forward_name="_augmented_forward", inverse_name="_augmented_inverse")

    def __init__(self, event_dim: int, made: Conditioner, num_bins: int = 8,
                 bound: float = 4.0, min_bin: float = 1e-3, min_slope: float = 1e-3,
                 num_members: int = 1, direction: str = "density", context_dim: int = 0,
                 context_shift: Sequence[float] | None = None,
                 context_scale: Sequence[float] | None = None,
                 validate_args: bool = False, name: str = "autoregressive_spline") -> None:
        parameters = dict(locals())
        if event_dim < 2:
            raise ConfigError(f"'event_dim' must be >= 2; got {event_dim}.")
        self._init_context(context_dim, num_members, context_shift, context_scale)
        self._spline = SplineParams(num_bins, bound, min_bin, min_slope, direction)
        self._direction = direction
        self.params_per_dim = self.params_per_dim_for(num_bins=num_bins)
        with tf.name_scope(name) as name:
            self._event_dim = int(event_dim)
            # Kept as an attribute so tf.Module tracks the network's variables.
            self._made = made
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}  # No tensor parameters: the MADE carries the variables.

    @classmethod
    def settings_from(cls, config: FlowConfig) -> dict[str, Any]:
        """The constructor arguments that `config` sets (the spline's, as for couplings)."""
        return SplineCoupling.settings_from(config)

    @classmethod
    def params_per_dim_for(cls, *, num_bins: int, **settings: Any) -> int:
        """`3 K - 1` per coordinate, as `SplineCoupling`."""
        return SplineCoupling.params_per_dim_for(num_bins=num_bins)

    @property
    def event_dim(self) -> int:
        return self._event_dim

    @property
    def made(self) -> Conditioner:
        return self._made

    @property
    def direction(self) -> str:
        return self._direction

    def _made_input(self, values: tf.Tensor, context: tf.Tensor | None,
                    member_context: tf.Tensor | None) -> tf.Tensor:
        """`[values, standardised context]` (`values` alone without a context)."""
        width = values.shape[-1]
        if width is not None and width != self._event_dim:
            raise ValueError(f"{self.name}: expected events of width {self._event_dim} on "
                             f"the last axis; got shape {values.shape}.")
        return self._conditioner_input(values, context, member_context)

    def _params(self, values: tf.Tensor, context: tf.Tensor | None,
                member_context: tf.Tensor | None) -> tf.Tensor:
        """One MADE pass: `[..., (M,) D] -> [..., (M,) D, 3K - 1]`, row i from values < i
        (and the context)."""
        inputs = self._made_input(values, context, member_context)
        width = self._event_dim + self._context_dim
        flat = tf.reshape(inputs, [-1, width] if self._num_members == 1 else
                          [-1, self._num_members, width])
        raw = self._made(flat)
        return tf.reshape(raw, tf.concat(
            [tf.shape(inputs)[:-1], [self._event_dim, self.params_per_dim]], 0))

    def _evaluate(self, values: tf.Tensor, context: tf.Tensor | None = None,
                  member_context: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """One pass: `(RQS_theta(v)(v), sum log RQS')`, in the values' dtype."""
        params = self._params(values, context, member_context)
        out, log_slope = self._spline.spline(params).forward_and_log_det(values)
        return out, tf.reduce_sum(log_slope, axis=-1)

    def _solve(self, target: tf.Tensor, context: tf.Tensor | None = None,
               member_context: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """D passes: the v with `RQS_theta(v)(v) = target`, and `-sum log RQS'(v)`.

        Pass k fixes coordinate k (its parameters read coordinates < k, already exact),
        so after D passes every coordinate is solved and the last pass's parameters are
        the final ones. Solved in float64 (a quadratic per point, see `SplineCoupling`).
        """
        wide = tf.cast(target, tf.float64)
        if self._context_dim:  # the loop's values take the batch shape the context gives
            batch = tf.shape(self._made_input(target, context, member_context))[:-1]
            wide = tf.broadcast_to(wide, tf.concat([batch, [self._event_dim]], 0))

        def step(values, _):
            params = self._params(tf.cast(values, target.dtype), context, member_context)
            params = tf.cast(params, tf.float64)
            values, log_det = self._spline.spline(params).inverse_and_log_det(wide)
            return values, tf.reduce_sum(log_det, axis=-1)

        start = (tf.zeros_like(wide), tf.zeros(tf.shape(wide)[:-1], tf.float64))
        values, log_det = tf.while_loop(lambda *_: True, step, start,
                                        maximum_iterations=self._event_dim)
        return tf.cast(values, target.dtype), tf.cast(log_det, target.dtype)

    def _augmented_forward(self, x: tf.Tensor, context: tf.Tensor | None = None,
                           member_context: tf.Tensor | None = None):
        run = self._solve if self._direction == "density" else self._evaluate
        y, fldj = run(x, context, member_context)
        return y, {"fldj": fldj, "ildj": -fldj}

    def _augmented_inverse(self, y: tf.Tensor, context: tf.Tensor | None = None,
                           member_context: tf.Tensor | None = None):
        run = self._evaluate if self._direction == "density" else self._solve
        x, ildj = run(y, context, member_context)
        return x, {"ildj": ildj, "fldj": -ildj}
