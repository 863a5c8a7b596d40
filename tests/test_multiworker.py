"""`fit --strategy multiworker`: two worker processes on loopback, configured by TF_CONFIG."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tfp_realnvp.cli import cli as main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-points", "300", "--epochs", "6", "--num-couplings", "2", "--hidden-units", "8",
        "--batch-size", "64", "--learning-rate", "0.01", "--coupling", "affine",
        "--ensemble-size", "1", "--no-jit-compile", "--time-budget", "600", "--quiet"]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def test_two_workers_train_identical_weights_and_only_the_chief_writes(tmp_path):
    ports = free_ports(2)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # Without TF_CPP_MIN_LOG_LEVEL, as a user runs it: TensorFlow's start-up lines must
    # not reach them (the strategy is made while stderr is silenced).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               TMPDIR=str(scratch))
    workers = [subprocess.Popen(
        ["timeout", "240", sys.executable, "-m", "tfp_realnvp", "fit", "--strategy",
         "multiworker", "--out", str(tmp_path / f"run{i}"), *TINY],
        env={**env, "TF_CONFIG": tf_config(ports, i)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, (out, err[-3000:])
        for noise in ("oneDNN", "cudart", "cuInit", "absl::InitializeLog"):
            assert noise not in err, err[-3000:]

    chief_metrics = json.loads((tmp_path / "run0" / "metrics.json").read_text())
    assert chief_metrics["num_workers"] == 2 and chief_metrics["num_replicas"] == 2
    assert chief_metrics["epochs_run"] == 6 and chief_metrics["status"] == "completed"
    # The NLL fell: below the Gaussian start (epoch 0) on validation, and in training.
    assert chief_metrics["best_validation_nll"] < chief_metrics["initial_validation_nll"] - 0.01
    history = chief_metrics["history"]
    assert history[-1]["train_nll"] < history[0]["train_nll"]
    # Bit-identical weights: the chief's best weights and the other worker's.
    digest = chief_metrics["weights_sha256"]
    assert f"chief of 2 workers; weights sha256: {digest}" in outputs[0][0]
    assert f"weights sha256: {digest}" in outputs[1][0]
    assert "the chief writes the run directory" in outputs[1][0]
    # Only the chief wrote a run; the other's scratch copy is gone.
    assert (tmp_path / "run0" / "model").is_dir()
    assert not (tmp_path / "run1").exists()
    assert not list(scratch.glob("tfp-realnvp-worker-*"))


@pytest.mark.parametrize("value, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not a usable cluster description"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "task index 3 is out of range"),
])
def test_multiworker_without_a_usable_tf_config_is_refused(tmp_path, monkeypatch, value,
                                                            message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if value is not None:
        monkeypatch.setenv("TF_CONFIG", value)
    result = CliRunner().invoke(main, ["fit", "--strategy", "multiworker", "--out",
                                       str(tmp_path / "run"), *TINY])
    assert result.exit_code == 1, result.output
    assert message in result.output and "TF_CONFIG='" in result.output
    assert not (tmp_path / "run").exists()


def test_resume_is_refused_with_multiworker(tmp_path):
    result = CliRunner().invoke(main, ["fit", "--strategy", "multiworker", "--resume", "--out",
                                       str(tmp_path)])
    assert result.exit_code == 2 and "--resume runs in one process" in result.output


def test_a_strategy_made_after_tensorflow_started_says_to_make_it_first(monkeypatch):
    import tensorflow as tf

    from tfp_realnvp.errors import ConfigError
    from tfp_realnvp.training import make_strategy

    tf.constant(1.0) + 1.0  # start TensorFlow here, whatever ran before in this process
    tf_config_value = tf_config(free_ports(1), 0)
    monkeypatch.setenv("TF_CONFIG", tf_config_value)
    with pytest.raises(ConfigError, match="must be created before any other TensorFlow op"):
        make_strategy("multiworker")  # the test process has run TensorFlow ops already
