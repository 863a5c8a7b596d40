"""The scripts in examples/, each run in its quick mode, and `surrogate_posterior` for tfp.vi."""

import ast
import contextlib
import importlib.util
import io
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

import tfp_realnvp

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def example(name: str):
    """Imports examples/NAME.py as a module (its `main` runs it)."""
    if str(EXAMPLES) not in sys.path:  # as `python examples/NAME.py` has it: _quiet_tf
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested_and_listed_in_the_readme():
    here = Path(__file__).read_text()
    readme = (ROOT / "README.md").read_text()
    for script in EXAMPLES.glob("*.py"):
        if script.stem == "conditional" or script.stem.startswith("_"):  # tested elsewhere;
            continue  # _quiet_tf.py: the examples' helper, no example
        assert f'"{script.stem}' in here, script.name  # example("name") or "name.py"
        assert f"examples/{script.name}" in readme, script.name


TENSORFLOW_START_UP = ("oneDNN", "cudart", "cuInit", "E0000", "I0000",
                       "WARNING: All log messages before absl", "cpu_feature_guard")


SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def first_imports(script: str) -> list[str]:
    """The script's top-level statements up to its first import of a non-standard module,
    as source lines (an `if` that answers `--help` before any import included)."""
    tree = ast.parse((EXAMPLES / script).read_text())
    lines = []
    for node in tree.body:
        lines.append(ast.unparse(node).splitlines()[0])
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            if any(n.split(".")[0] not in sys.stdlib_module_names | {"__future__"}
                   for n in names):
                break
    return lines


@pytest.mark.parametrize("script", SCRIPTS)
def test_examples_import_tensorflow_through_the_quiet_helper_first(script):
    """Every example's first import beyond the standard library is the quiet helper, and its
    next statement imports TensorFlow through it: nothing can start TensorFlow (and print its
    start-up lines) before the helper silences them. The helper itself is proven to silence
    them in a fresh process by the test below."""
    lines = first_imports(script)
    assert lines[-1] == "from _quiet_tf import import_tensorflow", (script, lines[-1])
    tree = ast.parse((EXAMPLES / script).read_text())
    after = tree.body[len(lines)]
    assert ast.unparse(after) == "tf = import_tensorflow()", script


def test_an_example_prints_no_tensorflow_start_up_lines():
    """`--help` in a fresh process (TensorFlow imported first thing, as every run does),
    with no TF_CPP_MIN_LOG_LEVEL from the caller: the usage text and nothing else."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(EXAMPLES / "two_moons.py"), "--help"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
    for noise in TENSORFLOW_START_UP:
        assert noise not in done.stdout + done.stderr, done.stderr
    assert done.stderr == ""


@pytest.fixture(scope="module")
def moons_example(tmp_path_factory) -> tuple[dict, str]:
    """examples/two_moons.py's quick run: its figures and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        got = example("two_moons").main(["--quick", "--out", str(tmp_path_factory.mktemp("m"))])
    return got, printed.getvalue()


def test_two_moons_tells_the_notebooks_story(moons_example):
    got, printed = moons_example
    assert got["epochs"] >= 1
    assert got["best_validation_nll"] <= got["gaussian_validation_nll"]
    # The data mapped to latent space is close to the base N(0, I) (the data map alone
    # already whitens it; training only reshapes).
    assert np.all(np.abs(got["latent_mean"]) < 0.1)
    assert np.all(np.abs(np.array(got["latent_std"]) - 1) < 0.2)
    assert got["data_on_arc"] > 0.99 and 0 < got["generated_on_arc"] <= 1
    assert np.isfinite(got["nll"]) and got["nll"] < got["gaussian_validation_nll"] + 0.2
    assert got["reloaded_nll"] == pytest.approx(got["nll"], abs=1e-5)
    assert Path(got["figure"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (Path(got["version_dir"]) / "saved_model.pb").is_file()
    for line in ("validation NLL: Gaussian start", "data in latent space", "fresh points",
                 "reloaded flow's NLL"):
        assert line in printed


def test_tabular_anomalies_ranks_planted_rows_high(tmp_path, capsys):
    got = example("tabular_anomalies").main(["--quick", "--out", str(tmp_path / "run")])
    assert "planted rows among" in capsys.readouterr().out
    flow = got["flow"]
    # 114 real held-out rows against 60 of each planted kind; chance is an AUC of 0.5.
    assert flow["swapped"]["auc"] > 0.75
    assert flow["shifted"]["auc"] > 0.9
    assert flow["shifted"]["flagged"] > 0.3
    assert flow["real_flagged"] < 0.1  # the threshold is the training rows' 99th percentile
    assert got["planted_in_top"] > 0.51 + 0.2  # 120 of 234 rows are planted
    assert np.isfinite(got["held_out_nll"]["flow"])
    assert (Path(got["run_dir"]) / "model").is_dir()


def test_serve_and_query_answers_the_kits_requests(moons_example, tmp_path, capsys):
    # The two moons run is exported again here (training one more costs time, not coverage:
    # the script's own training is the same `fit` call as two_moons.py's).
    got = example("serve_and_query").main(["--run", moons_example[0]["run_dir"],
                                           "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    answers = got["answers"]
    assert set(answers) == {"log_prob.json", "sample.json", "encode.json", "decode.json"}
    for answer in answers.values():
        assert answer["grpc_equals_rest"]
        assert answer["max_abs_diff_library"] < 1e-5
    assert len(answers["log_prob.json"]["answer"]["predictions"]) == 4
    assert np.asarray(answers["sample.json"]["answer"]["outputs"]).shape == (5, 2)
    assert np.asarray(answers["encode.json"]["answer"]["predictions"]).shape == (3, 2)
    # decode(encode(x)) = x: run the encode answer back through the export's decode.
    loaded = tf.saved_model.load(got["version_dir"])
    z = tf.constant(answers["encode.json"]["answer"]["predictions"], tf.float32)
    x = loaded.signatures["decode"](z=z)["x"].numpy()
    body = json.loads((ROOT / "export/requests/encode.json").read_text())
    np.testing.assert_allclose(x, [row["x"] for row in body["instances"]], atol=1e-4)
    base = (tmp_path / "exports").resolve()
    assert f"serve_local.sh {base}" in printed and f"serve_docker.sh {base}" in printed
    assert "grpc_client.py --target localhost:8500" in printed


def test_the_flow_beats_mean_field_vi_on_the_banana(tmp_path, monkeypatch, capsys):
    """Runs the script as `python examples/variational_inference.py --quick` does (runpy,
    `__main__`, its own globals: a missing import still fails; in this process: no second
    TensorFlow start-up, which the quietness test above covers) and reads its table."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["variational_inference.py", "--quick"])
    monkeypatch.syspath_prepend(str(EXAMPLES))  # as the script's own folder is
    runpy.run_path(str(EXAMPLES / "variational_inference.py"), run_name="__main__")
    stdout = capsys.readouterr().out
    rows = {line.split()[0]: [float(v.rstrip("%")) for v in line.split()[1:4]]
            for line in stdout.splitlines()
            if line.split()[:1] in (["mean_field"], ["flow"]) and "variables" not in line}
    (mf_elbo, mf_kl, _), (flow_elbo, flow_kl, _) = rows["mean_field"], rows["flow"]
    # ELBO = -KL(q || p) for this normalised target; the best mean-field Normal's is
    # about -0.56, and the flow (which starts as that Normal) must do clearly better.
    assert -0.75 < mf_elbo < -0.45
    assert flow_elbo > mf_elbo + 0.15
    assert flow_kl < mf_kl


# --- surrogate_posterior --------------------------------------------------------------------


def banana(x):
    x1, x2 = x[..., 0], x[..., 1]
    return (tfp.distributions.Normal(0.0, 1.0).log_prob(x1)
            + tfp.distributions.Normal(x1**2 - 1.0, 0.5).log_prob(x2))


def test_surrogate_variables_all_get_gradients_and_are_all_trained():
    tf_keras.utils.set_random_seed(0)
    surrogate = tfp_realnvp.surrogate_posterior(
        3, num_couplings=2, hidden_units=8, num_hidden_layers=1, mixing="lu",
        initial_loc=[0.0, 1.0, 2.0], initial_scale=0.5)
    variables = surrogate.trainable_variables
    # couplings (2 hidden + 2 output arrays each), the LU map's 3, loc and scale
    assert len(variables) == 2 * 4 + 3 + 2
    assert surrogate.reparameterization_type == tfp.distributions.FULLY_REPARAMETERIZED
    draws = surrogate.sample(20000, seed=tf.constant([1, 2])).numpy()
    np.testing.assert_allclose(draws.mean(0), [0.0, 1.0, 2.0], atol=0.03)
    np.testing.assert_allclose(draws.std(0), 0.5, atol=0.03)  # it starts as N(loc, scale^2)

    def target(x):
        return banana(x[..., :2]) + tfp.distributions.Normal(0.0, 1.0).log_prob(x[..., 2])

    # The negative ELBO's gradient, as tfp.vi takes it (sampling is reparameterised, so
    # it flows through the draws into every coupling), applied for a few steps.
    before = [v.numpy().copy() for v in variables]
    optimizer = tf_keras.optimizers.Adam(1e-2)
    for step in range(3):
        with tf.GradientTape() as tape:
            x = surrogate.sample(64, seed=tf.constant([3, step]))
            loss = -tf.reduce_mean(target(x) - surrogate.log_prob(x))
        gradients = tape.gradient(loss, variables)
        assert all(g is not None for g in gradients)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
    unchanged = [v.name for v, old in zip(variables, before, strict=True)
                 if np.array_equal(v.numpy(), old)]
    assert unchanged == []


@pytest.mark.parametrize(("arguments", "message"), [
    ({"event_dim": 1}, r"'event_dim' must be an integer >= 2 .*got 1\. For a 1-D posterior"),
    ({"event_dim": 2.0}, r"'event_dim' must be an integer >= 2 .*got 2\.0"),
    ({"event_dim": True}, r"'event_dim' must be an integer >= 2 .*got True"),
    ({"event_dim": 3, "context_dim": 2}, r"does not take \['context_dim'\]"),
    ({"event_dim": 3, "ensemble_size": 3}, r"does not take \['ensemble_size'\]"),
    ({"event_dim": 3, "data_shift": [0.0] * 3}, r"does not take \['data_shift'\]"),
    ({"event_dim": 3, "hidden": 8}, r"Unknown settings \['hidden'\]; known: .*'hidden_units'"),
    ({"event_dim": 3, "num_couplings": 1}, r"'num_couplings' must be >= 2; got 1"),
    ({"event_dim": 3, "initial_loc": [0.0, 1.0]}, r"'initial_loc' must be a finite scalar or 3"),
    ({"event_dim": 3, "initial_scale": 0.0}, r"'initial_scale' must be > 0"),
])
def test_surrogate_refuses_bad_arguments_clearly(arguments, message):
    with pytest.raises(tfp_realnvp.ConfigError, match=message):
        tfp_realnvp.surrogate_posterior(**arguments)
