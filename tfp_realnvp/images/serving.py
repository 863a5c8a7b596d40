"""SavedModel export of an image flow for TF Serving, and `load_image_export` to read it back.

```none
BASE/NAME/VERSION/saved_model.pb, variables/       tag "serve"
BASE/NAME/VERSION/assets.extra/image.json          rebuilds the flow (ImageConfig)
                              /metrics.json        the training run's metrics
                              /export_info.json    versions, image shape, signatures
                              /tf_serving_warmup_requests   one Predict per batchable signature
```
Signatures (float32 images `[B, H, W, C]` in level units, dynamic batch):
`serving_default`/`log_prob` x -> log_prob [B], bits_per_dim [B]; `sample` (num_samples,
seed int32 [2], temperature) -> samples; `encode` x -> z; `decode` z -> x.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import __version__, saved_model
from tfp_realnvp.errors import ConfigError, ModelNotFoundError, RunExistsError
from tfp_realnvp.files import atomic_write
from tfp_realnvp.images import runs
from tfp_realnvp.images.config import ImageConfig
from tfp_realnvp.images.model import build_image_flow, decode, encode, sample_images
from tfp_realnvp.rundir import ASSETS_EXTRA, METRICS_FILE, RunDir
from tfp_realnvp.serving_flow import checked_sample_request

tfd = tfp.distributions

IMAGE_SIGNATURES = ("serving_default", "log_prob", "sample", "encode", "decode")
# Every signature but `sample` (scalar inputs: refused by a server with --enable_batching).
BATCHABLE_IMAGE_SIGNATURES = tuple(s for s in IMAGE_SIGNATURES if s != "sample")
EXPORT_INFO_FILE = "export_info.json"


class ImageServingModule(tf.Module):
    """The serving graph of an image flow: every input shape-checked in the graph
    (`EnsureShape`: a wrong image shape is an InvalidArgument naming `[?, H, W, C]`);
    sampling is stateless (an int32 `[2]` seed gives the same images on every server)."""

    def __init__(self, flow: tfd.Distribution, config: ImageConfig) -> None:
        super().__init__(name="image_serving")
        self.flow = flow  # tracked under `flow`, the key a run's checkpoint uses
        self._shape = [None, *config.shape]
        self._bits = 1.0 / (config.dims * math.log(2.0))
        images = tf.TensorSpec(self._shape, tf.float32)
        self.log_prob = tf.function(self._log_prob, input_signature=[
            tf.TensorSpec.from_spec(images, name="x")])
        self.sample = tf.function(self._sample, input_signature=[
            tf.TensorSpec([], tf.int32, name="num_samples"),
            tf.TensorSpec([2], tf.int32, name="seed"),
            tf.TensorSpec([], tf.float32, name="temperature")])
        self.encode = tf.function(self._encode, input_signature=[
            tf.TensorSpec.from_spec(images, name="x")])
        self.decode = tf.function(self._decode, input_signature=[
            tf.TensorSpec.from_spec(images, name="z")])

    def signatures(self) -> dict[str, Any]:
        return {"serving_default": self.log_prob, "log_prob": self.log_prob,
                "sample": self.sample, "encode": self.encode, "decode": self.decode}

    def _images(self, x: tf.Tensor, name: str) -> tf.Tensor:
        dims = "x".join(str(v) for v in self._shape[1:])
        return tf.ensure_shape(x, self._shape, name=f"check_{name}_is_batch_by_{dims}")

    def _log_prob(self, x):
        log_prob = self.flow.log_prob(self._images(x, "x"))
        return {"log_prob": log_prob, "bits_per_dim": -log_prob * self._bits}

    def _sample(self, num_samples, seed, temperature):
        num_samples, seed, checks = checked_sample_request(num_samples, seed)
        with tf.control_dependencies(checks):
            return {"samples": sample_images(self.flow, num_samples, seed, temperature)}

    def _encode(self, x):
        return {"z": encode(self.flow, self._images(x, "x"))}

    def _decode(self, z):
        return {"x": decode(self.flow, self._images(z, "z"))}


def export_images(source: str | os.PathLike | tfd.Distribution, base_dir: str | os.PathLike,
                  name: str = "realnvp", version: int | None = None,
                  config: ImageConfig | None = None) -> Path:
    """Exports an image run (an image export again, or a live image flow with its
    `config`) to `base_dir/name/version/`, written aside and renamed into place; never
    overwrites."""
    from tfp_realnvp.serving import next_version

    if isinstance(source, tfd.Distribution):
        if config is None:
            raise ConfigError("Exporting a live image flow needs its ImageConfig: pass config=.")
        flow, metrics = source, None
    elif runs.is_image_run(source):
        flow, config = runs.load_image_flow(source), runs.read_image_config(source)
        metrics = RunDir(Path(source)).read_metrics() or None
    else:  # an image export, exported again (its metrics kept)
        flow, config = load_image_export(source), runs.read_image_config(source)
        file = runs.image_export_dir(source) / ASSETS_EXTRA / METRICS_FILE
        metrics = json.loads(file.read_text()) if file.is_file() else None
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"'name' must be a plain folder name; got {name!r}.")
    model_dir = Path(base_dir) / name
    target = model_dir / str(version or next_version(model_dir))
    if target.exists():
        raise RunExistsError(f"{target} already exists; versions are never overwritten.")
    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, replace=False) as staging:
        module = ImageServingModule(flow, config)
        saved_model.save(module, staging, module.signatures())
        _write_assets(staging, name, config, metrics)
    return target


def _write_assets(version_dir: Path, name: str, config: ImageConfig,
                  metrics: dict[str, Any] | None) -> None:
    from tfp_realnvp.serving import WARMUP_FILE, write_warmup_requests

    extra = version_dir / ASSETS_EXTRA
    extra.mkdir()
    (extra / runs.IMAGE_FILE).write_text(config.to_json() + "\n")
    write_warmup_requests(extra / WARMUP_FILE, name, None, image_warmup_inputs(config))
    if metrics is not None:
        (extra / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    info = {"tensorflow_version": tf.__version__,
            "tensorflow_probability_version": tfp.__version__,
            "tfp_realnvp_version": __version__, "model_name": name, "model": "image",
            "image_shape": list(config.shape), "levels": config.levels,
            "signatures": list(IMAGE_SIGNATURES),
            "batchable_signatures": list(BATCHABLE_IMAGE_SIGNATURES)}
    (extra / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def image_warmup_inputs(config: ImageConfig) -> dict[str, dict[str, np.ndarray]]:
    """TF Serving's warm-up requests of an image export: per batchable signature two
    mid-grey images (every value `levels / 2`, level units) or two zero latents."""
    x = np.full((2, *config.shape), config.levels / 2.0, np.float32)
    requests = {"serving_default": {"x": x}, "log_prob": {"x": x}, "encode": {"x": x},
                "decode": {"z": np.zeros_like(x)}}
    assert tuple(requests) == BATCHABLE_IMAGE_SIGNATURES
    return requests


def load_image_export(path: str | os.PathLike) -> tfd.Distribution:
    """The image flow of an export (a version folder, or the model folder above versions:
    the latest), rebuilt from image.json with the SavedModel's variables."""
    from tfp_realnvp.rundir import restore_weights

    version_dir = runs.image_export_dir(path)
    if version_dir is None:
        raise ModelNotFoundError(f"{path}: not an image export (no {ASSETS_EXTRA}/"
                                 f"{runs.IMAGE_FILE}).")
    config_file = version_dir / ASSETS_EXTRA / runs.IMAGE_FILE
    flow = build_image_flow(ImageConfig.from_json(config_file.read_text()))
    restore_weights(flow, version_dir / "variables" / "variables")
    return flow
