"""Data loading and validation: every bad input gets one clear message."""

import numpy as np
import pytest

from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp import tables
from tfp_realnvp.errors import DataError


def test_csv_with_header_and_npy_load_as_float32(tmp_path):
    csv = tmp_path / "table.csv"
    csv.write_text("a,b,c\n1,2,3\n4.5,-6,7e-1\n\n")
    loaded = tables.load_array(csv)
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, [[1, 2, 3], [4.5, -6, 0.7]], rtol=1e-6)
    npy = tmp_path / "table.npy"
    np.save(npy, loaded.astype(np.float64))
    np.testing.assert_array_equal(tables.load_array(npy), loaded)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("text.csv", "x,y\n1,2\n3,abc\n", r"row 3, column 2: 'abc' is not a number"),
        ("nan.csv", "1,2\n3,nan\n5,6\n", r"row 2 holds NaN or inf \(1 bad row"),
        ("inf.csv", "1,2\n3,4\ninf,6\n", r"row 3 holds NaN or inf"),
        ("narrow.csv", "1\n2\n3\n", r"1 column\(s\); a RealNVP flow needs at least 2"),
        ("empty.csv", "", r"no data rows"),
        ("header_only.csv", "x,y\n", r"no data rows"),
        ("ragged.csv", "1,2\n3,4,5\n", r"row 2 has 3 columns; the first data row has 2"),
    ],
)
def test_bad_csv_is_refused_with_its_reason(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        tables.load_array(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(5), r"expected a 2-D table \[rows, columns\]; got shape \(5,\)"),
        (np.zeros((0, 3)), r"no rows"),
        (np.array([["a", "b"]]), r"expected a real numeric array; got dtype <U1"),
    ],
)
def test_bad_npy_is_refused(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=message):
        tables.load_array(path)


def test_missing_file_and_wrong_width(tmp_path):
    with pytest.raises(DataError, match=r"no such file"):
        tables.load_array(tmp_path / "absent.csv")
    with pytest.raises(DataError, match=r"3 columns; this model expects 2 \(shape \[N, 2\]\)"):
        tables.validate_array(np.zeros((4, 3)), "x", expected_width=2)


def test_toy_sets_and_unknown_name():
    for name in tables.TOY_DATASETS:
        points = tables.make_toy(name, 50, 0.05, seed=1)
        assert points.shape == (50, 2) and points.dtype == np.float32
        np.testing.assert_array_equal(points, tables.make_toy(name, 50, 0.05, seed=1))
    with pytest.raises(DataError, match=r"Unknown dataset 'spiral'; choose one of blobs"):
        tables.make_toy("spiral")


def test_split_is_seeded_and_disjoint():
    data = np.arange(200, dtype=np.float32).reshape(100, 2)
    train, validation = prepare_lib.train_validation_split(data, 0.2, seed=3)
    again, _ = prepare_lib.train_validation_split(data, 0.2, seed=3)
    assert len(train) == 80 and len(validation) == 20
    np.testing.assert_array_equal(train, again)
    rows = {tuple(r) for r in train} | {tuple(r) for r in validation}
    assert len(rows) == 100


def test_save_array_round_trips(tmp_path):
    data = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    for name in ("out.csv", "out.npy"):
        tables.save_array(data, tmp_path / name)
        np.testing.assert_allclose(tables.load_array(tmp_path / name), data, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.npy"]


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("name, content", [
    ("semicolons.csv", "a;b;c\n1;2;3\n4.5;-6;0.7\n"),
    ("tabs.tsv", "1\t2\t3\n4.5\t-6\t0.7\n"),
    ("bom.csv", "\ufeffa,b,c\n1,2,3\n4.5,-6,0.7\n"),
    ("windows.csv", "a,b,c\r\n1,2,3\r\n4.5,-6,0.7\r\n"),
    ("blank_lines.csv", "\n\na,b,c\n1,2,3\n\n4.5,-6,0.7\n\n"),
])
def test_csv_dialects_are_read_alike(tmp_path, name, content):
    loaded = tables.load_array(_write(tmp_path / name, content))
    np.testing.assert_allclose(loaded, [[1, 2, 3], [4.5, -6, 0.7]], rtol=1e-6)


def test_integer_npy_is_read_as_float32(tmp_path):
    table = np.arange(12, dtype=np.int64).reshape(4, 3)
    loaded = tables.load_array(_write(tmp_path / "ints.npy", table))
    assert loaded.dtype == np.float32 and np.array_equal(loaded, table)


def test_large_tables_load_with_the_vectorised_reader(tmp_path):
    rows = np.random.default_rng(0).standard_normal((200_000, 5)).astype(np.float32)
    path = tmp_path / "big.csv"
    np.savetxt(path, rows, delimiter=",", fmt="%.6g", header="a,b,c,d,e", comments="")
    loaded = tables.load_array(path)
    assert loaded.shape == (200_000, 5)
    np.testing.assert_allclose(loaded, rows, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, content, message", [
    ("truncated.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, "
                      b"'shape': (10, 3), }" + b" " * 60 + b"\n" + b"\x00" * 16,
     r"not a readable .npy array"),
    ("pickled.npy", np.array([{"a": 1}, None], dtype=object), r"not a readable .npy array"),
    ("strings.npy", np.array([["1", "2"], ["3", "4"]]), r"expected a real numeric array"),
    ("cube.npy", np.zeros((4, 3, 2)), r"expected a 2-D table \[rows, columns\]; got shape"),
    ("huge.csv", "1,2\n3,1e39\n", r"row 2, column 2: 1e\+39 is beyond the float32 range"),
])
def test_unusable_files_are_refused(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        tables.load_array(_write(tmp_path / name, content))


def test_constant_columns_and_tiny_tables_cannot_be_fitted():
    table = np.random.default_rng(1).standard_normal((50, 3))
    table[:, 1] = 7.0
    with pytest.raises(DataError, match=r"column 2 is constant \(every row is 7\)"):
        prepare_lib.check_trainable(table)
    with pytest.raises(DataError, match=r"6 rows; fitting a 3-column flow .* at least 10"):
        prepare_lib.check_trainable(np.random.default_rng(2).standard_normal((6, 3)))


def test_drop_nonfinite_rows_counts_them():
    table = np.arange(12.0).reshape(6, 2)
    table[1, 0], table[4, 1] = np.nan, np.inf
    kept, dropped = tables.drop_nonfinite_rows(table)
    assert dropped == 2 and kept.shape == (4, 2) and np.isfinite(kept).all()
