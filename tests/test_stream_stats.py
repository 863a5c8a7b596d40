"""The streamed table's first pass: shards, streaming moments against NumPy, the hash split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tfp_realnvp import firstpass
from tfp_realnvp.errors import DataError
from tfp_realnvp.prepare import affine_stats
from tfp_realnvp.tables.moments import GridSteps, Moments, affine_stats_of, row_uniforms
from tfp_realnvp.tables.shards import open_shards


def _table(rows: int = 20_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((rows, 4)) @ np.array(
        [[1, 0.5, 0, 0], [0, 1, 0.3, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    table[:, 2] = 1e6 + 1e-3 * rng.standard_normal(rows)  # large offset, small noise
    table[:, 3] = rng.integers(0, 7, rows)  # a grid column
    return table


def _write(table: np.ndarray, folder, shards: int = 3, kind: str = "parquet") -> None:
    folder.mkdir(exist_ok=True)
    for i, part in enumerate(np.array_split(table, shards)):
        frame = pd.DataFrame(part, columns=["a", "b", "c", "d"])
        if kind == "parquet":
            frame.to_parquet(folder / f"part-{i:03d}.parquet")
        else:
            frame.to_csv(folder / f"part-{i:03d}.csv", index=False)


def test_chan_merge_matches_numpy_to_1e6_relative():
    table = _table()
    moments = Moments.empty(4)
    for chunk in np.array_split(table, 37):
        moments = moments.add(chunk)
    np.testing.assert_allclose(moments.mean, table.mean(axis=0), rtol=1e-12)
    exact = np.cov(table.T, bias=True)  # two-pass: centred on the exact mean
    scale = np.sqrt(np.outer(np.diag(exact), np.diag(exact)))
    # Relative to each entry's scale sqrt(var_i var_j): near-zero covariances included.
    assert np.all(np.abs(moments.covariance() - exact) <= 1e-6 * scale)
    # The offset column's variance (1e-6) survives: a naive sum of squares loses it.
    assert moments.covariance()[2, 2] == pytest.approx(table[:, 2].var(), rel=1e-6)
    stats, exact = affine_stats_of(moments), affine_stats(table)
    for key in ("data_shift", "data_scale"):
        np.testing.assert_allclose(stats[key], exact[key], rtol=1e-6)
    # The factor of the correlations (entries of scale 1); NumPy's own centring of the
    # 1e6 column in float64 is good to ~1e-7 there.
    np.testing.assert_allclose(stats["data_tril"], exact["data_tril"], atol=1e-6)


def test_grid_steps_streamed_equal_in_memory():
    from tfp_realnvp.prepare import grid_steps

    table = _table(5000)
    grid = GridSteps(4)
    for chunk in np.array_split(table, 7):
        grid.add(chunk)
    assert grid.steps("auto", len(table)) == grid_steps(table, "auto")


def test_row_hash_is_a_function_of_the_index():
    whole = row_uniforms(0, 1000, seed=3)
    np.testing.assert_array_equal(np.concatenate([row_uniforms(0, 400, 3),
                                                  row_uniforms(400, 600, 3)]), whole)
    assert 0.08 < (whole < 0.1).mean() < 0.12
    assert not np.array_equal(row_uniforms(0, 1000, seed=4), whole)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_first_pass_statistics_equal_numpy_on_the_training_rows(tmp_path, kind):
    table = _table()
    _write(table, tmp_path / "shards", kind=kind)
    shards = open_shards(tmp_path / "shards")
    layout = firstpass.stream_layout(shards)
    found = firstpass.first_pass(shards, layout, seed=1, validation_fraction=0.1,
                                 dequantize="auto")
    u = row_uniforms(0, len(table), 1)
    train = table[u >= 0.1]
    record = found.record
    assert record["num_rows"] == len(table) and record["num_train"] == len(train)
    exact = affine_stats(train)
    for key in ("data_shift", "data_scale"):
        np.testing.assert_allclose(record["data_map"][key], exact[key], rtol=1e-6)
    np.testing.assert_allclose(record["data_map"]["data_tril"], exact["data_tril"], atol=1e-6)
    np.testing.assert_array_equal(found.validation, table[u < 0.1].astype(np.float32))
    assert record["dequantize_steps"] == [0.0, 0.0, 0.0, 1.0]


def test_validation_rows_are_capped_by_smallest_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(firstpass, "VALIDATION_ROWS", 50)
    table = _table(4000)
    _write(table, tmp_path / "shards")
    shards = open_shards(tmp_path / "shards")
    found = firstpass.first_pass(shards, firstpass.stream_layout(shards), 0, 0.1)
    u = row_uniforms(0, len(table), 0)
    chosen = np.sort(np.argsort(u)[:50])
    np.testing.assert_array_equal(found.validation, table[chosen].astype(np.float32))
    assert found.record["num_train"] == int((u >= 0.1).sum())


def test_categorical_column_is_refused_naming_the_fix(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "city": ["x", "y"]})
    frame.to_parquet(tmp_path / "t.parquet")
    shards = open_shards(tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"'city'.*categorical.*--ignore NAME.*--stream never"):
        firstpass.stream_layout(shards)
    layout = firstpass.stream_layout(shards, ignore="city")
    assert layout.events == (0, 1)


def test_bad_cells_name_the_file_and_row(tmp_path):
    table = _table(300)
    table[123, 0] = np.nan
    _write(table, tmp_path / "s", shards=1)
    shards = open_shards(tmp_path / "s")
    with pytest.raises(DataError, match=r"part-000.parquet: data row 124 .*--drop-nonfinite"):
        firstpass.first_pass(shards, firstpass.stream_layout(shards), 0, 0.1, drop=False)
    found = firstpass.first_pass(shards, firstpass.stream_layout(shards), 0, 0.1)
    assert found.record["dropped"] == 1


def test_choose_input_by_size(tmp_path, monkeypatch):
    _write(_table(1000), tmp_path / "s")
    assert firstpass.choose_input(tmp_path / "s")[0] is False
    assert firstpass.choose_input(tmp_path / "s", "always")[0] is True
    monkeypatch.setattr(firstpass, "STREAM_BYTES", 1000)
    streamed, why = firstpass.choose_input(str(tmp_path / "s" / "*.parquet"))
    assert streamed and "3 parquet shard(s)" in why


def test_no_shards_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="matches no file"):
        open_shards(str(tmp_path / "*.parquet"))


def test_the_first_pass_imports_no_tensorflow():
    import json
    import subprocess
    import sys

    code = ("import json, sys; import tfp_realnvp.firstpass; "
            "print(json.dumps('tensorflow' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) is False
