"""`fit` and `resume` of a table streamed from Parquet/CSV shards."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest

import tfp_realnvp
from tfp_realnvp import firstpass
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.tables.moments import row_uniforms
from tfp_realnvp.tables.shards import open_shards
from tfp_realnvp.training import stream_pipeline
from tfp_realnvp.training.trainer import Trainer

SETTINGS = {"epochs": 3, "max_steps_per_epoch": 20, "batch_size": 128, "num_couplings": 2,
            "hidden_units": 16, "seed": 0, "patience": 50}


def _shards(folder, rows: int = 12_000, count: int = 3, kind: str = "parquet"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 3))
    x[:, 1] += 0.5 * x[:, 0] ** 2
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    folder.mkdir(exist_ok=True)
    for i, at in enumerate(np.array_split(np.arange(rows), count)):
        part = frame.iloc[at]
        if kind == "parquet":
            part.to_parquet(folder / f"part-{i}.parquet")
        else:
            part.to_csv(folder / f"part-{i}.csv", index=False)
    return x


def test_passes_hold_training_rows_once_and_epochs_continue_them(tmp_path):
    table = _shards(tmp_path / "s", rows=3000)
    shards = open_shards(tmp_path / "s")
    found = firstpass.first_pass(shards, firstpass.stream_layout(shards), 4, 0.1)
    plan = found.prepared(shards).stream
    batches = list(stream_pipeline.pass_batches(plan, 4, 100, 2))
    assert len(batches) == plan.num_train // 100 and all(b.shape == (100, 3) for b in batches)
    seen = np.concatenate(batches)
    train = table[row_uniforms(0, len(table), 4) >= 0.1].astype(np.float32)
    assert len(np.unique(seen, axis=0)) == len(seen)  # no row twice in a pass
    assert {r.tobytes() for r in seen} <= {r.tobytes() for r in train}
    again = np.concatenate(list(stream_pipeline.pass_batches(plan, 4, 100, 2)))
    np.testing.assert_array_equal(again, seen)
    other = np.concatenate(list(stream_pipeline.pass_batches(plan, 4, 100, 3)))
    assert not np.array_equal(other, seen)
    # Epochs of 10 steps (below a pass of 26): epoch 4 resumed = epoch 4 continued.
    whole = stream_pipeline.batch_stream(plan, 4, 100, 10, start_epoch=0)
    continued = list(itertools.islice(whole, 40, 60))
    resumed = list(itertools.islice(stream_pipeline.batch_stream(plan, 4, 100, 10, 4), 20))
    np.testing.assert_array_equal(np.stack(resumed), np.stack(continued))


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_streamed_fit_trains_from_the_files_and_records_the_choice(tmp_path, kind):
    _shards(tmp_path / "s", kind=kind)
    result = tfp_realnvp.fit(str(tmp_path / "s"), tmp_path / "run", settings=SETTINGS,
                             stream="always")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["input"] == "stream"
    assert "--stream always" in config["data"]["input_reason"]
    assert config["data"]["num_rows"] == 12_000 and config["data"]["shards"] == 3
    assert config["flow"]["ensemble_size"] == 1
    assert (tmp_path / "run" / "stream" / "firstpass.json").is_file()
    history = result.metrics["history"]
    assert result.metrics["best_validation_nll"] < json.loads(
        (tmp_path / "run" / "metrics.json").read_text())["initial_validation_nll"]
    assert all(np.isfinite(h["train_nll"]) for h in history)
    rows = np.load(tmp_path / "run" / "stream" / "validation.npy")
    assert np.isfinite(result.flow.log_prob(rows).numpy()).all()


def test_small_shards_stay_in_memory(tmp_path):
    _shards(tmp_path / "s", rows=600)
    # one small affine flow: the automatic choice for 600 rows (a blended ensemble) would
    # cost 40 s here and is not what this test checks
    tfp_realnvp.fit(str(tmp_path / "s" / "*.parquet"), tmp_path / "run",
                    settings={**SETTINGS, "epochs": 1, "coupling": "affine",
                              "ensemble_size": 1, "blend": False})
    data = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert data["input"] == "memory" and "<= 512 MB" in data["input_reason"]
    assert data["num_train"] + data["num_validation"] == 600


def test_an_ensemble_cannot_be_streamed(tmp_path):
    _shards(tmp_path / "s", rows=600)
    with pytest.raises(ConfigError, match="ensemble_size=3: a streamed table trains one flow"):
        tfp_realnvp.fit(str(tmp_path / "s"), tmp_path / "run",
                        settings={**SETTINGS, "ensemble_size": 3}, stream="always")


def test_resume_reuses_the_first_pass_and_the_validation_rows(tmp_path, monkeypatch):
    _shards(tmp_path / "s")
    passes, validation = [], []
    real_pass, real_rows = firstpass.first_pass, Trainer._set_validation_rows

    def counted(*args, **kwargs):
        passes.append(1)
        return real_pass(*args, **kwargs)

    def kept(self):
        real_rows(self)
        validation.append(self._validation_events.numpy())

    monkeypatch.setattr(firstpass, "first_pass", counted)
    monkeypatch.setattr(Trainer, "_set_validation_rows", kept)
    tfp_realnvp.fit(str(tmp_path / "s"), tmp_path / "run",
                    settings={**SETTINGS, "epochs": 2}, stream="always")
    assert len(passes) == 1
    result = tfp_realnvp.resume(tmp_path / "run", None, epochs=4)
    assert len(passes) == 1  # no second pass over the files
    assert len(validation) == 2
    np.testing.assert_array_equal(validation[0], validation[1])
    assert [h["epoch"] for h in result.metrics["history"]] == [1, 2, 3, 4]


def test_cli_streams_a_folder_explains_it_and_resumes_it(tmp_path):
    from click.testing import CliRunner

    from tfp_realnvp.cli import cli as main

    _shards(tmp_path / "s", rows=6000)
    runner = CliRunner()
    options = ["--epochs", "2", "--max-steps-per-epoch", "10", "--num-couplings", "2",
               "--hidden-units", "16"]
    explained = runner.invoke(main, ["fit", "--data", str(tmp_path / "s"), "--stream",
                                     "always", "--explain"])
    assert explained.exit_code == 0, explained.output
    assert explained.output.startswith(f"{tmp_path / 's'}: 6000 rows x 3 numeric columns")
    assert "input: streamed from files (3 parquet shard(s)" in explained.output
    assert not (tmp_path / "run").exists()
    fitted = runner.invoke(main, ["fit", "--data", str(tmp_path / "s"), "--stream", "always",
                                  "--out", str(tmp_path / "run"), "--quiet", *options])
    assert fitted.exit_code == 0, fitted.output
    assert "best validation NLL" in fitted.output
    resumed = runner.invoke(main, ["fit", "--resume", "--out", str(tmp_path / "run"),
                                   "--epochs", "3", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3
    scored = runner.invoke(main, ["evaluate", str(tmp_path / "run"), "--data",
                                  str(tmp_path / "s"), "--stream", "always", "--per-row",
                                  str(tmp_path / "nll.parquet"), "--json"])
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.output.strip().splitlines()[-1])
    per_row = pd.read_parquet(tmp_path / "nll.parquet")["nll"].to_numpy()
    rows = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "s").iterdir())])
    expected = -tfp_realnvp.load(tmp_path / "run").log_prob(
        rows.to_numpy(np.float32)).numpy()
    assert summary["n"] == len(per_row) == 6000 and summary["streamed"] is True
    np.testing.assert_allclose(per_row, expected, rtol=1e-5, atol=1e-5)
    assert summary["nll"] == pytest.approx(expected.mean(), rel=1e-6)
    wrong = runner.invoke(main, ["evaluate", str(tmp_path / "run"), "--data",
                                 str(tmp_path / "s"), "--stream", "always", "--per-row",
                                 str(tmp_path / "nll.npy")])
    assert wrong.exit_code == 2 and "name a .parquet or .csv file" in wrong.output
    frame = pd.DataFrame({"a": [1.0] * 20, "b": np.arange(20.0), "city": ["x"] * 20})
    frame.to_parquet(tmp_path / "cat.parquet")
    refused = runner.invoke(main, ["fit", "--data", str(tmp_path / "cat.parquet"),
                                   "--stream", "always", "--out", str(tmp_path / "r2")])
    assert refused.exit_code != 0
    assert re.search(r"column 'city' holds \w+ \(categorical\); streaming reads numeric "
                     r"tables only: leave the column out \(--ignore NAME\)", refused.output)
