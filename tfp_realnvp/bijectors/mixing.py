"""What goes between couplings: a fixed permutation, or a learned invertible linear map.

Each coupling leaves its conditioning half unchanged, so something must mix coordinates
before the next one: `permutation_indices` gives a reversal or a seeded shuffle
(`tfb.Permute`), `LUMixing` a learned map `W = P L U` (Glow's invertible 1x1 convolution on
a vector) through TFP's `ScaleMatvecLU`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors


def permutation_indices(kind: str, dim: int, seed: int, layer: int) -> np.ndarray:
    """The permutation after coupling `layer`: a reversal, or a seeded shuffle.

    A random permutation is redrawn until it moves some coordinate, so two couplings in a
    row never act on the same half.
    """
    if kind == "reverse":
        return np.arange(dim)[::-1].copy()
    rng = np.random.default_rng([seed, layer])
    while True:
        perm = rng.permutation(dim)
        if np.any(perm != np.arange(dim)):
            return perm


class LUMixing(tfb.Bijector):
    """A learned invertible linear map `y = W x`, `W = P L U`, log-det `sum(log_diag)`.

    ```none
    forward:  y = P L U x          L unit lower-triangular, U upper-triangular with
    inverse:  x = U^-1 L^-1 P^T y  diagonal sign * exp(log_diag): never singular
    log-dets: fldj = sum(log_diag);  ildj = -sum(log_diag)
    ```
    `W` starts as a seeded random rotation (its LU factors), so the first step already
    mixes every coordinate into both halves of the next coupling. The triangular parts are
    masked with `band_part`, so only their free entries matter; the diagonal is kept in log
    space with a fixed sign, so training cannot make `W` singular. With `members = M > 1`
    there are M maps (each its own rotation), acting on events `[..., M, dim]`.
    """

    def __init__(self, dim: int, seed: int = 0, members: int = 1, validate_args: bool = False,
                 name: str = "lu_mixing") -> None:
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            factors = [_rotation_lu(dim, seed * 1000 + m) for m in range(members)]
            perms, lowers, uppers = (np.stack(f) for f in zip(*factors, strict=True))
            if members == 1:
                perms, lowers, uppers = perms[0], lowers[0], uppers[0]
            diagonal = np.diagonal(uppers, axis1=-2, axis2=-1)
            self._permutation = tf.constant(perms, tf.int32)
            self._sign = tf.constant(np.sign(diagonal), tf.float32)
            self.lower = tf.Variable(np.tril(lowers, -1), dtype=tf.float32, name="lower")
            self.upper = tf.Variable(np.triu(uppers, 1), dtype=tf.float32, name="upper")
            self.log_diag = tf.Variable(np.log(np.abs(diagonal)), dtype=tf.float32,
                                        name="log_diag")
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    def _lu(self) -> tfb.Bijector:
        """`ScaleMatvecLU` of the current factors (its packed `lower_upper` form)."""
        strictly_lower = tf.linalg.band_part(self.lower, -1, 0) - tf.linalg.band_part(
            self.lower, 0, 0)
        strictly_upper = tf.linalg.band_part(self.upper, 0, -1) - tf.linalg.band_part(
            self.upper, 0, 0)
        diagonal = tf.linalg.diag(self._sign * tf.exp(self.log_diag))
        return tfb.ScaleMatvecLU(strictly_lower + strictly_upper + diagonal, self._permutation)

    def _forward(self, x):
        return self._lu().forward(x)

    def _inverse(self, y):
        return self._lu().inverse(y)

    def _forward_log_det_jacobian(self, x):
        return tf.reduce_sum(self.log_diag, axis=-1) + tf.zeros_like(x[..., 0])

    def _inverse_log_det_jacobian(self, y):
        return -tf.reduce_sum(self.log_diag, axis=-1) + tf.zeros_like(y[..., 0])


def _rotation_lu(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(permutation indices, L, U) of a seeded random rotation `P L U`."""
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    perm_matrix, lower, upper = scipy.linalg.lu(rotation)
    return np.argmax(perm_matrix, axis=0), lower, upper
