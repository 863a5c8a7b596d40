"""`FlowEnsemble`: an equal-weight mixture of flows, itself a TFP distribution.

Flows fitted on a few thousand rows or fewer are confident in different wrong places; the
average of several, each trained on its own K-fold split and early-stopped on its own
held-out fold, is both a better density on fresh rows and a safer one (a row that one
member squeezes, another covers). Measured on scikit-learn's tables, see the README.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers

tfb = tfp.bijectors
tfd = tfp.distributions


class FlowEnsemble(tfd.Distribution):
    """`p(x) = (1/M) sum_m p_m(x)` over M member flows with the same event shape.

    ```none
    log_prob(x) = logsumexp_m(log p_m(x)) - log M
    sample:       m ~ Uniform{0..M-1}, then x ~ p_m   (stateless with a Tensor seed)
    ```
    Keyword arguments of `log_prob`/`sample` (e.g. `bijector_kwargs` with a context) go
    to every member, so a conditional ensemble takes `context_kwargs(ensemble, c)` like
    one flow does. `members` are kept as an attribute: their variables are tracked.
    """

    def __init__(self, members: Sequence[tfd.Distribution], validate_args: bool = False,
                 name: str = "flow_ensemble") -> None:
        parameters = dict(locals())
        if len(members) < 1:
            raise ValueError("A FlowEnsemble needs at least one member.")
        with tf.name_scope(name) as name:
            self._members = list(members)
            super().__init__(dtype=members[0].dtype,
                             reparameterization_type=tfd.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=True,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}

    @property
    def members(self) -> list[tfd.Distribution]:
        return self._members

    def _event_shape(self):
        return self._members[0].event_shape

    def _event_shape_tensor(self):
        return self._members[0].event_shape_tensor()

    def _batch_shape(self):
        return tf.TensorShape([])

    def _batch_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _log_prob(self, x, **kwargs):
        log_probs = tf.stack([m.log_prob(x, **kwargs) for m in self._members], axis=0)
        return tf.reduce_logsumexp(log_probs, axis=0) - math.log(len(self._members))

    def _call_sample_n(self, sample_shape, seed, **kwargs):
        # Draws with the whole sample shape (as TransformedDistribution does), so a context
        # shaped like the samples, e.g. [2, 3, c] for sample([2, 3]), broadcasts in every
        # member; then picks one member per draw.
        seeds = samplers.split_seed(seed, n=len(self._members) + 1, salt="FlowEnsemble")
        draws = tf.stack([m.sample(sample_shape, seed=s, **kwargs)
                          for m, s in zip(self._members, seeds[1:], strict=True)], axis=-2)
        shape = tf.shape(draws)
        flat = tf.reshape(draws, [-1, len(self._members), shape[-1]])
        choice = samplers.uniform(tf.shape(flat)[:1], minval=0, maxval=len(self._members),
                                  dtype=tf.int32, seed=seeds[0])
        picked = tf.gather(flat, choice, axis=1, batch_dims=1)
        return tf.reshape(picked, tf.concat([shape[:-2], shape[-1:]], axis=0))


def members(flow: tfd.Distribution) -> list[tfd.Distribution]:
    """The member flows of an ensemble, or `[flow]` for a single flow."""
    return flow.members if isinstance(flow, FlowEnsemble) else [flow]


def primary_flow(flow: tfd.Distribution) -> tfd.Distribution:
    """The flow whose bijector encodes and decodes: the first member of an ensemble.

    Every member is a complete bijection between data and latent space; an ensemble's
    density is their average, which has no single latent space, so `encode`/`decode` of
    an ensemble use its first member.
    """
    return members(flow)[0]


class FoldAffine(tfb.Bijector):
    """An ensemble member's own Gaussian, inside the ensemble's shared data map.

    ```none
    forward:  y = shift + L x        (L lower-triangular, positive diagonal)
    inverse:  x = L^-1 (y - shift)
    log-dets: fldj = sum(log diag L);  ildj = -fldj
    ```
    The shared data map of an ensemble is fitted on all its rows; member m is trained on
    all but fold m and early-stopped on fold m, so its starting Gaussian must not have seen
    fold m. `shift` and `L` are the mean and Cholesky factor of member m's training rows in
    the shared standardised space (`set_from_rows`). They are non-trainable variables:
    checkpoints and SavedModels carry them, the optimiser leaves them alone.
    """

    def __init__(self, dim: int, validate_args: bool = False,
                 name: str = "fold_affine") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            self.shift = tf.Variable(tf.zeros([dim]), trainable=False, name="shift")
            self.scale_tril = tf.Variable(tf.eye(dim), trainable=False, name="scale_tril")
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    def set_from_rows(self, rows: np.ndarray, ridge: float = 1e-6) -> None:
        """Sets `shift, L` to the mean and covariance Cholesky factor of `rows`."""
        rows = np.asarray(rows, np.float64)
        mean = rows.mean(axis=0)
        centred = rows - mean
        covariance = centred.T @ centred / len(rows) + ridge * np.eye(rows.shape[1])
        self.shift.assign(mean.astype(np.float32))
        self.scale_tril.assign(np.linalg.cholesky(covariance).astype(np.float32))

    def _affine(self) -> tfb.Bijector:
        return tfb.Chain([tfb.Shift(self.shift), tfb.ScaleMatvecTriL(self.scale_tril)])

    def _forward(self, x):
        return self._affine().forward(x)

    def _inverse(self, y):
        return self._affine().inverse(y)

    def _forward_log_det_jacobian(self, x):
        log_det = tf.reduce_sum(tf.math.log(tf.linalg.diag_part(self.scale_tril)))
        return log_det + tf.zeros_like(x[..., 0])

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(y)
