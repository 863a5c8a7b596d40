"""Training: NLL minimisation in `tf.function` under a `tf.distribute` strategy.

One module per job: `distribute` (strategies, TF_CONFIG, the chief, worker votes),
`pipeline` (each member's batches), `trainer` (optimizer, compiled step, validation, the
kept best), `loop` (the epoch loop, its stop rules and checkpoints), `records` (epoch
figures, metrics.json), `api` (`fit`, `resume`). The data arrive prepared
(`tfp_realnvp.prepare`).
"""

from tfp_realnvp.training.api import fit, resume
from tfp_realnvp.training.distribute import is_chief, make_strategy, num_workers
from tfp_realnvp.training.records import (
    EpochMetrics,
    FitResult,
    software_versions,
    weights_digest,
)
from tfp_realnvp.training.trainer import Trainer

__all__ = ["EpochMetrics", "FitResult", "Trainer", "fit", "is_chief", "make_strategy",
           "num_workers", "resume", "software_versions", "weights_digest"]
