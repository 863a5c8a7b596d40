"""`build_flow`: a RealNVP stack from a `FlowConfig` as a `tfd.TransformedDistribution`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.base import make_base
from tfp_realnvp.bijectors.autoregressive import MaskedAutoregressiveSpline
from tfp_realnvp.bijectors.context import ContextInput
from tfp_realnvp.bijectors.coupling import AffineCoupling, Coupling
from tfp_realnvp.bijectors.ensemble import FlowEnsemble, FoldAffine, stacked_flow
from tfp_realnvp.bijectors.mixing import LUMixing, permutation_indices
from tfp_realnvp.bijectors.spline import SplineCoupling
from tfp_realnvp.blend import MixtureBlend, blended_flow
from tfp_realnvp.config import FlowConfig
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.made import make_made
from tfp_realnvp.networks import make_conditioner

tfb = tfp.bijectors
tfd = tfp.distributions

# FlowConfig.coupling -> the bijector class of that kind
COUPLING_KINDS: dict[str, type[Coupling]] = {"affine": AffineCoupling, "spline": SplineCoupling}


def data_bijector(config: FlowConfig) -> tfb.Bijector:
    """Maps the flow's standardised space to data units: `x = shift + scale * (L u)`.

    `L` is the Cholesky factor of the training data's correlation matrix (`data_tril`), so
    with the couplings at the identity the flow is the full-covariance Gaussian of the
    training data; without `data_tril` it is the per-column standardisation.
    """
    dim = config.event_dim
    shift = np.zeros(dim) if config.data_shift is None else config.data_shift
    scale = np.ones(dim) if config.data_scale is None else config.data_scale
    steps = [tfb.Shift(tf.constant(shift, tf.float32), name="data_shift"),
             tfb.Scale(tf.constant(scale, tf.float32), name="data_scale")]
    if config.data_tril is not None:
        steps.append(tfb.ScaleMatvecTriL(tf.constant(config.data_tril, tf.float32),
                                         name="data_correlation"))
    return tfb.Chain(steps, name="data_map")


def make_coupling(config: FlowConfig, layer: int, validate_args: bool = False,
                  ) -> Coupling | MaskedAutoregressiveSpline:
    """Builds coupling number `layer` (of `config.coupling`'s kind) with a fresh conditioner
    network (one per ensemble member, batched) of the widths the kind asks for (for
    `coupling="autoregressive"`, a MADE and the layer it parameterises)."""
    if config.coupling == "autoregressive":
        return make_autoregressive(config, layer, validate_args)
    kind = COUPLING_KINDS[config.coupling]
    num_conditioning = config.event_dim // 2
    name = f"coupling_{layer}"
    network = make_conditioner(
        input_dim=kind.conditioner_inputs(num_conditioning, config.context_dim),
        output_dim=kind.conditioner_outputs(config.event_dim - num_conditioning, config),
        hidden_units=config.hidden_units,
        num_hidden_layers=config.num_hidden_layers,
        activation=config.activation,
        name=f"{name}_net",
        members=config.ensemble_size,
    )
    return kind(event_dim=config.event_dim, num_conditioning=num_conditioning,
                conditioner=network, context_dim=config.context_dim,
                context_shift=config.context_shift, context_scale=config.context_scale,
                num_members=config.ensemble_size, validate_args=validate_args, name=name,
                **kind.settings_from(config))


def make_autoregressive(config: FlowConfig, layer: int,
                        validate_args: bool = False) -> MaskedAutoregressiveSpline:
    """Autoregressive layer number `layer`: a `MaskedAutoregressiveSpline` over a fresh MADE
    (one per ensemble member, batched) of the config's hidden sizes."""
    settings = MaskedAutoregressiveSpline.settings_from(config)
    name = f"autoregressive_{layer}"
    made = make_made(config.event_dim, MaskedAutoregressiveSpline.params_per_dim_for(**settings),
                     hidden_units=config.hidden_units,
                     num_hidden_layers=config.num_hidden_layers, activation=config.activation,
                     context_dim=config.context_dim, members=config.ensemble_size,
                     name=f"{name}_made")
    return MaskedAutoregressiveSpline(
        config.event_dim, made, num_members=config.ensemble_size,
        context_dim=config.context_dim, context_shift=config.context_shift,
        context_scale=config.context_scale, validate_args=validate_args, name=name, **settings)


def make_mixing(config: FlowConfig, layer: int) -> tfb.Bijector:
    """The step after coupling `layer`: a permutation or a learned LU-factored linear map
    (one per ensemble member, each its own seeded rotation)."""
    seed = config.mixing_seed * 1000 + layer
    if config.mixing == "lu":
        return LUMixing(config.event_dim, seed=seed, members=config.ensemble_size,
                        name=f"lu_mixing_{layer}")
    indices = permutation_indices(config.mixing, config.event_dim, config.mixing_seed, layer)
    return tfb.Permute(indices, name=f"permute_{layer}")


def build_flow(config: FlowConfig, validate_args: bool = False) -> tfd.Distribution:
    """Returns the flow: its base (a standard Normal over D dims, or the Gaussian mixture
    `fit` sets: `base.py`) pushed through the coupling stack.

    ```none
    x = data_map( coupling_{K-1}( mix_{K-2}( ... mix_0( coupling_0(z) ) ... ) ) )
    ```
    so `log_prob(x) = N(z; 0, I) + the sum of every step's ildj`: a
    `tfd.TransformedDistribution`. With `ensemble_size = M > 1`, M such flows averaged:
    a `FlowEnsemble` (also a TFP distribution) over one stacked flow of batch shape `[M]`.
    With `blend_components > 0`, that flow blended with a Gaussian mixture: a
    `MixtureBlend` (`w p_flow + (1 - w) p_mix`, set by `fit` after training).
    Conditional flows (`context_dim > 0`) take the context through
    `context_kwargs(flow, context)`.

    Args:
      config: the architecture and the data map; `build_flow(FlowConfig.from_json(...))`
        rebuilds a saved flow exactly (weights come from its checkpoint).
      validate_args: TFP's runtime argument checks (slower).
    """
    stacked = build_stacked(config, validate_args)
    flow = stacked if config.ensemble_size == 1 else FlowEnsemble(
        stacked, config.ensemble_size, validate_args=validate_args)
    if not config.blend_components:
        return flow
    return MixtureBlend(flow, config.blend_components, validate_args=validate_args)


def build_stacked(config: FlowConfig,
                  validate_args: bool = False) -> tfd.TransformedDistribution:
    """The flow `config` describes; for an ensemble of M, its M members stacked (events
    `[..., M, D]`, batch shape `[M]`), each behind its own `FoldAffine` (the Gaussian of
    the rows that member trains on; set by `fit`) inside the shared data map."""
    members = config.ensemble_size
    steps: list[tfb.Bijector] = []
    for layer in range(config.num_couplings):
        steps.append(make_coupling(config, layer, validate_args))
        if layer < config.num_couplings - 1:
            steps.append(make_mixing(config, layer))
    if members > 1:
        steps.append(FoldAffine(config.event_dim, members))
    # tfb.Chain applies its list right to left: coupling_0 acts first on the latent z.
    bijector = tfb.Chain([data_bijector(config), *reversed(steps)],
                         validate_args=validate_args, name="realnvp")
    base = make_base(config.event_dim, members, config.base_components)
    return tfd.TransformedDistribution(base, bijector, validate_args=validate_args, name="flow")


# A surrogate posterior's defaults: small, smooth conditioners (VI evaluates the flow on its
# own samples, a few dozen per step, so depth matters more than width).
# Variational inference differentiates samples, so a spline runs in the sampling direction.
SURROGATE_DEFAULTS = {"num_couplings": 4, "hidden_units": 32, "num_hidden_layers": 2,
                      "activation": "tanh", "spline_direction": "sampling"}
# The FlowConfig fields a surrogate takes: the architecture. The others describe data (a
# data map, a context) or an ensemble, whose choice of member is not reparameterisable.
SURROGATE_SETTINGS = ("coupling", "num_couplings", "hidden_units", "num_hidden_layers",
                      "activation", "log_scale_bound", "spline_bins", "spline_bound",
                      "spline_direction", "mixing", "mixing_seed")


def surrogate_posterior(event_dim: int, initial_loc: Any = 0.0, initial_scale: Any = 1.0,
                        name: str = "surrogate_posterior",
                        **settings: Any) -> tfd.TransformedDistribution:
    """A trainable RealNVP flow over an unconstrained `[event_dim]` event, for `tfp.vi`.

    ```none
    x = loc + scale * f(z),   z ~ N(0, I),   f = coupling_{K-1} o mix o ... o coupling_0
    log q(x) = log N(z; 0, I) - sum_k log|det J_coupling_k| - sum_i log scale_i
    ```
    `loc` and `scale` (softplus-parameterised) are trainable, and the couplings start at
    the identity, so the flow starts as the mean-field Normal `N(initial_loc,
    initial_scale^2)` and can only add to it. There is no data map (nothing to
    standardise). Sampling is reparameterised through every coupling, so
    `tfp.vi.fit_surrogate_posterior(target_log_prob_fn, surrogate, optimizer, steps,
    seed=...)` trains every variable in `surrogate.trainable_variables` (the tf-keras
    conditioners', the LU maps', `loc` and `scale`). The hidden layers start from Keras's
    random initialisers: `tf_keras.utils.set_random_seed(s)` first makes them reproducible.

    Args:
      event_dim: width of the posterior's (unconstrained) event, >= 2. Constrained
        parameters: wrap the surrogate in their bijector (`tfb.Exp`, `tfb.Sigmoid`, ...).
      initial_loc: the starting mean, a scalar or `[event_dim]` values.
      initial_scale: the starting standard deviations, > 0, a scalar or `[event_dim]`.
      name: the distribution's name.
      **settings: `FlowConfig` architecture fields (`num_couplings`, `hidden_units`,
        `num_hidden_layers`, `activation`, `coupling`, `mixing`, `log_scale_bound`, ...);
        defaults: 4 affine couplings with 2x32 tanh conditioners.
    """
    if isinstance(event_dim, bool) or not isinstance(event_dim, (int, np.integer)) \
            or event_dim < 2:
        raise ConfigError(
            f"'event_dim' must be an integer >= 2 (a coupling keeps part of the event and "
            f"transforms the rest); got {event_dim!r}. For a 1-D posterior use a "
            f"tfd.Normal surrogate.")
    fields = {field.name for field in dataclasses.fields(FlowConfig)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ConfigError(f"Unknown settings {unknown}; known: {sorted(SURROGATE_SETTINGS)}.")
    refused = sorted(set(settings) - set(SURROGATE_SETTINGS))
    if refused:
        raise ConfigError(
            f"A surrogate posterior does not take {refused}: it has no data map, no context "
            f"and is one flow (a mixture's sampling is not reparameterised). Give the size "
            f"as event_dim, a starting point as initial_loc / initial_scale, and the "
            f"architecture with {list(SURROGATE_SETTINGS)}.")
    config = FlowConfig(event_dim=int(event_dim), **{**SURROGATE_DEFAULTS, **settings})
    loc = _event_values("initial_loc", initial_loc, config.event_dim)
    scale = _event_values("initial_scale", initial_scale, config.event_dim)
    if not np.all(scale > 0):
        raise ConfigError(f"'initial_scale' must be > 0; got {initial_scale!r}.")
    flow = build_stacked(config)
    affine = [tfb.Shift(tf.Variable(loc, name="loc"), name="surrogate_loc"),
              tfb.Scale(tfp.util.TransformedVariable(scale, tfb.Softplus(), name="scale"),
                        name="surrogate_scale")]
    bijector = tfb.Chain([*affine, *flow.bijector.bijectors], name="realnvp")
    return tfd.TransformedDistribution(flow.distribution, bijector, name=name)


def _event_values(name: str, value: Any, dim: int) -> np.ndarray:
    """`value` (a scalar or `dim` numbers) as float32 `[dim]`; ConfigError otherwise."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == 0:
        array = np.full([dim], array, np.float32)
    if array.shape != (dim,) or not np.all(np.isfinite(array)):
        raise ConfigError(f"'{name}' must be a finite scalar or {dim} finite values "
                          f"(event_dim); got {value!r}.")
    return array


def couplings(flow: tfd.Distribution) -> Sequence[ContextInput]:
    """The flow's coupling (and autoregressive) bijectors, in the order the list of its
    chain holds them (none for a distribution not built by this package).

    These are the bijectors a context goes to: `bijector_kwargs` routes it to them by
    name, and `flow_context_dim` reads its width from them.
    """
    steps = getattr(getattr(stacked_flow(flow), "bijector", None), "bijectors", ())
    return [b for b in steps if isinstance(b, ContextInput)]


def encode(flow: tfd.Distribution, x: tf.Tensor, context: tf.Tensor | None = None,
           member: int = 0) -> tf.Tensor:
    """Data to latent space, `z = f^-1(x)`: `[..., D] -> [..., D]`.

    An ensemble's density has no single latent space: this is member `member`'s map.
    """
    return _member_map(flow, x, context, member, inverse=True)


def decode(flow: tfd.Distribution, z: tf.Tensor, context: tf.Tensor | None = None,
           member: int = 0) -> tf.Tensor:
    """Latent to data space, `x = f(z)`: `[..., D] -> [..., D]` (member `member`'s map for
    an ensemble)."""
    return _member_map(flow, z, context, member, inverse=False)


def _member_map(flow, values, context, member: int, inverse: bool) -> tf.Tensor:
    flow = blended_flow(flow)
    stacked = stacked_flow(flow)
    kwargs = bijector_kwargs(flow, context)
    transform = stacked.bijector.inverse if inverse else stacked.bijector.forward
    if not isinstance(flow, FlowEnsemble):
        return transform(values, **kwargs)
    return transform(flow.per_member(values), **kwargs)[..., member, :]


def bijector_kwargs(flow: tfd.TransformedDistribution, context: tf.Tensor | None,
                    per_member: bool = False) -> dict[str, Any]:
    """Keyword arguments that route `context` to every coupling of the flow's bijector.

    `tfb.Chain` passes kwargs to a bijector by its name, so
    `flow.bijector.forward(z, **bijector_kwargs(flow, c))` and `.inverse(x, ...)` map
    between latent and data space given `c`. With `context=None`: `{}`. Context values are
    raw (data units): each coupling standardises them with the flow's `context_shift` and
    `context_scale`.

    Args:
      flow: a flow from `build_flow` (or `load`).
      context: `[..., context_dim]` values, broadcast against the events; or None.
      per_member: for an ensemble's stacked flow whose members see different rows
        (training): `context` is `[..., M, context_dim]`, member m's in slice m.
    """
    if context is None:
        return {}
    key = "member_context" if per_member else "context"
    return {b.name: {key: context} for b in couplings(flow)}  # members share names


def context_kwargs(flow: tfd.TransformedDistribution, context: tf.Tensor | None,
                   per_member: bool = False) -> dict[str, Any]:
    """Keyword arguments that route `context` through the distribution's methods.

    `flow.log_prob(x, **context_kwargs(flow, c))` and
    `flow.sample(n, seed=s, **context_kwargs(flow, c))` model `p(x | c)`; with
    `context=None` the dict is empty, so unconditional code needs no branch.

    Args:
      flow: a flow from `build_flow` (or `load`).
      context: `[..., context_dim]` raw values, broadcast against the events; or None.
      per_member: see `bijector_kwargs`.
    """
    chain = bijector_kwargs(flow, context, per_member)
    return {"bijector_kwargs": chain} if chain else {}


def flow_context_dim(flow: tfd.Distribution) -> int:
    """The width of the context `flow` models `p(x | c)` given: 0 for an unconditional
    flow, or a distribution not built by this package. The one answer to "does this flow
    take a context" (plots, sampling, scoring and serving ask it here)."""
    return max((b.context_dim for b in couplings(flow)), default=0)
