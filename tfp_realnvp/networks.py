"""Keras conditioner networks: conditioning half (and context) -> (shift, log-scale).

We build them with tf-keras (Keras 2). A tf-keras model kept as an attribute of a
`tfb.Bijector` is tracked by `tf.Module`, so its weights reach
`distribution.trainable_variables`, checkpoints and SavedModels, and the SavedModel runs
on the TF1 session loader that TensorFlow Serving uses. A Keras 3 model in the same place
is silently untracked (keras-team/keras#20095): `tests/test_coupling.py` pins that.
"""

from __future__ import annotations

import tf_keras

from tfp_realnvp.config import ACTIVATIONS
from tfp_realnvp.errors import ConfigError


def make_conditioner(
    input_dim: int,
    output_dim: int,
    hidden_units: int,
    num_hidden_layers: int,
    activation: str = "silu",
    name: str = "conditioner",
) -> tf_keras.Model:
    """Returns an MLP mapping `[..., input_dim]` to `[..., output_dim]`.

    The network is `num_hidden_layers` Dense layers of `hidden_units` followed by a linear
    Dense layer whose kernel and bias start at zero, so a fresh coupling is the identity
    (shift 0, log-scale 0) and training starts from the base distribution, stable.
    The model is built eagerly (fixed input width) so its variables exist before the first
    call: checkpoints restore into it immediately.
    """
    if input_dim < 1:
        raise ConfigError(f"'input_dim' must be >= 1; got {input_dim}.")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"'activation' must be one of {ACTIVATIONS}; got {activation!r}.")
    inputs = tf_keras.Input(shape=(input_dim,), name=f"{name}_input")
    hidden = inputs
    for i in range(num_hidden_layers):
        hidden = tf_keras.layers.Dense(
            hidden_units, activation=activation, name=f"{name}_hidden_{i}"
        )(hidden)
    outputs = tf_keras.layers.Dense(
        output_dim, kernel_initializer="zeros", bias_initializer="zeros", name=f"{name}_out"
    )(hidden)
    return tf_keras.Model(inputs, outputs, name=name)
