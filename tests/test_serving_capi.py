"""Self-test of the C-API SavedModel runner, independent of ``tfp_realnvp``.

A tiny ``tf.Module`` is exported with two signatures and loaded back through
``TF_LoadSessionFromSavedModel`` (the loader TensorFlow Serving uses); the
results must match eager execution.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from serving_capi import CApiSavedModel  # noqa: E402


class _TinyModule(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable([[1.0, 2.0], [-0.5, 0.25]], dtype=tf.float32)
        self.b = tf.Variable([0.1, -0.2], dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def affine(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.matmul(x, self.w) + self.b}

    @tf.function(
        input_signature=[
            tf.TensorSpec([], tf.int32, name="n"),
            tf.TensorSpec([2], tf.int32, name="seed"),
        ]
    )
    def sample(self, n: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"samples": tf.random.stateless_normal([n, 2], seed)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[_TinyModule, str]:
    module = _TinyModule()
    path = str(tmp_path_factory.mktemp("capi") / "tiny")
    signatures = {"serving_default": module.affine, "sample": module.sample}
    tf.saved_model.save(module, path, signatures=signatures)
    return module, path


@pytest.fixture(scope="module")
def model(exported: tuple[_TinyModule, str]):
    with CApiSavedModel(exported[1]) as loaded:
        yield loaded


def test_signatures_are_listed(model: CApiSavedModel) -> None:
    signatures = model.signature_defs
    assert {"serving_default", "sample"} <= set(signatures)
    assert set(signatures["serving_default"].inputs) == {"x"}
    assert set(signatures["sample"].inputs) == {"n", "seed"}
    assert set(signatures["sample"].outputs) == {"samples"}


def test_affine_matches_eager(model: CApiSavedModel, exported: tuple[_TinyModule, str]) -> None:
    x = np.array([[1.0, 2.0], [3.0, -4.0], [0.5, 0.0]], dtype=np.float32)
    out = model.run("serving_default", {"x": x})
    assert set(out) == {"y"}
    assert out["y"].dtype == np.float32 and out["y"].shape == (3, 2)
    np.testing.assert_allclose(out["y"], exported[0].affine(x)["y"].numpy(), atol=1e-6)


def test_stateless_samples_match_eager(model: CApiSavedModel) -> None:
    inputs = {"n": np.array(5, dtype=np.int32), "seed": np.array([7, 11], dtype=np.int32)}
    first = model.run("sample", inputs)["samples"]
    second = model.run("sample", inputs)["samples"]
    eager = tf.random.stateless_normal([5, 2], seed=[7, 11]).numpy()
    assert first.shape == (5, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, eager, atol=1e-6)
    other = model.run("sample", {**inputs, "seed": np.array([8, 11], dtype=np.int32)})
    assert not np.allclose(other["samples"], first)


def test_wrong_input_keys_raise_value_error(model: CApiSavedModel) -> None:
    x = np.zeros((1, 2), np.float32)
    with pytest.raises(ValueError, match="'x'"):
        model.run("serving_default", {"inputs": x})
    with pytest.raises(ValueError, match="'n', 'seed'"):
        model.run("sample", {"n": np.array(1, np.int32)})


def test_wrong_dtype_raises_type_error(model: CApiSavedModel) -> None:
    with pytest.raises(TypeError, match="float32"):
        model.run("serving_default", {"x": np.zeros((1, 2), np.float64)})


def test_graph_error_raises_runtime_error(model: CApiSavedModel) -> None:
    with pytest.raises(RuntimeError, match="(?i)matrix size-incompatible|shape"):
        model.run("serving_default", {"x": np.zeros((3, 5), np.float32)})
    # The session is still usable after a failed run.
    out = model.run("serving_default", {"x": np.zeros((1, 2), np.float32)})
    np.testing.assert_allclose(out["y"], [[0.1, -0.2]], atol=1e-6)


def test_bad_export_dir_raises_runtime_error(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="loading SavedModel"):
        CApiSavedModel(str(tmp_path / "missing"))


def test_close_is_idempotent(exported: tuple[_TinyModule, str]) -> None:
    loaded = CApiSavedModel(exported[1])
    loaded.close()
    loaded.close()
    with pytest.raises(RuntimeError, match="closed"):
        loaded.run("serving_default", {"x": np.zeros((1, 2), np.float32)})


class _TextModule(tf.Module):
    """A vocabulary table in the graph: labels in, codes and echoed labels out."""

    def __init__(self) -> None:
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(["a", "bb"]),
                                                tf.constant([0, 1], tf.int64)),
            default_value=tf.constant(2, tf.int64))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="label")])
    def codes(self, label: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"code": self.table.lookup(label), "echo": tf.strings.upper(label)}


def test_string_inputs_and_outputs_round_trip(tmp_path) -> None:
    module = _TextModule()
    tf.saved_model.save(module, str(tmp_path / "text"), signatures={"codes": module.codes})
    with CApiSavedModel(str(tmp_path / "text")) as loaded:
        labels = np.array(["bb", "a", "", "zzz", "é"], dtype=object)
        out = loaded.run("codes", {"label": labels})
        np.testing.assert_array_equal(out["code"], [1, 0, 2, 2, 2])
        assert out["echo"].tolist() == [b"BB", b"A", b"", b"ZZZ", "é".encode()]
        assert loaded.run("codes", {"label": np.array([], dtype=object)})["code"].shape == (0,)
        with pytest.raises(TypeError, match="must hold strings"):
            loaded.run("codes", {"label": np.zeros(2, np.float32)})
