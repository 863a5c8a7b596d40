"""tfp-realnvp: RealNVP normalizing flows as TensorFlow Probability distributions.

Importing the package is cheap and has no side effects: the names below (and the
submodules) are imported on first use, so `tfp-realnvp --help` does not wait for
TensorFlow, and nothing here touches the caller's environment or matplotlib backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfp_realnvp.lazy import lazy_namespace

__version__ = "0.1.0"

# public name -> the submodule that defines it
_EXPORTS = {
    "AffineCoupling": "bijectors.coupling",
    "FlowConfig": "config",
    "TrainConfig": "config",
    "build_flow": "flow",
    "bijector_kwargs": "flow",
    "context_kwargs": "flow",
    "couplings": "flow",
    "surrogate_posterior": "flow",
    "export": "serving",
    "load": "loading",
    "fit": "training",
    "resume": "training",
    "TfpRealnvpError": "errors",
    "DataError": "errors",
    "ConfigError": "errors",
}
_SUBMODULES = ("auto", "bench", "bijectors", "cli", "config", "errors", "files", "flow", "info",
               "lazy", "loading", "mixed", "networks", "plots", "prepare", "rundir", "sampling",
               "scoring", "serving", "summaries", "tables", "training")

__all__ = ["AffineCoupling", "ConfigError", "DataError", "FlowConfig", "TfpRealnvpError",
           "TrainConfig", "bijector_kwargs", "build_flow", "context_kwargs", "couplings",
           "export", "fit", "load", "resume", "surrogate_posterior"]
assert sorted(_EXPORTS) == __all__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ does the work
    from tfp_realnvp.bijectors.coupling import AffineCoupling
    from tfp_realnvp.config import FlowConfig, TrainConfig
    from tfp_realnvp.errors import ConfigError, DataError, TfpRealnvpError
    from tfp_realnvp.flow import (
        bijector_kwargs,
        build_flow,
        context_kwargs,
        couplings,
        surrogate_posterior,
    )
    from tfp_realnvp.loading import load
    from tfp_realnvp.serving import export
    from tfp_realnvp.training import fit, resume


__getattr__, __dir__ = lazy_namespace(__name__, globals(), _EXPORTS, _SUBMODULES)
