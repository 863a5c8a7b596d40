"""`FlowConfig` and `build_flow`: a RealNVP stack as a `tfd.TransformedDistribution`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.coupling import AffineCoupling
from tfp_realnvp.networks import ACTIVATIONS, make_conditioner

tfb = tfp.bijectors
tfd = tfp.distributions

PERMUTATIONS = ("reverse", "random")


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """Everything needed to rebuild a flow exactly; weights live in checkpoints.

    `data_shift`/`data_scale` are the standardisation statistics of the training data
    (per-dimension mean and standard deviation): the flow's last bijector maps the
    standardised space back to data units, so `log_prob` and `sample` are in data units.
    """

    event_dim: int = 2
    num_couplings: int = 8
    hidden_units: int = 64
    num_hidden_layers: int = 3
    activation: str = "silu"
    log_scale_bound: float = 2.0
    permutation: str = "reverse"
    permutation_seed: int = 0
    context_dim: int = 0
    data_shift: tuple[float, ...] | None = None
    data_scale: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for field in ("data_shift", "data_scale"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, tuple(float(v) for v in value))
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first bad field and the value it got."""
        checks = [
            (self.event_dim >= 2, "'event_dim' must be >= 2", self.event_dim),
            (self.num_couplings >= 2, "'num_couplings' must be >= 2", self.num_couplings),
            (self.hidden_units >= 1, "'hidden_units' must be >= 1", self.hidden_units),
            (self.num_hidden_layers >= 1, "'num_hidden_layers' must be >= 1",
             self.num_hidden_layers),
            (self.activation in ACTIVATIONS, f"'activation' must be one of {ACTIVATIONS}",
             self.activation),
            (self.log_scale_bound > 0, "'log_scale_bound' must be > 0", self.log_scale_bound),
            (self.permutation in PERMUTATIONS,
             f"'permutation' must be one of {PERMUTATIONS}", self.permutation),
            (self.context_dim >= 0, "'context_dim' must be >= 0", self.context_dim),
        ]
        for ok, message, value in checks:
            if not ok:
                raise ValueError(f"{message}; got {value!r}.")
        for field in ("data_shift", "data_scale"):
            value = getattr(self, field)
            if value is not None and len(value) != self.event_dim:
                raise ValueError(
                    f"'{field}' must have event_dim={self.event_dim} entries; got {len(value)}."
                )
        if self.data_scale is not None and not all(s > 0 for s in self.data_scale):
            raise ValueError(f"'data_scale' entries must be > 0; got {self.data_scale}.")

    def replace(self, **changes: Any) -> FlowConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for field in ("data_shift", "data_scale"):
            if out[field] is not None:
                out[field] = list(out[field])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FlowConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown FlowConfig fields {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FlowConfig:
        return cls.from_dict(json.loads(text))


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


def context_kwargs(flow: tfd.TransformedDistribution, context: tf.Tensor) -> dict[str, Any]:
    """Keyword arguments that route `context` to every coupling of a conditional flow.

    `tfb.Chain` passes kwargs to a bijector by its name, so
    `flow.log_prob(x, **context_kwargs(flow, c))` and
    `flow.sample(n, seed=s, **context_kwargs(flow, c))` model `p(x | c)`.
    """
    return {"bijector_kwargs": {b.name: {"context": context} for b in couplings(flow)}}
