"""The benchmark's harness: the in-graph training loop, best-of-N timing, peak memory, the device.

Every model trains in the same tight loop (a `tf.function` running `steps` steps in-graph:
a random batch gathered from a fixed table, the mean NLL's gradients, an Adam update), so
the figures compare models, not harnesses.
"""

from __future__ import annotations

import math
import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras

from tfp_realnvp.bench.subjects import Subject


class PeakMemory:
    """Peak memory while a block runs, above what was in use when it started.

    On a GPU: TensorFlow's allocator peak on GPU:0 (`get_memory_info`, reset first). On a
    CPU: the process's resident set size, read from /proc/self/statm every 5 ms by a
    thread (elsewhere: the growth of `ru_maxrss`, the process's high-water mark).
    """

    def __init__(self) -> None:
        self.gpu = bool(tf.config.list_logical_devices("GPU"))
        self.kind = ("GPU:0 allocator peak (tf.config.experimental.get_memory_info)"
                     if self.gpu else "process RSS peak above its start (sampled every 5 ms)")
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
            self._start = tf.config.experimental.get_memory_info("GPU:0")["current"]
            return self
        self._start = _rss_bytes()
        self._peak = self._start
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc_info: Any) -> None:
        if self.gpu:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes())
        self.peak_bytes = max(0, peak - self._start)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def best_seconds(function: Callable[[], Any], repeats: int) -> float:
    """The fastest of `repeats` timed calls of `function`, in seconds (machines are noisy)."""
    best = math.inf
    for _ in range(repeats):
        tick = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - tick)
    return best


def training_loop(subject: Subject, table: tf.Tensor, batch_size: int,
                  learning_rate: float = 1e-4) -> Callable[[tf.Tensor], tf.Tensor]:
    """A `tf.function` that runs `steps` Adam steps in-graph on batches gathered from
    `table` (the loss and gradients XLA-compiled when the subject says so)."""
    optimizer = tf_keras.optimizers.Adam(learning_rate)
    optimizer.build(subject.variables)

    @tf.function(jit_compile=subject.jit_compile)
    def loss_and_grads(x):
        with tf.GradientTape() as tape:
            loss = subject.loss(x)
        return loss, tape.gradient(loss, subject.variables)

    @tf.function
    def run(steps):
        loss = tf.constant(0.0)
        for step in tf.range(steps):
            index = tf.random.stateless_uniform([batch_size], tf.stack([0, step]), 0,
                                                tf.shape(table)[0], dtype=tf.int32)
            loss, grads = loss_and_grads(tf.gather(table, index))
            optimizer.apply_gradients(zip(grads, subject.variables, strict=True))
        return loss

    run.loss_and_grads = loss_and_grads
    return run
