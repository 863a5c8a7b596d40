"""MADE networks (Germain et al., 2015): masked tf-keras layers whose output i sees only x_<i.

An autoregressive flow's conditioner: one network pass maps `x` to the parameters of every
coordinate's transformer, and the masks make the parameters of coordinate i depend only on
`x_1 .. x_{i-1}` (and on the context, if any), so the Jacobian of the flow is triangular.

```none
degrees:  input i -> i (1..D); context columns -> 0; hidden units -> spread over 1..D-1
          (0..D-1 with a context: units of degree 0 see the context alone)
hidden mask:  in_degree <= out_degree      (a unit sees inputs up to its degree)
output mask:  in_degree <  out_degree      (output i sees hidden units of degree < i)
```
Each output coordinate has `params` outputs, laid out `[..., D, params]` after a reshape
(unit `i * params + p` has degree i + 1). The last layer starts at zero, so the
parameters start at zero whatever the input: a fresh autoregressive layer is the
identity. Like `networks.MemberDense`, a layer holds one kernel per ensemble member and
computes all of them in one batched matmul.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tfp_realnvp.config import ACTIVATIONS
from tfp_realnvp.errors import ConfigError


def hidden_degrees(event_dim: int, units: int, lowest: int = 1) -> np.ndarray:
    """Degrees of a hidden layer's units, spread evenly over `lowest .. D - 1`:
    `lowest + floor(k (D - lowest) / (units + 1))` for k = 1..units. `lowest = 0` (a
    conditional MADE) gives units that see only the context, which output 1 reads. With
    fewer units than degrees some degrees get none (less expressive, still
    autoregressive)."""
    k = np.arange(1, units + 1)
    return lowest + (k * (event_dim - lowest)) // (units + 1)


def input_degrees(event_dim: int, context_dim: int = 0) -> np.ndarray:
    """`[1, 2, ..., D]` for the event, then 0 for each context column (seen by all)."""
    return np.concatenate([np.arange(1, event_dim + 1), np.zeros(context_dim, np.int64)])


def output_degrees(event_dim: int, params: int) -> np.ndarray:
    """Output unit `i * params + p` has degree `i + 1`."""
    return np.repeat(np.arange(1, event_dim + 1), params)


class MaskedDense(tf_keras.layers.Layer):
    """A dense layer whose kernel is multiplied by a fixed 0/1 mask of degrees.

    `y = act(x @ (W * mask) + b)` with `mask[j, k] = in_degrees[j] <= out_degrees[k]`
    (`strict=True`: `<`). With `members = M > 1` it maps `[N, M, in] -> [N, M, units]`
    with a kernel per member (the same mask); otherwise `[N, in] -> [N, units]`. Masked
    entries of `W` get zero gradient and never reach the output.
    """

    def __init__(self, in_degrees: Sequence[int], out_degrees: Sequence[int],
                 strict: bool = False, members: int = 1, activation: str | None = None,
                 zero_init: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.in_degrees = [int(d) for d in in_degrees]
        self.out_degrees = [int(d) for d in out_degrees]
        self.strict = strict
        self.members = members
        self.activation = tf_keras.activations.get(activation)
        self.zero_init = zero_init
        inp, out = np.array(self.in_degrees)[:, None], np.array(self.out_degrees)[None, :]
        self.mask = (inp < out) if strict else (inp <= out)

    @property
    def units(self) -> int:
        return len(self.out_degrees)

    def build(self, input_shape) -> None:
        fan_in = len(self.in_degrees)
        if int(input_shape[-1]) != fan_in:
            raise ValueError(f"{self.name}: expected inputs of width {fan_in}; got "
                             f"{input_shape}.")
        limit = (6.0 / (fan_in + self.units)) ** 0.5
        initializer = "zeros" if self.zero_init else tf_keras.initializers.RandomUniform(
            -limit, limit)
        batch = (self.members,) if self.members > 1 else ()
        self.kernel = self.add_weight(name="kernel", shape=(*batch, fan_in, self.units),
                                      initializer=initializer)
        self.bias = self.add_weight(name="bias", shape=(*batch, self.units),
                                    initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        kernel = self.kernel * tf.constant(self.mask, self.kernel.dtype)
        if self.members > 1:
            return self.activation(tf.einsum("nmi,mio->nmo", inputs, kernel) + self.bias)
        return self.activation(tf.matmul(inputs, kernel) + self.bias)

    def get_config(self):
        return {**super().get_config(), "in_degrees": self.in_degrees,
                "out_degrees": self.out_degrees, "strict": self.strict,
                "members": self.members,
                "activation": tf_keras.activations.serialize(self.activation),
                "zero_init": self.zero_init}


def make_made(event_dim: int, params: int, hidden_units: int, num_hidden_layers: int,
              activation: str = "silu", context_dim: int = 0, members: int = 1,
              name: str = "made") -> tf_keras.Model:
    """A MADE mapping `[N, D + context_dim]` to `[N, D * params]` (`[N, M, ...]` for an
    ensemble of `members = M`): output `i * params + p` depends only on inputs `< i` (and
    the context). `num_hidden_layers` masked layers of `hidden_units`, then a masked linear
    layer starting at zero. Built eagerly, so its variables exist before the first call.
    """
    if event_dim < 2:
        raise ConfigError(f"'event_dim' must be >= 2; got {event_dim}.")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"'activation' must be one of {ACTIVATIONS}; got {activation!r}.")
    degrees = input_degrees(event_dim, context_dim)
    shape = (members, len(degrees)) if members > 1 else (len(degrees),)
    inputs = tf_keras.Input(shape=shape, name=f"{name}_input")
    hidden = inputs
    for i in range(num_hidden_layers):
        out = hidden_degrees(event_dim, hidden_units, lowest=0 if context_dim else 1)
        hidden = MaskedDense(degrees, out, members=members, activation=activation,
                             name=f"{name}_hidden_{i}")(hidden)
        degrees = out
    outputs = MaskedDense(degrees, output_degrees(event_dim, params), strict=True,
                          members=members, zero_init=True, name=f"{name}_out")(hidden)
    return tf_keras.Model(inputs, outputs, name=name)
