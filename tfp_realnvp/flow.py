"""`build_flow`: a RealNVP stack from a `FlowConfig` as a `tfd.TransformedDistribution`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.config import FlowConfig
from tfp_realnvp.coupling import AffineCoupling
from tfp_realnvp.networks import make_conditioner

tfb = tfp.bijectors
tfd = tfp.distributions

def permutation_indices(config: FlowConfig, layer: int) -> np.ndarray:
    """The permutation applied after coupling `layer`: a reversal, or a seeded shuffle.

    A random permutation is redrawn until it moves some coordinate, so two couplings in a
    row never act on the same half.
    """
    dim = config.event_dim
    if config.permutation == "reverse":
        return np.arange(dim)[::-1].copy()
    rng = np.random.default_rng([config.permutation_seed, layer])
    while True:
        perm = rng.permutation(dim)
        if np.any(perm != np.arange(dim)):
            return perm


def standardisation_bijector(config: FlowConfig) -> tfb.Bijector:
    """Maps standardised space to data units: `x = z * data_scale + data_shift`."""
    shift = np.zeros(config.event_dim) if config.data_shift is None else config.data_shift
    scale = np.ones(config.event_dim) if config.data_scale is None else config.data_scale
    return tfb.Chain(
        [
            tfb.Shift(tf.constant(shift, tf.float32), name="data_shift"),
            tfb.Scale(tf.constant(scale, tf.float32), name="data_scale"),
        ],
        name="standardise",
    )


def make_coupling(config: FlowConfig, layer: int, validate_args: bool = False) -> AffineCoupling:
    """Builds coupling number `layer` with a fresh conditioner network."""
    num_conditioning = config.event_dim // 2
    num_transformed = config.event_dim - num_conditioning
    name = f"coupling_{layer}"
    network = make_conditioner(
        input_dim=num_conditioning + config.context_dim,
        output_dim=2 * num_transformed,
        hidden_units=config.hidden_units,
        num_hidden_layers=config.num_hidden_layers,
        activation=config.activation,
        name=f"{name}_net",
    )
    return AffineCoupling(
        event_dim=config.event_dim,
        num_conditioning=num_conditioning,
        conditioner=network,
        log_scale_bound=config.log_scale_bound,
        context_dim=config.context_dim,
        validate_args=validate_args,
        name=name,
    )


def build_flow(config: FlowConfig, validate_args: bool = False) -> tfd.TransformedDistribution:
    """Returns the flow: standard Normal over D dims pushed through the coupling stack.

    ```none
    x = standardise^-1( coupling_{K-1}( perm_{K-2}( ... perm_0( coupling_0(z) ) ... ) ) )
    ```
    so `log_prob(x) = N(z; 0, I) + sum of the couplings' ildj + ildj of the standardiser`.
    Conditional flows (`context_dim > 0`) take the context through
    `context_kwargs(flow, context)`.
    """
    steps: list[tfb.Bijector] = []
    for layer in range(config.num_couplings):
        steps.append(make_coupling(config, layer, validate_args))
        if layer < config.num_couplings - 1:
            steps.append(
                tfb.Permute(permutation_indices(config, layer), name=f"permute_{layer}")
            )
    # tfb.Chain applies its list right to left: coupling_0 acts first on the latent z.
    bijector = tfb.Chain(
        [standardisation_bijector(config), *reversed(steps)],
        validate_args=validate_args,
        name="realnvp",
    )
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([config.event_dim]), name="base")
    return tfd.TransformedDistribution(base, bijector, validate_args=validate_args, name="flow")


def couplings(flow: tfd.TransformedDistribution) -> Sequence[AffineCoupling]:
    """The flow's coupling bijectors, in the order the list of its chain holds them."""
    return [b for b in flow.bijector.bijectors if isinstance(b, AffineCoupling)]


def bijector_kwargs(flow: tfd.TransformedDistribution,
                    context: tf.Tensor | None) -> dict[str, Any]:
    """Keyword arguments that route `context` to every coupling of the flow's bijector.

    `tfb.Chain` passes kwargs to a bijector by its name, so
    `flow.bijector.forward(z, **bijector_kwargs(flow, c))` and `.inverse(x, ...)` map
    between latent and data space given `c`. With `context=None`: `{}`.

    Args:
      flow: a flow from `build_flow` (or `load`).
      context: `[..., context_dim]` values, broadcast against the events; or None.
    """
    if context is None:
        return {}
    return {b.name: {"context": context} for b in couplings(flow)}


def context_kwargs(flow: tfd.TransformedDistribution,
                   context: tf.Tensor | None) -> dict[str, Any]:
    """Keyword arguments that route `context` through the distribution's methods.

    `flow.log_prob(x, **context_kwargs(flow, c))` and
    `flow.sample(n, seed=s, **context_kwargs(flow, c))` model `p(x | c)`; with
    `context=None` the dict is empty, so unconditional code needs no branch.

    Args:
      flow: a flow from `build_flow` (or `load`).
      context: `[..., context_dim]` values, broadcast against the events; or None.
    """
    chain = bijector_kwargs(flow, context)
    return {"bijector_kwargs": chain} if chain else {}
