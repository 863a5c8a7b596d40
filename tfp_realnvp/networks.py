"""Keras conditioner networks: conditioning half (and context) -> (shift, log-scale).

We build them with tf-keras (Keras 2). A tf-keras model kept as an attribute of a
`tfb.Bijector` is tracked by `tf.Module`, so its weights reach
`distribution.trainable_variables`, checkpoints and SavedModels, and the SavedModel runs
on the TF1 session loader that TensorFlow Serving uses. A Keras 3 model in the same place
is silently untracked (keras-team/keras#20095): `tests/test_coupling.py` pins that.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from tfp_realnvp.config import ACTIVATIONS
from tfp_realnvp.errors import ConfigError


class MemberDense(tf_keras.layers.Layer):
    """A dense layer with its own kernel and bias per ensemble member.

    `[N, M, in] -> [N, M, units]`: `y[n, m] = act(x[n, m] @ W[m] + b[m])`, one batched
    matmul for all M members, so an ensemble costs one graph, not M. Each member's kernel
    starts as its own Glorot-uniform draw (or at zero, for a conditioner's last layer).
    """

    def __init__(self, members: int, units: int, activation: str | None = None,
                 zero_init: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.members = members
        self.units = units
        self.activation = tf_keras.activations.get(activation)
        self.zero_init = zero_init

    def build(self, input_shape) -> None:
        fan_in = int(input_shape[-1])
        kernel_init = "zeros" if self.zero_init else tf_keras.initializers.RandomUniform(
            -(6.0 / (fan_in + self.units)) ** 0.5, (6.0 / (fan_in + self.units)) ** 0.5)
        self.kernel = self.add_weight(name="kernel", shape=(self.members, fan_in, self.units),
                                      initializer=kernel_init)
        self.bias = self.add_weight(name="bias", shape=(self.members, self.units),
                                    initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        return self.activation(tf.einsum("nmi,mio->nmo", inputs, self.kernel) + self.bias)

    def get_config(self):
        return {**super().get_config(), "members": self.members, "units": self.units,
                "activation": tf_keras.activations.serialize(self.activation),
                "zero_init": self.zero_init}


def make_conditioner(
    input_dim: int,
    output_dim: int,
    hidden_units: int,
    num_hidden_layers: int,
    activation: str = "silu",
    name: str = "conditioner",
    members: int = 1,
) -> tf_keras.Model:
    """Returns an MLP mapping `[N, input_dim]` to `[N, output_dim]` (or, for an ensemble of
    `members > 1`, `[N, members, input_dim]` to `[N, members, output_dim]`, one network per
    member computed with batched matmuls).

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
    if members > 1:
        return _member_conditioner(input_dim, output_dim, hidden_units, num_hidden_layers,
                                   activation, name, members)
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


def _member_conditioner(input_dim: int, output_dim: int, hidden_units: int,
                        num_hidden_layers: int, activation: str, name: str,
                        members: int) -> tf_keras.Model:
    inputs = tf_keras.Input(shape=(members, input_dim), name=f"{name}_input")
    hidden = inputs
    for i in range(num_hidden_layers):
        hidden = MemberDense(members, hidden_units, activation, name=f"{name}_hidden_{i}")(
            hidden)
    outputs = MemberDense(members, output_dim, zero_init=True, name=f"{name}_out")(hidden)
    return tf_keras.Model(inputs, outputs, name=name)
