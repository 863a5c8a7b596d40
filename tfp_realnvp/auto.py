"""Right-sizing without flags: the flow and training settings `fit` picks from the table's
shape, and why.

The rules were measured with `tfp-realnvp bench quality` (see the README): what generalises
across table sizes is a small spline flow per member, an ensemble of K-fold members on
small tables (each early-stopped on its own fold, so validation picks every member's
training length), weight decay where rows are few, and a time budget that caps the whole
fit. Explicit settings always win: `choose` only fills what the caller left out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tfp_realnvp.config import FlowConfig, TrainConfig

MAX_STEPS_PER_EPOCH = 200  # measured: see the README's Speed section
DEFAULT_TIME_BUDGET = 45.0  # seconds of training; two moons' whole fit stays under a minute
TWO_COLUMN_BUDGET = 35.0  # at most this for 2 columns: 300 spline epochs fit in it


# Every setting `choose` decides, and its rule in one line (`fit --help` shows these).
RULES: dict[str, str] = {
    "coupling": "spline for 2 columns; autoregressive (MAF, spline) up to 5,000 rows "
                "without a context; else affine",
    "num_couplings": "4; 5 for autoregressive",
    "hidden_units": "64 for 2 columns; 128 for autoregressive; else 32 below 5,000 rows, "
                    "64 below 50,000, else 128",
    "num_hidden_layers": "2",
    "activation": "tanh",
    "mixing": "reverse for 2 columns; random for autoregressive; else lu up to 32 columns, "
              "reverse above",
    "whiten": "off for autoregressive (per-column scales keep columns' edges on the axes)",
    "blend": "on without a context up to 5,000 rows: the trained flow blended with a "
             "Gaussian mixture, components and weight chosen on held-out rows",
    "ensemble_size": "3 for 2 columns up to 5,000 rows, else 1; 3 for autoregressive; else "
                     "20 up to 5,000 rows, then 10, 5, 3, and 1 above 500,000 (folds of >= 5 "
                     "rows)",
    "epochs": "300 for 2 columns, else 400",
    "learning_rate": "5e-3 for 2 columns and autoregressive, else 2e-3",
    "batch_size": "100 for autoregressive, else 256",
    "patience": "100 for 2 columns, else 20",
    "weight_decay": "1e-3 for autoregressive; 1e-4 below 50,000 rows (3+ columns), else 0",
    "jit_compile": "on for 2 columns, else off",
    "time_budget": f"{TWO_COLUMN_BUDGET:g} s for one 2-column flow, else "
                   f"{DEFAULT_TIME_BUDGET:g} s",
    "max_steps_per_epoch": f"{MAX_STEPS_PER_EPOCH} for 3+ columns, else a full pass",
}


@dataclasses.dataclass(frozen=True)
class Choice:
    """The chosen configs and, per setting, the rule that chose it (kept in config.json)."""

    flow: FlowConfig
    train: TrainConfig
    reasons: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"reasons": self.reasons}


def choose(num_rows: int, dim: int, time_budget: float | None = None,
           conditional: bool = False) -> Choice:
    """The settings for a table of `num_rows` x `dim`.

    Args:
      num_rows: rows given to `fit` (training and validation together).
      dim: columns.
      time_budget: seconds of training for the whole fit (default `DEFAULT_TIME_BUDGET`).
      conditional: the flow models `p(x | c)` (a context, or a mixed table's categories).
    """
    budget = DEFAULT_TIME_BUDGET if time_budget is None else time_budget
    blend = not conditional and num_rows <= BLEND_MAX_ROWS
    # 2 columns, blended: 3 K-fold members, so every row is held out once for the blend
    members = max(1, min(3, num_rows // 5)) if dim == 2 and blend else 1
    if dim == 2 and members == 1:
        budget = min(budget, TWO_COLUMN_BUDGET)
    reasons = {"time_budget": f"{budget:g} s of training for the whole fit"}
    if blend:
        reasons["blend"] = BLEND_REASON
    if dim == 2:
        flow = FlowConfig(coupling="spline", num_couplings=4, hidden_units=64,
                          num_hidden_layers=2, activation="tanh", mixing="reverse",
                          ensemble_size=members, blend=blend)
        reasons["coupling"] = "2 columns: 4 spline couplings (2x64 tanh)"
        reasons["ensemble_size"] = TWO_COLUMN_MEMBERS_REASON if members > 1 else (
            "one flow run through its whole schedule (no blend above 5,000 rows)")
        train = TrainConfig(epochs=300, learning_rate=5e-3, patience=100, jit_compile=True,
                            time_budget=budget)
        reasons["jit_compile"] = "XLA: 1.7x the spline steps per second, same numbers"
        reasons["learning_rate"] = ("5e-3 with cosine decay over 300 epochs (or the time "
                                    "budget), patience 100")
        return Choice(flow, train, reasons)

    if num_rows <= AUTOREGRESSIVE_MAX_ROWS and not conditional:
        return _autoregressive_choice(num_rows, budget, reasons, blend)
    members = next(m for limit, m in MEMBERS_BY_ROWS if num_rows <= limit)
    members = max(1, min(members, num_rows // 5))  # a fold of at least 5 rows each
    reasons["ensemble_size"] = (
        f"{members} members (20 up to 5,000 rows, then 10, 5, 3, 1 above 500,000), each "
        "holding out its own fold: averaging members fitted on different folds lowered "
        "held-out NLL on every scikit-learn table, the more members the lower")
    hidden = 32 if num_rows < 5000 else 64 if num_rows < 50000 else 128
    reasons["hidden_units"] = "32 below 5,000 rows, 64 below 50,000, else 128 (2 layers)"
    mixing = "lu" if dim <= 32 else "reverse"
    reasons["mixing"] = ("learned LU mixing up to 32 columns (better on the small tables); "
                         "reversals above (LU solves cost 5x the step on 64 columns)")
    flow = FlowConfig(coupling="affine", num_couplings=4, hidden_units=hidden,
                      num_hidden_layers=2, activation="tanh", mixing=mixing,
                      ensemble_size=members, blend=blend)
    reasons["coupling"] = ("affine couplings with tanh conditioners (bounded outputs far "
                           "from the data); splines were no better on tables")
    weight_decay = 1e-4 if num_rows < 50000 else 0.0
    reasons["weight_decay"] = "1e-4 below 50,000 rows"
    train = TrainConfig(epochs=400, learning_rate=2e-3, weight_decay=weight_decay,
                        patience=20, time_budget=budget,
                        max_steps_per_epoch=MAX_STEPS_PER_EPOCH)
    reasons["max_steps_per_epoch"] = (
        f"an epoch is at most {MAX_STEPS_PER_EPOCH} steps (a fresh random subset of a big "
        "table), so validation, early stopping and the time budget are checked every few "
        "seconds, not once per full pass (1,000,000 rows at batch 256: 3,900 steps)")
    reasons["patience"] = "stop when no member has improved its held-out NLL for 20 epochs"
    # `distill` stays off: on an 8,000 x 10 table with the default 45 s budget the student
    # of the 10 members scored 16.89 nats against their 16.49 (one flow: 14.92), though with
    # 150 s each it kept 98% of their gain (benchmarks/distill.py, docs/guide/ensembles.md).
    return Choice(flow, train, reasons)


# (largest number of rows, ensemble members) of the affine ensembles
MEMBERS_BY_ROWS = ((5000, 20), (20000, 10), (100000, 5), (500000, 3), (float("inf"), 1))
AUTOREGRESSIVE_MAX_ROWS = 5000  # the tables it was measured on: up to 1,438 rows
TWO_COLUMN_MEMBERS_REASON = (
    "3 K-fold members up to 5,000 rows (blended): each row is held out by one member, so "
    "the blend's weight is chosen on every row, not on a 10% split; measured (held-out "
    "NLL, 45 s) on two moons seeds 0 / 3: 0.297 / 0.310 against the tuned GMM's 0.306 / "
    "0.317 (one blended flow on seed 3: 0.318, its weight misled by 300 held-out rows)")
BLEND_MAX_ROWS = 5000  # the tables the blend was measured on: up to 3,000 rows
BLEND_REASON = ("up to 5,000 rows without a context: after training, the flow is blended "
                "with a Gaussian mixture fitted on the training rows, w p_flow + (1 - w) "
                "p_mixture, the mixture's components and w chosen on held-out rows (each "
                "scored by models that did not see it), so on them the result is never "
                "worse than the tuned mixture or the flow alone")
# Conditional flows (a context, or a mixed table's one-hot categories) keep the affine
# ensemble: measured on `bench quality --mixed` (seed 0), the autoregressive choice scored
# iris 2.289 / wine 20.118 / diabetes 26.570 / synthetic 4.126 against the affine
# ensemble's 1.876 / 18.064 / 25.562 / 3.950 (breast_cancer: -38.563 against -37.677).


def _autoregressive_choice(num_rows: int, budget: float, reasons: dict[str, str],
                           blend: bool) -> Choice:
    """3+ columns, up to `AUTOREGRESSIVE_MAX_ROWS` rows: 3 K-fold members, each a masked
    autoregressive flow of 5 spline layers (MADE 2x128 tanh) on per-column scales.

    Measured (`bench quality`, seed 0, held-out nats per row) against the 20-member affine
    ensemble it replaces: iris 1.96 (2.46), wine 18.67 (18.99), diabetes 21.76 (24.95),
    breast_cancer -44.20 (-40.25), digits 97.66 (123.62); FlowJAX's MAF-RQS: 2.81, 19.09,
    24.45, -35.90, 102.55.
    """
    members = max(1, min(3, num_rows // 5))
    flow = FlowConfig(coupling="autoregressive", num_couplings=5, hidden_units=128,
                      num_hidden_layers=2, activation="tanh", mixing="random",
                      ensemble_size=members, whiten=False, blend=blend)
    reasons["coupling"] = (
        "up to 5,000 rows: masked autoregressive spline flows (every column a spline of the "
        "ones before it; log_prob one pass, sampling one pass per column): on the "
        "scikit-learn tables 0.3 to 26 nats below the 20-member affine ensemble, and below "
        "FlowJAX's MAF-RQS on every one")
    reasons["whiten"] = ("per-column scales, no rotation: columns with edges and grids "
                         "(pixels, counts) keep them on the axes, where splines draw them "
                         "(digits: 124.2 whitened, 107.3 not, one flow)")
    reasons["ensemble_size"] = (f"{members} K-fold members (3 up to 5,000 rows): 97.7 on "
                                "digits against 101.3 for one flow; 5 were no better")
    reasons["hidden_units"] = "MADE of 2x128 (1x128: 103.2 on digits, 2x128: 101.3)"
    reasons["mixing"] = "random orders between layers (reversals: 102.7 on digits)"
    train = TrainConfig(epochs=400, learning_rate=5e-3, batch_size=100, weight_decay=1e-3,
                        patience=20, time_budget=budget,
                        max_steps_per_epoch=MAX_STEPS_PER_EPOCH)
    reasons["learning_rate"] = "5e-3, batch 100, weight decay 1e-3 (each lowered digits' NLL)"
    reasons["patience"] = "stop when no member has improved its held-out NLL for 20 epochs"
    return Choice(flow, train, reasons)


def explain(num_rows: int, dim: int, given: dict[str, Any] | None = None,
            conditional: bool = False) -> list[str]:
    """What `fit` would run on a table of `num_rows` x `dim` (`conditional`: with a context
    or categories), one line per setting of `RULES`: `--name: value (why)`, the reason
    `choose` records or the one-line rule; a setting in `given` (field name -> value) wins
    and says so."""
    given = given or {}
    choice = choose(num_rows, dim, conditional=conditional)
    lines = []
    for name, rule in RULES.items():
        config = choice.flow if hasattr(choice.flow, name) else choice.train
        value = given.get(name, getattr(config, name))
        why = "given" if name in given else f"auto: {choice.reasons.get(name, rule)}"
        lines.append(f"--{name.replace('_', '-')}: {_shown(value)} ({why})")
    return lines


def _shown(value: Any) -> str:
    """A setting's value as a user would type it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
