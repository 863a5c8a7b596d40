"""The default 2-D flow's training step with TFP's gather-based spline against
`OneHotSpline`, side by side in one process: traced ops, trace seconds, first-call
(XLA compile) seconds, steps/s.

    python benchmarks/spline_ops.py [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.bench.subjects import default_config, flow_subject, training_table
from tfp_realnvp.bench.timing import best_seconds, training_loop
from tfp_realnvp.bijectors import spline


def measure(label: str, steps: int) -> None:
    config, jit = default_config(2)
    subject = flow_subject(label, config, jit)
    table = training_table(2)
    run = training_loop(subject, table, 256)
    tick = time.perf_counter()
    graph = run.loss_and_grads.get_concrete_function(table[:256]).graph
    trace = time.perf_counter() - tick
    tick = time.perf_counter()
    run(tf.constant(2)).numpy()
    first = time.perf_counter() - tick
    seconds = min(best_seconds(lambda: run(tf.constant(steps)).numpy(), 1)
                  for _ in range(3))
    print(f"{label}: {len(graph.get_operations())} ops, trace {trace:.1f} s, first call "
          f"(trace + compile) {first:.1f} s, {steps / seconds:.1f} steps/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    steps = parser.parse_args().steps
    one_hot = spline.OneHotSpline
    for _ in range(2):
        spline.OneHotSpline = one_hot
        measure("one-hot spline", steps)
        # TFP's own bijector; the coupling's fused forward falls back to TFP's methods.
        spline.OneHotSpline = type("TfpSpline", (tfp.bijectors.RationalQuadraticSpline,), {
            "forward_and_log_det": lambda self, x: (
                self.forward(x), self.forward_log_det_jacobian(x, 0)),
            "inverse_and_log_det": lambda self, y: (
                self.inverse(y), self.inverse_log_det_jacobian(y, 0))})
        measure("TFP gather spline", steps)


if __name__ == "__main__":
    main()
