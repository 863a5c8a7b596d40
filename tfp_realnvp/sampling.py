"""Seeded, stateless sampling from a flow."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.data import context_for_model
from tfp_realnvp.flow import context_kwargs, flow_context_dim

tfd = tfp.distributions


def stateless_seed(seed: int) -> tf.Tensor:
    """An int32 `[2]` seed: TFP then samples with stateless ops, so a seed gives the same
    draws in every process (a Python int would give stateful, process-dependent ops)."""
    if not 0 <= seed < 2**31:
        raise ValueError(f"'seed' must be in [0, 2**31); got {seed}.")
    return tf.constant([0, seed], dtype=tf.int32)


def sample_flow(flow: tfd.Distribution, num_samples: int, seed: int,
                context: np.ndarray | None = None, how: str = "context=") -> np.ndarray:
    """`num_samples` draws from `flow` as a float32 array `[num_samples, D]`.

    Args:
      flow: a flow or an ensemble from this package (or any TFP distribution over `[D]`
        events, unconditional).
      num_samples: draws, >= 1.
      seed: in [0, 2**31); the same seed gives the same draws in every process.
      context: a conditional flow's context in raw units: `[num_samples, C]` (draw i
        given row i) or `[1, C]` (every draw given the same row); None otherwise.
      how: how the caller passes a context, for the error a missing one gets.
    """
    if num_samples < 1:
        raise ValueError(f"'num_samples' must be >= 1; got {num_samples}.")
    context = context_for_model(context, flow_context_dim(flow), num_samples, how=how)
    kwargs = context_kwargs(flow, None if context is None else tf.constant(context))
    return flow.sample(num_samples, seed=stateless_seed(seed), **kwargs).numpy()

