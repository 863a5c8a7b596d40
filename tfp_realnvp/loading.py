"""`load`: any trained model of this package (a run directory or an export, of a table or of
images) back as a live TFP distribution."""

from __future__ import annotations

import os
from typing import Any

from tfp_realnvp import rundir
from tfp_realnvp.images import runs as image_runs


def load(path: str | os.PathLike) -> Any:
    """A live TFP distribution from a run directory or an export.

    - An image model (a run with `image.json`, or an export with it in `assets.extra/`):
      the multi-scale flow over `[H, W, C]` images (`images.model`).
    - A table with categorical columns: its `MixedTableModel` (the categorical model with
      the flow).
    - Otherwise the flow (a `FlowEnsemble`, a `MixtureBlend`, or one flow): see
      `rundir.load`.

    Args:
      path: a run directory, an export version folder, or the model folder above versions.
    """
    if image_runs.is_image_run(path):
        return image_runs.load_image_flow(path)
    if image_runs.image_export_dir(path) is not None:
        from tfp_realnvp.images.serving import load_image_export

        return load_image_export(path)
    return rundir.load(path)
