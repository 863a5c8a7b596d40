"""Does distilling an affine ensemble into one flow keep its gain? (issue 21, item 1)

For each table of `bench quality` given: the affine default's settings for its rows (what
`auto.choose` gives a conditional flow: 20 K-fold members up to 5,000 rows), one flow of
those settings on the real rows, and students (`training.distill.distill`): one flow of a
member's architecture (or `--widths` hidden units) trained on `--draws` rows drawn from the
ensemble, early-stopped on the real training rows.
Prints held-out NLL (nats/row, data units) and the target
`NLL_ensemble + 0.1 (NLL_gaussian - NLL_ensemble)`.

    PYTHONPATH=$PWD python3 benchmarks/distill.py wine diabetes --draws 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

import tfp_realnvp
from tfp_realnvp import auto
from tfp_realnvp.bench.bigtable import make_table
from tfp_realnvp.bench.quality import Table, gaussian_nll, load_table
from tfp_realnvp.scoring import per_row_nll
from tfp_realnvp.training.distill import distill


def fitted(rows: np.ndarray, flow_config=None, train_config=None,
           settings: dict | None = None) -> tuple[object, object, dict, float]:
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = tfp_realnvp.fit(rows, f"{tmp}/run", flow_config, train_config,
                                 settings=settings)
        config = tfp_realnvp.rundir.RunDir(f"{tmp}/run").read_config().flow
    return result.flow, config, result.metrics, time.perf_counter() - tick


def load(table: str) -> Table:
    """A `bench quality` table, or `big<N>`: N rows of `bench bigtable`'s 10-column table
    (two clusters, a curved and a heavy-tailed column), split 80/20."""
    if not table.startswith("big"):
        return load_table(table, seed=0)
    rows = make_table(int(table[3:]), 10, seed=0)
    cut = int(0.8 * len(rows))
    return Table(table, rows[:cut], rows[cut:])


def run(table: str, draws: int, budget: float, widths: list[int]) -> dict:
    """The affine default's settings for this many rows (`auto.choose(..., conditional=True)`:
    the affine ensemble conditional flows and big tables get) on `table`."""
    data = load(table)
    chosen = auto.choose(len(data.train), data.train.shape[1], time_budget=budget,
                         conditional=True)
    settings = {"seed": 0, "mixing_seed": 0}
    gaussian = float(gaussian_nll(data.train, data.test, 0)[0].mean())
    ensemble, config, _, seconds = fitted(data.train, chosen.flow, chosen.train, settings)
    out = {"table": table, "rows": data.train.shape, "gaussian": gaussian,
           "ensemble_size": config.ensemble_size, "hidden_units": config.hidden_units,
           "ensemble": float(per_row_nll(ensemble, data.test).mean()), "ensemble_s": seconds}
    out["target"] = out["ensemble"] + 0.1 * (gaussian - out["ensemble"])
    single, _, _, seconds = fitted(data.train, chosen.flow.replace(ensemble_size=1),
                                   chosen.train, settings)
    out["single"] = float(per_row_nll(single, data.test).mean())
    out["single_s"] = seconds
    for width in widths:
        teacher = config.replace(hidden_units=width or config.hidden_units)
        tick = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = distill(ensemble, teacher, data.train, f"{tmp}/student", draws,
                             time_budget=budget)
        key = f"student_h{teacher.hidden_units}"
        out[key] = float(per_row_nll(result.flow, data.test).mean())
        out[f"{key}_s"] = time.perf_counter() - tick
        out[f"{key}_epochs"] = result.metrics["epochs_run"]
        out[f"{key}_meets_target"] = out[key] <= out["target"]
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tables", nargs="+")
    parser.add_argument("--draws", type=int, default=20000)
    parser.add_argument("--budget", type=float, default=240.0)
    parser.add_argument("--widths", default="0", help="student hidden units (0: the member's)")
    args = parser.parse_args()
    for table in args.tables:
        run(table, args.draws, args.budget, [int(w) for w in args.widths.split(",")])


if __name__ == "__main__":
    main()
