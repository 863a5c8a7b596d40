"""The serving graph of a flow (`FlowServingModule`), its signatures' names and limits.

`serving.export` writes it; `serving_tables` adds the named-column signatures of tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.config import FlowConfig
from tfp_realnvp.flow import context_kwargs, decode, encode, flow_context_dim

tfd = tfp.distributions

SIGNATURES = ("serving_default", "log_prob", "sample", "sample_from_seeds", "encode", "decode")
# Every input and output has a leading batch dimension, rows answered independently: what
# a model server with --enable_batching may merge (`sample` takes a scalar num_samples).
BATCHABLE_SIGNATURES = tuple(s for s in SIGNATURES if s != "sample")
# A numeric-only table with a header gets these beside SIGNATURES: one input per column.
COLUMN_SUFFIX = "_columns"
# A mixed table (categories and numbers): one input per column, labels as text.
MIXED_SIGNATURES = ("serving_default", "log_prob", "sample", "sample_from_seeds")
# Releases whose TF1 session loader and C API (what TF Serving runs) loaded an export of
# this TensorFlow and gave the same outputs: see export/check_compat.py and export/README.md.
TESTED_SERVING_TENSORFLOW = ("2.16", "2.18", "2.20")
# One `sample` request draws at most this many rows (a bound on a server's memory per call).
MAX_SAMPLES = 1_000_000



def checked_sample_request(num_samples: tf.Tensor, seed: tf.Tensor
                           ) -> tuple[tf.Tensor, tf.Tensor, list[tf.Operation]]:
    """A `sample` request's (num_samples, seed) with their shapes checked, and the checks
    0 <= num_samples <= MAX_SAMPLES to run before drawing (InvalidArgument otherwise)."""
    num_samples = tf.ensure_shape(num_samples, [], name="check_num_samples_is_scalar")
    seed = tf.ensure_shape(seed, [2], name="check_seed_is_2_int32")
    checks = [
        tf.debugging.assert_non_negative(num_samples, message="num_samples must be >= 0"),
        tf.debugging.assert_less_equal(
            num_samples, MAX_SAMPLES,
            message=f"num_samples must be <= {MAX_SAMPLES} per request (ask several times)"),
    ]
    return num_samples, seed, checks

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
        num_samples, seed, checks = checked_sample_request(num_samples, seed)
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


def flow_warmup_inputs(config: FlowConfig) -> dict[str, dict[str, np.ndarray]]:
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
