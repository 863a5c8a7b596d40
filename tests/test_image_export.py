"""Export of an image flow: its signatures through tf.saved_model.load, the TF1 session
loader and the C API loader TF Serving uses (a TensorFlow-only process, its warm-up file
replayed), and `load_image_export` round trip."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from serving_checks import TF1_SESSION_LOADER, fresh_result, run_fresh_scripts

import tfp_realnvp
from tfp_realnvp.errors import ModelNotFoundError, RunExistsError
from tfp_realnvp.images.config import ImageConfig
from tfp_realnvp.images.model import (
    build_image_flow,
    decode,
    encode,
    initialize_actnorms,
    sample_images,
)
from tfp_realnvp.images.serving import (
    BATCHABLE_IMAGE_SIGNATURES,
    IMAGE_SIGNATURES,
    export_images,
    load_image_export,
)
from tfp_realnvp.serving import WARMUP_FILE

CONFIG = ImageConfig(height=4, width=4, channels=2, levels=17, filters=4, checkerboard=2,
                     channel=2, last_checkerboard=2)
SEED = [7, 11]


def trained_like_flow():
    """The config's flow with actnorms from data and every weight moved off the identity."""
    flow = build_image_flow(CONFIG)
    rng = np.random.default_rng(0)
    initialize_actnorms(flow, rng.uniform(0, 17, size=(32, *CONFIG.shape)))
    for variable in flow.trainable_variables:
        variable.assign_add(0.1 * rng.standard_normal(variable.shape).astype(np.float32))
    return flow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    flow = trained_like_flow()
    base = tmp_path_factory.mktemp("exports")
    target = export_images(flow, base, name="digits", config=CONFIG)
    x = np.random.default_rng(1).uniform(0.1, 16.9, size=(3, *CONFIG.shape)).astype(np.float32)
    z = encode(flow, x).numpy()
    log_prob = flow.log_prob(x).numpy()
    expected = {
        "log_prob": {"log_prob": log_prob,
                     "bits_per_dim": -log_prob / (CONFIG.dims * math.log(2.0))},
        "encode": {"z": z},
        "decode": {"x": decode(flow, z).numpy()},
        "sample": {"samples": sample_images(flow, 4, tf.constant(SEED), 0.5).numpy()},
    }
    inputs = {"log_prob": {"x": x}, "encode": {"x": x}, "decode": {"z": z},
              "sample": {"num_samples": 4, "seed": SEED, "temperature": 0.5}}
    return target, flow, expected, inputs


def assert_match(got, expected):
    for signature, outputs in expected.items():
        for key, value in outputs.items():
            np.testing.assert_allclose(np.asarray(got[signature][key]), value, rtol=1e-4,
                                       atol=1e-3, err_msg=f"{signature}/{key}")


def test_the_export_layout_and_its_records(exported):
    target, _, _, _ = exported
    assert target.name == "1" and (target / "saved_model.pb").is_file()
    info = json.loads((target / "assets.extra" / "export_info.json").read_text())
    assert info["model"] == "image" and info["image_shape"] == [4, 4, 2]
    with pytest.raises(RunExistsError, match="already exists; versions are never overwritten"):
        export_images(exported[1], target.parent.parent, name="digits", version=1,
                      config=CONFIG)


def test_signatures_through_saved_model_load_and_load_image_export(exported):
    target, flow, expected, inputs = exported
    model = tf.saved_model.load(str(target))
    dtypes = {"num_samples": tf.int32, "seed": tf.int32}
    got = {signature: {k: v.numpy() for k, v in model.signatures[signature](**{
        k: tf.constant(v, dtypes.get(k, tf.float32)) for k, v in feed.items()}).items()}
        for signature, feed in inputs.items()}
    assert_match(got, expected)
    default = model.signatures["serving_default"](x=tf.constant(inputs["log_prob"]["x"]))
    np.testing.assert_allclose(default["log_prob"], expected["log_prob"]["log_prob"],
                               rtol=1e-5)
    with pytest.raises(Exception, match="check_x_is_batch_by_4x4x2"):
        model.signatures["log_prob"](x=tf.zeros([1, 4, 4, 1]))
    loaded = load_image_export(target.parent)
    np.testing.assert_allclose(loaded.log_prob(inputs["log_prob"]["x"]).numpy(),
                               expected["log_prob"]["log_prob"], rtol=1e-5)
    public = tfp_realnvp.load(target.parent)  # the package's one `load` knows image exports
    assert public.event_shape == CONFIG.shape
    np.testing.assert_allclose(public.log_prob(inputs["log_prob"]["x"]).numpy(),
                               expected["log_prob"]["log_prob"], rtol=1e-5)
    with pytest.raises(ModelNotFoundError, match="not an image export"):
        load_image_export(target / "variables")


# TF Serving's own loader (C++ `LoadSavedModel`) through the C API: every signature, the
# warm-up file replayed as the model server does before it serves, a wrong image shape.
CAPI_LOADER = """
    import json, sys
    import numpy as np
    from serving_capi import CApiSavedModel
    from tensorflow.python.framework import tensor_util
    from tensorflow.python.lib.io import tf_record
    from tensorflow_serving.apis import prediction_log_pb2
    payload, out = json.load(sys.stdin), {}
    with CApiSavedModel(payload["path"]) as model:
        for signature, inputs in payload["inputs"].items():
            feed = {k: np.asarray(v, dtype="int32" if k in ("num_samples", "seed")
                    else "float32") for k, v in inputs.items()}
            out[signature] = {k: v.tolist() for k, v in model.run(signature, feed).items()}
        out["signatures"] = {name: [d.method_name, sorted(d.inputs), sorted(d.outputs)]
                             for name, d in model.signature_defs.items()
                             if not name.startswith("__")}
        replayed = []
        for record in tf_record.tf_record_iterator(payload["warmup"]):
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            feed = {k: tensor_util.MakeNdarray(v) for k, v in request.inputs.items()}
            result = model.run(request.model_spec.signature_name, feed)
            finite = all(bool(np.all(np.isfinite(v))) for v in result.values())
            replayed.append([request.model_spec.name, request.model_spec.signature_name,
                             sorted(feed), finite])
        out["warmup"] = replayed
        try:
            model.run("log_prob", {"x": np.zeros((1, 4, 4, 1), "float32")})
            out["bad_shape"] = "no error"
        except RuntimeError as error:
            out["bad_shape"] = str(error)
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fresh(exported):
    """The TF1 session loader and the C API loader on the export, in ONE fresh
    TensorFlow-only interpreter (one start-up): {"tf1": ..., "capi": ...}."""
    target, _, _, inputs = exported
    feeds = {s: {k: np.asarray(v).tolist() for k, v in feed.items()}
             for s, feed in inputs.items()}
    return run_fresh_scripts({
        "tf1": (TF1_SESSION_LOADER, {"jobs": [{"path": str(target), "inputs": feeds}]}),
        "capi": (CAPI_LOADER, {"path": str(target), "inputs": feeds,
                               "warmup": str(target / "assets.extra" / WARMUP_FILE)}),
    })


def test_signatures_through_the_tf1_session_loader(exported, fresh):
    _, _, expected, _ = exported
    got = fresh_result(fresh, "tf1")
    assert got["modules"] == []  # TF Serving needs TensorFlow alone
    assert_match(got["results"][0], expected)


def test_c_api_loader_runs_the_signatures_and_replays_the_warmup(exported, fresh):
    target, _, expected, _ = exported
    got = fresh_result(fresh, "capi")
    images = ["tensorflow/serving/predict", ["x"], ["bits_per_dim", "log_prob"]]
    assert got.pop("signatures") == {
        "serving_default": images, "log_prob": images,
        "sample": ["tensorflow/serving/predict", ["num_samples", "seed", "temperature"],
                   ["samples"]],
        "encode": ["tensorflow/serving/predict", ["x"], ["z"]],
        "decode": ["tensorflow/serving/predict", ["z"], ["x"]],
    }
    assert sorted(got) == sorted(["bad_shape", "warmup", *expected])
    # one finite answer per batchable signature, as the model server replays them
    assert got.pop("warmup") == [["digits", name, ["z" if name == "decode" else "x"], True]
                                 for name in BATCHABLE_IMAGE_SIGNATURES]
    assert "sample" not in BATCHABLE_IMAGE_SIGNATURES and len(IMAGE_SIGNATURES) == 5
    assert "check_x_is_batch_by_4x4x2" in got.pop("bad_shape")
    assert_match(got, expected)
    info = json.loads((target / "assets.extra" / "export_info.json").read_text())
    assert info["batchable_signatures"] == list(BATCHABLE_IMAGE_SIGNATURES)
