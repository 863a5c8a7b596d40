"""`saved_model.save`: exports hold their signatures and variables, not the Keras layers'
traced calls, and still load back to the same flow."""

import numpy as np
import tensorflow as tf
from conftest import suite_flow
from tensorflow.core.protobuf import saved_model_pb2

import tfp_realnvp
from tfp_realnvp import saved_model


def function_names(version_dir) -> list[str]:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return [f.signature.name for f in proto.meta_graphs[0].graph_def.library.function]


def test_an_export_has_no_keras_layer_traces_and_loads_the_same_flow(tmp_path):
    config, flow = suite_flow("reverse-2d")  # tf-keras Dense conditioners
    version_dir = tfp_realnvp.export(flow, tmp_path, name="m", config=config)
    names = function_names(version_dir)
    assert any("signature_wrapper" in name for name in names)  # the signatures are there
    assert not [name for name in names if "call_and_return_conditional_losses" in name]
    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    np.testing.assert_allclose(tfp_realnvp.load(version_dir).log_prob(x),
                               flow.log_prob(x), rtol=1e-6)


def test_the_switch_is_what_removes_them(tmp_path):
    """The same module saved by plain `tf.saved_model.save` carries the layer traces: the
    check above would catch the switch going missing."""
    _, flow = suite_flow("reverse-2d")
    module = tf.Module()
    module.flow = flow
    module.log_prob = tf.function(flow.log_prob,
                                  input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "plain"))
    saved_model.save(module, tmp_path / "ours", {"log_prob": module.log_prob})
    traced = "call_and_return_conditional_losses"
    assert any(traced in name for name in function_names(tmp_path / "plain"))
    assert not any(traced in name for name in function_names(tmp_path / "ours"))
