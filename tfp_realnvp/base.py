"""The flow's base distribution: the standard Normal, or a Gaussian mixture set by `fit`.

With `base_components = K > 1` the base of the stacked flow is

```none
base(z) = sum_k softmax(logits)_k N(z; loc_k, L_k L_k^T)        (per ensemble member)
```

a `tfd.MixtureSameFamily` whose logits, locations and Cholesky factors are non-trainable
variables (checkpoints and SavedModels carry them; the optimiser leaves them alone). `fit`
sets them to the image of each member's mixture fitted in data units (`base_fit.py`)
under the fresh flow's inverse, which is affine while the couplings are the identity, so
the fresh flow is that mixture.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers

from tfp_realnvp.base_fit import Mixture

tfb = tfp.bijectors
tfd = tfp.distributions


def make_base(dim: int, members: int, components: int) -> tfd.Distribution:
    """The base over `[dim]` events, batch shape `[members]` for an ensemble (else `[]`):
    `N(0, I)` for `components <= 1`, else a mixture of `components` full-covariance
    Gaussians (starting as K copies of `N(0, I)` until `set_member_mixture`)."""
    batch = [] if members == 1 else [members]
    if components <= 1:
        return tfd.MultivariateNormalDiag(loc=tf.zeros(batch + [dim]), name="base")
    return variable_mixture(dim, batch, components, "base")


def variable_mixture(dim: int, batch: list[int], components: int,
                     name: str) -> tfd.MixtureSameFamily:
    """A mixture of `components` full-covariance Gaussians over `[dim]` events whose
    logits, locations and Cholesky factors are non-trainable variables (K copies of
    `N(0, I)` until `set_member_mixture`)."""
    logits = tf.Variable(tf.zeros(batch + [components]), trainable=False, name=f"{name}_logits")
    loc = tf.Variable(tf.zeros(batch + [components, dim]), trainable=False, name=f"{name}_loc")
    scale_tril = tf.Variable(tf.eye(dim, batch_shape=batch + [components]), trainable=False,
                             name=f"{name}_scale_tril")
    return tfd.MixtureSameFamily(
        QuietCategorical(logits=logits, name=f"{name}_weights"),
        tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale_tril, name=f"{name}_components"),
        name=name)


class QuietCategorical(tfd.Categorical):
    """`tfd.Categorical` whose draws are transposed as float32, not int32.

    TFP's `Categorical._sample_n` transposes its `[batch, n]` int32 draws; on CPUs without
    full AVX-512 the first int32 transpose of a process makes oneDNN print an ERROR-level
    line ("oneDNN supports DT_INT32 only on platforms with AVX-512") that
    TF_CPP_MIN_LOG_LEVEL=2 does not hide: `tfp-realnvp sample` of a mixture printed it.
    Category indices below 2^24 are exact in float32, so the draws are the same.
    """

    def _sample_n(self, n, seed=None):
        logits = self._logits_parameter_no_checks()
        logits_2d = tf.reshape(logits, [-1, tf.shape(logits)[-1]])
        draws = samplers.categorical(logits_2d, n, dtype=tf.int32, seed=seed)  # [batch, n]
        draws = tf.cast(tf.transpose(tf.cast(draws, tf.float32)), self.dtype)
        return tf.reshape(draws, tf.concat([[n], self._batch_shape_tensor(logits=logits)], 0))


def is_mixture(base: tfd.Distribution) -> bool:
    return isinstance(base, tfd.MixtureSameFamily)


def set_member_mixture(base: tfd.MixtureSameFamily, member: int, members: int,
                       mixture: Mixture) -> None:
    """Sets member `member`'s mixture (latent units) into the base's variables."""
    logits = np.log(mixture.weights).astype(np.float32)
    loc = mixture.means.astype(np.float32)
    tril = np.linalg.cholesky(mixture.covariances).astype(np.float32)
    components = base.components_distribution
    targets = ((base.mixture_distribution.logits, logits), (components.loc, loc),
               (components.scale.tril, tril))
    for variable, value in targets:
        (variable if members == 1 else variable[member]).assign(value)


def latent_mixtures(bijector: tfb.Bijector,
                    mixtures: tuple[Mixture, ...]) -> tuple[Mixture, ...]:
    """Each member's `mixture` (data units) mapped into its latent space by the fresh flow's
    inverse `z = A_m x + b_m` (affine: couplings at the identity), one inverse call for all.

    `b_m` and `A_m` are read from the inverse at member m's mixture mean and one column step
    away from it (float64 arithmetic afterwards): `mu_k -> A_m mu_k + b_m`,
    `S_k -> A_m S_k A_m^T`.
    """
    centres = [m.weights @ m.means for m in mixtures]
    steps = [np.sqrt(np.maximum(np.einsum("k,kii->i", m.weights, m.covariances), 1e-12))
             for m in mixtures]
    points = np.stack([np.concatenate([c[None], c + np.diag(s)])
                       for c, s in zip(centres, steps, strict=True)], axis=1)  # [D+1, M, D]
    if len(mixtures) == 1:
        points = points[:, 0]
    latent = np.asarray(bijector.inverse(tf.constant(points, tf.float32)), np.float64)
    latent = latent.reshape(points.shape[0], len(mixtures), -1)
    return tuple(_through(m, c, s, latent[:, i])
                 for i, (m, c, s) in enumerate(zip(mixtures, centres, steps, strict=True)))


def _through(mixture: Mixture, centre: np.ndarray, steps: np.ndarray,
             latent: np.ndarray) -> Mixture:
    """`mixture` through the affine map read off `latent` (the images of `centre` and of
    `centre + steps_i e_i`)."""
    offset = latent[0]
    matrix = ((latent[1:] - offset) / steps[:, None]).T  # column i: A e_i
    means = offset + (mixture.means - centre) @ matrix.T
    covariances = np.einsum("ij,kjl,ml->kim", matrix, mixture.covariances, matrix)
    covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2))
    return Mixture(mixture.weights, means, covariances + 1e-9 * np.eye(len(centre)))
