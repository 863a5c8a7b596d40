"""One model's throughput: training steps/s, `log_prob` points/s, samples/s, warm-up, memory.

Throughput is the best of `repeats` timed runs after a warm-up run that traces (and, with
XLA, compiles) the step.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp.bench.options import SpeedOptions
from tfp_realnvp.bench.subjects import Subject
from tfp_realnvp.bench.timing import PeakMemory, best_seconds, training_loop
from tfp_realnvp.sampling import stateless_seed


def measure_subject(subject: Subject, options: SpeedOptions, table: tf.Tensor,
                    points: tf.Tensor) -> dict[str, Any]:
    """Training steps/s (with rows/s), `log_prob` points/s, `sample` samples/s, the warm-up
    (trace, compile) seconds and peak memory of one subject."""
    with PeakMemory() as memory:
        run = training_loop(subject, table, options.batch_size)
        tick = time.perf_counter()
        loss = float(run(tf.constant(2)))
        warm_up = time.perf_counter() - tick
        steps = tf.constant(options.steps)
        train_s = best_seconds(lambda: run(steps).numpy(), options.repeats)
        log_prob = tf.function(subject.log_prob)
        log_prob(points)
        log_prob_s = best_seconds(lambda: log_prob(points).numpy(), options.repeats)
        n = int(points.shape[0])
        sample = tf.function(lambda seed: subject.sample(n, seed))
        seed = stateless_seed(0)
        sample(seed)
        sample_s = best_seconds(lambda: sample(seed).numpy(), options.repeats)
    steps_per_s = options.steps / train_s
    return {
        "name": subject.name, "arch": subject.arch, "xla": subject.jit_compile,
        "parameters": int(sum(np.prod(v.shape) for v in subject.variables)),
        "train_steps_per_s": steps_per_s,
        "train_rows_per_s": steps_per_s * options.batch_size,
        "log_prob_points_per_s": n / log_prob_s,
        "sample_per_s": n / sample_s,
        "warm_up_s": warm_up,
        "peak_memory_mb": memory.peak_bytes / 2**20,
        "loss_finite": math.isfinite(loss),
    }
