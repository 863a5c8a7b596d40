"""The real TensorFlow Serving model server on loopback, over REST and gRPC.

Runs when `tensorflow_model_server` is on PATH or `TFP_REALNVP_MODEL_SERVER` names it;
skipped otherwise (the binary ships only in Google's apt repository and Docker image).
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import FlowConfig, TrainConfig
from tfp_realnvp import training as train_lib
from tfp_realnvp.tables import make_toy

SERVER = os.environ.get("TFP_REALNVP_MODEL_SERVER") or shutil.which("tensorflow_model_server")
pytestmark = pytest.mark.skipif(
    SERVER is None,
    reason="tensorflow_model_server not found (not on PATH, TFP_REALNVP_MODEL_SERVER unset); "
           "it is distributed only through Google's apt repository and Docker image")
KIT = Path(__file__).parents[1] / "export"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rest(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    train_lib.fit(make_toy("moons", 300), root / "run", FlowConfig(num_couplings=2,
                  hidden_units=8), TrainConfig(epochs=2))
    tfp_realnvp.export(root / "run", root / "models")
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen(
        [SERVER, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=realnvp", f"--model_base_path={root / 'models' / 'realnvp'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{rest_port}/v1/models/realnvp"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                states = rest(base)["model_version_status"]
                if states and states[0]["state"] == "AVAILABLE":
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the model server did not make version 1 AVAILABLE within 60 s")
        yield base, f"127.0.0.1:{grpc_port}", tfp_realnvp.load(root / "run")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_rest_signatures_match_in_process(server):
    base, _, flow = server
    x = make_toy("moons", 4, seed=5)
    got = rest(f"{base}:predict", {"signature_name": "log_prob",
                                   "instances": [{"x": row.tolist()} for row in x]})
    np.testing.assert_allclose(got["predictions"], flow.log_prob(x), atol=1e-5)
    sampled = rest(f"{base}:predict", {"signature_name": "sample",
                                       "inputs": {"num_samples": 5, "seed": [1, 2]}})
    expected = flow.sample(5, seed=tf.constant([1, 2]))
    np.testing.assert_allclose(sampled["outputs"], expected, atol=1e-5)
    encoded = rest(f"{base}:predict", {"signature_name": "encode", "inputs": {"x": x.tolist()}})
    np.testing.assert_allclose(encoded["outputs"], flow.bijector.inverse(x), atol=1e-5)
    decoded = rest(f"{base}:predict", {"signature_name": "decode",
                                       "inputs": {"z": encoded["outputs"]}})
    np.testing.assert_allclose(decoded["outputs"], x, atol=1e-4)


def test_grpc_signatures_match_in_process(server):
    _, target, flow = server
    spec = importlib.util.spec_from_file_location("grpc_client", KIT / "grpc_client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    x = make_toy("moons", 3, seed=6)
    got = client.predict(target, "realnvp", "log_prob", {"x": x})
    np.testing.assert_allclose(got["log_prob"], flow.log_prob(x), atol=1e-5)
    got = client.predict(target, "realnvp", "sample",
                         {"num_samples": np.array(4, np.int32),
                          "seed": np.array([3, 4], np.int32)})
    np.testing.assert_allclose(got["samples"], flow.sample(4, seed=tf.constant([3, 4])),
                               atol=1e-5)
