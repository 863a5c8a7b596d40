"""The models the speed benchmark compares, as `Subject`s, and the table they train on.

This package's flow (the benchmark's architecture, the default `fit` picks, the affine
default), TFP's built-in `tfb.RealNVP` and the original notebook's Keras model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfp_realnvp import auto
from tfp_realnvp.bench.notebook import NotebookRealNVP
from tfp_realnvp.bench.options import SpeedOptions
from tfp_realnvp.bijectors.ensemble import stacked_flow
from tfp_realnvp.config import FlowConfig
from tfp_realnvp.flow import build_flow

tfb = tfp.bijectors
tfd = tfp.distributions


TABLE_ROWS = 8192  # the fixed table the training batches are gathered from


@dataclasses.dataclass
class Subject:
    """One model under test: its per-row `log_prob`, the loss one training step minimises,
    its trainable variables, and a seeded sampler."""

    name: str
    arch: str
    log_prob: Callable[[tf.Tensor], tf.Tensor]
    loss: Callable[[tf.Tensor], tf.Tensor]
    variables: list[tf.Variable]
    sample: Callable[[int, tf.Tensor], tf.Tensor]
    jit_compile: bool = False


def flow_subject(name: str, config: FlowConfig, jit_compile: bool) -> Subject:
    """This package's flow (one, or an ensemble trained as one stacked flow, as `fit`
    does: the loss is the sum of the members' mean NLLs)."""
    flow = build_flow(config)
    stacked = stacked_flow(flow)
    members = config.ensemble_size

    def loss(x: tf.Tensor) -> tf.Tensor:
        if members == 1:
            return -tf.reduce_mean(stacked.log_prob(x))
        nll = -stacked.log_prob(flow.per_member(x))  # [B, M]
        return tf.reduce_sum(tf.reduce_mean(nll, axis=0))

    arch = (f"{config.ensemble_size} x " if members > 1 else "") + (
        f"{config.num_couplings} {config.coupling}, {config.num_hidden_layers}x"
        f"{config.hidden_units} {config.activation}, {config.mixing}")
    return Subject(name, arch, flow.log_prob, loss, list(stacked.trainable_variables),
                   lambda n, seed: flow.sample(n, seed=seed), jit_compile)


def architecture_config(options: SpeedOptions, dim: int | None = None,
                        hidden_units: int | None = None) -> FlowConfig:
    """The package's flow at the benchmark's architecture (affine, ReLU, reversals)."""
    return FlowConfig(event_dim=dim or options.dim, coupling="affine",
                      num_couplings=options.num_couplings,
                      hidden_units=hidden_units or options.hidden_units,
                      num_hidden_layers=options.num_hidden_layers, activation="relu",
                      mixing="reverse")


def tfp_realnvp_subject(name: str, options: SpeedOptions, jit_compile: bool) -> Subject:
    """TFP's `tfb.RealNVP` couplings with `tfb.Permute` reversals between them, each
    conditioner a tf-keras MLP (zero-initialised last layer) giving shift and log-scale."""
    dim, num_masked = options.dim, options.dim // 2
    networks, steps = [], []
    for layer in range(options.num_couplings):
        layers = [tf_keras.Input(shape=(num_masked,))]
        layers += [tf_keras.layers.Dense(options.hidden_units, activation="relu")
                   for _ in range(options.num_hidden_layers)]
        layers.append(tf_keras.layers.Dense(2 * (dim - num_masked), kernel_initializer="zeros"))
        network = tf_keras.Sequential(layers)
        networks.append(network)

        def shift_and_log_scale(x, output_units, network=network, **_):
            shift, log_scale = tf.split(network(x), 2, axis=-1)
            return shift, log_scale

        steps.append(tfb.RealNVP(num_masked=num_masked,
                                 shift_and_log_scale_fn=shift_and_log_scale))
        if layer < options.num_couplings - 1:
            steps.append(tfb.Permute(np.arange(dim)[::-1].copy()))
    distribution = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(dim)), tfb.Chain(list(reversed(steps))))
    variables = [v for network in networks for v in network.trainable_variables]
    arch = (f"{options.num_couplings} tfb.RealNVP, {options.num_hidden_layers}x"
            f"{options.hidden_units} relu, Permute")
    return Subject(name, arch, distribution.log_prob,
                   lambda x: -tf.reduce_mean(distribution.log_prob(x)), variables,
                   lambda n, seed: distribution.sample(n, seed=seed), jit_compile)


def notebook_subject(name: str, options: SpeedOptions) -> Subject:
    """The original notebook's Keras model (two MLPs per coupling)."""
    model = NotebookRealNVP(options.dim, options.num_couplings, options.hidden_units,
                            options.num_hidden_layers)
    arch = (f"{options.num_couplings} couplings x 2 nets, {options.num_hidden_layers}x"
            f"{options.hidden_units} relu")
    return Subject(name, arch, model.log_prob, lambda x: -tf.reduce_mean(model.log_prob(x)),
                   list(model.trainable_variables), model.sample)


def default_config(dim: int, rows: int = 3000) -> tuple[FlowConfig, bool]:
    """What `fit` picks for a table of `rows` x `dim` (`auto.choose`), and its XLA flag."""
    choice = auto.choose(rows, dim)
    return choice.flow.replace(event_dim=dim), choice.train.jit_compile


def subjects(options: SpeedOptions, names: Collection[str] | None = None) -> list[Subject]:
    """Every model of the side-by-side table, in order; with `names`, only those (the others
    are never built: building a model costs seconds)."""
    arch = architecture_config(options)
    makers: dict[str, Callable[[], Subject]] = {
        "flow": lambda: flow_subject("flow", arch, False),
        "flow_xla": lambda: flow_subject("flow_xla", arch, True),
        "tfp_realnvp": lambda: tfp_realnvp_subject("tfp_realnvp", options, False),
        "tfp_realnvp_xla": lambda: tfp_realnvp_subject("tfp_realnvp_xla", options, True),
        "keras_notebook": lambda: notebook_subject("keras_notebook", options),
        "default": lambda: flow_subject("default", *default_config(options.dim)),
        "affine_default": lambda: flow_subject(
            "affine_default", FlowConfig(event_dim=options.dim), False),
        "affine_default_xla": lambda: flow_subject(
            "affine_default_xla", FlowConfig(event_dim=options.dim), True),
    }
    return [make() for name, make in makers.items() if names is None or name in names]


def training_table(dim: int, rows: int = TABLE_ROWS) -> tf.Tensor:
    """Rows to train on: two moons for 2 columns, else correlated Gaussian rows."""
    if dim == 2:
        from tfp_realnvp import tables as data_lib

        moons = data_lib.make_toy("moons", rows, 0.05, 0)
        return tf.constant((moons - moons.mean(0)) / moons.std(0))
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return tf.constant((rng.normal(size=(rows, dim)) @ mixing).astype(np.float32))
