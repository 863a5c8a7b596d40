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

DEFAULT_TIME_BUDGET = 45.0  # seconds of training; two moons' whole fit stays under a minute


@dataclasses.dataclass(frozen=True)
class Choice:
    """The chosen configs and, per setting, the rule that chose it (kept in config.json)."""

    flow: FlowConfig
    train: TrainConfig
    reasons: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"reasons": self.reasons}


def choose(num_rows: int, dim: int, time_budget: float | None = None) -> Choice:
    """The settings for a table of `num_rows` x `dim`.

    Args:
      num_rows: rows given to `fit` (training and validation together).
      dim: columns.
      time_budget: seconds of training for the whole fit (default `DEFAULT_TIME_BUDGET`).
    """
    budget = DEFAULT_TIME_BUDGET if time_budget is None else time_budget
    reasons: dict[str, str] = {}

    if num_rows <= 5000:
        members = 5
        reasons["ensemble_size"] = "<= 5,000 rows: 5 members on 5 folds (variance dominates)"
    elif num_rows <= 50000:
        members = 3
        reasons["ensemble_size"] = "<= 50,000 rows: 3 members on 3 folds"
    else:
        members = 1
        reasons["ensemble_size"] = "> 50,000 rows: one flow, 10% held out"
    if dim == 2:
        members = 1
        reasons["ensemble_size"] = "2 columns: one flow (its fit is sharp enough alone)"

    hidden = 32 if num_rows < 1000 else 64 if num_rows < 20000 else 128
    hidden = max(hidden, min(256, 2 * dim))
    reasons["hidden_units"] = "32 below 1,000 rows, 64 below 20,000, else 128; >= 2 x columns"
    mixing = "reverse" if dim == 2 else "lu"
    reasons["mixing"] = "learned LU mixing from 3 columns on; a swap for 2"

    weight_decay = 1e-4 if num_rows < 20000 else 0.0
    reasons["weight_decay"] = "1e-4 below 20,000 rows"
    steps_per_epoch = max(1, int(num_rows * (1 - 1 / max(members, 10))) // 256)
    patience = max(10, min(60, 300 // steps_per_epoch))
    reasons["patience"] = "about 300 steps without a better validation NLL (10 to 60 epochs)"
    reasons["time_budget"] = f"{budget:g} s of training for the whole fit"

    flow = FlowConfig(coupling="spline", num_couplings=4, hidden_units=hidden,
                      num_hidden_layers=2, activation="tanh", mixing=mixing,
                      ensemble_size=members)
    reasons["coupling"] = "rational-quadratic spline couplings, 4 of them, 2 hidden layers"
    train = TrainConfig(epochs=400, learning_rate=5e-3, weight_decay=weight_decay,
                        patience=patience, time_budget=budget)
    return Choice(flow, train, reasons)
