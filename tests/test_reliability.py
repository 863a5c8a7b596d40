"""Interrupted and failing runs never lose work: exact resume after SIGKILL, SIGTERM or Ctrl-C,
divergence keeps the last good weights, one trainer per run directory."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import FlowConfig, TrainConfig
from tfp_realnvp.errors import RunLockedError, TrainingDivergedError
from tfp_realnvp.rundir import RunDir
from tfp_realnvp.tables import make_toy

# Slow enough epochs (47 steps) that a signal lands mid-run; small enough to finish fast.
OPTIONS = ["--num-couplings", "2", "--hidden-units", "16", "--coupling", "affine",
           "--ensemble-size", "1", "--no-jit-compile", "--batch-size", "64", "--epochs", "14",
           "--patience", "50", "--checkpoint-every", "1", "--quiet",
           "--time-budget", "1e6"]  # never the clock: a loaded machine must not end a run early


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "moons.npy"
    np.save(path, make_toy("moons", 3000, seed=8))
    return path


def cli(*args: str, wait: bool = True):
    command = [sys.executable, "-m", "tfp_realnvp", *map(str, args)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if wait:
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def epochs_checkpointed(run_dir) -> int:
    try:
        return json.loads((run_dir / "metrics.json").read_text())["epochs_run"]
    except (OSError, ValueError, KeyError):
        return 0


def interrupt_after(process, run_dir, epochs: int, signal_number: int) -> None:
    deadline = time.monotonic() + 240
    while epochs_checkpointed(run_dir) < epochs:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal_number)


def outcome(run_dir, data):
    """What must match an uninterrupted run: every epoch's NLLs and the final model."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [(h["epoch"], h["train_nll"], h["validation_nll"]) for h in metrics["history"]]
    log_prob = tfp_realnvp.load(run_dir).log_prob(tf.constant(data[:200])).numpy()
    return history, log_prob, metrics["status"]


@pytest.fixture(scope="module")
def uninterrupted(table, tmp_path_factory):
    """The reference run, in this process (CliRunner): the same command and numbers as in a
    process of its own (the default strategy: one replica), one interpreter start-up less."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = in_process("fit", "--data", table, "--out", run_dir, *OPTIONS)
    assert result.exit_code == 0, result.output
    return outcome(run_dir, np.load(table))


def assert_stopped_cleanly(stderr: str, run_dir, signal_number: int) -> None:
    """SIGTERM, SIGINT (Ctrl-C): a message naming the signal and `--resume`, a checkpoint."""
    name = signal.Signals(signal_number).name
    assert f"Stopped by {name} after epoch" in stderr and "--resume" in stderr
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"


@pytest.fixture
def signal_recorder():
    """SIGINT and SIGTERM recorded, not acted on, around a test that sends them to its own
    process: a signal arriving after the fit restored the handlers cannot stop the test
    session."""
    received = []
    previous = {number: signal.signal(number, lambda got, frame: received.append(got))
                for number in (signal.SIGINT, signal.SIGTERM)}
    yield received
    for number, handler in previous.items():
        signal.signal(number, handler)


def check_stopped(run_dir, stopped_before: int) -> int:
    """A stopped run: no model yet, a checkpoint past the last stop; returns its epoch."""
    assert not (run_dir / "model").exists()
    stopped_at = epochs_checkpointed(run_dir)
    assert max(3, stopped_before + 1) <= stopped_at < 14
    return stopped_at


def signal_self_after(run_dir, epochs: int, signal_number: int) -> threading.Thread:
    """`signal_number` to this process once `epochs` epochs are checkpointed (a watching
    thread)."""
    def watch():
        deadline = time.monotonic() + 240
        while epochs_checkpointed(run_dir) < epochs and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal_number)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_resume_after_a_kill_ends_exactly_like_the_uninterrupted_run(table, uninterrupted,
                                                                      tmp_path,
                                                                      signal_recorder):
    """SIGKILL, SIGTERM and SIGINT (Ctrl-C) in turn, each followed by `--resume` (so resuming
    a resumed run is covered too): the run must end exactly like the uninterrupted one.
    SIGKILL hits a process of its own (nothing of it survives but its files); SIGTERM and
    Ctrl-C reach the resumes, run in this process on the run's own recorded data (no
    --data): the fit's own handler, a checkpoint at the epoch's end, the exit code a shell
    sees. The last resume runs here too."""
    run_dir = tmp_path / "run"
    process = cli("fit", "--data", table, "--out", run_dir, *OPTIONS, wait=False)
    interrupt_after(process, run_dir, 3, signal.SIGKILL)
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    stopped_at = check_stopped(run_dir, 0)

    for signal_number in (signal.SIGTERM, signal.SIGINT):
        watcher = signal_self_after(run_dir, stopped_at + 2, signal_number)
        stopped = in_process("fit", "--out", run_dir, "--resume", "--quiet")
        watcher.join(timeout=240)
        assert signal_recorder == []  # the fit's own handler took it, not the test's
        assert stopped.exit_code == 128 + signal_number, stopped.output
        assert_stopped_cleanly(stopped.stderr, run_dir, signal_number)
        stopped_at = check_stopped(run_dir, stopped_at)

    finished = in_process("fit", "--out", run_dir, "--resume", "--quiet")
    assert finished.exit_code == 0, finished.output
    history, log_prob, status = outcome(run_dir, np.load(table))
    reference_history, reference_log_prob, _ = uninterrupted
    assert status == "completed"
    assert history == reference_history
    np.testing.assert_array_equal(log_prob, reference_log_prob)


def test_divergence_keeps_the_last_good_weights(tmp_path):
    data = make_toy("moons", 600, seed=9)
    with pytest.raises(TrainingDivergedError, match="the best weights before it"):
        tfp_realnvp.fit(data, tmp_path / "run", FlowConfig(num_couplings=2, hidden_units=16),
                        TrainConfig(epochs=200, learning_rate=1e4, schedule="constant",
                                    clip_norm=1e9, patience=200))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "diverged"
    flow = tfp_realnvp.load(tmp_path / "run")
    log_prob = flow.log_prob(tf.constant(data)).numpy()
    assert np.all(np.isfinite(log_prob))
    assert -log_prob.mean() == pytest.approx(metrics["best_validation_nll"], abs=1.0)


def test_a_run_being_trained_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    data = make_toy("moons", 300, seed=10)
    flow, train = FlowConfig(num_couplings=2, hidden_units=8), TrainConfig(epochs=2)
    tfp_realnvp.fit(data, tmp_path / "run", flow, train)
    lock = tmp_path / "run" / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{holder.pid}\n")
        with pytest.raises(RunLockedError, match=f"being trained by process {holder.pid}"):
            tfp_realnvp.resume(tmp_path / "run", data, epochs=3)
    finally:
        holder.kill()
        holder.wait()
    assert lock.read_text() == f"{holder.pid}\n"  # the refused resume left it alone
    result = tfp_realnvp.resume(tmp_path / "run", data, epochs=3)  # its process is gone
    assert result.metrics["epochs_run"] == 3 and not lock.exists()
    assert RunDir(tmp_path / "run").read_config().train.epochs == 3


def in_process(*args: str):
    """The CLI in this process (CliRunner): for what is not about a process of its own."""
    from click.testing import CliRunner

    from tfp_realnvp.cli import cli as main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_resume_refuses_data_that_is_gone_or_changed(tmp_path):
    path = tmp_path / "table.npy"
    np.save(path, make_toy("moons", 400, seed=11))
    run_dir = tmp_path / "run"
    first = in_process("fit", "--data", path, "--out", run_dir, *OPTIONS, "--epochs", "2")
    assert first.exit_code == 0, first.output  # the last --epochs wins
    np.save(path, make_toy("moons", 400, seed=12))  # same shape, other rows
    changed = in_process("fit", "--out", run_dir, "--resume", "--epochs", "3", "--quiet")
    assert changed.exit_code == 1
    assert f"was trained on {path}" in changed.stderr and "differs" in changed.stderr
    path.unlink()
    gone = in_process("fit", "--out", run_dir, "--resume", "--epochs", "3", "--quiet")
    assert gone.exit_code == 1 and f"{path}: no such file" in gone.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_run"] == 2
