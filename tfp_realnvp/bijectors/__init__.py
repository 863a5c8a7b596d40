"""The package's `tfp.bijectors.Bijector`s: couplings, splines, mixing steps, ensembles.

```none
autoregressive.py  MaskedAutoregressiveSpline (MAF / IAF with spline transformers)
augmented.py  LogDetWithMap: maps that return their log-dets with them (one network call)
context.py    ContextInput: the network input [values, standardised context]
coupling.py   Coupling (the shared machinery), AffineCoupling (RealNVP), soft_clamp
spline.py     OneHotSpline (the rational-quadratic kernel), SplineParams, SplineCoupling
mixing.py     LUMixing, permutation_indices: what goes between couplings
ensemble.py   FlowEnsemble (a TFP distribution), FoldAffine, stacked_flow, num_members
```
The names below are imported on first use, like the package's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfp_realnvp.lazy import lazy_namespace

# public name -> the submodule that defines it
_EXPORTS = {
    "AffineCoupling": "coupling",
    "ContextInput": "context",
    "Coupling": "coupling",
    "FlowEnsemble": "ensemble",
    "FoldAffine": "ensemble",
    "LUMixing": "mixing",
    "MaskedAutoregressiveSpline": "autoregressive",
    "OneHotSpline": "spline",
    "SplineCoupling": "spline",
    "SplineParams": "spline",
}
_SUBMODULES = ("autoregressive", "context", "coupling", "ensemble", "mixing", "spline")

__all__ = ["AffineCoupling", "ContextInput", "Coupling", "FlowEnsemble", "FoldAffine", "LUMixing",
           "MaskedAutoregressiveSpline", "OneHotSpline", "SplineCoupling", "SplineParams"]
assert sorted(_EXPORTS) == __all__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ does the work
    from tfp_realnvp.bijectors.autoregressive import MaskedAutoregressiveSpline
    from tfp_realnvp.bijectors.context import ContextInput
    from tfp_realnvp.bijectors.coupling import AffineCoupling, Coupling
    from tfp_realnvp.bijectors.ensemble import FlowEnsemble, FoldAffine
    from tfp_realnvp.bijectors.mixing import LUMixing
    from tfp_realnvp.bijectors.spline import OneHotSpline, SplineCoupling, SplineParams


__getattr__, __dir__ = lazy_namespace(__name__, globals(), _EXPORTS, _SUBMODULES)
