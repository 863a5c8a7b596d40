"""The Keras model this project grew from (the original notebook's RealNVP), as a baseline.

A `tf_keras.Model` with two MLPs per coupling (log-scale `s`: ReLU layers then a tanh
output; shift `t`: ReLU layers then a linear output), masks alternating between the two
halves of the columns, and a standard Normal base:

```none
inverse (data -> latent), coupling i with mask b:  x' = b x + (1 - b)(x - t(b x)) exp(-s(b x))
log p(x) = log N(z; 0, I) - sum_i sum_j (1 - b_i)_j s_i(b_i x)_j
```
The notebook trains it with Adam at 1e-4, batch 256, on standardised data. Its L2 kernel
regularisers never reach the loss (its `train_step` only uses `log_loss`), so they are left
out here. Generalised from 2 to D columns: mask `b` keeps the first `D // 2` columns, then
the others, alternately.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras


def _mlp(dim: int, hidden_units: int, num_hidden_layers: int, output_activation: str,
         name: str) -> tf_keras.Model:
    inputs = tf_keras.Input(shape=(dim,))
    hidden = inputs
    for _ in range(num_hidden_layers):
        hidden = tf_keras.layers.Dense(hidden_units, activation="relu")(hidden)
    outputs = tf_keras.layers.Dense(dim, activation=output_activation)(hidden)
    return tf_keras.Model(inputs, outputs, name=name)


class NotebookRealNVP(tf_keras.Model):
    """The notebook's RealNVP: `call(x, training=True)` maps data to latent and returns
    `(z, log_det_inverse)`; `training=False` maps latent to data."""

    def __init__(self, dim: int = 2, num_couplings: int = 6, hidden_units: int = 256,
                 num_hidden_layers: int = 4) -> None:
        super().__init__(name="notebook_realnvp")
        self.dim = dim
        first = np.zeros(dim, np.float32)
        first[: dim // 2] = 1.0
        self.masks = tf.constant(np.stack([first if i % 2 == 0 else 1.0 - first
                                           for i in range(num_couplings)]))
        self.scale_nets = [_mlp(dim, hidden_units, num_hidden_layers, "tanh", f"s_{i}")
                           for i in range(num_couplings)]
        self.shift_nets = [_mlp(dim, hidden_units, num_hidden_layers, "linear", f"t_{i}")
                           for i in range(num_couplings)]

    def call(self, x, training=True):
        log_det_inv = tf.zeros_like(x[:, 0])
        direction = -1 if training else 1
        order = range(len(self.scale_nets))
        for i in (reversed(order) if training else order):
            mask = self.masks[i]
            x_masked = x * mask
            reversed_mask = 1.0 - mask
            s = self.scale_nets[i](x_masked) * reversed_mask
            t = self.shift_nets[i](x_masked) * reversed_mask
            gate = (direction - 1) / 2
            x = reversed_mask * (x * tf.exp(direction * s)
                                 + direction * t * tf.exp(gate * s)) + x_masked
            log_det_inv += gate * tf.reduce_sum(s, axis=1)
        return x, log_det_inv

    def log_prob(self, x: tf.Tensor) -> tf.Tensor:
        """`log p(x)` per row, in the model's (standardised) units."""
        z, log_det = self(x, training=True)
        return -0.5 * tf.reduce_sum(z * z, axis=1) - 0.5 * self.dim * np.log(2 * np.pi) \
            + log_det

    def sample(self, num_samples: int, seed: tf.Tensor) -> tf.Tensor:
        """Latent draws `z ~ N(0, I)` (stateless, seeded) mapped to data."""
        z = tf.random.stateless_normal([num_samples, self.dim], seed=seed)
        return self(z, training=False)[0]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(self.log_prob(data))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        return {"loss": loss}
