"""The CLI answers --help, --version, path errors and `info` without importing TensorFlow;
an export's signatures.json lets `info` read it without TensorFlow, and is checked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfp_realnvp.info import (
    SIGNATURES_FILE,
    describe,
    needs_tensorflow,
    recorded_signatures,
    signatures,
)
from tfp_realnvp.rundir import ASSETS_EXTRA

ROOT = Path(__file__).resolve().parents[1]


def fresh_cli(*commands: list) -> list[dict]:
    """Runs the CLI commands in turn in ONE new Python process (one start-up, not one per
    command); per command its exit code, output and whether TensorFlow (scikit-learn) had
    been imported once it was done: a command that imports it shows it (and so does every
    command after it)."""
    code = f"""
import json, sys
from click.testing import CliRunner
from tfp_realnvp.cli import cli
results = []
for args in {[[str(a) for a in args] for args in commands]!r}:
    result = CliRunner().invoke(cli, args)
    results.append({{"code": result.exit_code, "output": result.output,
                    "tensorflow": "tensorflow" in sys.modules,
                    "sklearn": "sklearn" in sys.modules}})
print(json.dumps(results))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def run_and_export(tiny_run, tiny_export):
    """conftest's session run (`fit` + TINY_FIT: moons, 300 points, 3 epochs, 2 affine
    couplings of 8 units) and its export; read-only (a test that changes one copies it)."""
    return tiny_run, tiny_export[1]


def test_help_and_version_do_not_import_tensorflow():
    commands = [["--help"], ["--version"], ["fit", "--help"], ["bench", "speed", "--help"]]
    for args, got in zip(commands, fresh_cli(*commands), strict=True):
        assert got["code"] == 0 and not got["tensorflow"], (args, got)
        # scikit-learn costs seconds: toy sets import it on use
        assert not got["sklearn"], (args, got)
        assert ("tfp-realnvp" if args == ["--version"] else "Usage:") in got["output"], args


def test_fit_explain_does_not_import_tensorflow(tmp_path):
    [got] = fresh_cli(["fit", "--explain"])
    assert got["code"] == 0 and not got["tensorflow"], got
    assert "--coupling: spline (auto: " in got["output"]


def test_a_missing_data_file_is_refused_before_tensorflow_loads(tmp_path):
    missing = tmp_path / "missing.csv"
    got, directory = fresh_cli(["fit", "--data", missing, "--out", tmp_path / "run", "--quiet"],
                               ["fit", "--data", tmp_path, "--out", tmp_path / "run", "--quiet"])
    assert got["code"] == 1 and not got["tensorflow"], got
    assert f"{missing}: no such file" in got["output"] and got["output"].count("Error:") == 1
    assert not (tmp_path / "run").exists()
    got = directory
    assert got["code"] == 1 and not got["tensorflow"]
    assert f"{tmp_path}: a directory, not a file" in got["output"]


def test_evaluate_refuses_a_missing_file_or_model_before_tensorflow_loads(run_and_export,
                                                                          tmp_path):
    run, _ = run_and_export
    got, not_a_model = fresh_cli(["evaluate", run, "--data", tmp_path / "nope.npy"],
                                 ["sample", tmp_path, "-n", 2])
    assert got["code"] == 1 and not got["tensorflow"], got
    assert f"{tmp_path / 'nope.npy'}: no such file" in got["output"]
    got = not_a_model
    assert got["code"] == 1 and not got["tensorflow"], got
    assert "neither a run directory (config.json) nor an export" in got["output"]


def test_info_on_a_run_and_an_export_does_not_import_tensorflow(run_and_export):
    run, version_dir = run_and_export
    got, export = fresh_cli(["info", run, "--json"], ["info", version_dir.parent, "--json"])
    assert got["code"] == 0 and not got["tensorflow"], got
    summary = json.loads(got["output"])
    assert summary["kind"] == "run" and summary["flow"]["hidden_units"] == 8
    assert summary["train"]["epochs"] == 3 and summary["data"]["num_points"] == 300
    got = export
    assert got["code"] == 0 and not got["tensorflow"], got
    summary = json.loads(got["output"])
    assert summary["kind"] == "export" and summary["path"] == str(version_dir)
    assert summary["signatures"] == signatures(version_dir)  # what the proto says


def test_the_recorded_signatures_are_the_saved_models(run_and_export):
    _, version_dir = run_and_export
    record = json.loads((version_dir / ASSETS_EXTRA / SIGNATURES_FILE).read_text())
    assert record["signatures"] == signatures(version_dir)
    assert record["signatures"]["log_prob"] == {
        "inputs": {"x": {"dtype": "float", "shape": [-1, 2]}},
        "outputs": {"log_prob": {"dtype": "float", "shape": [-1]}}}
    assert {"saved_model.pb", "variables/variables.index"} <= set(record["sha256"])
    assert not needs_tensorflow(version_dir)


def test_an_export_without_or_off_its_record_is_read_through_tensorflow(run_and_export,
                                                                        tmp_path):
    import shutil

    _, version_dir = run_and_export
    old = tmp_path / "realnvp" / "1"
    shutil.copytree(version_dir, old)
    (old / ASSETS_EXTRA / SIGNATURES_FILE).unlink()  # as written before the record existed
    assert needs_tensorflow(old) and recorded_signatures(old) is None
    expected = describe(version_dir)
    assert describe(old)["signatures"] == expected["signatures"]
    assert describe(old)["export_info"] == expected["export_info"]
    changed = tmp_path / "changed" / "1"
    shutil.copytree(version_dir, changed)
    index = changed / "variables" / "variables.index"
    index.write_bytes(index.read_bytes() + b"\0")
    assert needs_tensorflow(changed) and recorded_signatures(changed) is None
