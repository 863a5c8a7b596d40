"""Benchmark: log_prob throughput of the exported SavedModel versus the in-process flow.

Trains a small flow on two moons (or takes --run), exports it, then times, side by side in
one process, at batch sizes 1, 256 and 65,536:
  - the in-process flow:   `tf.function(flow.log_prob)` (what training and `load` use);
  - the loaded SavedModel: `tf.saved_model.load(...).signatures["log_prob"]`.
Prints points/s for each and their ratio. Run: python benchmarks/serving_throughput.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfp_realnvp  # noqa: E402
from tfp_realnvp import TrainConfig  # noqa: E402
from tfp_realnvp import training as train_lib  # noqa: E402
from tfp_realnvp.tables import make_toy  # noqa: E402


def points_per_second(fn, x: tf.Tensor, min_seconds: float) -> float:
    """Calls `fn(x)` repeatedly for at least `min_seconds` (after a warm-up call)."""
    fn(x)
    calls, start = 0, time.perf_counter()
    while True:
        result = fn(x)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= 3:
            break
    np.asarray(result)  # make sure the last call finished
    return calls * int(x.shape[0]) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing run directory (default: train a fresh one)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="tfp-realnvp-bench-")
    run_dir = args.run
    if run_dir is None:
        run_dir = os.path.join(workdir, "run")
        # The flow the README's figures were measured with: 8 affine couplings, 3x64 SiLU.
        flow_config = tfp_realnvp.FlowConfig(num_couplings=8, hidden_units=64,
                                             num_hidden_layers=3)
        train_lib.fit(make_toy("moons", 3000), run_dir, flow_config,
                      TrainConfig(epochs=5))
    version_dir = tfp_realnvp.export(run_dir, os.path.join(workdir, "exports"))
    flow = tfp_realnvp.load(run_dir)
    in_process = tf.function(flow.log_prob)
    served = tf.saved_model.load(str(version_dir)).signatures["log_prob"]

    def exported(x):
        return served(x=x)["log_prob"]

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU(s); export: {version_dir}")
    print(f"{'batch':>7} {'in-process pts/s':>18} {'SavedModel pts/s':>18} {'ratio':>7}")
    for batch in (1, 256, 65536):
        x = tf.constant(make_toy("moons", batch, seed=batch))
        np.testing.assert_allclose(exported(x), in_process(x), atol=1e-5)
        a = points_per_second(in_process, x, args.seconds)
        b = points_per_second(exported, x, args.seconds)
        print(f"{batch:>7} {a:>18,.0f} {b:>18,.0f} {b / a:>7.2f}")


if __name__ == "__main__":
    main()
