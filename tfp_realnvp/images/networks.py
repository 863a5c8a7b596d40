"""The image couplings' conditioner: a small convolutional residual network (tf-keras)."""

from __future__ import annotations

import tf_keras

from tfp_realnvp.errors import ConfigError


def make_conv_conditioner(shape: tuple[int, int, int], filters: int, num_blocks: int,
                          name: str = "conv_conditioner") -> tf_keras.Model:
    """`[N, H, W, C + 1]` (masked image and mask) -> `[N, H, W, 2C]` (shift, raw log-scale
    per value, interleaved), for images of `shape` `(H, W, C)`.

    ```none
    h = conv3x3(x, filters)
    h = h + conv3x3(relu(conv3x3(relu(h))))      (num_blocks residual blocks)
    out = conv3x3(relu(h), 2C)                    (zero-initialised: the coupling starts
                                                   as the identity)
    ```
    Built eagerly on its fixed input shape, so its variables exist before the first call
    (checkpoints restore into it at once); a tf-keras model, so a bijector holding it
    tracks its weights (see `networks.py`).
    """
    height, width, channels = shape
    if filters < 1 or num_blocks < 0:
        raise ConfigError(f"'filters' must be >= 1 and 'num_blocks' >= 0; got {filters}, "
                          f"{num_blocks}.")
    layers = tf_keras.layers
    inputs = tf_keras.Input(shape=(height, width, channels + 1), name=f"{name}_input")
    hidden = layers.Conv2D(filters, 3, padding="same", name=f"{name}_in")(inputs)
    for i in range(num_blocks):
        inner = layers.Activation("relu")(hidden)
        inner = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              name=f"{name}_block{i}_a")(inner)
        inner = layers.Conv2D(filters, 3, padding="same", name=f"{name}_block{i}_b")(inner)
        hidden = layers.Add()([hidden, inner])
    hidden = layers.Activation("relu")(hidden)
    outputs = layers.Conv2D(2 * channels, 3, padding="same", kernel_initializer="zeros",
                            bias_initializer="zeros", name=f"{name}_out")(hidden)
    return tf_keras.Model(inputs, outputs, name=name)
