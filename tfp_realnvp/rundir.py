"""Runs and exports on disk: their layout, atomic writes, and `load` from either.

```none
RUN_DIR/config.json     {"flow": FlowConfig, "train": TrainConfig, "data": {...},
                         "layout": TableLayout or null}
RUN_DIR/checkpoints/    training state (weights, optimizer, best weights, epoch) for resume
RUN_DIR/model/          the best weights (lowest validation NLL): what `load` restores
RUN_DIR/metrics.json    per-epoch train/validation NLL, best epoch, wall time, ...

BASE/NAME/VERSION/saved_model.pb, variables/         an export (see `serving.py`)
BASE/NAME/VERSION/assets.extra/flow_config.json      rebuilds the flow
BASE/NAME/VERSION/assets.extra/layout.json           the training table's layout (if any)
```
Every file is written through `atomic_write`: a reader (a resumed run, a model server
polling for versions) sees the old content or the new, never half of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfp_realnvp.config import FlowConfig, TrainConfig
from tfp_realnvp.errors import ModelNotFoundError, RunExistsError, RunLockedError
from tfp_realnvp.files import atomic_write, write_json
from tfp_realnvp.tables.layout import TableLayout, split_legacy_flow

if TYPE_CHECKING:
    from tensorflow_probability import distributions as tfd

# Reading a run's or an export's files needs no TensorFlow (`tfp-realnvp info` answers
# without it); the functions that touch weights import it when called.

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
MODEL_DIR = "model"
MODEL_PREFIX = "weights"
LOCK_FILE = ".lock"
SAVED_MODEL_FILE = "saved_model.pb"
ASSETS_EXTRA = "assets.extra"
FLOW_CONFIG_FILE = "flow_config.json"
LAYOUT_FILE = "layout.json"
CATEGORICAL_FILE = "categorical.json"  # a mixed run's categorical model (mixed/model.py)
IMAGE_FILE = "image.json"  # an image model's ImageConfig (images/runs.py)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What config.json holds: the flow, the training settings, where the data came from,
    which settings `auto.choose` picked (with its reasons), and the training table's
    layout (None: trained from arrays). A config written before the layout existed keeps
    it in its flow fields; it is read from there."""

    flow: FlowConfig | None  # None: an all-categorical table's run (no flow)
    train: TrainConfig | None
    data: dict[str, Any]
    auto: dict[str, Any] = dataclasses.field(default_factory=dict)
    layout: TableLayout | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"flow": None if self.flow is None else self.flow.to_dict(),
                "train": None if self.train is None else self.train.to_dict(),
                "data": self.data,
                "auto": self.auto,
                "layout": None if self.layout is None else self.layout.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        flow, legacy = split_legacy_flow(values["flow"] or {})
        layout = values.get("layout")
        train = values.get("train")
        return cls(None if values["flow"] is None else FlowConfig.from_dict(flow),
                   None if train is None else TrainConfig.from_dict(train),
                   values.get("data", {}), values.get("auto", {}),
                   legacy if layout is None else TableLayout.from_dict(layout))


@dataclasses.dataclass(frozen=True)
class RunDir:
    """One training run's folder: config, checkpoints, best weights, metrics."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    def is_run(self) -> bool:
        return self.config_file.is_file()

    def is_finished(self) -> bool:
        return (self.model_dir / f"{MODEL_PREFIX}.index").is_file()

    def create(self) -> None:
        """Makes the folder; refuses one that exists and is not empty."""
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise RunExistsError(
                f"{self.path} already exists and is not empty; choose another output "
                "directory or resume that run.")
        self.path.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds `RUN/.lock` (this process's pid) while training.

        A run a live process holds is refused (RunLockedError); a lock whose process is
        gone (a killed run) is stale and taken over.
        """
        path = self.path / LOCK_FILE
        while True:
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = _lock_owner(path)
                if owner is not None and owner != os.getpid() and _process_alive(owner):
                    raise RunLockedError(
                        f"{self.path} is being trained by process {owner} (its lock: "
                        f"{path}); wait for it to finish or stop it.") from None
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(handle, "w") as lock_file:
                lock_file.write(f"{os.getpid()}\n")
            break
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def read_config(self) -> RunConfig:
        if not self.is_run():
            raise ModelNotFoundError(f"{self.path}: not a run directory (no {CONFIG_FILE}).")
        return RunConfig.from_dict(json.loads(self.config_file.read_text()))

    def write_config(self, config: RunConfig) -> None:
        write_json(self.config_file, config.to_dict())

    def read_metrics(self) -> dict[str, Any]:
        """The run's metrics.json, or `{}` before the first one is written."""
        if not self.metrics_file.is_file():
            return {}
        return json.loads(self.metrics_file.read_text())

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics_file, metrics)

    def update_metrics(self, values: dict[str, Any]) -> dict[str, Any]:
        """Merges `values` into metrics.json; returns the whole updated dict."""
        metrics = {**self.read_metrics(), **values}
        self.write_metrics(metrics)
        return metrics

    def save_weights(self, flow: tfd.Distribution) -> None:
        """Writes the flow's weights to model/, replacing the previous ones atomically."""
        import tensorflow as tf

        with atomic_write(self.model_dir) as tmp:
            tf.train.Checkpoint(flow=flow).write(str(tmp / MODEL_PREFIX))

    def load_flow(self) -> tfd.Distribution:
        """Rebuilds the trained flow: config.json plus the best weights in model/."""
        from tfp_realnvp.flow import build_flow

        config = self.read_config().flow
        if config is None:
            raise ModelNotFoundError(f"{self.path}: an all-categorical table's run has no "
                                     "flow; load it with tfp_realnvp.load.")
        if not self.is_finished():
            raise ModelNotFoundError(
                f"{self.path}: no trained weights in {MODEL_DIR}/ (training has not finished; "
                "resume it).")
        flow = build_flow(config)
        restore_weights(flow, self.model_dir / MODEL_PREFIX)
        return flow


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # unreadable or half-written: treated as stale


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def restore_weights(flow: tfd.Distribution, prefix: str | os.PathLike) -> None:
    """Reads checkpointed weights saved under the key `flow` (a run's model/ or an export's
    variables/) into a flow built from the same config; ModelNotFoundError when they are
    missing, unreadable or do not fit the config."""
    import tensorflow as tf

    try:
        tf.train.Checkpoint(flow=flow).read(str(prefix)).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ModelNotFoundError(
            f"{prefix}: the weights are missing, unreadable or do not fit the model's config "
            f"({type(error).__name__}: {first_line[:200]}).") from None


def export_version_dir(path: str | os.PathLike) -> Path | None:
    """The export version folder at `path`: `path` itself, or the highest integer version
    under it that holds a SavedModel; None when `path` holds no export."""
    path = Path(path)
    if (path / SAVED_MODEL_FILE).is_file():
        return path
    if path.is_dir():
        versions = [int(p.name) for p in path.iterdir()
                    if p.name.isdigit() and (p / SAVED_MODEL_FILE).is_file()]
        if versions:
            return path / str(max(versions))
    return None


def _check_saved_model(version_dir: Path) -> None:
    """A SavedModel a server could load: saved_model.pb parses and variables/ is there."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    try:
        saved_model_pb2.SavedModel.FromString((version_dir / SAVED_MODEL_FILE).read_bytes())
    except DecodeError:
        raise ModelNotFoundError(
            f"{version_dir}: {SAVED_MODEL_FILE} is unreadable (truncated or not a SavedModel); "
            "export the run again.") from None
    if not (version_dir / "variables" / "variables.index").is_file():
        raise ModelNotFoundError(
            f"{version_dir}: no variables/ (an incomplete export); export the run again.")


def read_export_config(version_dir: Path) -> FlowConfig:
    path = version_dir / ASSETS_EXTRA / FLOW_CONFIG_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{version_dir}: no {ASSETS_EXTRA}/{FLOW_CONFIG_FILE}; was it "
                                 "written by tfp_realnvp.export?")
    return FlowConfig.from_json(path.read_text())


def read_export_layout(version_dir: Path) -> TableLayout | None:
    """An export's table layout: `assets.extra/layout.json`, else (an export written before
    it) the column fields of its flow_config.json; None when it records none."""
    path = version_dir / ASSETS_EXTRA / LAYOUT_FILE
    if path.is_file():
        return TableLayout.from_json(path.read_text())
    config_file = version_dir / ASSETS_EXTRA / FLOW_CONFIG_FILE
    if not config_file.is_file():
        return None
    return split_legacy_flow(json.loads(config_file.read_text()))[1]


STUDENT_DIR = "student"  # a distilled run's student flow: a run directory inside the run


@dataclasses.dataclass(frozen=True)
class Model:
    """A trained flow found on disk: a run directory or an export version folder.

    A distilled run (`RUN/student/`, see `training/distill.py`) serves its student: one
    flow, the config and weights `load` and `export` take; `ensemble=True` takes the
    ensemble the run trained instead. Its layout and metrics are the run's."""

    kind: str  # "run" or "export"
    path: Path
    ensemble: bool = False

    @property
    def student(self) -> RunDir | None:
        """The run's distilled student flow, when it has one and it is served."""
        student = RunDir(self.path / STUDENT_DIR)
        served = self.kind == "run" and not self.ensemble and student.is_finished()
        return student if served else None

    @property
    def config(self) -> FlowConfig | None:
        """The flow's config; None for an image model (its `ImageConfig` is in image.json:
        `images.runs.read_image_config`) and an all-categorical table's run (no flow)."""
        if self.image:
            return None
        if self.kind == "run":
            return RunDir(self.path if self.student is None else self.student.path
                          ).read_config().flow
        return read_export_config(self.path)

    @property
    def layout(self) -> TableLayout | None:
        """The training table's layout (column names, events, context), None if unknown."""
        if self.kind == "run":
            return RunDir(self.path).read_config().layout
        return read_export_layout(self.path)

    @property
    def metrics(self) -> dict[str, Any] | None:
        file = self.path / (METRICS_FILE if self.kind == "run" else
                            f"{ASSETS_EXTRA}/{METRICS_FILE}")
        return json.loads(file.read_text()) if file.is_file() else None

    @property
    def categorical_file(self) -> Path:
        """Where a table model with categorical columns keeps its categorical.json."""
        return self.path / (CATEGORICAL_FILE if self.kind == "run" else
                            f"{ASSETS_EXTRA}/{CATEGORICAL_FILE}")

    @property
    def image(self) -> bool:
        """An image model (a run or export holding image.json; `images/`): `load` gives
        its multi-scale flow, `config` is None."""
        return (self.path / (IMAGE_FILE if self.kind == "run" else
                             f"{ASSETS_EXTRA}/{IMAGE_FILE}")).is_file()

    @property
    def mixed(self) -> bool:
        """A table model with categorical columns (its `load` gives a `MixedTableModel`)."""
        return self.categorical_file.is_file()

    def load(self) -> tfd.Distribution | Any:
        """The trained model: a TFP distribution (an image model's multi-scale flow), or for
        a table with categorical columns (a run or its export) its `MixedTableModel`."""
        from tfp_realnvp.flow import build_flow

        if self.image:
            from tfp_realnvp.images import runs, serving

            return (runs.load_image_flow(self.path) if self.kind == "run" else
                    serving.load_image_export(self.path))
        if self.kind == "run":
            if self.mixed:
                from tfp_realnvp.mixed.model import load_mixed

                return load_mixed(self.path)
            return (self.student or RunDir(self.path)).load_flow()
        _check_saved_model(self.path)
        flow = build_flow(self.config)
        restore_weights(flow, self.path / "variables" / "variables")
        if self.mixed:
            from tfp_realnvp.mixed.model import read_mixed

            return read_mixed(self.categorical_file, flow)
        return flow


def find_model(path: str | os.PathLike) -> Model:
    """Tells a run directory from an export (a version folder, or the model folder above
    its integer versions: the latest is used); ModelNotFoundError for anything else."""
    path = Path(path)
    if RunDir(path).is_run():
        return Model("run", path)
    version_dir = export_version_dir(path)
    if version_dir is None:
        raise ModelNotFoundError(
            f"{path}: neither a run directory ({CONFIG_FILE}) nor an export ({SAVED_MODEL_FILE}, "
            "or integer version folders holding one).")
    return Model("export", version_dir)


def load(path: str | os.PathLike) -> tfd.Distribution | Any:
    """A live TFP distribution from a run directory or an export (the `MixedTableModel`
    of a run of a table with categorical columns).

    An export of a mixed table (`assets.extra/categorical.json`) gives a `MixedTableModel`
    (that categorical model with the flow). For an export the flow is rebuilt from
    `assets.extra/flow_config.json` and its weights
    are read from the SavedModel's variables (the serving module keeps the flow under the
    same `flow` key as a run's checkpoint), so it samples, differentiates and composes with
    other TFP objects like the flow that was trained.

    Args:
      path: a run directory, an export version folder, or the model folder above versions.
    """
    return find_model(path).load()
