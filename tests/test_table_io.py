"""Tables out as they came in: scoring and sampling DataFrames and files through a model's
layout (names, labels, unseen and missing cells, row order), and the CLI on mixed runs."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tfp_realnvp import FlowConfig, TrainConfig
from tfp_realnvp.cli import cli as main
from tfp_realnvp.errors import DataError
from tfp_realnvp.mixed import encoding
from tfp_realnvp.mixed.model import fit_mixed
from tfp_realnvp.mixed.table_io import sample_frame, save_frame, score_frame
from tfp_realnvp.rundir import RunDir, find_model
from tfp_realnvp.tables import ColumnSpec, TableLayout

TINY_FLOW = FlowConfig(num_couplings=2, hidden_units=8, num_hidden_layers=1)
TINY_TRAIN = TrainConfig(epochs=3, batch_size=64, patience=3, jit_compile=False)
COLORS = ("blue", "green", "red")
SIZES = ("L", "S")


def training_table(rows=200, seed=0):
    """id (ignored), x, color, y, size: colour moves x, size moves y."""
    rng = np.random.default_rng(seed)
    color = rng.choice(COLORS, rows, p=[0.5, 0.3, 0.2])
    size = rng.choice(SIZES, rows)
    x = rng.normal(size=rows) + 2.0 * (color == "red")
    y = rng.normal(size=rows) - 1.5 * (size == "S") + 0.5 * x
    return pd.DataFrame({"id": np.arange(rows), "x": x, "color": color, "y": y, "size": size})


def mixed_layout():
    return TableLayout((
        ColumnSpec("id", "ignored", "ignored"),
        ColumnSpec("x"),
        ColumnSpec("color", kind="categorical", levels=COLORS),
        ColumnSpec("y"),
        ColumnSpec("size", kind="categorical", levels=SIZES),
    ))


def write_layout(run, layout):
    """What the core engineer's `fit` records: the table's layout in config.json."""
    config = RunDir(run).read_config()
    RunDir(run).write_config(dataclasses.replace(config, layout=layout))


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    table = training_table()
    vocabularies = encoding.fit_vocabularies(table[["color", "size"]])
    assert [v.labels for v in vocabularies] == [COLORS, SIZES]
    codes = encoding.encode(table[["color", "size"]], vocabularies)
    run = tmp_path_factory.mktemp("io") / "run"
    model = fit_mixed(table[["x", "y"]].to_numpy(), codes, run, TINY_FLOW, TINY_TRAIN,
                      vocabularies=vocabularies)
    write_layout(run, mixed_layout())
    return run, model


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- scoring -------------------------------------------------------------------------------

def test_scores_follow_names_keep_order_and_count_unseen_labels(mixed_run):
    _, model = mixed_run
    table = training_table(12, seed=1)
    table.loc[3, "color"] = "purple"  # never seen in training
    shuffled = table[["size", "y", "color", "x", "id"]].assign(note="hello")
    scores = score_frame(model, mixed_layout(), shuffled)
    assert scores.counts() == {"rows": 12, "n": 12, "unseen_labels": {"color": 1, "size": 0},
                               "missing_numeric_rows": 0, "marginalised_rows": 0}
    codes = encoding.encode(table[["color", "size"]], model.vocabularies)
    assert codes[3, 0] == 3  # the unseen level
    expected = -model.log_prob(table[["x", "y"]].to_numpy(), codes)
    np.testing.assert_allclose(scores.nll, expected, rtol=1e-6)
    np.testing.assert_allclose(scores.categorical_nll + scores.numeric_nll, scores.nll,
                               rtol=1e-9)
    np.testing.assert_allclose(scores.categorical_nll, -model.categorical.log_mass(codes))
    out = scores.per_row(with_columns=True)
    assert list(out.columns) == ["size", "y", "color", "x", "id", "note", "nll",
                                 "categorical_nll", "numeric_nll"]
    assert out["id"].tolist() == list(range(12)) and out.loc[3, "color"] == "purple"


def test_a_missing_categorical_cell_is_the_sum_over_its_levels(mixed_run):
    _, model = mixed_run
    table = training_table(4, seed=2)
    table["color"] = table["color"].astype(object)
    table.loc[1, "color"] = None
    table.loc[2, "size"] = ""
    scores = score_frame(model, mixed_layout(), table)
    assert scores.counts()["marginalised_rows"] == 2
    numeric = table[["x", "y"]].to_numpy()
    codes = encoding.encode(table[["color", "size"]], model.vocabularies)
    for row, column, sizes in ((1, 0, 4), (2, 1, 3)):  # seen levels + the unseen one
        filled = np.repeat(codes[row:row + 1], sizes, axis=0)
        filled[:, column] = np.arange(sizes)
        terms = model.log_prob(np.repeat(numeric[row:row + 1], sizes, axis=0), filled)
        top = terms.max()
        assert -scores.nll[row] == pytest.approx(top + np.log(np.exp(terms - top).sum()),
                                                 rel=1e-6)


def test_a_missing_numeric_cell_gives_nan_counted_apart(mixed_run):
    _, model = mixed_run
    table = training_table(6, seed=3)
    table.loc[4, "y"] = np.nan
    scores = score_frame(model, mixed_layout(), table)
    assert np.isnan(scores.nll[4]) and np.isfinite(np.delete(scores.nll, 4)).all()
    summary = scores.summary()
    assert summary["missing_numeric_rows"] == 1 and summary["n"] == 5
    assert summary["nll"] == pytest.approx(np.delete(scores.nll, 4).mean())
    assert summary["categorical_nll"] + summary["numeric_nll"] == pytest.approx(summary["nll"])


def test_a_table_without_a_model_column_is_refused_by_name(mixed_run, tmp_path):
    _, model = mixed_run
    with pytest.raises(DataError, match="no column named 'size'"):
        score_frame(model, mixed_layout(), training_table(5).drop(columns="size"))
    path = tmp_path / "bad.csv"
    training_table(5).assign(x="abc").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"bad.csv: row 1, column 'x': 'abc' is not a number"):
        score_frame(model, mixed_layout(), path)


def test_an_all_categorical_model_scores_its_mass(tmp_path):
    table = training_table(80)[["color", "size"]]
    vocabularies = encoding.fit_vocabularies(table)
    model = fit_mixed(None, encoding.encode(table, vocabularies), tmp_path / "cats",
                      vocabularies=vocabularies)
    layout = TableLayout((ColumnSpec("color", kind="categorical", levels=COLORS),
                          ColumnSpec("size", kind="categorical", levels=SIZES)))
    scores = score_frame(model, layout, table.iloc[:5])
    np.testing.assert_allclose(scores.numeric_nll, 0.0, atol=1e-12)
    sampled = sample_frame(model, layout, 30, seed=1)
    assert list(sampled.columns) == ["color", "size"]
    assert set(sampled["color"]) <= set(COLORS) and set(sampled["size"]) <= set(SIZES)


def test_a_numeric_flow_finds_its_columns_by_name(tmp_path):
    from tfp_realnvp import fit

    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(150, 2)) * [1.0, 3.0], columns=["a", "b"])
    result = fit(data, tmp_path / "run", TINY_FLOW, TINY_TRAIN)
    found = find_model(tmp_path / "run")
    assert found.layout.event_names == ("a", "b")
    reordered = data.iloc[:10][["b", "a"]].assign(extra="z")
    scores = score_frame(result.flow, found.layout, reordered)
    expected = -result.flow.log_prob(data.iloc[:10].to_numpy(np.float32)).numpy()
    np.testing.assert_allclose(scores.nll, expected, rtol=1e-5)
    assert scores.categorical_nll is None and "categorical_nll" not in scores.per_row()
    sampled = sample_frame(result.flow, found.layout, 7, seed=2)
    assert list(sampled.columns) == ["a", "b"] and sampled.dtypes.tolist() == [float, float]
    reordered.to_csv(tmp_path / "rows.csv", index=False)
    cli = invoke("evaluate", tmp_path / "run", "--data", tmp_path / "rows.csv",
                 "--per-row", tmp_path / "scores.parquet", "--with-columns", "--json")
    assert cli.exit_code == 0, cli.output
    written = pd.read_parquet(tmp_path / "scores.parquet")
    assert list(written.columns) == ["b", "a", "extra", "nll"]
    np.testing.assert_allclose(written["nll"], expected, rtol=1e-5)
    assert json.loads(cli.output)["missing_numeric_rows"] == 0


# -- sampling ------------------------------------------------------------------------------

def test_samples_have_the_layout_names_and_only_valid_labels(mixed_run, tmp_path):
    _, model = mixed_run
    sampled = sample_frame(model, mixed_layout(), 300, seed=4)
    assert list(sampled.columns) == ["x", "color", "y", "size"]
    assert set(sampled["color"]) <= set(COLORS) and set(sampled["size"]) == set(SIZES)
    assert sampled["x"].dtype == np.float64 and np.isfinite(sampled[["x", "y"]]).all().all()
    pd.testing.assert_frame_equal(sampled, sample_frame(model, mixed_layout(), 300, seed=4))
    save_frame(sampled, tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), sampled)


# -- the CLI -------------------------------------------------------------------------------

def test_cli_evaluate_reports_counts_parts_and_per_row_columns(mixed_run, tmp_path):
    run, model = mixed_run
    table = training_table(20, seed=5)
    table["color"] = table["color"].astype(object)
    table.loc[2, "color"] = "purple"
    table.loc[5, "size"] = None
    table.loc[7, "x"] = np.nan
    table.to_csv(tmp_path / "rows.csv", index=False)
    result = invoke("evaluate", run, "--data", tmp_path / "rows.csv", "--json",
                    "--per-row", tmp_path / "scores.csv", "--with-columns")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[0])
    assert summary["n"] == 19 and summary["rows"] == 20
    assert summary["unseen_labels"] == {"color": 1, "size": 0}
    assert summary["missing_numeric_rows"] == 1 and summary["marginalised_rows"] == 1
    assert summary["categorical_nll"] + summary["numeric_nll"] == pytest.approx(summary["nll"])
    rows = pd.read_csv(tmp_path / "scores.csv")
    assert rows["id"].tolist() == list(range(20)) and rows.loc[2, "color"] == "purple"
    assert np.isnan(rows.loc[7, "nll"]) and rows["nll"].drop(7).notna().all()
    assert summary["nll"] == pytest.approx(rows["nll"].drop(7).mean(), rel=1e-6)
    text = invoke("evaluate", run, "--data", tmp_path / "rows.csv")
    assert text.exit_code == 0, text.output
    assert "1 unseen label(s) (color: 1)" in text.output
    assert "1 row(s) with a missing numeric cell: not scored" in text.output
    assert "-log P(c)" in text.output and "-log p(x | c)" in text.output


def test_cli_evaluate_refuses_a_file_without_a_model_column(mixed_run, tmp_path):
    run, _ = mixed_run
    training_table(5).drop(columns="size").to_csv(tmp_path / "short.csv", index=False)
    result = invoke("evaluate", run, "--data", tmp_path / "short.csv")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no column named 'size'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = invoke("evaluate", run, "--data", tmp_path / "short.csv", "--per-row",
                    tmp_path / "x.npy", "--with-columns")
    assert result.exit_code == 2 and "--with-columns" in result.output


def test_cli_sample_writes_the_header_and_labels(mixed_run, tmp_path):
    run, _ = mixed_run
    result = invoke("sample", run, "-n", 40, "--seed", 1, "-o", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    sampled = pd.read_csv(tmp_path / "s.csv")
    assert list(sampled.columns) == ["x", "color", "y", "size"] and len(sampled) == 40
    assert set(sampled["color"]) <= set(COLORS)
    stdout = invoke("sample", run, "-n", 5, "--seed", 1)
    assert stdout.exit_code == 0, stdout.output
    lines = stdout.output.strip().splitlines()
    assert lines[0] == "x,color,y,size" and len(lines) == 6
    default = invoke("sample", run)
    assert default.exit_code == 0 and len(default.output.strip().splitlines()) == 1001


def test_cli_plot_names_the_numeric_axes(mixed_run, tmp_path):
    from tfp_realnvp.mixed.table_plots import plot_table_model

    run, model = mixed_run
    training_table(60).to_csv(tmp_path / "rows.csv", index=False)
    result = invoke("plot", run, "--data", tmp_path / "rows.csv", "-o", tmp_path / "p.png",
                    "-n", 100)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").is_file()
    figure = plot_table_model(model, mixed_layout(), tmp_path / "rows.csv", num_samples=50)
    labels = {a.get_xlabel() for a in figure.axes} | {a.get_ylabel() for a in figure.axes}
    assert {"x", "y"} <= labels and not any(label.startswith("x0") for label in labels)
