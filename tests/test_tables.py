"""tables/: pandas readers (header, delimiters, quoting, encodings, Parquet), TableLayout."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tfp_realnvp import tables
from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.tables import ColumnSpec, TableLayout


def test_importing_tables_never_imports_tensorflow():
    code = "import sys, tfp_realnvp.tables; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("name, content", [
    ("commas.csv", "a,b,c\n1,2,3\n4.5,-6,0.7\n"),
    ("pipes.csv", "a|b|c\n1|2|3\n4.5|-6|0.7\n"),
    ("tabs.csv", "a\tb\tc\n1\t2\t3\n4.5\t-6\t0.7\n"),
    ("semicolons.csv", "a;b;c\n1;2;3\n4.5;-6;0.7\n"),
    ("quoted.csv", '"a","b","c"\n"1","2","3"\n4.5,"-6",0.7\n'),
])
def test_header_is_kept_whatever_the_delimiter(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    frame = tables.read_frame(path)
    assert tables.header_of(frame) == ("a", "b", "c") == tables.read_header(path)
    np.testing.assert_allclose(tables.numeric_rows(frame, name),
                               [[1, 2, 3], [4.5, -6, 0.7]])


def test_quoted_names_keep_their_delimiters_and_repeats(tmp_path):
    path = tmp_path / "names.csv"
    path.write_text('"width, cm",x,x\n1,2,3\n4,5,6\n')
    assert tables.header_of(tables.read_frame(path)) == ("width, cm", "x", "x")


def test_latin1_file_is_read_with_its_names(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("température,pression\n1,2\n3,4\n".encode("latin-1"))
    frame = tables.read_frame(path)
    assert tables.header_of(frame) == ("température", "pression")
    np.testing.assert_array_equal(tables.load_array(path), [[1, 2], [3, 4]])


def test_utf8_with_byte_order_mark_keeps_the_first_name_clean(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffné,b\n1,2\n3,4\n".encode())
    assert tables.read_header(path) == ("né", "b")


def test_binary_garbage_passed_as_csv_is_one_clear_error(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(DataError, match=r"garbage.csv: not a text table \(binary bytes") as info:
        tables.load_array(path)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="not a text table"):
        tables.read_training_table(path)


def test_parquet_tables_are_read_with_their_names(tmp_path):
    path = tmp_path / "table.parquet"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6]}).to_parquet(path)
    events, context, layout, dropped = tables.read_training_table(path)
    np.testing.assert_array_equal(events, [[1, 4], [2, 5], [3, 6]])
    assert context is None and dropped == 0 and layout.names == ("a", "b")
    assert tables.read_header(path) == ("a", "b")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="broken.parquet: not a readable Parquet file"):
        tables.load_array(broken)


def test_text_cells_are_refused_naming_row_and_column(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["3", "x"]})
    with pytest.raises(DataError, match=r"frame: row 2, column 2 \(b\): 'x' is not a number"):
        tables.numeric_rows(frame, "frame")
    blank = tmp_path / "blank.csv"
    blank.write_text("a,b\n1,2\n\n3,\n")
    with pytest.raises(DataError, match=r"row 4, column 2: '' is not a number"):
        tables.load_array(blank)


def test_training_table_splits_context_by_name_and_records_the_layout(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x1,label,x2\n1,0,2\n3,1,4\nnan,1,5\n")
    events, context, layout, dropped = tables.read_training_table(
        path, "label", drop_nonfinite=True)
    np.testing.assert_array_equal(events, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(context, [[0], [1]])
    assert dropped == 1
    assert (layout.events, layout.context, layout.names) == ((0, 2), (1,), ("x1", "label", "x2"))
    assert layout.event_names == ("x1", "x2") and layout.context_names == ("label",)
    with pytest.raises(DataError, match="--context-columns: no column named"):
        tables.read_training_table(path, " ", option="--context-columns")


def test_layout_json_round_trip_and_checks():
    layout = TableLayout.from_positions(4, [3, 0], [2, 1], ["a", "b", "c", "d"])
    again = TableLayout.from_json(layout.to_json())
    assert again == layout and again.context == (2, 1) and again.events == (0, 3)
    assert json.loads(layout.to_json())["columns"][1] == {
        "name": "b", "role": "context", "kind": "continuous"}
    plain = TableLayout.from_positions(3, [0, 1], [2])
    assert TableLayout.from_dict(plain.to_dict()) == plain and plain.names is None
    assert plain.labels(plain.context) == ("2",)
    with pytest.raises(ConfigError, match="column kind must be one of"):
        ColumnSpec("a", kind="words")
    with pytest.raises(ConfigError, match="Unknown TableLayout fields \\['rows'\\]"):
        TableLayout.from_dict({"columns": [], "rows": 3})


def test_legacy_flow_fields_are_read_into_a_layout():
    flow = {"event_dim": 2, "context_dim": 1, "event_columns": [1, 2], "context_columns": [0],
            "column_names": ["label", "x1", "x2"]}
    rest, layout = tables.split_legacy_flow(flow)
    assert rest == {"event_dim": 2, "context_dim": 1}
    assert layout == TableLayout.from_positions(3, [1, 2], [0], ["label", "x1", "x2"])
    _, unnamed = tables.split_legacy_flow({"event_columns": [0, 1], "context_columns": [2],
                                           "column_names": None})
    assert unnamed.context == (2,) and unnamed.names is None
    assert tables.split_legacy_flow({"event_columns": None, "context_columns": None})[1] is None


def test_dataframes_give_their_names_to_the_layout():
    data = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    context = pd.DataFrame({"c": [0.0, 1.0]})
    events, found, layout = tables.fit_inputs(data, context)
    np.testing.assert_array_equal(events, [[1, 3], [2, 4]])
    assert layout.names == ("a", "b", "c") and layout.context == (2,)
    _, _, none = tables.fit_inputs(np.zeros((2, 2)))
    assert none is None
    with pytest.raises(ConfigError, match="The layout has 1 context columns; the context has 0"):
        tables.fit_inputs(np.zeros((2, 2)), None, TableLayout.from_positions(3, [0, 1], [2]))


def test_sampled_csv_gets_the_event_header(tmp_path):
    tables.save_array(np.ones((2, 2), np.float32), tmp_path / "s.csv", header=["x 1", "y,2"])
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == 'x 1,"y,2"'
    assert tables.read_header(tmp_path / "s.csv") == ("x 1", "y,2")


def test_a_million_rows_load_in_seconds(tmp_path):
    """Regression guard for the C parser path (measured 2.7 s for 1,000,000 x 10 here)."""
    rows = np.random.default_rng(0).standard_normal((100_000, 10))
    path = tmp_path / "big.csv"
    np.savetxt(path, rows, delimiter=",", fmt="%.8g", header=",".join("abcdefghij"),
               comments="")
    import time
    start = time.perf_counter()
    loaded = tables.load_array(path)
    assert time.perf_counter() - start < 10
    np.testing.assert_allclose(loaded, rows, rtol=1e-6)
