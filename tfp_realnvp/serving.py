"""SavedModel export for TensorFlow Serving; `rundir.load` reads it back (a TFP distribution,
or a `MixedTableModel` for a mixed table).

Layout (what `tensorflow_model_server --model_base_path=BASE/NAME` expects):

```none
BASE/NAME/VERSION/saved_model.pb, variables/       tag "serve"
BASE/NAME/VERSION/assets.extra/flow_config.json     rebuilds the flow (`load`)
                              /layout.json          the training table's layout (if known)
                              /columns.json         column name -> named input (named tables)
                              /categorical.json     a mixed table's categorical model
                              /metrics.json         the training run's metrics
                              /export_info.json     TF/TFP versions that wrote it, signatures
                              /signatures.json      each signature's tensors, files' sha256
                              /price.json           members, parameters, log_prob rows/s
                              /tf_serving_warmup_requests   one Predict per batchable signature
```
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import __version__, saved_model
from tfp_realnvp.config import FlowConfig
from tfp_realnvp.errors import ConfigError, RunExistsError
from tfp_realnvp.images.config import ImageConfig
from tfp_realnvp.info import PRICE_FILE, record_signatures
from tfp_realnvp.mixed.model import CATEGORICAL_FILE, MixedTableModel, load_mixed
from tfp_realnvp.price import measure_price
from tfp_realnvp.rundir import (
    ASSETS_EXTRA,
    FLOW_CONFIG_FILE,
    LAYOUT_FILE,
    METRICS_FILE,
    atomic_write,
    find_model,
)
from tfp_realnvp.serving_columns import COLUMNS_FILE
from tfp_realnvp.serving_flow import (  # noqa: F401 (re-exported: the names tests and tools use)
    BATCHABLE_SIGNATURES,
    MAX_SAMPLES,
    SIGNATURES,
    TESTED_SERVING_TENSORFLOW,
    FlowServingModule,
    flow_warmup_inputs,
)
from tfp_realnvp.serving_plan import ServedModel
from tfp_realnvp.tables.layout import TableLayout

tfd = tfp.distributions

EXPORT_INFO_FILE = "export_info.json"
WARMUP_FILE = "tf_serving_warmup_requests"


def next_version(model_dir: Path) -> int:
    """One more than the largest integer version folder under `model_dir` (1 if none)."""
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] \
        if model_dir.is_dir() else []
    return max(versions, default=0) + 1


def write_warmup_requests(path: Path, model_name: str, config: FlowConfig | None,
                          requests: dict[str, dict[str, np.ndarray]] | None = None) -> int:
    """Writes TF Serving's warm-up TFRecord: one `PredictionLog` per batchable signature
    (`requests`: signature -> inputs; default: the flow signatures' own, from `config`).

    The model server replays these before it marks the version AVAILABLE, so the first
    real request does not pay for graph initialisation. A record that fails makes the
    server refuse the version, so each is a request the export is known to answer.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    requests = flow_warmup_inputs(config) if requests is None else requests
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return len(requests)


def _write_assets(version_dir: Path, name: str, config: FlowConfig,
                  metrics: dict[str, Any] | None, layout: TableLayout | None = None,
                  served: ServedModel | None = None) -> None:
    extra = version_dir / ASSETS_EXTRA
    extra.mkdir()
    (extra / FLOW_CONFIG_FILE).write_text(config.to_json() + "\n")
    if layout is not None:
        (extra / LAYOUT_FILE).write_text(layout.to_json() + "\n")
    if served is not None and served.columns is not None:
        (extra / COLUMNS_FILE).write_text(json.dumps(served.info(), indent=2) + "\n")
    if served is not None and isinstance(served.model, MixedTableModel):
        served.model.save_categorical(extra)
    if metrics is not None:
        (extra / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    info = {
        "tensorflow_version": tf.__version__,
        "tensorflow_probability_version": tfp.__version__,
        "tfp_realnvp_version": __version__,
        "model_name": name,
        "event_dim": config.event_dim,
        "context_dim": config.context_dim,
        "ensemble_size": config.ensemble_size,
        "signatures": list(SIGNATURES) if served is None else list(served.signatures),
        "batchable_signatures": list(BATCHABLE_SIGNATURES) if served is None else
        served.batchable,
        **({} if served is None else served.info()),
        "max_samples_per_request": MAX_SAMPLES,
        "serving_tensorflow_tested": list(TESTED_SERVING_TENSORFLOW),
        "oldest_serving_tensorflow_tested": min(
            TESTED_SERVING_TENSORFLOW, key=lambda v: tuple(map(int, v.split(".")))),
        "note": "Tested on the TF Serving loaders of TensorFlow "
                f"{', '.join(TESTED_SERVING_TENSORFLOW)} and {tf.__version__}; see "
                "export/README.md for the compatibility table.",
    }
    (extra / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    write_warmup_requests(extra / WARMUP_FILE, name, config,
                          None if served is None else served.warmup)
    record_signatures(version_dir)  # what `tfp-realnvp info` reads without TensorFlow
    if served is not None:  # the serving cost, timed here: `info` and the export report
        price = measure_price(served.signatures["log_prob"], served.warmup["log_prob"],
                              served.model, config)
        (extra / PRICE_FILE).write_text(json.dumps(price, indent=2) + "\n")


def export(
    source: str | os.PathLike | tfd.Distribution | MixedTableModel,
    base_dir: str | os.PathLike,
    name: str = "realnvp",
    version: int | None = None,
    config: FlowConfig | None = None,
    layout: TableLayout | None = None,
    ensemble: bool = False,
) -> Path:
    """Exports a trained flow to `base_dir/name/version/` and returns that path.

    The SavedModel is written into a hidden temporary folder beside the target and renamed
    into place, so a server polling `base_dir/name` never sees half a version; an existing
    version is never overwritten (RunExistsError). Exports running at the same time into
    one model folder each get their own version: the one that renames second takes the
    next free number.

    Args:
      source: a run directory, an export (re-exported), or a live flow (or
        `MixedTableModel`) with its `config` (and a mixed model's `layout`). An image model
        (its run or export, or a live image flow with its `ImageConfig`) gets the image
        signatures (`images/serving.py`). A table model
        (a mixed one, or a numeric one whose layout names its columns) also gets signatures
        taking one named input per column; see `serving_tables`.
      base_dir: the model server's base folder; the export goes to `base_dir/name/version`.
      name: the model's name (a plain folder name).
      version: a positive integer; default: one more than the highest version there.
      config: the `FlowConfig` of a live flow passed as `source`.
      layout: the training table's `TableLayout` of a live flow (a run's or an export's
        own layout is kept), saved as `assets.extra/layout.json`.
      ensemble: a distilled run exports its ensemble, not its student (one flow, the
        default: see `training/distill.py`).
    """
    live = isinstance(source, (tfd.Distribution, MixedTableModel))
    if isinstance(config, ImageConfig) or (not live and find_model(source).image):
        from tfp_realnvp.images.serving import export_images

        return export_images(source, base_dir, name, version, config)
    flow, config, metrics, layout = _resolve_source(source, config, layout, ensemble)
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"'name' must be a plain folder name; got {name!r}.")
    model_dir = Path(base_dir) / name
    if version is not None and int(version) < 1:
        raise ConfigError(f"'version' must be a positive integer; got {version}.")
    if version is not None and (model_dir / str(version)).exists():
        raise RunExistsError(
            f"{model_dir / str(version)} already exists; versions are never overwritten. "
            f"Leave the version out to write the next free one ({next_version(model_dir)}).")
    model_dir.mkdir(parents=True, exist_ok=True)
    while True:
        target = model_dir / str(version or next_version(model_dir))
        try:
            with atomic_write(target, replace=False) as staging:
                served = ServedModel(flow, config, layout)
                saved_model.save(served.module, staging, served.signatures)
                _write_assets(staging, name, config, metrics, layout, served)
            return target
        except RunExistsError:
            if version is not None:
                raise
            # Another export took this version while ours was being written: take the next.


def _resolve_source(source, config, layout, ensemble=False):
    if isinstance(source, (tfd.Distribution, MixedTableModel)):
        if config is None:
            raise ConfigError("Exporting a live flow needs its FlowConfig: pass config=.")
        return source, config, None, layout
    model = dataclasses.replace(find_model(source), ensemble=ensemble)
    mixed_run = model.kind == "run" and (model.path / CATEGORICAL_FILE).is_file()
    loaded = load_mixed(model.path) if mixed_run else model.load()
    return loaded, model.config, model.metrics, model.layout
