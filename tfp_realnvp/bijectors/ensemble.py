"""`FlowEnsemble`: an equal-weight mixture of flows, itself a TFP distribution.

Flows fitted on a few thousand rows or fewer are confident in different wrong places; the
average of several, each trained on its own K-fold split and early-stopped on its own
held-out fold, is both a better density on fresh rows and a safer one (a row that one
member squeezes, another covers). Measured on scikit-learn's tables, see the README.

The M members are one stacked flow: a `TransformedDistribution` with batch shape `[M]`
whose networks, LU maps and fold Gaussians carry a leading member axis. One graph (and one
trace) serves every member, with batched matmuls instead of M copies of each op.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers

from tfp_realnvp.blend import blended_flow

tfb = tfp.bijectors
tfd = tfp.distributions


class FlowEnsemble(tfd.Distribution):
    """`p(x) = (1/M) sum_m p_m(x)` over the M members of a stacked flow.

    ```none
    log_prob(x) = logsumexp_m(log p_m(x)) - log M
    sample:       m ~ Uniform{0..M-1}, then x ~ p_m   (stateless with a Tensor seed)
    ```
    `stacked` is a flow over events `[..., M, D]` with batch shape `[M]`: member m acts on
    slice m. Keyword arguments of `log_prob`/`sample` (e.g. `bijector_kwargs` with a
    context) go to the stacked flow, so a conditional ensemble takes
    `context_kwargs(ensemble, c)` like one flow does. `stacked` is kept as an attribute:
    its variables are tracked.
    """

    def __init__(self, stacked: tfd.Distribution, num_members: int,
                 validate_args: bool = False, name: str = "flow_ensemble") -> None:
        parameters = dict(locals())
        if num_members < 2:
            raise ValueError(f"A FlowEnsemble needs at least 2 members; got {num_members}.")
        with tf.name_scope(name) as name:
            self._stacked = stacked
            self._num_members = int(num_members)
            super().__init__(dtype=stacked.dtype,
                             reparameterization_type=tfd.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=True,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}

    @property
    def stacked(self) -> tfd.Distribution:
        return self._stacked

    @property
    def num_members(self) -> int:
        return self._num_members

    def _event_shape(self):
        return self._stacked.event_shape

    def _event_shape_tensor(self):
        return self._stacked.event_shape_tensor()

    def _batch_shape(self):
        return tf.TensorShape([])

    def _batch_shape_tensor(self):
        return tf.constant([], tf.int32)

    def per_member(self, x: tf.Tensor) -> tf.Tensor:
        """`x` (`[..., D]`) repeated for every member: `[..., M, D]`."""
        x = tf.convert_to_tensor(x, dtype=self.dtype)
        shape = tf.concat([tf.shape(x)[:-1], [self._num_members], tf.shape(x)[-1:]], 0)
        return tf.broadcast_to(x[..., tf.newaxis, :], shape)

    def _log_prob(self, x, **kwargs):
        log_probs = self._stacked.log_prob(self.per_member(x), **kwargs)  # [..., M]
        return tf.reduce_logsumexp(log_probs, axis=-1) - math.log(self._num_members)

    def _call_sample_n(self, sample_shape, seed, **kwargs):
        # Draws with the whole sample shape (as TransformedDistribution does), so a context
        # shaped like the samples, e.g. [2, 3, c] for sample([2, 3]), broadcasts; every
        # member draws, then one member per draw is kept.
        member_seed, choice_seed = samplers.split_seed(seed, n=2, salt="FlowEnsemble")
        draws = self._stacked.sample(sample_shape, seed=member_seed, **kwargs)  # [S, M, D]
        shape = tf.shape(draws)
        flat = tf.reshape(draws, [-1, self._num_members, shape[-1]])
        choice = samplers.uniform(tf.shape(flat)[:1], minval=0, maxval=self._num_members,
                                  dtype=tf.int32, seed=choice_seed)
        picked = tf.gather(flat, choice, axis=1, batch_dims=1)
        return tf.reshape(picked, tf.concat([shape[:-2], shape[-1:]], axis=0))


def stacked_flow(flow: tfd.Distribution) -> tfd.Distribution:
    """The flow that holds the trained weights: an ensemble's stacked flow, or `flow`
    itself (inside a `MixtureBlend`: its flow's)."""
    flow = blended_flow(flow)
    return flow.stacked if isinstance(flow, FlowEnsemble) else flow


def num_members(flow: tfd.Distribution) -> int:
    flow = blended_flow(flow)
    return flow.num_members if isinstance(flow, FlowEnsemble) else 1


class FoldAffine(tfb.Bijector):
    """Each ensemble member's own Gaussian, inside the ensemble's shared data map.

    ```none
    forward:  y_m = shift_m + L_m x_m     (L_m lower-triangular, positive diagonal)
    inverse:  x_m = L_m^-1 (y_m - shift_m)
    log-dets: fldj = sum(log diag L_m);  ildj = -fldj
    ```
    on events `[..., M, D]`. The shared data map of an ensemble is fitted on all its rows;
    member m is trained on all but fold m and early-stopped on fold m, so its starting
    Gaussian must not have seen fold m. `shift_m` and `L_m` are the mean and Cholesky
    factor of member m's training rows in the shared standardised space (`set_from_rows`).
    They are non-trainable variables: checkpoints and SavedModels carry them, the
    optimiser leaves them alone.
    """

    def __init__(self, dim: int, members: int, validate_args: bool = False,
                 name: str = "fold_affine") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            self.shift = tf.Variable(tf.zeros([members, dim]), trainable=False, name="shift")
            self.scale_tril = tf.Variable(tf.eye(dim, batch_shape=[members]), trainable=False,
                                          name="scale_tril")
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    def set_from_rows(self, member: int, rows: np.ndarray, ridge: float = 1e-6,
                      full: bool = True) -> None:
        """Sets member `member`'s shift and factor to the mean and covariance Cholesky
        factor of `rows` (`[N, D]`); `full=False`: the diagonal of standard deviations
        only (a flow built with `whiten=False`)."""
        rows = np.asarray(rows, np.float64)
        mean = rows.mean(axis=0)
        centred = rows - mean
        covariance = centred.T @ centred / len(rows) + ridge * np.eye(rows.shape[1])
        if not full:
            covariance = np.diag(np.diag(covariance))
        self.shift[member].assign(mean.astype(np.float32))
        self.scale_tril[member].assign(np.linalg.cholesky(covariance).astype(np.float32))

    def _affine(self) -> tfb.Bijector:
        return tfb.Chain([tfb.Shift(self.shift), tfb.ScaleMatvecTriL(self.scale_tril)])

    def _forward(self, x):
        return self._affine().forward(x)

    def _inverse(self, y):
        return self._affine().inverse(y)

    def _forward_log_det_jacobian(self, x):
        log_det = tf.reduce_sum(tf.math.log(tf.linalg.diag_part(self.scale_tril)), axis=-1)
        return log_det + tf.zeros_like(x[..., 0])

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(y)
