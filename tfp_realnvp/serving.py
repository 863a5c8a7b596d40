"""SavedModel export for TensorFlow Serving; `rundir.load` reads it back as a TFP distribution.

Layout (what `tensorflow_model_server --model_base_path=BASE/NAME` expects):

```none
BASE/NAME/VERSION/saved_model.pb, variables/       tag "serve"
BASE/NAME/VERSION/assets.extra/flow_config.json     rebuilds the flow (`load`)
                              /layout.json          the training table's layout (if known)
                              /metrics.json         the training run's metrics
                              /export_info.json     TF/TFP versions that wrote it, signatures
                              /signatures.json      each signature's tensors, files' sha256
                              /tf_serving_warmup_requests   one Predict per batchable signature
```
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import __version__
from tfp_realnvp.config import FlowConfig
from tfp_realnvp.errors import ConfigError, RunExistsError
from tfp_realnvp.flow import context_kwargs, decode, encode, flow_context_dim
from tfp_realnvp.info import record_signatures
from tfp_realnvp.rundir import (
    ASSETS_EXTRA,
    FLOW_CONFIG_FILE,
    LAYOUT_FILE,
    METRICS_FILE,
    atomic_write,
    find_model,
)
from tfp_realnvp.tables.layout import TableLayout

tfd = tfp.distributions

EXPORT_INFO_FILE = "export_info.json"
WARMUP_FILE = "tf_serving_warmup_requests"
SIGNATURES = ("serving_default", "log_prob", "sample", "sample_from_seeds", "encode", "decode")
# Every input and output has a leading batch dimension, rows answered independently: what
# a model server with --enable_batching may merge (`sample` takes a scalar num_samples).
BATCHABLE_SIGNATURES = tuple(s for s in SIGNATURES if s != "sample")
# Releases whose TF1 session loader and C API (what TF Serving runs) loaded an export of
# this TensorFlow and gave the same outputs: see export/check_compat.py and export/README.md.
TESTED_SERVING_TENSORFLOW = ("2.16", "2.18", "2.20")
# One `sample` request draws at most this many rows (a bound on a server's memory per call).
MAX_SAMPLES = 1_000_000


class FlowServingModule(tf.Module):
    """The serving graph: four named-tensor functions over one flow.

    Every input is shape-checked in the graph (`EnsureShape`), so a request of the wrong
    rank or width fails with an InvalidArgument error naming the expected shape, which TF
    Serving returns to the client. Rows are scored independently: a row holding NaN gets a
    NaN log_prob, the others their own values; an empty batch gets an empty answer.
    `num_samples` must be in [0, MAX_SAMPLES]. Sampling takes an int32 `[2]` seed and lowers to
    stateless random ops: the same seed gives the same samples on every server.

    `sample_from_seeds` is sampling for batching servers: seeds `[B, 2]` (and contexts
    `[B, C]`) give samples `[B, D]`, row i = `sample(num_samples=1, seed=seed[i],
    context=context[i:i+1])[0]`, each row drawn on its own, so the answer to two requests
    merged is the two answers stacked.
    """

    def __init__(self, flow: tfd.TransformedDistribution, config: FlowConfig) -> None:
        super().__init__(name="flow_serving")
        self.flow = flow  # tracked: its variables become the SavedModel's variables
        self._dim = config.event_dim
        self._context_dim = flow_context_dim(flow)
        events = tf.TensorSpec([None, self._dim], tf.float32)
        sample_specs = [tf.TensorSpec([], tf.int32, name="num_samples"),
                        tf.TensorSpec([2], tf.int32, name="seed")]
        contexts = [tf.TensorSpec([None, self._context_dim], tf.float32, name="context")]
        extra = contexts if self._context_dim else []
        self.log_prob = tf.function(self._log_prob, input_signature=[
            tf.TensorSpec([None, self._dim], tf.float32, name="x"), *extra])
        self.sample = tf.function(self._sample, input_signature=[*sample_specs, *extra])
        self.sample_from_seeds = tf.function(self._sample_from_seeds, input_signature=[
            tf.TensorSpec([None, 2], tf.int32, name="seed"), *extra])
        self.encode = tf.function(self._encode, input_signature=[
            tf.TensorSpec.from_spec(events, name="x"), *extra])
        self.decode = tf.function(self._decode, input_signature=[
            tf.TensorSpec.from_spec(events, name="z"), *extra])

    def signatures(self) -> dict[str, Any]:
        return {"serving_default": self.log_prob, "log_prob": self.log_prob,
                "sample": self.sample, "sample_from_seeds": self.sample_from_seeds,
                "encode": self.encode, "decode": self.decode}

    def _events(self, x: tf.Tensor, name: str) -> tf.Tensor:
        return tf.ensure_shape(x, [None, self._dim], name=f"check_{name}_is_batch_by_{self._dim}")

    def _context(self, context: tf.Tensor | None) -> tf.Tensor | None:
        if context is None:
            return None
        return tf.ensure_shape(context, [None, self._context_dim],
                               name=f"check_context_is_batch_by_{self._context_dim}")

    def _kwargs(self, context: tf.Tensor | None) -> dict[str, Any]:
        return context_kwargs(self.flow, self._context(context))

    def _log_prob(self, x, context=None):
        return {"log_prob": self.flow.log_prob(self._events(x, "x"), **self._kwargs(context))}

    def _sample(self, num_samples, seed, context=None):
        num_samples = tf.ensure_shape(num_samples, [], name="check_num_samples_is_scalar")
        seed = tf.ensure_shape(seed, [2], name="check_seed_is_2_int32")
        checks = [
            tf.debugging.assert_non_negative(num_samples, message="num_samples must be >= 0"),
            tf.debugging.assert_less_equal(
                num_samples, MAX_SAMPLES,
                message=f"num_samples must be <= {MAX_SAMPLES} per request (ask several times)"),
        ]
        with tf.control_dependencies(checks):
            samples = self.flow.sample(num_samples, seed=seed, **self._kwargs(context))
        return {"samples": samples}

    def _sample_from_seeds(self, seed, context=None):
        seed = tf.ensure_shape(seed, [None, 2], name="check_seed_is_batch_by_2")
        context = self._context(context)
        rows = (seed,) if context is None else (seed, context)

        def one_sample(row: tuple[tf.Tensor, ...]) -> tf.Tensor:
            own_context = None if context is None else row[1][tf.newaxis]
            return self.flow.sample(1, seed=row[0], **self._kwargs(own_context))[0]

        samples = tf.map_fn(one_sample, rows,
                            fn_output_signature=tf.TensorSpec([self._dim], tf.float32))
        return {"samples": samples}

    def _encode(self, x, context=None):
        return {"z": encode(self.flow, self._events(x, "x"), self._context(context))}

    def _decode(self, z, context=None):
        return {"x": decode(self.flow, self._events(z, "z"), self._context(context))}


def next_version(model_dir: Path) -> int:
    """One more than the largest integer version folder under `model_dir` (1 if none)."""
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] \
        if model_dir.is_dir() else []
    return max(versions, default=0) + 1


def _warmup_inputs(config: FlowConfig) -> dict[str, dict[str, np.ndarray]]:
    """A small valid request per batchable signature (two rows at the data mean).

    `sample` is left out: its scalar `num_samples` cannot go through a server with
    --enable_batching, and one failing warm-up record fails the model's load.
    """
    shift = np.zeros(config.event_dim) if config.data_shift is None else config.data_shift
    x = np.tile(np.asarray(shift, np.float32), (2, 1))
    requests = {
        "serving_default": {"x": x},
        "log_prob": {"x": x},
        "sample_from_seeds": {"seed": np.array([[0, 0], [0, 1]], np.int32)},
        "encode": {"x": x},
        "decode": {"z": np.zeros_like(x)},
    }
    assert set(requests) == set(BATCHABLE_SIGNATURES)
    if config.context_dim:
        for inputs in requests.values():
            inputs["context"] = np.zeros((2, config.context_dim), np.float32)
    return requests


def write_warmup_requests(path: Path, model_name: str, config: FlowConfig) -> int:
    """Writes TF Serving's warm-up TFRecord: one `PredictionLog` per batchable signature.

    The model server replays these before it marks the version AVAILABLE, so the first
    real request does not pay for graph initialisation. A record that fails makes the
    server refuse the version, so each is a request the export is known to answer.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    requests = _warmup_inputs(config)
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
                  metrics: dict[str, Any] | None, layout: TableLayout | None = None) -> None:
    extra = version_dir / ASSETS_EXTRA
    extra.mkdir()
    (extra / FLOW_CONFIG_FILE).write_text(config.to_json() + "\n")
    if layout is not None:
        (extra / LAYOUT_FILE).write_text(layout.to_json() + "\n")
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
        "signatures": list(SIGNATURES),
        "batchable_signatures": list(BATCHABLE_SIGNATURES),
        "max_samples_per_request": MAX_SAMPLES,
        "serving_tensorflow_tested": list(TESTED_SERVING_TENSORFLOW),
        "oldest_serving_tensorflow_tested": min(
            TESTED_SERVING_TENSORFLOW, key=lambda v: tuple(map(int, v.split(".")))),
        "note": "Tested on the TF Serving loaders of TensorFlow "
                f"{', '.join(TESTED_SERVING_TENSORFLOW)} and {tf.__version__}; see "
                "export/README.md for the compatibility table.",
    }
    (extra / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    write_warmup_requests(extra / WARMUP_FILE, name, config)
    record_signatures(version_dir)  # what `tfp-realnvp info` reads without TensorFlow


def export(
    source: str | os.PathLike | tfd.Distribution,
    base_dir: str | os.PathLike,
    name: str = "realnvp",
    version: int | None = None,
    config: FlowConfig | None = None,
    layout: TableLayout | None = None,
) -> Path:
    """Exports a trained flow to `base_dir/name/version/` and returns that path.

    The SavedModel is written into a hidden temporary folder beside the target and renamed
    into place, so a server polling `base_dir/name` never sees half a version; an existing
    version is never overwritten (RunExistsError). Exports running at the same time into
    one model folder each get their own version: the one that renames second takes the
    next free number.

    Args:
      source: a run directory, an export (re-exported), or a live flow with its `config`.
      base_dir: the model server's base folder; the export goes to `base_dir/name/version`.
      name: the model's name (a plain folder name).
      version: a positive integer; default: one more than the highest version there.
      config: the `FlowConfig` of a live flow passed as `source`.
      layout: the training table's `TableLayout` of a live flow (a run's or an export's
        own layout is kept), saved as `assets.extra/layout.json`.
    """
    flow, config, metrics, layout = _resolve_source(source, config, layout)
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
                module = FlowServingModule(flow, config)
                with _quiet_tf_logger():
                    tf.saved_model.save(module, str(staging), signatures=module.signatures())
                _write_assets(staging, name, config, metrics, layout)
            return target
        except RunExistsError:
            if version is not None:
                raise
            # Another export took this version while ours was being written: take the next.


@contextlib.contextmanager
def _quiet_tf_logger():
    """Hides TensorFlow's Python deprecation chatter (LinearOperator.graph_parents) on save."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _resolve_source(source, config, layout):
    if isinstance(source, tfd.Distribution):
        if config is None:
            raise ConfigError("Exporting a live flow needs its FlowConfig: pass config=.")
        return source, config, None, layout
    model = find_model(source)
    return model.load(), model.config, model.metrics, model.layout
