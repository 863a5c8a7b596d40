"""An image run on disk: `image.json` beside config.json marks it and rebuilds its flow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tfp_realnvp.errors import ModelNotFoundError
from tfp_realnvp.files import atomic_write
from tfp_realnvp.images.config import ImageConfig
from tfp_realnvp.rundir import (
    ASSETS_EXTRA,
    IMAGE_FILE,
    MODEL_PREFIX,
    RunDir,
    export_version_dir,
)

if TYPE_CHECKING:
    from tensorflow_probability import distributions as tfd


def write_image_config(run_path: Path, config: ImageConfig) -> None:
    with atomic_write(Path(run_path) / IMAGE_FILE) as tmp:
        tmp.write_text(config.to_json())


def is_image_run(path: str | os.PathLike) -> bool:
    """Whether `path` is a run directory of an image model."""
    return (Path(path) / IMAGE_FILE).is_file()


def image_export_dir(path: str | os.PathLike) -> Path | None:
    """The version folder of an image export at `path` (a version folder, or the model
    folder above versions: the latest), None for anything else."""
    if not Path(path).is_dir():
        return None
    version_dir = export_version_dir(path)
    if version_dir is None or not (version_dir / ASSETS_EXTRA / IMAGE_FILE).is_file():
        return None
    return version_dir


def is_image_model(path: str | os.PathLike) -> bool:
    """Whether `path` is an image run or an image export."""
    return is_image_run(path) or image_export_dir(path) is not None


def read_image_config(path: str | os.PathLike) -> ImageConfig:
    """The `ImageConfig` of an image run or export."""
    version_dir = image_export_dir(path) if not is_image_run(path) else None
    file = Path(path) / IMAGE_FILE if version_dir is None else \
        version_dir / ASSETS_EXTRA / IMAGE_FILE
    if not file.is_file():
        raise ModelNotFoundError(f"{path}: not an image run or export (no {IMAGE_FILE}).")
    return ImageConfig.from_json(file.read_text())


def load_image_flow(path: str | os.PathLike) -> tfd.Distribution:
    """The trained image flow of a run: image.json plus the best weights in model/."""
    from tfp_realnvp.images.model import build_image_flow
    from tfp_realnvp.rundir import restore_weights

    run = RunDir(Path(path))
    config = read_image_config(path)
    if not run.is_finished():
        raise ModelNotFoundError(f"{path}: no trained weights in model/ (training has not "
                                 "finished).")
    flow = build_image_flow(config)
    restore_weights(flow, run.model_dir / MODEL_PREFIX)
    return flow
