"""Scoring a flow on data: per-row NLL in batches, its summary, bits/dim, fresh toy points.

NLL is in nats per row, in data units: `-log p(x)` with `p` the flow's density over the
data's own coordinates. Bits per dimension divide by `D log 2`, as the flow literature does.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import tables
from tfp_realnvp.config import TOY_DATASET_NAMES
from tfp_realnvp.flow import context_kwargs, flow_context_dim
from tfp_realnvp.rundir import RunDir

tfd = tfp.distributions

DEFAULT_TEST_POINTS = 20000
TEST_SEED_OFFSET = 1_000_003  # fresh toy points: a seed far from any training seed
SCORE_BATCH = 65536


def per_row_nll(flow: tfd.Distribution, data: np.ndarray,
                batch_size: int = SCORE_BATCH, context: np.ndarray | None = None,
                how: str = "context=") -> np.ndarray:
    """`-log p(row)` (or `-log p(row | context row)`) for every row, in float64, computed
    `batch_size` rows at a time.

    Args:
      flow: any distribution over `[D]` events (a flow, or a mixture of flows).
      data: `[N, D]` float32 rows in data units.
      batch_size: rows per call, which bounds the memory the scoring needs.
      context: a conditional flow's raw context, `[N, C]` (row i's) or `[1, C]` (shared).
      how: how the caller passes a context, for the error a missing one gets.
    """
    data = np.asarray(data, np.float32)
    context = tables.context_for_model(context, flow_context_dim(flow), len(data), how=how)
    chunks = []
    for start in range(0, len(data), batch_size):
        rows = slice(start, start + batch_size)
        kwargs = context_kwargs(flow, None if context is None else tf.constant(context[rows]))
        chunks.append(flow.log_prob(tf.constant(data[rows]), **kwargs).numpy())
    return -np.concatenate(chunks).astype(np.float64)


def mean_nll(flow: tfd.Distribution, data: np.ndarray, batch_size: int = SCORE_BATCH) -> float:
    """Mean negative log-likelihood of `data` under `flow`, in nats per row."""
    return float(per_row_nll(flow, data, batch_size).mean())


def bits_per_dim(nll: float, dim: int) -> float:
    """Nats per row to bits per dimension: `nll / (D log 2)`."""
    return nll / (dim * math.log(2.0))


def summarise(nll: np.ndarray, dim: int) -> dict[str, Any]:
    """The mean NLL and bits/dim with the quantiles that show the tails.

    A mean on fresh data is carried by its worst rows, so the median, p99 and max are
    reported beside it.
    """
    mean = float(nll.mean())
    return {
        "nll": mean,
        "bits_per_dim": bits_per_dim(mean, dim),
        "median": float(np.median(nll)),
        "p99": float(np.quantile(nll, 0.99)),
        "max": float(nll.max()),
        "n": int(len(nll)),
    }


def fresh_toy_points(dataset: str, noise: float, seed: int,
                     num_points: int = DEFAULT_TEST_POINTS) -> np.ndarray:
    """Points of a built-in toy set that training never saw (seed offset from `seed`)."""
    return tables.make_toy(dataset, num_points, noise, seed + TEST_SEED_OFFSET)


def score_fresh_toy(flow: tfd.Distribution, dataset: str, noise: float, seed: int,
                    num_points: int = DEFAULT_TEST_POINTS) -> dict[str, Any]:
    """Summary of the flow's NLL on fresh points of the toy set it was trained on."""
    points = fresh_toy_points(dataset, noise, seed, num_points)
    return summarise(per_row_nll(flow, points), points.shape[1])


def score_toy_run(run_dir: str | os.PathLike, flow: tfd.Distribution,
                  metrics: dict[str, Any]) -> dict[str, Any]:
    """For a run trained on a built-in toy set: scores `flow` on fresh points of that set
    (`score_fresh_toy`), records them in its metrics.json as `test_nll`, `test_median`,
    `test_p99`, `test_max`, `test_bits_per_dim` and `test_num_points`, and returns the
    updated metrics; any other run's `metrics` come back unchanged.

    Args:
      run_dir: the run directory `flow` was trained in.
      flow: the trained flow.
      metrics: the run's metrics as training returned them.
    """
    run = RunDir(run_dir)
    info = run.read_config().data
    if info.get("source") not in TOY_DATASET_NAMES or "num_points" not in info:
        return metrics
    scores = score_fresh_toy(flow, info["source"], info["noise"], info["seed"])
    test = {f"test_{k}": v for k, v in scores.items() if k != "n"}
    return run.update_metrics({**test, "test_num_points": scores["n"]})
