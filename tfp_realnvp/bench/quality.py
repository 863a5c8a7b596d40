"""The quality benchmark: held-out NLL of this package's default `fit` against what a data
scientist reaches for first, side by side in one run.

Methods (each sees only the training rows; NLL in nats per row, data units, on test rows):
- `gaussian`: the full-covariance Gaussian (sklearn `GaussianMixture(1)`).
- `gmm`: sklearn `GaussianMixture` (full covariance), its number of components picked on
  a validation split of the training rows, then refitted on all of them.
- `kde`: sklearn `KernelDensity` on standardised columns, bandwidth picked the same way.
- `maf`: TFP's `MaskedAutoregressiveFlow` (5 MADE layers of 2x64, reversals between,
  standardised input, Adam, up to 500 epochs, early stopping on a 10% split, patience 50):
  the flow a TFP user builds.
- `flowjax_maf`, `flowjax_coupling` (opt-in peers, `--methods`): FlowJAX's
  `masked_autoregressive_flow` and `coupling_flow` with a `RationalQuadraticSpline(knots=8,
  interval=4)` transformer, fitted as its docs show (`fit_to_data` on standardised columns,
  its own 10% validation split and early stopping, learning rate 5e-3), the NLL taken back to
  data units (see `tfp_realnvp.bench.peers`). They need JAX, which the package itself never
  does: `pip install -e ".[bench]"`; without it they stop with that fix.
- `flow`: `tfp_realnvp.fit` with its defaults: no tuning.
- `exact` (toy tables only): the generator's own density (`tfp_realnvp.bench.truth`), the
  floor no model reaches on average; a method's NLL minus it estimates the method's KL
  divergence from the truth on those test points.

Tables: the 2-D toys (3,000 training points, 20,000 fresh test points) and the tables that
ship inside scikit-learn, split 80/20: iris (values on a 0.1 grid, dequantised by
U(-0.05, 0.05)), wine, diabetes (raw), breast_cancer, digits (pixels + U(0, 1)).

Every cell of the table is `NLL (seconds)`: the wall time of that fit and its scoring (for
the FlowJAX peers it includes JAX compiling the flow, several seconds per fit).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn import datasets as skdata
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity

from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.config import QUALITY_METHOD_CHOICES as METHOD_CHOICES
from tfp_realnvp.config import QUALITY_METHODS as METHODS
from tfp_realnvp.config import QUALITY_TABLES as TABLES
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.tables import make_toy

TOY_TABLES = ("moons", "circles", "swissroll")
TOY_TRAIN, TOY_TEST, TOY_NOISE = 3000, 20000, 0.05
GMM_COMPONENTS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
KDE_BANDWIDTHS = np.geomspace(0.02, 2.0, 25)


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    train: np.ndarray
    test: np.ndarray


def load_table(name: str, seed: int = 0) -> Table:
    """The training and test rows of a benchmark table (float32), split by `seed`."""
    if name in TOY_TABLES:
        return Table(name, make_toy(name, TOY_TRAIN, TOY_NOISE, seed),
                     make_toy(name, TOY_TEST, TOY_NOISE, seed + 1_000_003))
    rng = np.random.default_rng(seed)
    loaders: dict[str, Callable[[], np.ndarray]] = {
        "iris": lambda: skdata.load_iris().data + 0.1 * (rng.random((150, 4)) - 0.5),
        "wine": lambda: skdata.load_wine().data,
        "diabetes": lambda: skdata.load_diabetes(scaled=False).data,
        "breast_cancer": lambda: skdata.load_breast_cancer().data,
        "digits": lambda: skdata.load_digits().data + rng.random((1797, 64)),
    }
    if name not in loaders:
        raise ConfigError(f"Unknown table {name!r}; choose from {TABLES}.")
    rows = loaders[name]().astype(np.float32)
    order = rng.permutation(len(rows))
    num_test = int(round(0.2 * len(rows)))
    return Table(name, rows[order[num_test:]], rows[order[:num_test]])


def _validation_split(train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return prepare_lib.train_validation_split(train, 0.2, seed)


def gaussian_nll(train: np.ndarray, test: np.ndarray, seed: int, **_: Any):
    model = GaussianMixture(1, covariance_type="full", random_state=seed).fit(
        train.astype(np.float64))
    return -model.score_samples(test.astype(np.float64)), "full covariance"


def _gmm_score(rows: np.ndarray, points: np.ndarray, components: int, seed: int) -> float:
    """Mean log-likelihood of `points` under a GMM fitted on `rows`; -inf if it collapses."""
    try:
        return GaussianMixture(components, random_state=seed).fit(rows).score(points)
    except ValueError:  # a component collapsed onto too few rows
        return -np.inf


def gmm_nll(train: np.ndarray, test: np.ndarray, seed: int, **_: Any):
    train, test = train.astype(np.float64), test.astype(np.float64)
    fit_rows, validation = _validation_split(train, seed)
    candidates = [k for k in GMM_COMPONENTS if k <= len(fit_rows) // 4] or [1]
    scores = {k: _gmm_score(fit_rows, validation, k, seed) for k in candidates}
    best = max(scores, key=scores.get)
    model = GaussianMixture(best, random_state=seed).fit(train)
    return -model.score_samples(test), f"{best} components"


def kde_nll(train: np.ndarray, test: np.ndarray, seed: int, **_: Any):
    train, test = train.astype(np.float64), test.astype(np.float64)
    fit_rows, validation = _validation_split(train, seed)

    def score(rows, points, bandwidth):
        mean, std = rows.mean(0), rows.std(0) + 1e-12
        kde = KernelDensity(bandwidth=bandwidth).fit((rows - mean) / std)
        return kde.score_samples((points - mean) / std) - np.log(std).sum()

    scores = {b: score(fit_rows, validation, b).mean() for b in KDE_BANDWIDTHS}
    best = max(scores, key=scores.get)
    return -score(train, test, best), f"bandwidth {best:.3g}"


def maf_nll(train: np.ndarray, test: np.ndarray, seed: int, max_epochs: int | None = None,
            **_: Any):
    from tfp_realnvp.bench.maf import fit_maf

    flow, epochs = fit_maf(train, seed, max_epochs=max_epochs or 500)
    return -flow.log_prob(test).numpy().astype(np.float64), f"{epochs} epochs"


def flowjax_maf_nll(train: np.ndarray, test: np.ndarray, seed: int,
                    max_epochs: int | None = None, **_: Any):
    from tfp_realnvp.bench.peers import fit_flowjax

    return fit_flowjax("maf", train, test, seed, max_epochs)


def flowjax_coupling_nll(train: np.ndarray, test: np.ndarray, seed: int,
                         max_epochs: int | None = None, **_: Any):
    from tfp_realnvp.bench.peers import fit_flowjax

    return fit_flowjax("coupling", train, test, seed, max_epochs)


def flow_nll(train: np.ndarray, test: np.ndarray, seed: int, max_epochs: int | None = None,
             flow_settings: dict[str, Any] | None = None, **_: Any):
    import tfp_realnvp
    from tfp_realnvp.scoring import per_row_nll

    settings = {"seed": seed, "mixing_seed": seed, **(flow_settings or {})}
    if max_epochs is not None:
        settings["epochs"] = max_epochs
    with tempfile.TemporaryDirectory() as tmp:
        result = tfp_realnvp.fit(train, f"{tmp}/run", settings=settings)
        nll = per_row_nll(result.flow, test)
        config = tfp_realnvp.rundir.RunDir(f"{tmp}/run").read_config().flow
    kind = f"{config.ensemble_size} x " if config.ensemble_size > 1 else ""
    return nll, f"{kind}{config.coupling}, {result.metrics['epochs_run']} epochs"


def exact_nll(train: np.ndarray, test: np.ndarray, seed: int, table: str = "", **_: Any):
    from tfp_realnvp.bench.truth import exact_log_prob

    return -exact_log_prob(table, test, TOY_NOISE), "the generator's density"


METHOD_FUNCTIONS = {"exact": exact_nll, "gaussian": gaussian_nll, "gmm": gmm_nll,
                    "kde": kde_nll, "maf": maf_nll,
                    "flowjax_maf": flowjax_maf_nll, "flowjax_coupling": flowjax_coupling_nll,
                    "flow": flow_nll}


def run_quality(tables: Sequence[str] = TABLES, methods: Sequence[str] = METHODS,
                seeds: Sequence[int] = (0,), max_epochs: int | None = None,
                on_result: Callable[[dict[str, Any]], None] | None = None,
                flow_settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Fits every method on every table and seed; returns one record per fit.

    Args:
      tables: names from `TABLES`.
      methods: names from `METHOD_CHOICES` (default: `METHODS`, which needs no JAX).
      seeds: each seed draws its own split (toys: its own points) and seeds each method.
      max_epochs: caps the training epochs of `maf`, the FlowJAX flows and `flow` (for a
        quick run).
      on_result: called with each record as soon as it is measured.
      flow_settings: `fit` settings for `flow` that override the automatic choice (for a
        quick run: e.g. a small flow).
    """
    for name in methods:
        if name not in METHOD_FUNCTIONS:
            raise ConfigError(f"Unknown method {name!r}; choose from {METHOD_CHOICES}.")
    records = []
    for table_name in tables:
        for seed in seeds:
            table = load_table(table_name, seed)
            for method in methods:
                if method == "exact" and table_name not in TOY_TABLES:
                    continue  # a real table's density is unknown
                tick = time.perf_counter()
                nll, detail = METHOD_FUNCTIONS[method](table.train, table.test, seed,
                                                       max_epochs=max_epochs,
                                                       flow_settings=flow_settings,
                                                       table=table_name)
                record = {"table": table_name, "seed": seed, "method": method,
                          "nll": float(np.mean(nll)), "median": float(np.median(nll)),
                          "max": float(np.max(nll)), "seconds": time.perf_counter() - tick,
                          "detail": detail, "rows": [len(table.train), len(table.test)],
                          "dim": int(table.train.shape[1])}
                records.append(record)
                if on_result is not None:
                    on_result(record)
    return records


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """table -> method -> mean NLL over seeds, worst seed, mean seconds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for record in records:
        cell = out.setdefault(record["table"], {}).setdefault(
            record["method"], {"nll": [], "seconds": []})
        cell["nll"].append(record["nll"])
        cell["seconds"].append(record["seconds"])
    return {table: {method: {"nll": float(np.mean(v["nll"])), "worst": float(np.max(v["nll"])),
                             "seconds": float(np.mean(v["seconds"]))}
                    for method, v in methods.items()}
            for table, methods in out.items()}


def _number(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.2e}"


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: one row per table, `NLL (seconds)` per method, and who wins."""
    summary = summarise(records)
    methods = [m for m in METHOD_CHOICES if any(m in cells for cells in summary.values())]
    seeds = sorted({r["seed"] for r in records})
    head = (f"| table (train x dims) | {' | '.join(methods)} | flow beats |\n"
            f"| --- | {' | '.join('---:' for _ in methods)} | --- |")
    lines = [head]
    for table, cells in summary.items():
        record = next(r for r in records if r["table"] == table)
        shape = f"{record['rows'][0]} x {record['dim']}"
        values = [f"{_number(cells[m]['nll'])} ({cells[m]['seconds']:.0f} s)" if m in cells
                  else "" for m in methods]
        beaten = [m for m in methods if m not in ("flow", "exact") and "flow" in cells
                  and m in cells
                  and cells["flow"]["nll"] < cells[m]["nll"]]
        lines.append(f"| {table} ({shape}) | {' | '.join(values)} | {', '.join(beaten)} |")
    lines.append(f"\nNLL: nats per row on held-out rows, mean over seeds {seeds}; "
                 "(s): wall seconds per fit; exact: the toy generator's own density, the "
                 "floor.")
    return "\n".join(lines)
