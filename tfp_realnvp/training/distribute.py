"""Processes and devices: the `tf.distribute` strategy, TF_CONFIG, the chief, worker votes."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import tensorflow as tf

from tfp_realnvp.config import STRATEGIES
from tfp_realnvp.errors import ConfigError

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """`default`: the current (default) strategy; `mirrored`: MirroredStrategy over every
    visible device (on a CPU split into logical devices, one replica per device);
    `multiworker`: MultiWorkerMirroredStrategy over the cluster that `TF_CONFIG` describes
    (one process per worker, each running the same command).

    TensorFlow's rule for `multiworker`: the strategy must be created before any other
    TensorFlow op runs in the process (collective ops are configured at start-up); the CLI
    creates it first thing (`cli.start_tensorflow`).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return _mirrored_strategy(tuple(devices))
    if name == "multiworker":
        resolver = _tf_config_resolver()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        except RuntimeError as error:
            if "program startup" not in str(error):
                raise
            raise ConfigError(
                "A multi-worker strategy must be created before any other TensorFlow op runs "
                "in the process (TensorFlow configures collective ops at start-up): call "
                "make_strategy('multiworker') first.") from None
    raise ConfigError(f"'strategy' must be one of {STRATEGIES}; got {name!r}.")


@functools.cache
def _mirrored_strategy(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per process and device set, reused by every fit.

    Inside `tf.function` a MirroredStrategy all-reduces with collective ops whose keys each
    strategy numbers from the same start: two strategies training in one process hand
    different tensors the same collective instance ("Shape mismatch in the collective
    instance 100"). One shared strategy keeps numbering its collectives.
    """
    return tf.distribute.MirroredStrategy(list(devices))


def _tf_config_resolver() -> tf.distribute.cluster_resolver.TFConfigClusterResolver:
    """The cluster `TF_CONFIG` describes; ConfigError when it is missing or malformed (a
    worker without it would silently train alone)."""
    text = os.environ.get("TF_CONFIG", "")
    example = f"e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' on the first machine, index 1 on the next"
    if not text.strip():
        raise ConfigError(f"--strategy multiworker needs the TF_CONFIG environment variable "
                          f"naming the cluster and this worker's task; {example}.")
    try:
        spec = json.loads(text)
        workers = spec["cluster"]["worker"]
        task = spec["task"]
        index = int(task["index"])
        if task["type"] not in spec["cluster"] or not isinstance(workers, list):
            raise ValueError(f"task type {task['type']!r} is not in the cluster")
        if not 0 <= index < len(spec["cluster"][task["type"]]):
            raise ValueError(f"task index {index} is out of range")
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"TF_CONFIG is not a usable cluster description ({type(error).__name__}: "
                          f"{error}); {example}.") from None
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run (every process but a non-chief multi-worker one)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def saves_summaries(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes TensorBoard summaries (all but the non-chief workers)."""
    return bool(getattr(strategy.extended, "should_save_summary", True))


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes training together: the workers of a multi-worker strategy, else 1."""
    return int(getattr(strategy.extended, "_num_workers", 1))


class Workers:
    """Agreement between the workers of one run: decisions a worker takes alone (a time
    budget on its own clock, a signal it received) are taken by all, so no worker waits
    forever in a collective the others left. One worker: values pass unchanged."""

    def __init__(self, strategy: tf.distribute.Strategy) -> None:
        self.strategy = strategy
        self.count = num_workers(strategy)
        self._sum = tf.function(self._sum_fn)

    def _sum_fn(self, values: tf.Tensor) -> tf.Tensor:
        per_replica = self.strategy.run(tf.identity, args=(values,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def any(self, *flags: bool) -> list[bool]:
        """Each flag, true if it is true in any worker."""
        if self.count == 1:
            return list(flags)
        summed = self._sum(tf.constant([float(f) for f in flags]))
        return [bool(v > 0) for v in summed.numpy()]

    def mean(self, value: float) -> float:
        """`value` averaged over the workers, so an estimate each worker makes from its own
        clock is the same number on all of them."""
        if self.count == 1:
            return value
        return float(self._sum(tf.constant([value], tf.float32))[0]) / self.count


@contextlib.contextmanager
def worker_run_dir(run_dir: str | Path, strategy: tf.distribute.Strategy) -> Iterator[Path]:
    """Where this process writes its run: `run_dir` for the chief (and any single-process
    run); for another worker of a multi-worker run, a temporary directory removed at the
    end. Every worker must still save checkpoints (saving may run collective ops), so the
    others write theirs where nobody reads them: TensorFlow's multi-worker convention."""
    if is_chief(strategy):
        yield Path(run_dir)
        return
    scratch = Path(tempfile.mkdtemp(prefix="tfp-realnvp-worker-"))
    try:
        yield scratch / "run"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
