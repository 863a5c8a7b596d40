"""Seeded, stateless sampling from a flow, in batches of bounded size."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.flow import context_kwargs, flow_context_dim
from tfp_realnvp.tables import context_for_model

tfd = tfp.distributions

SAMPLE_BATCH = 65536  # draws per call: bounds the memory a large request needs


def stateless_seed(seed: int, batch: int = 0) -> tf.Tensor:
    """An int32 `[2]` seed, `[batch, seed]`: TFP then samples with stateless ops, so a seed
    gives the same draws in every process (a Python int would give stateful,
    process-dependent ops). `batch` numbers the batches of one large request."""
    if not 0 <= seed < 2**31:
        raise ValueError(f"'seed' must be in [0, 2**31); got {seed}.")
    return tf.constant([batch, seed], dtype=tf.int32)


def sample_flow(flow: tfd.Distribution, num_samples: int, seed: int,
                context: np.ndarray | None = None, how: str = "context=",
                batch_size: int = SAMPLE_BATCH) -> np.ndarray:
    """`num_samples` draws from `flow` as a float32 array `[num_samples, D]`.

    Draws `batch_size` rows at a time: batch `k` (rows `k * batch_size` on) uses the
    stateless seed `[k, seed]`, so memory stays bounded, a request of up to `batch_size`
    rows is exactly `flow.sample(n, seed=[0, seed])` (what the SavedModel's `sample`
    signature returns for that seed), and the first rows of a larger request are the same
    whatever its size. The draws depend on `batch_size`: keep the default to reproduce.

    Args:
      flow: a flow or an ensemble from this package (or any TFP distribution over `[D]`
        events, unconditional).
      num_samples: draws, >= 1.
      seed: in [0, 2**31); the same seed gives the same draws in every process.
      context: a conditional flow's context in raw units: `[num_samples, C]` (draw i
        given row i) or `[1, C]` (every draw given the same row); None otherwise.
      how: how the caller passes a context, for the error a missing one gets.
      batch_size: rows per call, >= 1.
    """
    if num_samples < 1:
        raise ValueError(f"'num_samples' must be >= 1; got {num_samples}.")
    if batch_size < 1:
        raise ValueError(f"'batch_size' must be >= 1; got {batch_size}.")
    stateless_seed(seed)  # checks the seed before anything is drawn
    context = context_for_model(context, flow_context_dim(flow), num_samples, how=how)
    dim = int(flow.event_shape[-1])
    out = np.empty((num_samples, dim), np.float32)
    for batch, start in enumerate(range(0, num_samples, batch_size)):
        size = min(batch_size, num_samples - start)
        rows = None if context is None else \
            context[start:start + size] if len(context) == num_samples else context
        kwargs = context_kwargs(flow, None if rows is None else tf.constant(rows))
        out[start:start + size] = flow.sample(size, seed=stateless_seed(seed, batch),
                                              **kwargs).numpy()
    return out
