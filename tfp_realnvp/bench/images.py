"""The image table: the multi-scale image flow on scikit-learn's 8x8 digits, held out.

The rows are `bench quality`'s digits rows (pixels + U(0, 1) in level units, the same
80/20 split by seed), so the nats per image compare with that table's Gaussian, GMM and
flow columns directly. The image flow trains on the training rows' levels (`floor`),
dequantised afresh at every step, and is scored on the test rows as they are.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfp_realnvp.bench.quality import load_table
from tfp_realnvp.images.config import bits_per_dim

DIGITS_SHAPE = (8, 8, 1)
DIGITS_LEVELS = 17


def digits_image_nll(seed: int = 0, settings: dict[str, Any] | None = None,
                     run_dir: str | Path | None = None) -> dict[str, Any]:
    """Trains the default image flow (or one with `settings`) on the digits table's
    training rows and returns its held-out nats per image, bits/dim and seconds."""
    from tfp_realnvp.images.train import fit_images

    table = load_table("digits", seed)
    levels = np.floor(table.train).reshape(-1, *DIGITS_SHAPE).clip(0, DIGITS_LEVELS - 1)
    test = table.test.reshape(-1, *DIGITS_SHAPE)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(run_dir) if run_dir is not None else Path(scratch) / "run"
        start = time.perf_counter()
        result = fit_images(levels, DIGITS_LEVELS, target,
                            settings={"seed": seed, **(settings or {})},
                            data_info={"source": "digits (bench quality rows)"})
        seconds = time.perf_counter() - start
        nll = -result.flow.log_prob(test).numpy()
    mean = float(np.mean(nll))
    return {"seed": seed, "test_nll": mean, "bits_per_dim": bits_per_dim(mean, 64),
            "validation_nll": result.metrics["best_validation_nll"],
            "epochs": result.metrics["epochs_run"], "seconds": seconds,
            "train_seconds": result.metrics["wall_time_s"],
            "steps_per_second": result.metrics["history"][-1]["steps_per_second"]}
