"""An export a model server with --enable_batching can load and answer: batchable warm-up,
batch-dimensioned signatures, and merged requests answered like separate ones."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import suite_config, suite_flow
from serving_checks import fresh_result, run_fresh_scripts, samples_from_seeds
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import tensor_util
from tensorflow.python.lib.io import tf_record
from tensorflow_serving.apis import prediction_log_pb2

from tfp_realnvp.serving import BATCHABLE_SIGNATURES, SIGNATURES, WARMUP_FILE

# Two of conftest's suite exports (built once per session by `suite_exports`): affine
# couplings with a data map, one flow without a context and an ensemble with one.
CASES = {"plain": "reverse-2d", "conditional": "ensemble-conditional-2d"}


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, suite_exports):
    config, flow = suite_flow(CASES[request.param])
    return config, flow, Path(suite_exports[CASES[request.param]]["path"])


def signature_defs(version_dir):
    saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    (meta,) = saved.meta_graphs
    return {k: v for k, v in meta.signature_def.items() if not k.startswith("__")}


def leading_dims(tensor_infos) -> list[int]:
    return [info.tensor_shape.dim[0].size if info.tensor_shape.dim else None
            for info in tensor_infos.values()]


def test_batchable_signatures_have_a_batch_dimension_everywhere(exported):
    _, _, version_dir = exported
    defs = signature_defs(version_dir)
    assert sorted(defs) == sorted(SIGNATURES)
    for name in BATCHABLE_SIGNATURES:
        assert set(leading_dims(defs[name].inputs)) == {-1}, name
        assert set(leading_dims(defs[name].outputs)) == {-1}, name
    # The one that is not: a scalar num_samples, which a batching server refuses.
    assert None in leading_dims(defs["sample"].inputs)


def test_every_warmup_record_is_a_batchable_request(exported):
    config, _, version_dir = exported
    defs = signature_defs(version_dir)
    called = []
    for record in tf_record.tf_record_iterator(str(version_dir / "assets.extra" / WARMUP_FILE)):
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        name = request.model_spec.signature_name
        called.append(name)
        arrays = {k: tensor_util.MakeNdarray(v) for k, v in request.inputs.items()}
        assert sorted(arrays) == sorted(defs[name].inputs), name
        assert {a.ndim >= 1 for a in arrays.values()} == {True}, name
        assert len({a.shape[0] for a in arrays.values()}) == 1, name  # one shared batch dim
        assert set(leading_dims(defs[name].outputs)) == {-1}, name
    assert sorted(called) == sorted(BATCHABLE_SIGNATURES) and "sample" not in called


MERGE_CHECK = """
    import json, sys
    import numpy as np
    from serving_capi import CApiSavedModel
    payload = json.load(sys.stdin)
    first = {k: np.asarray(v, dtype="int32" if k == "seed" else "float32")
             for k, v in payload["first"].items()}
    second = {k: np.asarray(v, dtype="int32" if k == "seed" else "float32")
              for k, v in payload["second"].items()}
    merged = {k: np.concatenate([first[k], second[k]]) for k in first}
    out = {}
    with CApiSavedModel(payload["path"]) as model:
        for name in payload["signatures"]:
            keys = payload["keys"][name]
            pick = lambda request: {k: request[k] for k in keys}
            a = model.run(name, pick(first))
            b = model.run(name, pick(second))
            m = model.run(name, pick(merged))
            again = model.run(name, pick(first))
            out[name] = {"separate": {k: np.concatenate([a[k], b[k]]).tolist() for k in a},
                         "merged": {k: v.tolist() for k, v in m.items()},
                         "repeat_equal": all(np.array_equal(a[k], again[k]) for k in a)}
        one = {"num_samples": np.array(1, "int32")}
        singles = []
        for i, seed in enumerate(first["seed"]):
            request = {**one, "seed": seed}
            if "context" in first:
                request["context"] = first["context"][i:i + 1]
            singles.append(model.run("sample", request)["samples"][0].tolist())
        out["sample_one_each"] = singles
    print(json.dumps(out))
"""


def merge_requests(config) -> tuple[dict, dict, dict]:
    """(first request, second request, {signature: its input keys}): rows to merge."""
    rng = np.random.default_rng(2)
    dim = config.event_dim
    first = {"seed": np.array([[1, 2], [9, 9], [1, 2]], np.int32),
             "x": rng.normal(size=(3, dim)), "z": rng.normal(size=(3, dim))}
    second = {"seed": np.array([[7, 0], [1, 2]], np.int32),
              "x": rng.normal(size=(2, dim)), "z": rng.normal(size=(2, dim))}
    keys = {"sample_from_seeds": ["seed"], "log_prob": ["x"], "encode": ["x"], "decode": ["z"]}
    if config.context_dim:
        first["context"] = rng.normal(size=(3, config.context_dim))
        second["context"] = rng.normal(size=(2, config.context_dim))
        keys = {k: [*v, "context"] for k, v in keys.items()}
    return first, second, keys


@pytest.fixture(scope="module")
def merge_checks(suite_exports):
    """MERGE_CHECK on every case's export, all in ONE fresh interpreter: {case: result}."""
    scripts = {}
    for case, name in CASES.items():
        first, second, keys = merge_requests(suite_config(name))
        scripts[case] = (MERGE_CHECK, {
            "path": suite_exports[name]["path"], "signatures": sorted(keys), "keys": keys,
            "first": {k: np.asarray(v).tolist() for k, v in first.items()},
            "second": {k: np.asarray(v).tolist() for k, v in second.items()}})
    return run_fresh_scripts(scripts)


@pytest.mark.parametrize("case", list(CASES))
def test_merged_requests_get_the_separate_answers_through_the_c_api(case, merge_checks):
    """What a batching server does: concatenates requests' rows, runs once, splits."""
    config, flow = suite_flow(CASES[case])
    dim = config.event_dim
    first, second, _ = merge_requests(config)
    got = fresh_result(merge_checks, case)

    sampled = got["sample_from_seeds"]
    # Each row drawn on its own: merging changes nothing, to the bit.
    assert sampled["merged"] == sampled["separate"] and sampled["repeat_equal"]
    rows = np.asarray(sampled["merged"]["samples"])
    assert rows.shape == (5, dim) and np.all(np.isfinite(rows))
    if not config.context_dim:  # the same seed, the same sample
        np.testing.assert_array_equal(rows[0], rows[2])
        np.testing.assert_array_equal(rows[0], rows[4])
        assert not np.allclose(rows[0], rows[1])
    # Row i is what `sample` draws with num_samples=1 and seed i, and what the live flow does.
    np.testing.assert_allclose(rows[:3], np.asarray(got["sample_one_each"]), rtol=1e-6,
                               atol=1e-6)
    seeds = np.concatenate([first["seed"], second["seed"]])
    context = None
    if config.context_dim:
        context = tf.constant(np.concatenate([first["context"], second["context"]]),
                              tf.float32)
    np.testing.assert_allclose(rows, samples_from_seeds(flow, seeds, context), rtol=1e-5,
                               atol=1e-5)
    for name in ("log_prob", "encode", "decode"):
        for key, value in got[name]["merged"].items():
            np.testing.assert_allclose(value, got[name]["separate"][key], rtol=1e-6,
                                       atol=1e-6, err_msg=name)
