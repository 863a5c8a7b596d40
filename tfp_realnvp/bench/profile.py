"""Where the time of one training step goes: trace, forward, gradients, update, matmul FLOPs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp.bench.options import SpeedOptions
from tfp_realnvp.bench.subjects import Subject
from tfp_realnvp.bench.timing import best_seconds, training_loop


def matmul_flops(graph: tf.Graph) -> float:
    """FLOPs of the MatMul, BatchMatMul and Einsum ops of a traced graph (2 per
    multiply-add; static shapes needed, ops with unknown shapes are skipped)."""
    total = 0.0
    for op in graph.get_operations():
        try:
            out = op.outputs[0].shape.as_list() if op.outputs else None
            if not out or None in out:
                continue
            if op.type == "MatMul":
                a = op.inputs[0].shape.as_list()
                inner = a[0] if op.get_attr("transpose_a") else a[1]
            elif op.type in ("BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
                a = op.inputs[0].shape.as_list()
                inner = a[-2] if op.get_attr("adj_x") else a[-1]
            elif op.type == "Einsum":
                inner = _einsum_inner(op)
            else:
                continue
            if inner is None:
                continue
            total += 2.0 * float(np.prod(out)) * inner
        except (ValueError, TypeError):
            continue
    return total


def _einsum_inner(op: tf.Operation) -> int | None:
    equation = op.get_attr("equation").decode()
    inputs, output = equation.split("->")
    sizes: dict[str, int] = {}
    for labels, tensor in zip(inputs.split(","), op.inputs, strict=True):
        shape = tensor.shape.as_list()
        if "." in labels or len(labels) != len(shape) or None in shape:
            return None
        sizes.update(zip(labels, shape, strict=True))
    contracted = set(sizes) - set(output)
    return int(np.prod([sizes[c] for c in contracted])) if contracted else 1


def machine_matmul_gflops(size: int = 1024, repeats: int = 3) -> float:
    """Sustained float32 GFLOP/s of one square matmul on the default device."""
    a = tf.random.stateless_normal([size, size], seed=[1, 2])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
    matmul()
    seconds = best_seconds(lambda: matmul().numpy(), repeats)
    return 2.0 * size**3 / seconds / 1e9


def profile_step(subject: Subject, options: SpeedOptions, table: tf.Tensor,
                 peak_gflops: float) -> dict[str, Any]:
    """A timed breakdown of one training step: trace seconds, forward only, forward +
    gradients, the Adam update, the graph's op count and matmul FLOPs against the machine's
    matmul rate (what the step would cost if it were all arithmetic). Each part runs
    `steps` times in-graph, as the training loop does."""
    batch = tf.gather(table, tf.range(options.batch_size))
    run = training_loop(subject, table, options.batch_size)
    tick = time.perf_counter()
    concrete = run.loss_and_grads.get_concrete_function(batch)
    trace_s = time.perf_counter() - tick
    forward = tf.function(subject.loss, jit_compile=subject.jit_compile)

    def in_graph(part: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
        @tf.function
        def loop(steps):
            total = tf.constant(0.0)
            for step in tf.range(steps):
                total += part(batch + tf.cast(step, tf.float32) * 1e-6)
            return total
        return loop

    parts = {"forward": in_graph(forward),
             "forward_and_gradients": in_graph(lambda x: run.loss_and_grads(x)[0]),
             "step": run}
    seconds = {}
    steps = tf.constant(options.steps)
    for name, loop in parts.items():
        loop(tf.constant(2))
        seconds[name] = best_seconds(lambda loop=loop: loop(steps).numpy(),
                                      options.repeats) / options.steps
    flops = matmul_flops(concrete.graph)
    floor_s = flops / (peak_gflops * 1e9)
    step_s = seconds["step"]
    return {
        "name": subject.name, "arch": subject.arch, "xla": subject.jit_compile,
        "trace_s": trace_s,
        "forward_ms": seconds["forward"] * 1e3,
        "forward_and_gradients_ms": seconds["forward_and_gradients"] * 1e3,
        "step_ms": step_s * 1e3,
        "update_and_batch_ms": max(0.0, step_s - seconds["forward_and_gradients"]) * 1e3,
        "graph_ops": len(concrete.graph.get_operations()),
        "matmul_gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / step_s / 1e9,
        "matmul_floor_ms": floor_s * 1e3,
        "overhead_share": max(0.0, 1.0 - floor_s / step_s),
    }
