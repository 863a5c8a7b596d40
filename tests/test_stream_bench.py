"""The streamed big table's pieces: shards written one at a time, the report's lines."""

from __future__ import annotations

import numpy as np

from tfp_realnvp.bench import report, streamed
from tfp_realnvp.tables.shards import open_shards


def test_shards_are_written_and_reported(tmp_path):
    streamed.write_shards(tmp_path / "s", rows=1001, columns=3, shards=4)
    shards = open_shards(tmp_path / "s")
    assert shards.rows is not None and sum(shards.rows) == 1001 and len(shards.paths) == 4
    figures = {"rows": 1001, "columns": 3, "shards": 4, "parquet_mb": 0.1,
               "table_float64_mb": 0.02, "fit_s": 9.0, "fit_peak_rss_mb": 1100.0,
               "first_pass_s": 0.5, "first_pass_rows_per_s": 2002.0, "epochs": 2,
               "steps_per_epoch": 3, "evaluate_s": 1.0, "evaluate_peak_rss_mb": 990.0,
               "evaluate_rows_per_s": 1001.0, "mean_nll": 3.2, "batch_size": 256,
               "train_steps_per_s_streamed": 100.0, "train_steps_per_s_in_memory": 110.0,
               "streamed_to_in_memory_training_ratio": 100 / 110, "pipeline_steps_per_s": 900.0,
               "pipeline_rows_per_s": 230400.0, "pipeline_to_training_ratio": 9.0,
               "start_rss_mb": 700.0, "evaluate_start_rss_mb": 650.0}
    text = "\n".join(report.format_streamed(figures))
    assert "| fit (first pass + training) | 9.0 | 1100 |" in text
    assert "streamed 100, from memory 110 (ratio 0.91)" in text
    assert "9.0x what training takes" in text
    assert np.isfinite(figures["mean_nll"])
