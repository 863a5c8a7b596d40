"""Conditional flows end to end: p(x | c) trained, sampled, scored, exported, resumed, CLI."""

import json
import re
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from click.testing import CliRunner
from sklearn.datasets import make_moons

import tfp_realnvp
from tfp_realnvp import FlowConfig, TrainConfig, build_flow, context_kwargs
from tfp_realnvp.cli import cli as main
from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.rundir import find_model
from tfp_realnvp.sampling import sample_flow, stateless_seed
from tfp_realnvp.scoring import per_row_nll
from tfp_realnvp.tables import TableLayout

REPO = Path(__file__).resolve().parents[1]
# The moons fixture's flow: small, single, affine; 12 epochs put >97% of samples on the
# right arc (measured: 99% after 20 epochs, 97.6% after 8). Both flows: the epochs bound
# the fit, never the clock (a loaded machine must not end a fit early).
MOONS_FLOW = ["--num-couplings", "4", "--hidden-units", "32", "--num-hidden-layers", "2",
              "--activation", "tanh", "--coupling", "affine", "--ensemble-size", "1",
              "--epochs", "12", "--batch-size", "100", "--learning-rate", "0.01",
              "--no-jit-compile", "--time-budget", "600", "--quiet"]
TINY_FLOW = ["--num-couplings", "2", "--hidden-units", "8", "--num-hidden-layers", "1",
             "--coupling", "affine", "--ensemble-size", "1", "--epochs", "2",
             "--batch-size", "64", "--no-jit-compile", "--time-budget", "600", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def arc(label: int, num: int = 400) -> np.ndarray:
    """Points on the noise-free arc of moon `label` (sklearn's make_moons generator)."""
    t = np.linspace(0, np.pi, num)
    if label == 0:
        return np.c_[np.cos(t), np.sin(t)]
    return np.c_[1 - np.cos(t), 0.5 - np.sin(t)]


def arc_distance(points: np.ndarray, label: int) -> np.ndarray:
    return np.sqrt(((points[:, None, :] - arc(label)[None]) ** 2).sum(-1)).min(axis=1)


def moons_table(num: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x, label = make_moons(num, noise=0.05, random_state=seed)
    return x.astype(np.float32), label[:, None].astype(np.float32)


@pytest.fixture(scope="module")
def moons_csv(tmp_path_factory) -> Path:
    """Two moons with a header, the label first: label,x1,x2."""
    x, label = moons_table()
    path = tmp_path_factory.mktemp("conditional") / "moons.csv"
    np.savetxt(path, np.c_[label, x], delimiter=",", header="label,x1,x2", comments="",
               fmt="%.7g")
    return path


@pytest.fixture(scope="module")
def moons_run(moons_csv) -> Path:
    """p(x | moon label), trained through the CLI with the context named by header."""
    out = moons_csv.parent / "run"
    result = invoke("fit", "--data", moons_csv, "--context-columns", "label", "--out", out,
                    *MOONS_FLOW)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def moons_export(moons_run, tmp_path_factory) -> Path:
    """`moons_run` exported once (read-only: a test that changes an export copies it)."""
    return tfp_realnvp.export(moons_run, tmp_path_factory.mktemp("moons_export"))


def test_fit_records_the_context_columns_and_their_scaling(moons_run):
    config = json.loads((moons_run / "config.json").read_text())
    flow, data = config["flow"], config["data"]
    assert flow["event_dim"] == 2 and flow["context_dim"] == 1
    # Where the columns went is the run's TableLayout now, not FlowConfig fields.
    layout = TableLayout.from_dict(config["layout"])
    assert layout.context == (0,) and layout.events == (1, 2)
    assert layout.names == ("label", "x1", "x2")
    assert not {"context_columns", "event_columns", "column_names"} & set(flow)
    assert data["context_columns"] == ["label"] and len(data["context_sha256"]) == 64
    # Labels 0/1 in equal numbers: mean 0.5, standard deviation 0.5.
    assert flow["context_shift"] == pytest.approx([0.5], abs=0.02)
    assert flow["context_scale"] == pytest.approx([0.5], abs=0.01)


def test_samples_land_on_their_own_moon(moons_run):
    flow = tfp_realnvp.load(moons_run)
    for label in (0, 1):
        samples = sample_flow(flow, 1000, seed=3, context=np.array([[label]], np.float32))
        own, other = arc_distance(samples, label), arc_distance(samples, 1 - label)
        assert (own < other).mean() > 0.9, (label, (own < other).mean())
        assert np.median(own) < 0.15, np.median(own)


def test_log_prob_of_a_moon_point_is_higher_under_its_own_label(moons_run):
    flow = tfp_realnvp.load(moons_run)
    for label in (0, 1):
        points = arc(label, 50)[5:-5]  # away from the tips, where the moons nearly touch
        own = -per_row_nll(flow, points.astype(np.float32), context=np.array([[label]]))
        other = -per_row_nll(flow, points.astype(np.float32), context=np.array([[1 - label]]))
        assert (own > other).all(), (label, own - other)
        assert np.mean(own - other) > 2.0


def test_the_flow_standardises_raw_context_itself():
    """A flow with context_shift/scale given raw c equals the same weights given the
    standardised context with no scaling recorded."""
    base = FlowConfig(event_dim=3, num_couplings=2, hidden_units=8, context_dim=2)
    scaled = base.replace(context_shift=[10.0, -2.0], context_scale=[4.0, 0.5])
    plain_flow, scaled_flow = build_flow(base), build_flow(scaled)
    rng = np.random.default_rng(0)
    for a, b in zip(plain_flow.trainable_variables, scaled_flow.trainable_variables,
                    strict=True):
        value = 0.3 * rng.standard_normal(a.shape).astype(np.float32)
        a.assign(value)
        b.assign(value)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    raw = (rng.standard_normal((6, 2)) * [4.0, 0.5] + [10.0, -2.0]).astype(np.float32)
    standardised = ((raw - [10.0, -2.0]) / [4.0, 0.5]).astype(np.float32)
    np.testing.assert_allclose(scaled_flow.log_prob(x, **context_kwargs(scaled_flow, raw)),
                               plain_flow.log_prob(x, **context_kwargs(plain_flow,
                                                                        standardised)),
                               rtol=1e-5, atol=1e-5)


def test_export_and_load_carry_the_context(moons_run, moons_export):
    version_dir = moons_export
    run_flow, exported = tfp_realnvp.load(moons_run), tfp_realnvp.load(version_dir)
    x = np.r_[arc(0, 20), arc(1, 20)].astype(np.float32)
    context = np.r_[np.zeros((20, 1)), np.ones((20, 1))].astype(np.float32)
    expected = run_flow.log_prob(x, **context_kwargs(run_flow, context)).numpy()
    np.testing.assert_array_equal(
        exported.log_prob(x, **context_kwargs(exported, context)).numpy(), expected)
    served = tf.saved_model.load(str(version_dir)).signatures
    np.testing.assert_allclose(served["log_prob"](x=x, context=context)["log_prob"],
                               expected, rtol=1e-5, atol=1e-5)
    drawn = served["sample"](num_samples=tf.constant(200), seed=tf.constant([0, 9]),
                             context=tf.constant([[1.0]]))["samples"].numpy()
    np.testing.assert_allclose(drawn, exported.sample(
        200, seed=tf.constant([0, 9]), **context_kwargs(exported, tf.constant([[1.0]]))),
        rtol=1e-5, atol=1e-5)
    assert (arc_distance(drawn, 1) < arc_distance(drawn, 0)).mean() > 0.9


def test_cli_sample_takes_a_context_file_or_values(moons_run, moons_csv, tmp_path):
    (tmp_path / "labels.csv").write_text("label\n0\n1\n0\n1\n")
    result = invoke("sample", moons_run, "-n", 4, "--seed", 2, "--context",
                    tmp_path / "labels.csv", "-o", tmp_path / "per_row.csv")
    assert result.exit_code == 0, result.output
    # The CSV starts with the event columns' header (the run's layout names them).
    assert (tmp_path / "per_row.csv").read_text().splitlines()[0] == "x1,x2"
    per_row = np.loadtxt(tmp_path / "per_row.csv", delimiter=",", skiprows=1)
    flow = tfp_realnvp.load(moons_run)
    expected = sample_flow(flow, 4, 2, context=np.array([[0], [1], [0], [1]], np.float32))
    np.testing.assert_allclose(per_row, expected, rtol=1e-6)
    broadcast = invoke("sample", moons_run, "-n", 300, "--context", "1", "-o",
                       tmp_path / "ones.npy")
    assert broadcast.exit_code == 0, broadcast.output
    ones = np.load(tmp_path / "ones.npy")
    assert ones.shape == (300, 2)
    assert (arc_distance(ones, 1) < arc_distance(ones, 0)).mean() > 0.9
    # A table laid out like the training one: its context column is found by name.
    table = invoke("sample", moons_run, "-n", 1000, "--seed", 5, "--context", moons_csv,
                   "-o", tmp_path / "table.npy")
    assert table.exit_code == 0, table.output
    _, label = moons_table()
    np.testing.assert_allclose(np.load(tmp_path / "table.npy"),
                               sample_flow(flow, 1000, 5, context=label), rtol=1e-6)


def test_cli_evaluate_splits_the_recorded_context_columns(moons_run, moons_csv, tmp_path):
    result = invoke("evaluate", moons_run, "--data", moons_csv, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    x, label = moons_table()
    flow = tfp_realnvp.load(moons_run)
    assert scores["n"] == 1000
    assert scores["nll"] == pytest.approx(per_row_nll(flow, x, context=label).mean(), rel=1e-5)
    # Columns found by name in another order, and x alone with --context.
    reordered = tmp_path / "reordered.csv"
    np.savetxt(reordered, np.c_[x, label], delimiter=",", header="x1,x2,label", comments="")
    assert json.loads(invoke("evaluate", moons_run, "--data", reordered,
                             "--json").output)["nll"] == pytest.approx(scores["nll"], rel=1e-5)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "label.npy", label)
    separate = invoke("evaluate", moons_run, "--data", tmp_path / "x.npy", "--context",
                      tmp_path / "label.npy", "--json")
    assert json.loads(separate.output)["nll"] == pytest.approx(scores["nll"], rel=1e-5)
    # The wrong label everywhere: much less likely.
    np.save(tmp_path / "flipped.npy", 1 - label)
    flipped = json.loads(invoke("evaluate", moons_run, "--data", tmp_path / "x.npy",
                                "--context", tmp_path / "flipped.npy", "--json").output)
    assert flipped["nll"] > scores["nll"] + 2.0


def test_the_layout_is_saved_in_the_run_and_the_export(moons_run, moons_export, moons_csv,
                                                       tmp_path):
    model = find_model(moons_run)
    assert model.layout.names == ("label", "x1", "x2") and model.layout.context == (0,)
    target = moons_export
    extra = target / "assets.extra"
    assert TableLayout.from_json((extra / "layout.json").read_text()) == model.layout
    assert find_model(target).layout == model.layout
    assert tfp_realnvp.info.describe(target)["layout"] == model.layout.to_dict()
    assert "context_columns" not in json.loads((extra / "flow_config.json").read_text())
    # `sample -o x.csv` writes the event columns' header; the export finds the context in a
    # table laid out like the training one by its layout.
    result = invoke("sample", target, "-n", 1000, "--context", moons_csv, "-o",
                    tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "x1,x2" and len(lines) == 1001
    assert tfp_realnvp.tables.load_array(tmp_path / "s.csv").shape == (1000, 2)
    # An export written before layout.json: its flow_config.json held the column fields.
    old = tmp_path / "old_export" / "1"
    shutil.copytree(target, old)
    (old / "assets.extra" / "layout.json").unlink()
    config = json.loads((old / "assets.extra" / "flow_config.json").read_text())
    config.update(event_columns=[1, 2], context_columns=[0], column_names=["label", "x1", "x2"])
    (old / "assets.extra" / "flow_config.json").write_text(json.dumps(config))
    assert find_model(old).layout == model.layout
    assert find_model(old).config == model.config


def test_a_run_written_before_the_layout_still_loads_and_splits(moons_run, moons_csv,
                                                                 tmp_path):
    old = tmp_path / "old_run"
    shutil.copytree(moons_run, old)
    config = json.loads((old / "config.json").read_text())
    layout = TableLayout.from_dict(config.pop("layout"))
    config["flow"].update(event_columns=[1, 2], context_columns=[0],
                          column_names=["label", "x1", "x2"])
    (old / "config.json").write_text(json.dumps(config))
    assert find_model(old).layout == layout
    scores = [json.loads(invoke("evaluate", run, "--data", moons_csv, "--json").output)["nll"]
              for run in (moons_run, old)]
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)


def test_fit_takes_dataframes_and_records_their_names(tmp_path):
    x, label = moons_table(200)
    result = tfp_realnvp.fit(pd.DataFrame(x, columns=["u", "v"]), tmp_path / "run",
                             FlowConfig(num_couplings=2, hidden_units=8),
                             TrainConfig(epochs=1, batch_size=64),
                             context=pd.DataFrame(label, columns=["moon"]))
    layout = find_model(tmp_path / "run").layout
    assert layout.names == ("u", "v", "moon") and layout.context == (2,)
    # A table with those names in another order: the context is found by name.
    path = tmp_path / "table.csv"
    np.savetxt(path, np.c_[label, x], delimiter=",", header="moon,u,v", comments="")
    scores = invoke("evaluate", tmp_path / "run", "--data", path, "--json")
    assert scores.exit_code == 0, scores.output
    assert json.loads(scores.output)["nll"] == pytest.approx(
        per_row_nll(result.flow, x, context=label).mean(), rel=1e-5)


@pytest.mark.parametrize("args, message", [
    (["sample", "-n", 3], "This model is conditional: it models p\\(x | c\\) with 1 context "
                          "column\\(s\\). Pass the context with --context FILE \\(its "
                          "columns: label\\)"),
    (["sample", "-n", 3, "--context", "0,1"], "2 context column\\(s\\); this model was trained "
                                              "with 1"),
    (["sample", "-n", 3, "--context", "nan"], "row 1 holds NaN"),
    (["sample", "-n", 3, "--context", "zero"], "'zero' is neither a file nor comma-separated"),
    (["evaluate", "--data", "X_ONLY"], "This model is conditional"),
])
def test_cli_refuses_a_missing_or_bad_context(moons_run, tmp_path, args, message):
    x, _ = moons_table(20)
    np.save(tmp_path / "x.npy", x)
    args = [str(tmp_path / "x.npy") if a == "X_ONLY" else a for a in args]
    result = invoke(args[0], moons_run, *args[1:])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert re.search(message, result.output), result.output


def test_cli_context_columns_by_position_without_a_header(tmp_path):
    x, label = moons_table(300, seed=1)
    path = tmp_path / "plain.csv"
    np.savetxt(path, np.c_[x, label], delimiter=",", fmt="%.7g")
    result = invoke("fit", "--data", path, "--context-columns", "2", "--out",
                    tmp_path / "run", *TINY_FLOW)
    assert result.exit_code == 0, result.output
    layout = tfp_realnvp.rundir.find_model(tmp_path / "run").layout
    assert layout.context == (2,) and layout.names is None
    scores = invoke("evaluate", tmp_path / "run", "--data", path, "--json")
    assert scores.exit_code == 0, scores.output
    flow = tfp_realnvp.load(tmp_path / "run")
    assert json.loads(scores.output)["nll"] == pytest.approx(
        per_row_nll(flow, x, context=label).mean(), rel=1e-5)
    resumed = invoke("fit", "--out", tmp_path / "run", "--resume", "--epochs", 3, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3


@pytest.mark.parametrize("spec, message, code", [
    ("lab", "no column named 'lab'; its columns \\(0-based position, header name\\) are: "
            "0 \\(label\\), 1 \\(x1\\), 2 \\(x2\\)", 1),
    ("3", "no column at position '3'", 1),
    ("x1,x2", "1 column\\(s\\) left for the events", 1),
    ("label,0", "named more than once", 1),
])
def test_cli_refuses_unknown_context_columns(moons_csv, tmp_path, spec, message, code):
    result = invoke("fit", "--data", moons_csv, "--context-columns", spec, "--out",
                    tmp_path / "run", *TINY_FLOW)
    assert result.exit_code == code, result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "run").exists()


def test_cli_context_columns_need_data(tmp_path):
    result = invoke("fit", "--context-columns", "0", "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 2 and "--context-columns needs --data" in result.output


def test_an_unconditional_model_refuses_a_context(tiny_run):
    """conftest's session run (unconditional moons; read-only: nothing here writes)."""
    with pytest.raises(DataError, match="this model is unconditional"):
        sample_flow(tfp_realnvp.load(tiny_run), 5, 0, context=np.zeros((1, 1)))
    cli = invoke("sample", tiny_run, "-n", 2, "--context", "1")
    assert cli.exit_code == 1 and "unconditional" in cli.output


@pytest.mark.parametrize("context, message", [
    (np.zeros((199, 1)), "context: 199 rows; the data has 200"),
    (np.zeros(200), "pass context\\[:, None\\]"),
    (np.r_[np.zeros((5, 1)), [[np.inf]], np.zeros((194, 1))], "row 6 holds NaN, inf"),
    (np.full((200, 1), "a"), "expected real numbers"),
])
def test_fit_validates_the_context(tmp_path, context, message):
    x, _ = moons_table(200)
    with pytest.raises(DataError, match=message):
        tfp_realnvp.fit(x, tmp_path / "run", context=context)
    assert not (tmp_path / "run").exists()


def test_fit_refuses_a_config_whose_context_width_differs(tmp_path):
    x, label = moons_table(200)
    with pytest.raises(ConfigError, match="context_dim=2 but fit got a context of 1"):
        tfp_realnvp.fit(x, tmp_path / "a", FlowConfig(context_dim=2), context=label)
    with pytest.raises(ConfigError, match="context_dim=1 but fit got no context"):
        tfp_realnvp.fit(x, tmp_path / "b", FlowConfig(context_dim=1))


def test_resume_of_a_conditional_run_is_exact_and_checks_its_context(tmp_path):
    x, label = moons_table(300, seed=2)
    context = label * 3.0 + 1.0  # not standardised already
    flow = FlowConfig(num_couplings=2, hidden_units=8, num_hidden_layers=1)
    train = TrainConfig(epochs=4, batch_size=64, checkpoint_every=2, patience=50)
    whole = tfp_realnvp.fit(x, tmp_path / "whole", flow, train, context=context)

    def interrupt(record):
        if record.epoch == 3:  # after the checkpoint of epoch 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tfp_realnvp.fit(x, tmp_path / "part", flow, train, context=context, on_epoch=interrupt)
    with pytest.raises(DataError, match="is conditional \\(1 context column\\(s\\)\\); resume it "
                                        "with the context"):
        tfp_realnvp.resume(tmp_path / "part", x)
    with pytest.raises(DataError, match="the context given differs"):
        tfp_realnvp.resume(tmp_path / "part", x, context=1 - label)
    resumed = tfp_realnvp.resume(tmp_path / "part", x, context=context)
    # The same batches, contexts included, as the run that was never stopped.
    def curve(metrics):
        return [(h["epoch"], h["train_nll"], h["validation_nll"]) for h in metrics["history"]]

    assert curve(resumed.metrics) == curve(whole.metrics)
    np.testing.assert_allclose(
        resumed.flow.log_prob(x, **context_kwargs(resumed.flow, context)),
        whole.flow.log_prob(x, **context_kwargs(whole.flow, context)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dim, coupling", [(2, "spline"), (3, "affine")])
def test_auto_chosen_ensembles_train_conditionally(tmp_path, dim, coupling):
    """2 columns get a spline ensemble, tables an affine LU one (auto.choose); each member
    trains on its own folds with its own rows' contexts, so the label still helps."""
    x, label = moons_table(400, seed=3)
    if dim == 3:
        x = np.c_[x, np.random.default_rng(0).normal(size=(400, 1))].astype(np.float32)
    result = tfp_realnvp.fit(x, tmp_path / "run", context=label, settings=dict(
        ensemble_size=3, epochs=5 if dim == 2 else 8, num_couplings=2, hidden_units=16,
        jit_compile=False, batch_size=128, learning_rate=1e-2, time_budget=600))
    config = json.loads((tmp_path / "run" / "config.json").read_text())["flow"]
    assert (config["coupling"], config["ensemble_size"], config["context_dim"]) == (
        coupling, 3, 1)
    assert len(result.metrics["members"]) == 3
    assert result.metrics["best_validation_nll"] < result.metrics["initial_validation_nll"]
    moon0 = np.c_[arc(0, 40)[4:-4], np.zeros((32, dim - 2))].astype(np.float32)
    own = -per_row_nll(result.flow, moon0, context=np.zeros((1, 1)))
    other = -per_row_nll(result.flow, moon0, context=np.ones((1, 1)))
    # Measured 1.25 (spline) and 1.08 (affine, 5 epochs); members fed other rows'
    # contexts would learn no link between label and moon: about 0.
    assert np.mean(own - other) > 0.5, np.mean(own - other)
    reloaded = tfp_realnvp.load(tmp_path / "run")
    np.testing.assert_array_equal(-per_row_nll(reloaded, moon0, context=np.zeros((1, 1))), own)


def test_conditional_example(tmp_path, monkeypatch, capsys):
    """The script as `python examples/conditional.py --quick OUT` runs it, in this process
    (runpy: its own globals, so a missing import still fails; no second TensorFlow start-up)."""
    monkeypatch.setattr(sys, "argv", ["conditional.py", "--quick", str(tmp_path)])
    monkeypatch.syspath_prepend(str(REPO / "examples"))  # as the script's own folder is
    runpy.run_path(str(REPO / "examples" / "conditional.py"), run_name="__main__")
    printed = capsys.readouterr().out
    lines = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
    assert set(lines) >= {"label 0 samples on moon 0", "label 1 samples on moon 1",
                          "served log_prob matches", "export"}
    assert lines["served log_prob matches"] == "True"
    assert Path(lines["export"].strip()).is_dir()


def test_sample_flow_takes_one_context_row_per_draw():
    config = FlowConfig(event_dim=2, num_couplings=2, hidden_units=8, context_dim=1)
    flow = build_flow(config)
    tf.random.set_seed(0)
    for variable in flow.trainable_variables:
        variable.assign(0.3 * tf.random.normal(variable.shape))
    per_row = sample_flow(flow, 4, 1, context=np.array([[0.0], [5.0], [0.0], [5.0]]))
    shared = sample_flow(flow, 4, 1, context=np.array([[5.0]]))
    np.testing.assert_allclose(per_row[1::2], shared[1::2], rtol=1e-6)
    assert not np.allclose(per_row[0::2], shared[0::2])
    with pytest.raises(DataError, match="3 rows; expected 4 \\(one per row\\) or 1"):
        sample_flow(flow, 4, 1, context=np.zeros((3, 1)))
    expected = flow.sample(4, seed=stateless_seed(1),
                           **context_kwargs(flow, tf.constant([[5.0]]))).numpy()
    np.testing.assert_array_equal(shared, expected)
