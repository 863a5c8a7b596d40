"""export/check_compat.py: exports of this TensorFlow on older TF Serving loaders.

The fast tests run the script's whole pipeline with this interpreter (no download) and
check that its comparison catches a difference. The slow one installs older tensorflow-cpu
wheels (about 250 MB each) into throwaway virtualenvs: opt-in with TFP_REALNVP_COMPAT=1
(versions from TFP_REALNVP_COMPAT_VERSIONS, comma-separated, default 2.20.0).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from tfp_realnvp.serving import BATCHABLE_SIGNATURES, SIGNATURES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "export" / "check_compat.py"


def run_check(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = tmp_path / "rows.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--work", str(tmp_path / "work"),
                           "--json", str(out), *args], capture_output=True, text=True,
                          env=env, timeout=3600)
    rows = json.loads(out.read_text()) if out.is_file() else []
    return done, rows


def load_script():
    spec = importlib.util.spec_from_file_location("check_compat", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_check_passes_with_this_tensorflow(tmp_path, capsys):
    """The script's `main` in this process (its exports and reference answers need nothing
    a fresh process would add); the loaders run in the fresh interpreter it starts."""
    out = tmp_path / "rows.json"
    code = load_script().main(["--work", str(tmp_path / "work"), "--json", str(out),
                               "--python", sys.executable, "--flows", "affine-2d"])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err[-3000:]
    rows = json.loads(out.read_text())
    assert [row["loader"] for row in rows] == ["tf1_session", "c_api"]
    for row in rows:
        assert row["ok"] and row["tensorflow"] == tf.__version__, row
        assert row["signatures"] == sorted(SIGNATURES)
        assert row["outputs_compared"] == len(SIGNATURES)
        # Not every output is bit-identical even on one runtime: a session's graph is
        # optimised differently from the exporting process's tf.function.
        assert 0 <= row["max_abs_diff"] < 1e-3  # and within rtol=atol=1e-5: row["ok"]
    assert rows[1]["warmup_replayed"] == len(BATCHABLE_SIGNATURES)
    assert f"| TF {tf.__version__} | TF {tf.__version__} | c_api | 6/6 (" in printed.out


def test_the_comparison_reports_differences_and_failed_loads():
    module = load_script()
    jobs = [{"name": "a", "expected": {"log_prob": {"log_prob": [1.0, 2.0]}}},
            {"name": "b", "expected": {"log_prob": {"log_prob": [3.0]}}}]
    same = module.compare(jobs, {
        "a": {"outputs": {"log_prob": {"log_prob": [1.0, 2.0]}}, "warmup_replayed": 1},
        "b": {"outputs": {"log_prob": {"log_prob": [3.0 + 1e-6]}}, "warmup_replayed": 1}})
    assert same["failures"] == [] and same["outputs_compared"] == 2
    assert same["outputs_bit_identical"] == 1 and same["warmup_replayed"] == 2
    off = module.compare(jobs, {
        "a": {"outputs": {"log_prob": {"log_prob": [1.0, 2.1]}}, "warmup_replayed": 1},
        "b": {"error": "RuntimeError: NodeDef mentions attr 'x' not in Op"}})
    assert off["failures"] == ["a/log_prob/log_prob differs",
                               "b: RuntimeError: NodeDef mentions attr 'x' not in Op"]


@pytest.mark.skipif(os.environ.get("TFP_REALNVP_COMPAT") != "1",
                    reason="downloads and installs tensorflow-cpu wheels (~250 MB each) into "
                           "virtualenvs: set TFP_REALNVP_COMPAT=1 to run")
def test_exports_load_and_answer_alike_on_older_tensorflow(tmp_path):
    versions = os.environ.get("TFP_REALNVP_COMPAT_VERSIONS", "2.20.0").split(",")
    args = [arg for version in versions for arg in ("--tensorflow", version.strip())]
    done, rows = run_check(tmp_path, *args)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert len(rows) == 2 * len(versions)
    for row in rows:
        assert row["ok"], row
        assert row["outputs_compared"] == 3 * len(SIGNATURES)  # three exports
    assert {row["tensorflow"] for row in rows} == {v.strip() for v in versions}


def test_the_tested_range_is_recorded_and_tabled():
    from tfp_realnvp.serving import TESTED_SERVING_TENSORFLOW

    readme = (ROOT / "export" / "README.md").read_text()
    for version in TESTED_SERVING_TENSORFLOW:  # each claimed release has its table rows
        assert readme.count(f"| TF {tf.__version__} | TF {version}.") == 2, version
    oldest = min(TESTED_SERVING_TENSORFLOW, key=lambda v: tuple(map(int, v.split("."))))
    assert f"built from TensorFlow **{oldest} or newer**" in readme
