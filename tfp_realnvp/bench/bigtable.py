"""The big-table benchmark: a table of a million rows through the whole path (load CSV and
.npy, `fit` on its time budget, `evaluate`, `sample`), with the wall time and peak memory of
each step."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfp_realnvp import tables as data_lib
from tfp_realnvp.bench.timing import PeakMemory
from tfp_realnvp.errors import ConfigError


def make_table(rows: int, columns: int, seed: int = 0) -> np.ndarray:
    """`rows` x `columns` float32 rows with structure a flow can learn: a two-cluster
    mixture, mixed linearly, with one column squared (curved) and one heavy-tailed."""
    if rows < 1 or columns < 2:
        raise ConfigError(f"A big table needs >= 1 row and >= 2 columns; got {rows} x {columns}.")
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((rows, columns))
    latent[:, 0] += np.where(rng.random(rows) < 0.5, -2.0, 2.0)
    table = latent @ (np.eye(columns) + 0.3 * rng.standard_normal((columns, columns)))
    table[:, 1] += 0.5 * table[:, 0] ** 2
    if columns > 2:
        table[:, 2] = rng.standard_t(5, rows)
    return table.astype(np.float32)


def _timed(function: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MB above the start) of one call."""
    with PeakMemory() as memory:
        tick = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - tick
    return result, seconds, memory.peak_bytes / 2**20


def run_big_table(rows: int = 1_000_000, columns: int = 10, time_budget: float = 30.0,
                  seed: int = 0, workdir: str | Path | None = None,
                  settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Writes a `rows` x `columns` table as CSV and .npy, then times reading each, the
    default `fit` with `time_budget` seconds, `evaluate` (per-row NLL of every row) and
    drawing `rows` samples. Returns the figures (seconds, MB, rows/s)."""
    import tfp_realnvp
    from tfp_realnvp.sampling import sample_flow
    from tfp_realnvp.scoring import per_row_nll

    table = make_table(rows, columns, seed)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        csv_path, npy_path = Path(tmp) / "table.csv", Path(tmp) / "table.npy"
        _, write_csv_s, _ = _timed(lambda: data_lib.save_array(table, csv_path))
        data_lib.save_array(table, npy_path)
        from_csv, read_csv_s, read_csv_mb = _timed(lambda: data_lib.load_array(csv_path))
        from_npy, read_npy_s, read_npy_mb = _timed(lambda: data_lib.load_array(npy_path))
        if not np.allclose(from_csv, table, rtol=1e-6) or not np.array_equal(from_npy, table):
            raise AssertionError("the table read back differs from the one written")
        given = {"time_budget": time_budget, "seed": seed, **(settings or {})}
        result, fit_s, fit_mb = _timed(
            lambda: tfp_realnvp.fit(from_npy, Path(tmp) / "run", settings=given))
        nll, evaluate_s, evaluate_mb = _timed(lambda: per_row_nll(result.flow, from_npy))
        samples, sample_s, sample_mb = _timed(lambda: sample_flow(result.flow, rows, seed))
        config = tfp_realnvp.rundir.RunDir(Path(tmp) / "run").read_config()
        csv_mb = csv_path.stat().st_size / 2**20
    metrics = result.metrics
    steps = metrics["steps_per_epoch"] * metrics["epochs_run"]
    return {
        "rows": rows, "columns": columns, "table_mb": table.nbytes / 2**20, "csv_mb": csv_mb,
        "write_csv_s": write_csv_s,
        "read_csv_s": read_csv_s, "read_csv_peak_mb": read_csv_mb,
        "read_npy_s": read_npy_s, "read_npy_peak_mb": read_npy_mb,
        "fit_s": fit_s, "fit_peak_mb": fit_mb, "time_budget_s": time_budget,
        "training_s": metrics["wall_time_s"], "stop_reason": metrics["stop_reason"],
        "epochs": metrics["epochs_run"], "steps_per_epoch": metrics["steps_per_epoch"],
        "steps": steps, "train_steps_per_s": steps / metrics["wall_time_s"],
        "flow": f"{config.flow.coupling} x {config.flow.num_couplings}, "
                f"{config.flow.num_hidden_layers}x{config.flow.hidden_units} "
                f"{config.flow.activation}, {config.flow.mixing}, "
                f"{config.flow.ensemble_size} member(s)",
        "best_validation_nll": metrics["best_validation_nll"],
        "evaluate_s": evaluate_s, "evaluate_peak_mb": evaluate_mb,
        "evaluate_rows_per_s": rows / evaluate_s, "mean_nll": float(np.mean(nll)),
        "sample_s": sample_s, "sample_peak_mb": sample_mb, "sample_rows_per_s": rows / sample_s,
        "samples_finite": bool(np.isfinite(samples).all()),
    }
