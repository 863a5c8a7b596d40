"""tfp-realnvp: RealNVP normalizing flows as TensorFlow Probability distributions."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from tfp_realnvp.coupling import AffineCoupling  # noqa: E402
from tfp_realnvp.flow import FlowConfig, build_flow, context_kwargs, couplings  # noqa: E402
from tfp_realnvp.serving import export, load  # noqa: E402
from tfp_realnvp.train import TrainConfig, fit  # noqa: E402

__all__ = ["AffineCoupling", "FlowConfig", "TrainConfig", "build_flow", "context_kwargs",
           "couplings", "export", "fit", "load"]
