"""The streamed big table: a sharded Parquet table through `fit` (streamed) and a streamed
`evaluate`, each in a child process whose peak resident memory (`ru_maxrss`) is reported,
with rows/s read, and training steps/s with the input pipeline and without it."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfp_realnvp.bench.bigtable import make_table


def write_shards(folder: Path, rows: int, columns: int, shards: int, seed: int = 0) -> float:
    """`rows` x `columns` of `make_table` as `shards` Parquet files (one shard in memory at a
    time); returns the seconds taken."""
    import pandas as pd

    tick = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"x{j}" for j in range(columns)]
    for i, count in enumerate(np.diff(np.linspace(0, rows, shards + 1).astype(np.int64))):
        part = make_table(int(count), columns, seed + i)
        pd.DataFrame(part, columns=names).to_parquet(folder / f"part-{i:04d}.parquet")
    return time.perf_counter() - tick


FIT_CHILD = """
import json, resource, sys, time
import numpy as np
import tfp_realnvp
from tfp_realnvp import firstpass
folder, run, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
timing = {"start_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
real = firstpass.first_pass
def timed(*args, **kwargs):
    tick = time.perf_counter()
    out = real(*args, **kwargs)
    timing["first_pass_s"] = time.perf_counter() - tick
    return out
firstpass.first_pass = timed
tick = time.perf_counter()
result = tfp_realnvp.fit(folder, run, settings=settings, stream="always")
fit_s = time.perf_counter() - tick
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
history = result.metrics["history"]
steady = [h["steps_per_second"] for h in history[1:]] or [history[0]["steps_per_second"]]
# The input pipeline alone: batches of the run's size, nothing trained.
from tfp_realnvp.rundir import RunDir
from tfp_realnvp.training import stream_pipeline
stored = RunDir(run).read_config()
plan = firstpass.FirstPass.load(run).prepared(firstpass.open_shards(folder)).stream
batch, steps = stored.train.batch_size, result.metrics["steps_per_epoch"]
tick, made = time.perf_counter(), 0
for _ in stream_pipeline.batch_stream(plan, 0, batch, steps, start_epoch=1):
    made += 1
    if made == steps:
        break
pipeline_s = time.perf_counter() - tick
# Training without the pipeline: the same flow and batch on rows already in memory.
sample = np.load(f"{run}/stream/sample.npy")[:, :stored.flow.event_dim]
memory = tfp_realnvp.fit(sample, run + "-memory", settings={**settings, "ensemble_size": 1,
                         "blend": False, "base_components": 1, "epochs": 3})
memory_rate = [h["steps_per_second"] for h in memory.metrics["history"][1:]] or \\
    [memory.metrics["history"][0]["steps_per_second"]]
print(json.dumps({"fit_s": fit_s, "fit_peak_rss_mb": peak, **timing,
                  "training_s": result.metrics["wall_time_s"],
                  "epochs": result.metrics["epochs_run"], "steps_per_epoch": steps,
                  "batch_size": batch, "best_validation_nll": result.metrics["best_validation_nll"],
                  "train_steps_per_s_streamed": float(np.median(steady)),
                  "train_steps_per_s_in_memory": float(np.median(memory_rate)),
                  "pipeline_steps_per_s": made / pipeline_s,
                  "pipeline_rows_per_s": made * batch / pipeline_s}))
"""

EVALUATE_CHILD = """
import json, resource, sys
import tfp_realnvp
from tfp_realnvp.stream_scoring import score_shards
folder, run, per_row = sys.argv[1], sys.argv[2], sys.argv[3]
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model = tfp_realnvp.rundir.find_model(run)
scored = score_shards(model.load(), folder, model.layout, model.config.event_dim, per_row)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"evaluate_s": scored["seconds"], "evaluate_peak_rss_mb": peak,
                  "evaluate_start_rss_mb": start,
                  "evaluate_rows_per_s": scored["rows_per_s"], "mean_nll": scored["mean_nll"],
                  "evaluated_rows": scored["rows"]}))
"""


def _child(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"the benchmark's child process failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_streamed_table(rows: int = 2_000_000, columns: int = 10, shards: int = 8,
                       time_budget: float = 20.0, seed: int = 0,
                       workdir: str | Path | None = None) -> dict[str, Any]:
    """Writes the sharded table, then `fit` streams it (child 1: peak RSS, first-pass
    rows/s, training steps/s with the pipeline; then the pipeline alone and the same
    training from memory) and a streamed `evaluate --per-row` scores it (child 2)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp) / "shards"
        write_s = write_shards(folder, rows, columns, shards, seed)
        disk_mb = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        settings = {"time_budget": time_budget, "seed": seed}
        fitted = _child(FIT_CHILD, str(folder), str(Path(tmp) / "run"), json.dumps(settings))
        scored = _child(EVALUATE_CHILD, str(folder), str(Path(tmp) / "run"),
                        str(Path(tmp) / "nll.parquet"))
    return {"rows": rows, "columns": columns, "shards": shards, "table_float64_mb":
            rows * columns * 8 / 2**20, "parquet_mb": disk_mb, "write_s": write_s,
            "first_pass_rows_per_s": rows / fitted["first_pass_s"],
            "pipeline_to_training_ratio": fitted["pipeline_steps_per_s"]
            / fitted["train_steps_per_s_streamed"],
            "streamed_to_in_memory_training_ratio": fitted["train_steps_per_s_streamed"]
            / fitted["train_steps_per_s_in_memory"],
            **fitted, **scored}

