"""The price an export states: members, trainable parameters, log_prob rows/s (issue 21)."""

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import suite_flow

import tfp_realnvp
from tfp_realnvp import FlowConfig, build_flow
from tfp_realnvp.cli import cli
from tfp_realnvp.info import PRICE_BATCHES, PRICE_FILE, describe, format_price
from tfp_realnvp.price import MAX_CALLS, measure_price, rows, time_calls


def check_price(price, flow, config):
    assert price["members"] == config.ensemble_size
    assert price["coupling"] == config.coupling
    assert price["trainable_parameters"] == sum(int(np.prod(v.shape))
                                                for v in flow.trainable_variables) > 0
    assert sorted(price["log_prob"]) == sorted(str(b) for b in PRICE_BATCHES)
    for batch, timing in price["log_prob"].items():
        assert math.isfinite(timing["rows_per_s"]) and timing["rows_per_s"] > 0
        assert timing["rows_per_s"] == pytest.approx(timing["timed_batch"] /
                                                     timing["median_ms"] * 1e3)
        assert timing["timed_batch"] in (1, 256, 512, 1024, 2048, 4096)
        assert timing["timed_batch"] <= int(batch)
        assert 1 <= timing["calls"] <= MAX_CALLS
    assert price["machine"].startswith(("CPU: ", "GPU: "))


# Exports of conftest's suite (`suite_exports`, built once per session): an affine
# ensemble of 2 members with a context, an autoregressive ensemble blended with a mixture,
# and one spline flow with LU mixing and a context.
@pytest.mark.parametrize("name", ["ensemble-conditional-2d", "blend-autoregressive-ensemble-3d",
                                  "spline-lu-conditional-4d"],
                         ids=["affine-ensemble-2-conditional", "autoregressive-ensemble-blend",
                              "spline-conditional"])
def test_an_export_records_its_members_parameters_and_rows_per_second(name, suite_exports):
    config, flow = suite_flow(name)
    version_dir = Path(suite_exports[name]["path"])
    price = json.loads((version_dir / "assets.extra" / PRICE_FILE).read_text())
    check_price(price, flow, config)
    summary = describe(version_dir)
    assert summary["price"] == price
    assert f"{config.ensemble_size} member" in format_price(price)
    assert f"{price['trainable_parameters']:,} trainable parameters" in format_price(price)


def test_info_and_the_export_report_state_the_price(tiny_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(tiny_run), str(tmp_path)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("price: "))
    assert "1 member, " in line and "trainable parameters; log_prob " in line
    assert "rows/s at batch 1, " in line and "rows/s at batch 4,096" in line
    info = runner.invoke(cli, ["info", str(tmp_path / "realnvp")])
    assert info.exit_code == 0 and line in info.output
    flow = tfp_realnvp.load(tmp_path / "realnvp")
    summary = json.loads(runner.invoke(cli, ["info", str(tmp_path / "realnvp"),
                                             "--json"]).output)
    check_price(summary["price"], flow, tfp_realnvp.rundir.find_model(tiny_run).config)


def test_a_run_says_its_price_is_measured_at_export(tiny_run):
    summary = describe(tiny_run)
    assert summary["price"] == {"members": 1, "unknown": "measured when the run is exported "
                                "(`tfp-realnvp export RUN BASE`)"}
    text = CliRunner().invoke(cli, ["info", str(tiny_run)]).output
    assert "price: 1 member; parameters and log_prob rows/s measured when the run is " \
           "exported" in text


def test_an_old_export_without_the_file_loads_and_its_price_is_unknown(tiny_export, tmp_path):
    _, version_dir = tiny_export
    old = tmp_path / "realnvp" / "1"
    shutil.copytree(version_dir, old)
    (old / "assets.extra" / PRICE_FILE).unlink()
    x = np.array([[0.1, 0.2], [1.0, -0.5]], np.float32)
    np.testing.assert_allclose(tfp_realnvp.load(old).log_prob(x).numpy(),
                               tfp_realnvp.load(version_dir).log_prob(x).numpy())
    summary = describe(old)
    assert summary["price"]["members"] == 1
    assert summary["price"]["unknown"].startswith("unknown: exported before prices")
    text = CliRunner().invoke(cli, ["info", str(old)]).output
    assert "price: 1 member; parameters and log_prob rows/s unknown: exported before" in text


def test_timing_is_bounded_by_its_budget_and_call_count():
    calls = []
    assert len(time_calls(lambda: calls.append(1), budget_s=10.0)) == MAX_CALLS
    slow = time_calls(lambda: __import__("time").sleep(0.03), budget_s=0.01)
    assert len(slow) == 1 and slow[0] >= 0.03


def test_requests_are_repeated_to_the_batch_and_a_mixed_flow_counts_its_flow():
    request = {"x": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
               "cut": np.array([b"Ideal", b"never"], dtype=object)}
    batch = rows(request, 5)
    assert batch["x"].shape == (5, 2) and batch["cut"].shape == (5,)
    np.testing.assert_array_equal(batch["x"].numpy()[:, 0], [1, 3, 1, 3, 1])
    config = FlowConfig(event_dim=2, num_couplings=2, hidden_units=8)
    flow = build_flow(config)

    class Mixed:  # what the price reads of a MixedTableModel: its flow
        categorical = object()

    Mixed.flow = flow
    price = measure_price(lambda x: {"log_prob": flow.log_prob(x)},
                          {"x": request["x"]}, Mixed(), config)
    check_price(price, flow, config)


def test_a_slow_model_is_timed_at_a_batch_it_affords_and_says_so():
    config = FlowConfig(event_dim=2, num_couplings=2, hidden_units=8)
    flow = build_flow(config)
    sizes = []

    def slow(x):  # 0.2 ms a row: one call at 4,096 rows would take 0.8 s
        sizes.append(int(x.shape[0]))
        time.sleep(2e-4 * int(x.shape[0]))
        return {"log_prob": tf.zeros(x.shape[:1])}

    tick = time.perf_counter()
    price = measure_price(slow, {"x": np.zeros((2, 2), np.float32)}, flow, config)
    assert time.perf_counter() - tick < 2.0
    timing = price["log_prob"]["4096"]
    timed = timing["timed_batch"]
    assert timed in (512, 1024) and max(sizes) == timed  # 1,024: 0.2 s a call
    assert timing["rows_per_s"] == pytest.approx(timed / timing["median_ms"] * 1e3)
    assert f"rows/s at batch 4,096 (timed at {timed:,})" in format_price(price)


def test_a_model_too_slow_for_a_bigger_batch_is_timed_by_its_probe_calls():
    config = FlowConfig(event_dim=2, num_couplings=2, hidden_units=8)
    flow = build_flow(config)
    sizes = []

    def slower(x):  # 1 ms a row: even 512 rows would take 0.5 s
        sizes.append(int(x.shape[0]))
        time.sleep(1e-3 * int(x.shape[0]))
        return {"log_prob": tf.zeros(x.shape[:1])}

    price = measure_price(slower, {"x": np.zeros((2, 2), np.float32)}, flow, config)
    timing = price["log_prob"]["4096"]
    assert timing["timed_batch"] == 256 and timing["calls"] == 2
    assert sizes.count(256) == 3 and max(sizes) == 256  # one untimed, two timed
