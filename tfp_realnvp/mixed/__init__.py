"""Mixed tables: an exact likelihood `log P(categories) + log p(numbers | categories)`.

`categorical` and `encoding` need only NumPy; `model` (`MixedTableModel`, `fit_mixed`,
`load_mixed`) and `mass_tf` (`CategoricalMass`) import TensorFlow, on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CategoricalModel": "categorical",
    "Vocabulary": "encoding",
    "fit_vocabularies": "encoding",
    "encode": "encoding",
    "decode": "encoding",
    "one_hot": "encoding",
    "find_missing": "encoding",
    "MixedTableModel": "model",
    "fit_mixed": "model",
    "load_mixed": "model",
    "CategoricalMass": "mass_tf",
    "log_mass_tf": "mass_tf",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
