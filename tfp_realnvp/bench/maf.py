"""The baseline a TFP user would build: TFP's MaskedAutoregressiveFlow, trained plainly.

Five MAF layers (MADE networks of two 64-unit ReLU layers, shift and log-scale per
coordinate), reversals between them, the columns standardised on the training split;
Adam at 1e-3, batch 256, the best epoch on a 10% validation split kept (patience 50: a
MAF's validation NLL plateaus for tens of epochs before it falls again).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfp_realnvp import prepare as prepare_lib

tfb = tfp.bijectors
tfd = tfp.distributions


def build_maf(dim: int, shift: np.ndarray, scale: np.ndarray, num_layers: int = 5,
              hidden_units: int = 64) -> tfd.Distribution:
    """MAF layers with reversals, then the standardisation's inverse to data units."""
    steps: list[tfb.Bijector] = [tfb.Shift(shift.astype(np.float32)),
                                 tfb.Scale(scale.astype(np.float32))]
    for layer in range(num_layers):
        made = tfb.AutoregressiveNetwork(params=2, hidden_units=[hidden_units, hidden_units],
                                         activation="relu", name=f"made_{layer}")
        steps.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made))
        if layer < num_layers - 1:
            steps.append(tfb.Permute(np.arange(dim)[::-1].copy()))
    base = tfd.MultivariateNormalDiag(tf.zeros(dim))
    return tfd.TransformedDistribution(base, tfb.Chain(steps))


def fit_maf(train: np.ndarray, seed: int = 0, max_epochs: int = 500, patience: int = 50,
            batch_size: int = 256) -> tuple[tfd.Distribution, int]:
    """Trains a MAF on `train`; returns it (best validation weights) and the best epoch."""
    tf_keras.utils.set_random_seed(seed)
    fit_rows, validation = prepare_lib.train_validation_split(train, 0.1, seed)
    mean, std = fit_rows.mean(0), fit_rows.std(0) + 1e-6
    flow = build_maf(train.shape[1], mean, std)
    flow.log_prob(fit_rows[:1])  # builds the MADE networks' variables
    variables = flow.trainable_variables
    optimizer = tf_keras.optimizers.Adam(1e-3)
    batch = min(batch_size, len(fit_rows))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.log_prob(x))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    validation_nll = tf.function(lambda: -tf.reduce_mean(flow.log_prob(validation)))
    best, best_epoch, best_weights = float(validation_nll()), 0, [v.numpy() for v in variables]
    rng = np.random.default_rng(seed)
    for epoch in range(1, max_epochs + 1):
        order = rng.permutation(len(fit_rows))
        for start in range(0, len(order) - batch + 1, batch):
            step(tf.constant(fit_rows[order[start:start + batch]]))
        score = float(validation_nll())
        if score < best:
            best, best_epoch, best_weights = score, epoch, [v.numpy() for v in variables]
        if epoch - best_epoch >= patience:
            break
    for variable, value in zip(variables, best_weights, strict=True):
        variable.assign(value)
    return flow, best_epoch
