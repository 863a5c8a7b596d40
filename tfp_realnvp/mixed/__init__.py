"""Mixed tables: an exact likelihood `log P(categories) + log p(numbers | categories)`.

`categorical`, `encoding`, `frames` and `table_io` (`score_frame`, `sample_frame`: tables
in and out by the layout's names and labels) need no TensorFlow; `model` (`MixedTableModel`,
`fit_mixed`, `load_mixed`) and `mass_tf` (`CategoricalMass`) import it, on first use.
"""

from __future__ import annotations

from tfp_realnvp.lazy import lazy_namespace

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
    "FrameScores": "table_io",
    "score_frame": "table_io",
    "sample_frame": "table_io",
    "save_frame": "table_io",
    "frame_inputs": "frames",
    "log_mass_tf": "mass_tf",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_namespace(__name__, globals(), _EXPORTS)
