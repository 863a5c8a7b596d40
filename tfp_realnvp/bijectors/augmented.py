"""`LogDetWithMap`: a bijector whose maps return their log-dets with them, one call each."""

from __future__ import annotations

from typing import Any


class LogDetWithMap:
    """Mixin (before `tfb.Bijector` in the bases) for a bijector that implements

    ```none
    _augmented_forward(x, **kwargs) -> (y, {"fldj": fldj(x), "ildj": -fldj(x)})
    _augmented_inverse(y, **kwargs) -> (x, {"ildj": ildj(y), "fldj": -ildj(y)})
    ```
    TFP's greedy bijector cache keeps the dict with the output, so `log_prob` runs each
    network once; the plain maps and the log-dets (reached only on a cache miss: the
    log-det asked for before the map, which the caller then caches) delegate here.
    """

    def _forward(self, x, **kwargs: Any):
        return self._augmented_forward(x, **kwargs)[0]

    def _inverse(self, y, **kwargs: Any):
        return self._augmented_inverse(y, **kwargs)[0]

    def _forward_log_det_jacobian(self, x, **kwargs: Any):
        return self._augmented_forward(x, **kwargs)[1]["fldj"]

    def _inverse_log_det_jacobian(self, y, **kwargs: Any):
        return self._augmented_inverse(y, **kwargs)[1]["ildj"]
