"""The package's `tfp.bijectors.Bijector`s: couplings, splines, mixing steps, ensembles.

```none
autoregressive.py  MaskedAutoregressiveSpline (MAF / IAF with spline transformers)
augmented.py  LogDetWithMap: maps that return their log-dets with them (one network call)
context.py    ContextInput: the network input [values, standardised context]
coupling.py   Coupling (the shared machinery), AffineCoupling (RealNVP), soft_clamp
spline.py     OneHotSpline (the rational-quadratic kernel), SplineParams, SplineCoupling
mixing.py     LUMixing, permutation_indices: what goes between couplings
ensemble.py   FlowEnsemble (a TFP distribution), FoldAffine, stacked_flow, num_members
image_maps.py      LogitPixels, Squeeze, ActNorm (images [H, W, C], no networks)
image_coupling.py  MaskedImageCoupling (checkerboard / channel masks, conv conditioner)
image_scales.py    FactorOut (RealNVP's multi-scale factor-out)
```
The names below are imported on first use, like the package's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfp_realnvp.lazy import lazy_namespace

# public name -> the submodule that defines it
_EXPORTS = {
    "ActNorm": "image_maps",
    "AffineCoupling": "coupling",
    "ContextInput": "context",
    "Coupling": "coupling",
    "FactorOut": "image_scales",
    "FlowEnsemble": "ensemble",
    "FoldAffine": "ensemble",
    "LUMixing": "mixing",
    "LogitPixels": "image_maps",
    "MaskedAutoregressiveSpline": "autoregressive",
    "MaskedImageCoupling": "image_coupling",
    "OneHotSpline": "spline",
    "SplineCoupling": "spline",
    "SplineParams": "spline",
    "Squeeze": "image_maps",
}
_SUBMODULES = ("autoregressive", "context", "coupling", "ensemble", "image_coupling",
               "image_maps", "image_scales", "mixing", "spline")

__all__ = ["ActNorm", "AffineCoupling", "ContextInput", "Coupling", "FactorOut", "FlowEnsemble",
           "FoldAffine", "LUMixing", "LogitPixels", "MaskedAutoregressiveSpline",
           "MaskedImageCoupling", "OneHotSpline", "SplineCoupling", "SplineParams", "Squeeze"]
assert sorted(_EXPORTS) == __all__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ does the work
    from tfp_realnvp.bijectors.autoregressive import MaskedAutoregressiveSpline
    from tfp_realnvp.bijectors.context import ContextInput
    from tfp_realnvp.bijectors.coupling import AffineCoupling, Coupling
    from tfp_realnvp.bijectors.ensemble import FlowEnsemble, FoldAffine
    from tfp_realnvp.bijectors.image_coupling import MaskedImageCoupling
    from tfp_realnvp.bijectors.image_maps import ActNorm, LogitPixels, Squeeze
    from tfp_realnvp.bijectors.image_scales import FactorOut
    from tfp_realnvp.bijectors.mixing import LUMixing
    from tfp_realnvp.bijectors.spline import OneHotSpline, SplineCoupling, SplineParams


__getattr__, __dir__ = lazy_namespace(__name__, globals(), _EXPORTS, _SUBMODULES)
