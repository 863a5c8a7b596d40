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
    logits = tf.Variable(tf.zeros(batch + [components]), trainable=False, name="base_logits")
    loc = tf.Variable(tf.zeros(batch + [components, dim]), trainable=False, name="base_loc")
    scale_tril = tf.Variable(tf.eye(dim, batch_shape=batch + [components]), trainable=False,
                             name="base_scale_tril")
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits, name="base_weights"),
        tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale_tril, name="base_components"),
        name="base")


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


def latent_mixture(bijector: tfb.Bijector, mixture: Mixture, member: int,
                   members: int) -> Mixture:
    """`mixture` (data units) mapped into member `member`'s latent space by the fresh
    flow's inverse `z = A x + b` (affine: couplings at the identity).

    `b` and `A` are read from the inverse at the mixture's mean and one column step away
    from it (float64 arithmetic afterwards): `mu_k -> A mu_k + b`, `S_k -> A S_k A^T`.
    """
    dim = mixture.means.shape[1]
    centre = mixture.weights @ mixture.means
    steps = np.sqrt(np.maximum(np.einsum("k,kii->i", mixture.weights, mixture.covariances),
                               1e-12))
    points = np.concatenate([centre[None], centre + np.diag(steps)]).astype(np.float32)
    if members > 1:
        points = np.repeat(points[:, None, :], members, axis=1)
    latent = np.asarray(bijector.inverse(tf.constant(points)), np.float64)
    if members > 1:
        latent = latent[:, member, :]
    offset = latent[0]
    matrix = ((latent[1:] - offset) / steps[:, None]).T  # column i: A e_i
    means = offset + (mixture.means - centre) @ matrix.T
    covariances = np.einsum("ij,kjl,ml->kim", matrix, mixture.covariances, matrix)
    covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2)) + 1e-9 * np.eye(dim)
    return Mixture(mixture.weights, means, covariances)
