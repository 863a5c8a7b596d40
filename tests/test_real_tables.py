"""Real tables in with no flags: headers, IDs, text categories, blanks, overrides, the
mixed runs `fit` leaves, and the bad tables it refuses in one line writing nothing."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import tfp_realnvp
from tfp_realnvp import FlowConfig, TrainConfig, tables
from tfp_realnvp.cli import cli as main
from tfp_realnvp.errors import DataError
from tfp_realnvp.mixed.model import MixedTableModel
from tfp_realnvp.rundir import find_model

# The epochs bound these fits, never the clock: a loaded machine must not end one early
# (a budget of 5 s once stopped the shared run after 1 epoch, and its resume at 2, not 3).
TINY = ["--epochs", "2", "--hidden-units", "8", "--num-couplings", "2", "--time-budget", "600",
        "--batch-size", "64", "--ensemble-size", "1", "--no-jit-compile", "--quiet"]
FLOW, TRAIN = FlowConfig(num_couplings=2, hidden_units=8, ensemble_size=1), \
    TrainConfig(epochs=2, batch_size=64, jit_compile=False)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sales_csv(path, rows: int = 120, seed: int = 0):
    """A table as people have them: an ID, text categories, numbers, blanks, an all-blank
    column."""
    rng = np.random.default_rng(seed)
    lines = ["order_id,store,paid,amount,weight,comment"]
    for i in range(rows):
        store = rng.choice(["north", "south", "east"])
        paid = rng.choice(["card", "cash"])
        amount = rng.normal(3.0 if store == "north" else 0.0)
        weight = 0.5 * amount + rng.normal()
        cells = [f"A{1000 + i}", store, paid, f"{amount:.4f}", f"{weight:.4f}", ""]
        if i in (4, 17):
            cells[3] = ""
        if i == 9:
            cells[1] = " "
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def sales_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sales")
    data, run = sales_csv(folder / "sales.csv"), folder / "run"
    result = invoke("fit", "--data", data, "--out", run, *TINY)
    assert result.exit_code == 0, result.output
    return data, run, result.output


def test_a_real_csv_goes_in_with_no_flags(sales_run):
    data, run, output = sales_run
    assert "left out 3 row(s) with blank cells" in output
    assert "column 1 (order_id) is unique per row" in output
    assert "column 6 (comment) is blank in every row" in output
    layout = find_model(run).layout
    kinds = {c.name: (c.role, c.kind, c.levels) for c in layout.columns}
    assert kinds["store"] == ("event", "categorical", ("east", "north", "south"))
    assert kinds["paid"] == ("event", "categorical", ("card", "cash"))
    assert kinds["amount"][:2] == kinds["weight"][:2] == ("event", "continuous")
    assert kinds["order_id"][:2] == kinds["comment"][:2] == ("ignored", "ignored")
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["data"]["rows_dropped_missing"] == 3 and recorded["data"]["num_rows"] == 117
    assert recorded["flow"]["event_dim"] == 2 and recorded["flow"]["context_dim"] == 5
    saved = json.loads((run / "categorical.json").read_text())
    assert [v["labels"] for v in saved["vocabularies"]] == [["east", "north", "south"],
                                                            ["card", "cash"]]
    for model in (find_model(run).load(), tfp_realnvp.load(run)):
        assert isinstance(model, MixedTableModel) and model.numeric_dim == 2


def test_the_fitted_runs_rows_are_the_sum_of_their_parts_and_masses_sum_to_one(sales_run):
    data, run, _ = sales_run
    model = tfp_realnvp.load(run)
    table = tables.table_rows(tables.read_frame(data), find_model(run).layout)
    numeric, codes = table.numeric.astype(np.float32), table.codes
    mass, density = model.log_prob_parts(numeric, codes)
    np.testing.assert_allclose(model.log_prob(numeric, codes), mass + density, rtol=1e-6)
    np.testing.assert_allclose(mass, model.categorical.log_mass(codes))
    assert np.isfinite(density).all()
    cells = np.array(list(itertools.product(*map(range, model.categorical.sizes))))
    assert np.exp(model.categorical.log_mass(cells)).sum() == pytest.approx(1.0, abs=1e-9)


def test_info_lists_kinds_levels_roles_and_the_ignored_columns(sales_run):
    _, run, _ = sales_run
    text = invoke("info", run).output
    assert "store (event, categorical: 3 levels: east, north, south)" in text
    assert "amount (event, continuous)" in text
    assert "ignored: order_id (ignored): is unique per row (120 distinct values): an ID" in text
    assert "model: log P(categories) + log p(numbers | categories)" in text


def test_a_mixed_run_resumes_on_its_own_table(sales_run, tmp_path):
    import shutil

    data, run, _ = sales_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    result = invoke("fit", "--out", copy, "--resume", "--epochs", "3", "--quiet")
    assert result.exit_code == 0, result.output
    history = json.loads((copy / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history][-1] == 3


def test_kinds_overrides_and_blank_columns():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": np.arange(30), "x": rng.normal(size=30),
                          "y": rng.normal(size=30), "grade": rng.integers(1, 4, 30),
                          "ok": rng.random(30) < 0.5, "one": ["same"] * 30,
                          "blank": [None] * 30, "k": [7.0] * 30})
    layout = tables.infer_layout(frame)
    kinds = {c.name: (c.role, c.kind) for c in layout.columns}
    assert kinds["id"] == kinds["blank"] == kinds["k"] == ("ignored", "ignored")
    assert kinds["grade"] == ("event", "grid") and kinds["ok"] == ("event", "categorical")
    assert layout.columns[5].levels == ("same",)  # a categorical column of one level
    assert "column 8 (k) is constant (every row is 7)" in tables.describe_ignored(layout)
    forced = tables.infer_layout(frame, categorical="grade", numeric=["id"], ignore="ok,one")
    columns = {c.name: c for c in forced.columns}
    assert columns["grade"].levels == ("1", "2", "3") and columns["id"].kind == "continuous"
    assert columns["ok"].role == columns["one"].role == "ignored"
    with pytest.raises(DataError, match=r"row 1, column 2: 'u' is not a number \(column 2 "
                                        r"\(b\) was given as numeric\)"):
        tables.infer_layout(pd.DataFrame({"a": ["p", "q", "r"], "b": ["u", "v", "x"]}),
                            numeric="b")
    with pytest.raises(DataError, match="no column named 'nope'"):
        tables.infer_layout(frame, ignore="nope")


def test_a_categorical_context_column_is_one_hot_encoded(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=80), "y": rng.normal(size=80),
                          "site": rng.choice(["a", "b", "c"], 80)})
    table = tables.read_training_frame(frame, context_columns="site")
    assert table.codes.shape == (80, 0) and table.context.shape == (80, 3)
    np.testing.assert_array_equal(table.context.sum(axis=1), 1)
    result = tfp_realnvp.fit(frame, tmp_path / "run", FLOW, TRAIN, context_columns="site")
    assert result.model is None and result.flow is not None
    assert find_model(tmp_path / "run").config.context_dim == 3


def test_missing_error_refuses_naming_row_and_column(tmp_path):
    data, out = sales_csv(tmp_path / "sales.csv"), tmp_path / "run"
    result = invoke("fit", "--data", data, "--missing", "error", "--out", out, *TINY)
    assert result.exit_code == 1 and result.output.count("Error:") == 1
    assert "row 6, column 4 (amount) is blank (3 row(s) with blank cells in all)" in \
        result.output
    assert not out.exists()
    with pytest.raises(DataError, match=r"row 5, column 1 \(a\) is blank"):
        tables.read_training_frame(pd.DataFrame({"a": [1.0, 2, 3, 4, None, 6],
                                                 "b": [1.0, 3, 2, 5, 4, 6]}), missing="error")


def test_an_all_categorical_table_is_its_mass_alone(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"colour": rng.choice(["red", "blue"], 60),
                          "size": rng.choice(["S", "M", "L"], 60)})
    frame.to_csv(tmp_path / "cats.csv", index=False)
    result = invoke("fit", "--data", tmp_path / "cats.csv", "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 0, result.output
    assert "all-categorical table: colour (2 levels), size (3 levels)" in result.output
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "categorical.json", "config.json", "metrics.json"]
    model = tfp_realnvp.load(tmp_path / "run")
    assert isinstance(model, MixedTableModel) and model.flow is None
    cells = np.array(list(itertools.product(*map(range, model.categorical.sizes))))
    assert np.exp(model.log_prob(None, cells)).sum() == pytest.approx(1.0, abs=1e-9)
    assert "the categories' mass alone" in invoke("info", tmp_path / "run").output


@pytest.mark.parametrize("name, content, message", [
    ("garbage.csv", bytes(range(256)) * 40, "not a text table (binary bytes"),
    ("one_number.csv", "kind,x\n" + "a,1.5\nb,2.5\n" * 20,
     "1 column(s) left for the events as numbers beside the categorical columns (x)"),
    ("forced.csv", "a,b,c\n" + "1,2,u\n3,4,v\n" * 10, "row 2, column 3: 'u' is not a number"),
    ("stray.csv", "a,b\n" + "1,2\n" * 10 + "3,oops\n", "row 12, column 2: 'oops' is not a "
     "number (column 2 (b) is otherwise numeric"),
    ("ids.csv", "id,v\n" + "".join(f"{i},5\n" for i in range(30)),
     "column 1 (id) is a running index (0 to 29); column 2 (v) is constant"),
])
def test_bad_tables_are_refused_in_one_line_and_leave_no_run(tmp_path, name, content,
                                                             message):
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    extra = ["--numeric", "c"] if name == "forced.csv" else []
    result = invoke("fit", "--data", path, "--out", tmp_path / "run", *extra, *TINY)
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert result.output.count("Error:") == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_mixed_table_with_its_own_context_columns(tmp_path):
    rng = np.random.default_rng(4)
    site = rng.choice(["a", "b"], 100)
    frame = pd.DataFrame({"x": rng.normal(size=100), "y": rng.normal(size=100), "site": site,
                          "temp": rng.normal(size=100)})
    result = tfp_realnvp.fit(frame, tmp_path / "run", FLOW, TRAIN, context_columns="temp",
                             missing="error")
    model = tfp_realnvp.load(tmp_path / "run")
    assert model.extra_context_dim == 1 and find_model(tmp_path / "run").config.context_dim == 3
    table = tables.table_rows(frame, find_model(tmp_path / "run").layout)
    scores = model.log_prob(table.numeric.astype(np.float32), table.codes, table.context)
    np.testing.assert_allclose(scores, result.model.log_prob(
        table.numeric.astype(np.float32), table.codes, table.context), rtol=1e-5)
    with pytest.raises(DataError, match="also needs 1 context column"):
        model.log_prob(table.numeric.astype(np.float32), table.codes)


def test_kind_overrides_need_data():
    result = invoke("fit", "--categorical", "a", "--quiet")
    assert result.exit_code == 2 and "--categorical needs --data FILE" in result.output
