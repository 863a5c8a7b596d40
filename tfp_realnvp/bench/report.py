"""What the speed benchmark measured, in words: ratios and Markdown tables (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfp_realnvp.bench.image_speed import format_image_speed

RATIOS = (
    ("flow / tfp_realnvp", "flow", "tfp_realnvp"),
    ("flow_xla / tfp_realnvp_xla", "flow_xla", "tfp_realnvp_xla"),
    ("best flow / best tfp_realnvp", ("flow", "flow_xla"), ("tfp_realnvp", "tfp_realnvp_xla")),
    ("best flow / keras_notebook", ("flow", "flow_xla"), "keras_notebook"),
    ("default / keras_notebook", "default", "keras_notebook"),
)


RATIO_FIELDS = ("train_steps_per_s", "log_prob_points_per_s", "sample_per_s")


def ratios(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Throughput ratios between the measured records (the best of a group where a name
    is a tuple): `{ratio name: {field: numerator / denominator}}`."""
    by_name = {r["name"]: r for r in records}

    def best(names, field) -> float | None:
        names = (names,) if isinstance(names, str) else names
        values = [by_name[n][field] for n in names if n in by_name]
        return max(values) if values else None

    out: dict[str, dict[str, float]] = {}
    for label, top, bottom in RATIOS:
        cells = {}
        for field in RATIO_FIELDS:
            a, b = best(top, field), best(bottom, field)
            if a is not None and b:
                cells[field] = a / b
        if cells:
            out[label] = cells
    return out


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def format_report(result: dict[str, Any]) -> str:
    """Markdown tables of what `run_speed` (and the big-table run) measured."""
    lines = [f"device: {result['device']}; TensorFlow {result['tensorflow']}; "
             f"matmul {result['machine_matmul_gflops']:.0f} GFLOP/s", ""]
    options = result["options"]
    if result.get("throughput"):
        lines += [f"Throughput (D={options['dim']}, batch {options['batch_size']}; best of "
                  f"{options['repeats']}; memory: {result['memory_measured']}):", "",
                  "| model | architecture | XLA | train steps/s | log_prob points/s | "
                  "sample /s | warm-up s | peak MB |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in result["throughput"]:
            lines.append(f"| {r['name']} | {r['arch']} | {'yes' if r['xla'] else 'no'} | "
                         f"{_rate(r['train_steps_per_s'])} | "
                         f"{_rate(r['log_prob_points_per_s'])} | {_rate(r['sample_per_s'])} | "
                         f"{r['warm_up_s']:.1f} | {r['peak_memory_mb']:.0f} |")
        lines += ["", "| ratio | train steps/s | log_prob | sample |",
                  "| --- | ---: | ---: | ---: |"]
        for name, cells in result["ratios"].items():
            values = [f"{cells[f]:.2f}x" if f in cells else "" for f in RATIO_FIELDS]
            lines.append(f"| {name} | {' | '.join(values)} |")
    if result.get("profile"):
        lines += ["", "Profile of one training step:", "",
                  "| model | XLA | trace s | forward ms | fwd+grad ms | step ms | graph ops | "
                  "matmul GFLOP | matmul floor ms | overhead |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in result["profile"]:
            lines.append(f"| {p['name']} ({p['arch']}) | {'yes' if p['xla'] else 'no'} | "
                         f"{p['trace_s']:.1f} | {p['forward_ms']:.2f} | "
                         f"{p['forward_and_gradients_ms']:.2f} | {p['step_ms']:.2f} | "
                         f"{p['graph_ops']} | {p['matmul_gflop_per_step']:.3f} | "
                         f"{p['matmul_floor_ms']:.2f} | {p['overhead_share']:.0%} |")
    quality = result.get("time_to_quality")
    if quality:
        lines += ["", "Time to quality on two moons (held-out NLL on fresh points; scoring "
                  "time excluded):", "",
                  "| model | to 0.40 nats | to 0.35 nats | epochs | final NLL |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for key in ("default", "notebook"):
            q = quality[key]
            cells = [f"{q['seconds_to'][t]:.1f} s" if q["seconds_to"].get(t) is not None
                     else ("not reached" if t in q["seconds_to"] else "") for t in ("0.40", "0.35")]
            lines.append(f"| {q['model']} | {' | '.join(cells)} | {q['epochs']} | "
                         f"{q['final_fresh_nll']:.3f} |")
        if quality["speedup_to_0.40"] is not None:
            bound = ">= " if quality["speedup_is_lower_bound"] else ""
            lines.append(f"\nnotebook time to 0.40 / default time to 0.40: "
                         f"{bound}{quality['speedup_to_0.40']:.1f}x")
    if result.get("scaling"):
        widths = sorted({r["hidden_units"] for r in result["scaling"]})
        lines += ["", "Scaling (train steps/s, the flow without XLA):", "",
                  f"| D | {' | '.join(f'width {w}' for w in widths)} |",
                  f"| --- | {' | '.join('---:' for _ in widths)} |"]
        for dim in sorted({r["dim"] for r in result["scaling"]}):
            cells = {r["hidden_units"]: r for r in result["scaling"] if r["dim"] == dim}
            lines.append(f"| {dim} | " + " | ".join(
                _rate(cells[w]["train_steps_per_s"]) if w in cells else "" for w in widths)
                + " |")
    lines += format_image_speed(result.get("images") or [])
    big = result.get("big_table")
    if big:
        lines += ["", f"Big table ({big['rows']:,} rows x {big['columns']} columns, "
                  f"{big['table_mb']:.0f} MB as float32, CSV {big['csv_mb']:.0f} MB):", "",
                  "| step | seconds | peak MB | |", "| --- | ---: | ---: | --- |",
                  f"| read CSV | {big['read_csv_s']:.1f} | {big['read_csv_peak_mb']:.0f} | |",
                  f"| read .npy | {big['read_npy_s']:.1f} | {big['read_npy_peak_mb']:.0f} | |",
                  f"| fit (budget {big['time_budget_s']:g} s) | {big['fit_s']:.1f} | "
                  f"{big['fit_peak_mb']:.0f} | {big['epochs']} epochs x "
                  f"{big['steps_per_epoch']} steps, training {big['training_s']:.1f} s, "
                  f"stopped by {big['stop_reason']}, validation NLL "
                  f"{big['best_validation_nll']:.3f} |",
                  f"| evaluate every row | {big['evaluate_s']:.1f} | "
                  f"{big['evaluate_peak_mb']:.0f} | {_rate(big['evaluate_rows_per_s'])} rows/s |",
                  f"| sample as many rows | {big['sample_s']:.1f} | {big['sample_peak_mb']:.0f} "
                  f"| {_rate(big['sample_rows_per_s'])} rows/s |"]
    if result.get("streamed_table"):
        lines += format_streamed(result["streamed_table"])
    return "\n".join(lines)


def format_streamed(big: dict[str, Any]) -> list[str]:
    """The streamed big table's lines for the speed report."""
    return [
        "", f"Streamed table ({big['rows']:,} rows x {big['columns']} columns in "
        f"{big['shards']} Parquet shards, {big['parquet_mb']:.0f} MB on disk, "
        f"{big['table_float64_mb']:.0f} MB as float64):", "",
        "| step | seconds | peak RSS MB (ru_maxrss) | |", "| --- | ---: | ---: | --- |",
        f"| fit (first pass + training) | {big['fit_s']:.1f} | {big['fit_peak_rss_mb']:.0f} | "
        f"first pass {big['first_pass_s']:.1f} s ({big['first_pass_rows_per_s']:,.0f} rows/s)"
        f", {big['epochs']} epochs x {big['steps_per_epoch']} steps |",
        f"| evaluate --per-row (streamed) | {big['evaluate_s']:.1f} | "
        f"{big['evaluate_peak_rss_mb']:.0f} | {big['evaluate_rows_per_s']:,.0f} rows/s, mean "
        f"NLL {big['mean_nll']:.3f} |", "",
        f"Peak RSS includes the process's start (TensorFlow imported): "
        f"{big['start_rss_mb']:.0f} MB before fit, {big['evaluate_start_rss_mb']:.0f} MB "
        "before evaluate.",
        f"Training steps/s (batch {big['batch_size']}): streamed "
        f"{big['train_steps_per_s_streamed']:.0f}, from memory "
        f"{big['train_steps_per_s_in_memory']:.0f} (ratio "
        f"{big['streamed_to_in_memory_training_ratio']:.2f}); the input pipeline alone "
        f"{big['pipeline_steps_per_s']:.0f} steps/s ({big['pipeline_rows_per_s']:,.0f} rows/s"
        f"), {big['pipeline_to_training_ratio']:.1f}x what training takes.",
    ]
