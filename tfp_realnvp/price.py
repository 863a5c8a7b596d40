"""The price of serving a model: its members, trainable parameters and measured `log_prob`
rows/s at batch 1 and 4,096, timed on the exporting machine (`measure_price`).

```none
members     FlowConfig.ensemble_size (every member runs on every request)
parameters  sum over the flow's trainable variables v of prod(shape(v))
rows/s      B / median(seconds of a timed call of the export's log_prob function on B rows)
```
Untimed calls at batch 1 first (the function is traced when the SavedModel is written, but
its first runs build the executor and still take ms each: measured ~10 calls to reach the
steady state), then timed calls while a per-batch budget lasts (at least one, at most
`MAX_CALLS`): a few hundred milliseconds in all. A model so slow that one call at 4,096 rows
would take over `MAX_CALL_S` (a 64-column autoregressive ensemble: 1.5 s) is timed at the
largest power-of-two batch that would not, recorded as `timed_batch`. The median keeps one
slow first call out.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp.config import FlowConfig
from tfp_realnvp.info import PRICE_BATCHES

MAX_CALLS = 7
PROBE_ROWS = 256  # a call at this many rows predicts the cost of one at 4,096
MAX_CALL_S = 0.25  # no timed call of a bigger batch is predicted to take longer than this
WARM_UP = (10, 0.1)  # untimed calls at batch 1: at most this many, or this many seconds
BUDGET_S = {1: 0.08, 4096: 0.25}  # timed seconds per batch size, after the first timed call


def trainable_parameters(model: Any) -> int:
    """sum of prod(shape) over the trainable variables of `model`'s flow (a
    `MixedTableModel` counts its flow: its categorical part is counted cells, not weights)."""
    flow = model.flow if hasattr(model, "categorical") else model
    return int(sum(int(np.prod(v.shape)) for v in flow.trainable_variables))


def machine() -> str:
    """`CPU model (N cores)`, or the GPU's name when TensorFlow sees one."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle
                         if line.startswith("model name")), name)
    except OSError:
        pass
    return f"CPU: {name} ({os.cpu_count()} cores)"


def rows(inputs: dict[str, np.ndarray], batch: int) -> dict[str, tf.Tensor]:
    """`inputs` (a valid request, rows on axis 0) repeated cyclically to `batch` rows."""
    out = {}
    for key, value in inputs.items():
        value = np.asarray(value)
        index = np.arange(batch) % value.shape[0]
        out[key] = tf.constant(value[index])
    return out


def time_calls(call: Callable[[], Any], budget_s: float,
               max_calls: int = MAX_CALLS) -> list[float]:
    """Seconds of timed calls of `call`: one, then more until `budget_s` is spent or
    `max_calls` are made."""
    seconds: list[float] = []
    while len(seconds) < max_calls and (not seconds or sum(seconds) < budget_s):
        tick = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - tick)
    return seconds


def measure_price(log_prob: Callable[..., Any], request: dict[str, np.ndarray],
                  model: Any, config: FlowConfig) -> dict[str, Any]:
    """The price record of a served model (what `assets.extra/price.json` holds).

    Args:
      log_prob: the export's `log_prob` function (keyword inputs, as the signature takes).
      request: one valid `log_prob` request (its warm-up inputs, rows on axis 0).
      model: the live flow (or `MixedTableModel`) being exported.
      config: its FlowConfig.
    """
    one_row = rows(request, 1)
    time_calls(lambda: _run(log_prob, one_row), WARM_UP[1], WARM_UP[0])
    timings = {}
    for batch in PRICE_BATCHES:
        timed, seconds = (batch, []) if batch == 1 else affordable_batch(
            log_prob, request, batch, timings["1"]["median_ms"] / 1e3)
        if not seconds:  # (the probe's calls are the timed ones when it is the batch)
            inputs = rows(request, timed)
            seconds = time_calls(lambda inputs=inputs: _run(log_prob, inputs),
                                 BUDGET_S[batch])
        median = statistics.median(seconds)
        timings[str(batch)] = {"rows_per_s": timed / median, "median_ms": 1e3 * median,
                               "calls": len(seconds), "timed_batch": timed}
    if not all(math.isfinite(t["rows_per_s"]) and t["rows_per_s"] > 0
               for t in timings.values()):
        raise ValueError(f"log_prob timings are not positive and finite: {timings}")
    return {
        "members": config.ensemble_size,
        "coupling": config.coupling,
        "trainable_parameters": trainable_parameters(model),
        "log_prob": timings,
        "machine": machine(),
        "tensorflow_version": tf.__version__,
        "how": "median of timed calls of the export's log_prob signature function in the "
               "exporting process, after one warm-up call; rows at the training mean",
    }


def affordable_batch(log_prob: Callable[..., Any], request: dict[str, np.ndarray],
                     batch: int, overhead_s: float) -> tuple[int, list[float]]:
    """`batch`, or for a model whose one call at `batch` rows would take over
    `MAX_CALL_S`, the largest power of two whose call would not: its rows/s stands for
    `batch`'s (large batches are linear in rows; it is recorded as `timed_batch`).

    A call at b rows is predicted as `overhead_s + b * per_row` (`overhead_s`: a call at
    one row), `per_row` from the faster of two calls at `PROBE_ROWS` rows. Returns the
    batch and, when it is `PROBE_ROWS`, those two calls' seconds (else [])."""
    probe = rows(request, PROBE_ROWS)
    _run(log_prob, probe)  # the first call at a new size allocates
    seconds = time_calls(lambda: _run(log_prob, probe), math.inf, 2)
    per_row = max(min(seconds) - overhead_s, 0.0) / (PROBE_ROWS - 1)
    timed = batch
    while timed > PROBE_ROWS and overhead_s + timed * per_row > MAX_CALL_S:
        timed //= 2
    return timed, seconds if timed == PROBE_ROWS else []


def _run(log_prob: Callable[..., Any], inputs: dict[str, tf.Tensor]) -> None:
    outputs = log_prob(**inputs)
    for value in (outputs.values() if isinstance(outputs, dict) else [outputs]):
        value.numpy()
