"""The speed benchmark: training, `log_prob` and `sample` throughput of this package's flow
against TFP's built-in RealNVP and the original notebook's Keras model, side by side in one
process; time to quality on two moons; how the step cost scales; a profile of one step.

`run_speed` runs the parts, each in its own module: `subjects` (the models compared),
`timing` (the shared training loop and timers), `throughput`, `profile`, `time_to_quality`,
`scaling` (with `plot_scaling`), `image_speed` (images/s of the image model's step at
32x32x3, with `images`), `report` (`ratios`, `format_report`), `options` (`SpeedOptions`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from tfp_realnvp.bench.image_speed import run_image_speed
from tfp_realnvp.bench.options import SpeedOptions
from tfp_realnvp.bench.profile import machine_matmul_gflops, profile_step
from tfp_realnvp.bench.report import format_report, ratios
from tfp_realnvp.bench.scaling import plot_scaling, scaling
from tfp_realnvp.bench.subjects import (
    TABLE_ROWS,
    architecture_config,
    default_config,
    flow_subject,
    subjects,
    training_table,
)
from tfp_realnvp.bench.throughput import measure_subject
from tfp_realnvp.bench.time_to_quality import time_to_quality
from tfp_realnvp.bench.timing import PeakMemory
from tfp_realnvp.price import machine

# What callers (the CLI) reach through this module.
__all__ = ["SpeedOptions", "format_report", "plot_scaling", "run_speed"]


def run_speed(options: SpeedOptions | None = None,
              names: Sequence[str] | None = None,
              on_result: Callable[[str, dict[str, Any]], None] | None = None
              ) -> dict[str, Any]:
    """Runs the benchmark; returns a JSON-ready dict.

    Args:
      options: what to measure (default: `SpeedOptions()`).
      names: only these subjects of the side-by-side table (default: all).
      on_result: called with (section, record) as each figure is measured.
    """
    options = options or SpeedOptions()
    report = on_result or (lambda section, record: None)
    table = training_table(options.dim)
    points = tf.gather(table, tf.range(options.eval_points) % TABLE_ROWS)
    result: dict[str, Any] = {"device": machine(), "tensorflow": tf.__version__,
                              "options": dataclasses.asdict(options),
                              "memory_measured": PeakMemory().kind}
    peak = machine_matmul_gflops()
    result["machine_matmul_gflops"] = peak
    records = []
    for subject in subjects(options, names):
        record = measure_subject(subject, options, table, points)
        records.append(record)
        report("throughput", record)
    result["throughput"] = records
    result["ratios"] = ratios(records)
    profiles = []
    for name, make in (("default", lambda: flow_subject("default", *default_config(options.dim))),
                       ("flow_xla", lambda: flow_subject(
                           "flow_xla", architecture_config(options), True))):
        if names is None or name in names:  # built only when profiled
            profiles.append(profile_step(make(), options, table, peak))
            report("profile", profiles[-1])
    result["profile"] = profiles
    if options.time_to_quality:
        result["time_to_quality"] = time_to_quality(options)
        report("time_to_quality", result["time_to_quality"])
    if options.scaling:
        result["scaling"] = scaling(options)
    if options.images:
        result["images"] = run_image_speed()
        for record in result["images"]:
            report("images", record)
    return result
