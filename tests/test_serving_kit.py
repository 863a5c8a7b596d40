"""The serving kit in export/: config, request bodies, scripts and the gRPC client.

Needs no TensorFlow Serving binary: the scripts are only parsed and dry-run (`--print`), and
the gRPC client talks to an in-process stand-in for the PredictionService.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from concurrent import futures  # noqa: E402
from pathlib import Path  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow.core.framework import types_pb2  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

KIT = Path(__file__).resolve().parents[1] / "export"
SCRIPTS = ["serve_local.sh", "serve_docker.sh", "curl_examples.sh"]
BASH = shutil.which("bash")


@pytest.fixture(scope="module")
def client():
    spec = importlib.util.spec_from_file_location("grpc_client", KIT / "grpc_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_config(text: str) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


# --- models.config --------------------------------------------------------------------------


def test_models_config_parses_and_names_realnvp():
    config = parse_config((KIT / "models.config").read_text())
    (model,) = config.model_config_list.config
    assert model.name == "realnvp"
    assert model.base_path == "/models/realnvp"
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"


# --- REST request bodies --------------------------------------------------------------------

ROW_REQUESTS = {"log_prob.json": ("log_prob", "x"), "encode.json": ("encode", "x"),
                "decode.json": ("decode", "z")}


TABLE_REQUESTS = ["table_log_prob.json"]  # a mixed table's named columns (test_table_export)


def test_request_files_are_the_documented_set():
    assert sorted(p.name for p in (KIT / "requests").glob("*.json")) == sorted(
        [*ROW_REQUESTS, "sample.json", *TABLE_REQUESTS])
    readme = (KIT / "README.md").read_text()
    assert all(f"requests/{name}" in readme for name in TABLE_REQUESTS)


def test_table_request_is_row_format_with_one_value_per_column():
    body = json.loads((KIT / "requests" / "table_log_prob.json").read_text())
    assert set(body) == {"signature_name", "instances"} and body["signature_name"] == "log_prob"
    for instance in body["instances"]:
        assert set(instance) == set(body["instances"][0])
        assert all(isinstance(v, (int, float, str)) for v in instance.values())


@pytest.mark.parametrize("name", sorted(ROW_REQUESTS))
def test_row_requests_have_signature_and_inputs(name):
    body = json.loads((KIT / "requests" / name).read_text())
    signature, key = ROW_REQUESTS[name]
    assert set(body) == {"signature_name", "instances"}
    assert body["signature_name"] == signature
    assert body["instances"]
    for instance in body["instances"]:
        assert set(instance) == {key}
        assert np.asarray(instance[key], dtype=np.float32).shape == (2,)


def test_sample_request_is_columnar_with_scalar_num_samples():
    body = json.loads((KIT / "requests" / "sample.json").read_text())
    assert body == {"signature_name": "sample", "inputs": {"num_samples": 5, "seed": [1, 2]}}


# --- shell scripts --------------------------------------------------------------------------

needs_bash = pytest.mark.skipif(BASH is None, reason="bash not found")


@needs_bash
@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses_and_is_executable(script):
    path = KIT / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in path.read_text()
    subprocess.run([BASH, "-n", str(path)], check=True, capture_output=True)


@pytest.fixture
def export_base(tmp_path: Path) -> Path:
    """A stand-in export base dir: realnvp/1 and realnvp/2 with the files the scripts read."""
    for version in (1, 2):
        extra = tmp_path / "exports" / "realnvp" / str(version) / "assets.extra"
        extra.mkdir(parents=True)
        (extra.parent / "saved_model.pb").write_bytes(b"")
        (extra / "export_info.json").write_text(json.dumps({"tensorflow_version": tf.__version__}))
    return tmp_path / "exports"


def run_script(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(KIT / script), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=30)


@needs_bash
def test_serve_local_points_the_server_at_the_absolute_model_dir(export_base):
    done = run_script("serve_local.sh", "--print", str(export_base), "--", "--enable_batching",
                      TFP_REALNVP_MODEL_SERVER="/nonexistent/tensorflow_model_server")
    assert done.returncode == 0, done.stderr
    command = shlex.split(done.stdout.strip().splitlines()[-1])
    assert command[1:] == ["--port=8500", "--rest_api_port=8501", "--model_name=realnvp",
                           f"--model_base_path={export_base.resolve()}/realnvp",
                           "--enable_batching"]


@needs_bash
def test_serve_local_generated_config_parses(export_base):
    done = run_script("serve_local.sh", "--print", "--policy", "1,2", str(export_base),
                      TFP_REALNVP_MODEL_SERVER="/nonexistent/tensorflow_model_server")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    config = parse_config("\n".join(lines[1:-1]))
    (model,) = config.model_config_list.config
    assert model.base_path == f"{export_base.resolve()}/realnvp"
    assert list(model.model_version_policy.specific.versions) == [1, 2]
    assert "--model_config_file=" in lines[-1]


@needs_bash
def test_serve_local_explains_a_missing_binary(export_base):
    done = run_script("serve_local.sh", str(export_base),
                      TFP_REALNVP_MODEL_SERVER="/nonexistent/tensorflow_model_server")
    assert done.returncode != 0
    assert "apt" in done.stderr and "Docker" in done.stderr


@needs_bash
def test_serve_docker_mounts_the_model_dir(export_base):
    done = run_script("serve_docker.sh", "--print", str(export_base), TF_SERVING_TAG="nightly")
    assert done.returncode == 0, done.stderr
    command = shlex.split(done.stdout.strip())
    assert command[:2] == ["docker", "run"]
    assert f"{export_base.resolve()}/realnvp:/models/realnvp:ro" in command
    assert "MODEL_NAME=realnvp" in command
    assert command[-1] == "tensorflow/serving:nightly"


@needs_bash
def test_serve_docker_warns_about_an_older_server(export_base):
    done = run_script("serve_docker.sh", "--print", str(export_base), TF_SERVING_TAG="2.0.0")
    assert done.returncode == 0, done.stderr
    assert "NodeDef mentions attr" in done.stderr


def record_oldest_tested(export_base: Path, oldest: str | None) -> None:
    for info_file in export_base.glob("realnvp/*/assets.extra/export_info.json"):
        info = {"tensorflow_version": "2.21.0"}
        if oldest is not None:
            info["oldest_serving_tensorflow_tested"] = oldest
        info_file.write_text(json.dumps(info, indent=2))


@needs_bash
@pytest.mark.parametrize("oldest, tag, warned", [
    ("2.16", "2.18.0", False),      # inside the tested range
    ("2.16", "2.16.1-gpu", False),
    ("2.16", "2.15.0", True),       # older than any tested
    ("2.20", "latest", False),      # the newest release seen (2.20) is tested
    ("2.21", "latest", True),
    (None, "2.20.0", True),         # an export that records no range: same TF or newer
    (None, "2.21.0", False),
])
def test_serve_docker_warns_only_outside_the_tested_range(export_base, oldest, tag, warned):
    record_oldest_tested(export_base, oldest)
    done = run_script("serve_docker.sh", "--print", str(export_base), TF_SERVING_TAG=tag)
    assert done.returncode == 0, done.stderr
    assert ("older than the tested range" in done.stderr) == warned, done.stderr


@needs_bash
def test_serve_local_warns_for_a_server_older_than_the_tested_range(export_base, tmp_path):
    record_oldest_tested(export_base, "2.16")
    for version, warned in (("2.15.1", True), ("2.18.0", False)):
        server = tmp_path / f"server-{version}"
        server.write_text(f"#!/bin/sh\necho 'TensorFlow ModelServer: {version}'\n"
                          f"echo 'TensorFlow Library: {version}'\n")
        server.chmod(0o755)
        done = run_script("serve_local.sh", "--print", str(export_base),
                          TFP_REALNVP_MODEL_SERVER=str(server))
        assert done.returncode == 0, done.stderr
        assert ("TensorFlow 2.16 to 2.21.0" in done.stderr) == warned, done.stderr


@needs_bash
def test_batching_flag_passes_the_shipped_parameters_file(export_base):
    local = run_script("serve_local.sh", "--print", "--batching", str(export_base),
                       TFP_REALNVP_MODEL_SERVER="/nonexistent/tensorflow_model_server")
    assert local.returncode == 0, local.stderr
    command = shlex.split(local.stdout.strip().splitlines()[-1])
    assert "--enable_batching" in command
    assert f"--batching_parameters_file={KIT / 'batching_parameters.txt'}" in command
    docker = run_script("serve_docker.sh", "--print", "--batching", str(export_base))
    command = shlex.split(docker.stdout.strip())
    assert f"{KIT / 'batching_parameters.txt'}:/models/batching_parameters.txt:ro" in command
    image = command.index("tensorflow/serving:latest")
    assert command[image + 1:] == ["--enable_batching",
                                   "--batching_parameters_file=/models/batching_parameters.txt"]


# BatchingParameters fields (tensorflow_serving/servables/tensorflow/session_bundle_config.proto;
# the pip package tensorflow-serving-api does not ship that proto).
BATCHING_FIELDS = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                   "num_batch_threads", "thread_pool_name", "allowed_batch_sizes",
                   "pad_variable_length_inputs", "enable_large_batch_splitting"}


def test_batching_parameters_file_sets_known_fields_to_sane_values():
    import re

    values = {}
    for line in (KIT / "batching_parameters.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"(\w+) \{ value: (\d+) \}", line)
            assert match, line
            values[match[1]] = int(match[2])
    assert set(values) <= BATCHING_FIELDS
    assert values["max_batch_size"] >= 256
    assert 0 < values["batch_timeout_micros"] <= 100_000
    assert values["num_batch_threads"] >= 1 and values["max_enqueued_batches"] >= 1


# --- gRPC client ----------------------------------------------------------------------------


def test_make_request_uses_the_signature_dtypes_and_ranks(client):
    x = np.array([[0.0, 0.5], [1.0, -0.5], [2.0, 0.25]])  # float64 on purpose
    request = client.make_request("realnvp", "log_prob", {"x": x})
    assert request.model_spec.name == "realnvp"
    assert request.model_spec.signature_name == "log_prob"
    assert not request.model_spec.HasField("version")
    assert request.inputs["x"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in request.inputs["x"].tensor_shape.dim] == [3, 2]
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["x"]), x.astype(np.float32))

    request = client.make_request("realnvp", "sample", {"num_samples": 5, "seed": [1, 2]},
                                  version=3)
    assert request.model_spec.version.value == 3
    num_samples = request.inputs["num_samples"]
    assert num_samples.dtype == types_pb2.DT_INT32
    assert len(num_samples.tensor_shape.dim) == 0 and not num_samples.tensor_shape.unknown_rank
    assert tf.make_ndarray(num_samples) == 5
    seed = request.inputs["seed"]
    assert seed.dtype == types_pb2.DT_INT32
    assert [d.size for d in seed.tensor_shape.dim] == [2]


@pytest.mark.parametrize(
    "inputs",
    [{"num_samples": [5]}, {"seed": [1, 2, 3]}, {"x": [0.0, 1.0]}, {"points": [[0.0, 1.0]]}],
)
def test_make_request_rejects_what_the_server_would(client, inputs):
    with pytest.raises(ValueError):
        client.make_request("realnvp", "sample", inputs)


class _FakePredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers `log_prob` (a standard normal) and `sample` the way the export's signatures do."""

    def __init__(self) -> None:
        self.requests: list[predict_pb2.PredictRequest] = []

    def Predict(self, request, context):  # noqa: N802 (the gRPC method name)
        self.requests.append(request)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        if request.model_spec.signature_name == "log_prob":
            x = inputs["x"]
            if x.ndim != 2 or x.shape[1] != 2:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"x must have shape [?,2], got {list(x.shape)}")
            log_prob = -0.5 * np.sum(x**2, axis=1) - np.log(2 * np.pi)
            response.outputs["log_prob"].CopyFrom(tf.make_tensor_proto(log_prob, tf.float32))
        else:
            samples = tf.random.stateless_normal([inputs["num_samples"], 2], inputs["seed"])
            response.outputs["samples"].CopyFrom(tf.make_tensor_proto(samples))
        return response


@pytest.fixture
def fake_server():
    service = _FakePredictionService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", service
    server.stop(grace=None)


def test_predict_round_trips_through_grpc(client, fake_server):
    target, service = fake_server
    x = np.array([[0.0, 0.0], [1.0, -1.0]], np.float32)
    got = client.predict(target, "realnvp", "log_prob", {"x": x}, timeout=5.0)
    assert set(got) == {"log_prob"} and got["log_prob"].dtype == np.float32
    np.testing.assert_allclose(got["log_prob"], [-np.log(2 * np.pi), -1 - np.log(2 * np.pi)],
                               rtol=1e-6)

    first = client.predict(target, "realnvp", "sample", {"num_samples": 5, "seed": [1, 2]})
    again = client.predict(target, "realnvp", "sample", {"num_samples": 5, "seed": [1, 2]})
    assert first["samples"].shape == (5, 2)
    np.testing.assert_array_equal(first["samples"], again["samples"])
    assert service.requests[-1].inputs["num_samples"].dtype == types_pb2.DT_INT32


def test_predict_raises_the_servers_invalid_argument(client, fake_server):
    target, _ = fake_server
    with pytest.raises(grpc.RpcError) as caught:
        client.predict(target, "realnvp", "log_prob", {"x": np.zeros((1, 3))}, timeout=5.0)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "[?,2]" in caught.value.details()
