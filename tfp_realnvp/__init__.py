"""tfp-realnvp: RealNVP normalizing flows as TensorFlow Probability distributions."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfp_realnvp.coupling import AffineCoupling  # noqa: E402
from tfp_realnvp.flow import FlowConfig, build_flow, context_kwargs, couplings  # noqa: E402

__version__ = "0.1.0"

__all__ = ["AffineCoupling", "FlowConfig", "build_flow", "context_kwargs", "couplings"]
