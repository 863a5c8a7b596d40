"""Seeded, stateless sampling from a flow."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def stateless_seed(seed: int) -> tf.Tensor:
    """An int32 `[2]` seed: TFP then samples with stateless ops, so a seed gives the same
    draws in every process (a Python int would give stateful, process-dependent ops)."""
    if not 0 <= seed < 2**31:
        raise ValueError(f"'seed' must be in [0, 2**31); got {seed}.")
    return tf.constant([0, seed], dtype=tf.int32)


def sample_flow(flow: tfd.Distribution, num_samples: int, seed: int) -> np.ndarray:
    """`num_samples` draws from `flow` as a float32 array `[num_samples, D]`.

    Args:
      flow: any TFP distribution over `[D]` events (a flow or an ensemble).
      num_samples: draws, >= 1.
      seed: in [0, 2**31); the same seed gives the same draws in every process.
    """
    if num_samples < 1:
        raise ValueError(f"'num_samples' must be >= 1; got {num_samples}.")
    return flow.sample(num_samples, seed=stateless_seed(seed)).numpy()
