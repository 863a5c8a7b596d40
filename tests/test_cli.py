"""The click CLI through CliRunner: fit, sample, evaluate, and every bad input."""

import itertools
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_FIT

from tfp_realnvp.cli import cli as main

# conftest's fit with no blended mixture (choosing one costs a third of a tiny fit; these
# tests check the data, resume and refusals, not the blend).
TINY = [*TINY_FIT, "--no-blend"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def run_dir(tiny_run):
    """`fit --out RUN` + TINY (conftest's session run; it checks the fit's output)."""
    return tiny_run


def test_fit_records_a_held_out_nll(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_num_points"] == 20000
    assert math.isfinite(metrics["test_nll"]) and metrics["wall_time_s"] > 0
    assert not (run_dir / "tensorboard").exists()  # only with --tensorboard
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["source"] == "moons" and config["flow"]["num_couplings"] == 2


def test_sample_is_seeded_and_written_by_extension(run_dir, tmp_path):
    for name in ("a.csv", "b.csv", "c.npy"):
        result = invoke("sample", run_dir, "-n", 25, "--seed", 4, "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
    a = np.loadtxt(tmp_path / "a.csv", delimiter=",")
    assert a.shape == (25, 2)
    np.testing.assert_array_equal(a, np.loadtxt(tmp_path / "b.csv", delimiter=","))
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), a, rtol=1e-6)
    stdout = invoke("sample", run_dir, "-n", 3, "--seed", 5)
    assert stdout.exit_code == 0 and len(stdout.output.strip().splitlines()) == 3


def test_evaluate_prints_nats_and_bits(run_dir, tmp_path):
    from tfp_realnvp.tables import make_toy

    np.save(tmp_path / "test.npy", make_toy("moons", 200, seed=42))
    result = invoke("evaluate", run_dir, "--data", tmp_path / "test.npy", "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["n"] == 200
    assert scores["bits_per_dim"] == pytest.approx(scores["nll"] / (2 * math.log(2)))
    text = invoke("evaluate", run_dir, "--data", tmp_path / "test.npy")
    assert "nats" in text.output and "bits/dim" in text.output


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("x,y\n1,2\n3,oops\n", "row 3, column 2: 'oops' is not a number"),
        ("1,2\nnan,2\n", "row 2 holds NaN or inf"),
        ("1\n2\n", "needs at least 2 columns"),
        ("", "no data rows"),
    ],
)
def test_fit_refuses_bad_files_and_writes_nothing(tmp_path, content, message):
    data = tmp_path / "data.csv"
    if content is not None:
        data.write_text(content)
    out = tmp_path / "run"
    result = invoke("fit", "--data", data, "--out", out, *TINY)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("Error:") == 1
    assert not out.exists()


def test_evaluate_refuses_the_wrong_width(run_dir, tmp_path):
    (tmp_path / "wide.csv").write_text("1,2,3\n4,5,6\n")
    result = invoke("evaluate", run_dir, "--data", tmp_path / "wide.csv")
    assert result.exit_code == 1
    assert "3 columns; this model expects 2 (shape [N, 2])" in result.output


def test_unknown_dataset_and_bad_options_are_usage_errors(tmp_path):
    result = invoke("fit", "--dataset", "spirals", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "'spirals' is not one of" in result.output
    assert not (tmp_path / "run").exists()
    result = invoke("sample", tmp_path, "-n", 3, "-o", tmp_path / "x.txt")
    assert result.exit_code == 2 and "must end in .csv or .npy" in result.output
    result = invoke("fit", "--resume")
    assert result.exit_code == 2 and "--resume needs --out" in result.output


def test_sample_from_a_directory_that_is_not_a_run(tmp_path):
    result = invoke("sample", tmp_path, "-n", 3)
    assert result.exit_code == 1
    assert "neither a run directory (config.json) nor an export" in result.output


def test_version_and_module_entry_point():
    import subprocess
    import sys

    result = invoke("--version")
    assert result.exit_code == 0 and "tfp-realnvp" in result.output
    help_text = subprocess.run([sys.executable, "-m", "tfp_realnvp", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "fit" in help_text and "evaluate" in help_text


def test_resume_applies_epochs_and_refuses_architecture_changes(tmp_path):
    out = tmp_path / "run"
    assert invoke("fit", "--out", out, *TINY).exit_code == 0
    refused = invoke("fit", "--out", out, "--resume", "--hidden-units", "32", "--quiet")
    assert refused.exit_code == 1 and "cannot change ['hidden_units']" in refused.output
    assert "hidden_units=8" in refused.output
    longer = invoke("fit", "--out", out, "--resume", "--epochs", "5", "--quiet")
    assert longer.exit_code == 0, longer.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4, 5]
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["train"]["epochs"] == 5 and recorded["flow"]["hidden_units"] == 8
    # The run resumes on its own recorded data (moons, 300 points), not a default.
    assert metrics["test_num_points"] == 20000 and math.isfinite(metrics["test_nll"])


@pytest.mark.parametrize("name, content, message", [
    ("folder", None, "a directory, not a file"),
    ("empty.csv", "", "no data rows"),
    ("header.csv", "a,b\n", "no data rows"),
    ("text.csv", "a,b\n1,2\n3,x\n", "row 3, column 2: 'x' is not a number"),
    ("ragged.csv", "1,2\n3,4,5\n", "row 2 has 3 columns"),
    ("nan.csv", "1,2\n" * 20 + "3,nan\n", "row 21 holds NaN or inf"),
    ("one.csv", "1\n2\n", "1 column(s)"),
    ("constant.csv", "".join(f"{i},5\n" for i in range(30)), "column 2 is constant"),
    ("tiny.csv", "1,2\n3,5\n4,4\n", "3 rows; fitting a 2-column flow"),
    ("huge.csv", "1,2\n" * 20 + "3,1e39\n", "beyond the float32 range"),
    ("truncated.npy", b"\x93NUMPY\x01\x00", "not a readable .npy array"),
    ("pickled.npy", np.array([{"a": 1}], dtype=object), "not a readable .npy array"),
    ("strings.npy", np.array([["a", "b"]] * 20), "expected a real numeric array"),
    ("cube.npy", np.zeros((20, 2, 2)), "expected a 2-D table"),
])
def test_fit_refuses_unusable_data_and_leaves_no_run(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    out = tmp_path / "run"
    result = invoke("fit", "--data", path, "--out", out, *TINY)
    assert result.exit_code == 1, result.output
    assert message in result.output and result.output.count("Error:") == 1
    assert "Traceback" not in result.output
    assert not out.exists()


def test_drop_nonfinite_trains_on_the_clean_rows(tmp_path):
    from tfp_realnvp.tables import make_toy

    rows = make_toy("moons", 200, seed=3)
    rows[[5, 50, 120], 1] = np.nan
    np.savetxt(tmp_path / "holes.csv", rows, delimiter=",")
    out = tmp_path / "run"
    result = invoke("fit", "--data", tmp_path / "holes.csv", "--drop-nonfinite", "--out", out,
                    *TINY)
    assert result.exit_code == 0, result.output
    assert "dropped 3 row(s) holding NaN or inf" in result.output
    assert json.loads((out / "config.json").read_text())["data"]["num_rows"] == 197


def test_tensorflow_start_up_lines_do_not_reach_the_user(run_dir):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "tfp_realnvp", "sample", str(run_dir), "-n",
                             "2"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 2
    for noise in ("oneDNN", "cudart", "cuInit", "absl::InitializeLog", "cpu_feature_guard"):
        assert noise not in result.stderr, result.stderr


def test_fit_help_shows_the_automatic_choices_as_auto_with_their_rule():
    import dataclasses

    from tfp_realnvp import auto
    from tfp_realnvp.config import FlowConfig, TrainConfig

    # RULES names every setting `choose` moves off the dataclass default, for every shape.
    shapes = [(3000, 2), (1000, 4), (10000, 8), (60000, 40), (600000, 3)]
    for shape, conditional in itertools.product(shapes, (False, True)):
        choice = auto.choose(*shape, conditional=conditional)
        for config, default in ((choice.flow, FlowConfig()), (choice.train, TrainConfig())):
            moved = {f.name for f in dataclasses.fields(config)
                     if getattr(config, f.name) != getattr(default, f.name)}
            assert moved <= set(auto.RULES), (shape, moved - set(auto.RULES))
    options = {p.name: p for p in main.commands["fit"].params}
    for name, rule in auto.RULES.items():
        assert options[name].help.endswith(f"[default: auto: {rule}]"), name
    assert ("[default: auto: spline for 2 columns; autoregressive (MAF, spline) up to 5,000 "
            "rows without a context; else affine]") in options["coupling"].help
    assert options["clip_norm"].help.endswith("[default: 10.0]")  # not chosen: the default
    help_text = " ".join(invoke("fit", "--help").output.split())
    assert "[default: affine]" not in help_text and "[default: 400]" not in help_text
    assert "--explain" in help_text


def test_fit_explain_prints_the_choice_for_the_data_and_writes_nothing(tmp_path):
    rng = np.random.default_rng(0)
    table = tmp_path / "table.csv"
    np.savetxt(table, rng.normal(size=(1000, 4)), delimiter=",", header="a,b,c,d",
               comments="")
    result = invoke("fit", "--data", table, "--explain", "--patience", 7,
                    "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"{table}: 1000 rows x 4 numeric columns; fit would run (nothing is "
                        "trained or written):")
    for expected in ("--ensemble-size: 3 (auto: 3 K-fold members", "--hidden-units: 128 (auto: ",
                     "--mixing: random (auto: ", "--weight-decay: 0.001 (auto: ",
                     "--coupling: autoregressive (auto: ", "--whiten: off (auto: ",
                     "--batch-size: 100 (auto: ", "--patience: 7 (given)",
                     "--time-budget: 45 (auto: 45 s of training for the whole fit)"):
        assert any(line.strip().startswith(expected) for line in lines), expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    toy = invoke("fit", "--explain")
    assert toy.exit_code == 0 and toy.output.startswith(
        "moons (3000 points, noise 0.05): 3000 rows x 2 numeric columns")
    assert "--time-budget: 45 (auto: 45 s of training for the whole fit)" in toy.output
    assert "--ensemble-size: 3 (auto: 3 K-fold members up to 5,000 rows (blended)" \
        in toy.output
    refused = invoke("fit", "--explain", "--resume", "--out", tmp_path / "run")
    assert refused.exit_code == 2 and "--explain describes a new run" in refused.output
