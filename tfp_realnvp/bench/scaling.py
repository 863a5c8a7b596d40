"""How the training step cost scales with the data's width and the conditioners', and its plot."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tfp_realnvp.bench.options import SpeedOptions
from tfp_realnvp.bench.subjects import architecture_config, flow_subject, training_table
from tfp_realnvp.bench.timing import best_seconds, training_loop


def scaling(options: SpeedOptions) -> list[dict[str, Any]]:
    """Training steps/s of the package's flow (benchmark architecture, no XLA) for every
    `dim` in `scaling_dims` and width in `scaling_widths`."""
    out = []
    for dim in options.scaling_dims:
        table = training_table(dim)
        for width in options.scaling_widths:
            subject = flow_subject("flow", architecture_config(options, dim, width), False)
            run = training_loop(subject, table, options.batch_size)
            run(tf.constant(2))
            seconds = best_seconds(lambda run=run: run(tf.constant(options.steps)).numpy(),
                                    options.repeats)
            out.append({"dim": dim, "hidden_units": width,
                        "train_steps_per_s": options.steps / seconds,
                        "step_ms": seconds / options.steps * 1e3})
    return out


def plot_scaling(records: Sequence[dict[str, Any]], path: str | os.PathLike,
                 device: str = "") -> None:
    """Step cost (ms per training step) against conditioner width, one line per `dim`."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    figure = Figure(figsize=(5.5, 3.6))
    axis = figure.subplots()
    for dim in sorted({r["dim"] for r in records}):
        rows = sorted((r for r in records if r["dim"] == dim), key=lambda r: r["hidden_units"])
        axis.plot([r["hidden_units"] for r in rows], [r["step_ms"] for r in rows], "o-",
                  label=f"D = {dim}")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    widths = sorted({r["hidden_units"] for r in records})
    axis.set_xticks(widths, [str(w) for w in widths])
    axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("conditioner width (hidden units)")
    axis.set_ylabel("ms per training step")
    axis.set_title(f"training step cost{f' ({device})' if device else ''}", fontsize=9)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
