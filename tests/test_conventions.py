"""`fit --config FILE.toml|json` (flags win) and `tfp-realnvp info PATH` through CliRunner."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from click.testing import CliRunner

from tfp_realnvp.cli import cli as main
from tfp_realnvp.serving import SIGNATURES

ROOT = Path(__file__).resolve().parents[1]
TINY_TOML = """
num-points = 300
epochs = 2
num_couplings = 2
hidden-units = 8
batch-size = 64
coupling = "affine"
ensemble-size = 1
jit-compile = false
learning-rate = 0.01
blend = false
quiet = true
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_and_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("conventions")
    (root / "fit.toml").write_text(TINY_TOML + f'out = "{root / "run"}"\n')
    result = invoke("fit", "--config", root / "fit.toml", "--hidden-units", 12,
                    "--export", root / "exports")
    assert result.exit_code == 0, result.output
    return root, root / "run", root / "exports" / "realnvp"


def test_config_file_values_are_used_and_flags_override_them(run_and_export):
    _, run, _ = run_and_export
    config = json.loads((run / "config.json").read_text())
    assert config["flow"]["num_couplings"] == 2 and config["flow"]["coupling"] == "affine"
    assert config["flow"]["hidden_units"] == 12  # the flag, not the file's 8
    assert config["train"]["epochs"] == 2 and config["train"]["learning_rate"] == 0.01
    assert config["data"]["num_points"] == 300
    assert "hidden_units" in config["auto"]["given"] and "epochs" in config["auto"]["given"]


def test_a_json_config_with_underscored_keys_reads_the_same(tmp_path):
    values = {"num_points": 300, "epochs": 1, "num-couplings": 2, "hidden_units": 8,
              "batch_size": 64, "coupling": "affine", "ensemble_size": 1, "quiet": True,
              "whiten": False, "blend": False, "out": str(tmp_path / "run")}
    (tmp_path / "fit.json").write_text(json.dumps(values))
    result = invoke("fit", "--config", tmp_path / "fit.json", "--epochs", 2)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["flow"]["whiten"] is False and config["flow"]["hidden_units"] == 8
    assert config["train"]["epochs"] == 2


@pytest.mark.parametrize("name, content, message", [
    ("unknown.toml", 'epochs = 2\nhiden-units = 8\nbogus = "x"\n',
     "unknown key(s) hiden-units, bogus; known: activation, base-components, batch-size,"),
    ("range.toml", "epochs = 0\n", "epochs = 0: 0 is not in the range x>=1"),
    ("choice.json", '{"coupling": "cubic"}', "coupling = 'cubic': 'cubic' is not one of"),
    ("flag.toml", 'quiet = "yes"\n', "quiet = 'yes': expected true or false"),
    ("syntax.toml", "epochs = = 2\n", "is not valid TOML"),
    ("syntax.json", "{epochs: 2}", "is not valid JSON"),
    ("list.json", "[1, 2]", "expected a table of option = value"),
    ("fit.yaml", "epochs: 2\n", "must end in .toml or .json"),
])
def test_bad_config_files_are_refused_naming_the_problem(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    result = invoke("fit", "--config", tmp_path / name, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert message in result.output and name in result.output
    assert not (tmp_path / "run").exists()


def test_a_missing_config_file_is_refused(tmp_path):
    result = invoke("fit", "--config", tmp_path / "nope.toml", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "run").exists()


def test_info_on_a_run_shows_its_configs_metrics_and_versions(run_and_export):
    _, run, _ = run_and_export
    result = invoke("info", run, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    metrics = json.loads((run / "metrics.json").read_text())
    assert summary["kind"] == "run" and summary["event_dim"] == 2
    assert summary["flow"]["hidden_units"] == 12 and summary["train"]["epochs"] == 2
    assert summary["metrics"]["best_validation_nll"] == metrics["best_validation_nll"]
    assert summary["metrics"]["test_num_points"] == 20000
    assert summary["versions"]["tensorflow"] == tf.__version__
    assert summary["versions"]["tensorflow_probability"] == tfp.__version__
    text = invoke("info", run)
    assert text.exit_code == 0
    assert f"run: {run}" in text.output and f"tensorflow {tf.__version__}" in text.output
    assert "hidden_units=12" in text.output and "best_validation_nll=" in text.output


def test_info_on_an_export_lists_its_signatures(run_and_export):
    _, run, model_dir = run_and_export
    summary = json.loads(invoke("info", model_dir, "--json").output)
    assert summary["kind"] == "export" and summary["path"] == str(model_dir / "1")
    assert summary["versions_on_disk"] == [1]
    assert sorted(summary["signatures"]) == sorted(SIGNATURES)
    assert summary["signatures"]["log_prob"] == {
        "inputs": {"x": {"dtype": "float", "shape": [-1, 2]}},
        "outputs": {"log_prob": {"dtype": "float", "shape": [-1]}}}
    assert summary["signatures"]["sample"]["inputs"]["num_samples"]["shape"] == []
    assert summary["signatures"]["sample_from_seeds"]["inputs"]["seed"] == {
        "dtype": "int32", "shape": [-1, 2]}
    assert summary["versions"]["tensorflow"] == tf.__version__
    assert summary["versions"]["tensorflow_probability"] == tfp.__version__
    assert summary["export_info"]["oldest_serving_tensorflow_tested"] == "2.16"
    run_metrics = json.loads((run / "metrics.json").read_text())
    assert summary["metrics"]["best_validation_nll"] == run_metrics["best_validation_nll"]
    text = invoke("info", model_dir / "1").output
    assert "signature sample_from_seeds: seed int32 (-1, 2) -> samples float (-1, 2)" in text


def test_info_refuses_what_is_not_a_model(tmp_path):
    result = invoke("info", tmp_path)
    assert result.exit_code == 1
    assert "neither a run directory (config.json) nor an export" in result.output
    assert invoke("info", tmp_path / "missing").exit_code == 2


def test_info_keeps_tensorflows_start_up_lines_from_the_user(run_and_export):
    _, run, _ = run_and_export
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-m", "tfp_realnvp", "info", str(run)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"run: {run}")
    for noise in ("oneDNN", "cudart", "cuInit", "absl::InitializeLog", "cpu_feature_guard"):
        assert noise not in result.stderr, result.stderr
