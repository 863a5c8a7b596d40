"""Fit quality: the Gaussian start, honest tails, dequantisation, auto sizing, the benchmark."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from click.testing import CliRunner

import tfp_realnvp
from tfp_realnvp import FlowConfig, TrainConfig, build_flow
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.bench import quality
from tfp_realnvp.cli import cli
from tfp_realnvp.scoring import per_row_nll
from tfp_realnvp.tables import make_toy

tfd = tfp.distributions


def correlated_table(rows: int, seed: int = 0) -> np.ndarray:
    """A 3-column table with correlations, different scales and a curved dependence."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(rows)
    b = 0.8 * a + 0.6 * rng.standard_normal(rows)
    c = a ** 2 + 0.3 * rng.standard_normal(rows)
    return np.stack([10 * a + 3, 0.1 * b, c], axis=1).astype(np.float32)


def gaussian_of(rows: np.ndarray) -> tfd.Distribution:
    mean = rows.mean(0).astype(np.float64)
    covariance = np.cov(rows.T.astype(np.float64), bias=True)
    return tfd.MultivariateNormalTriL(mean, np.linalg.cholesky(covariance))


def test_a_fresh_flow_is_the_full_covariance_gaussian_of_its_training_rows():
    rows = correlated_table(500)
    stats = prepare_lib.affine_stats(rows, whiten=True)
    flow = build_flow(FlowConfig(event_dim=3, coupling="spline", mixing="lu", **stats))
    points = correlated_table(50, seed=1)
    np.testing.assert_allclose(flow.log_prob(points),
                               gaussian_of(rows).log_prob(points.astype(np.float64)),
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("ensemble_size", [1, 3])
def test_training_keeps_epoch_zero_unless_it_is_beaten(tmp_path, ensemble_size):
    # A Gaussian table: nothing beats the Gaussian start by much, and a learning rate this
    # high makes every epoch after it worse on validation for a while.
    rows = np.random.default_rng(3).multivariate_normal(
        [1, -2, 0.5], [[2, 0.9, 0.1], [0.9, 1, 0.3], [0.1, 0.3, 0.5]], 200).astype(np.float32)
    result = tfp_realnvp.fit(
        rows, tmp_path / "run",
        FlowConfig(num_couplings=2, hidden_units=16, ensemble_size=ensemble_size),
        TrainConfig(epochs=6, learning_rate=0.3, schedule="constant", patience=50))
    metrics = result.metrics
    initial = metrics["initial_validation_nll"]
    assert metrics["best_validation_nll"] <= initial + 1e-6
    history = [h["validation_nll"] for h in metrics["history"]]
    if min(history) > initial:  # every epoch lost to the Gaussian start: the start is kept
        assert metrics["best_epoch"] == 0
        assert all(m["best_epoch"] == 0 for m in metrics["members"])


def test_far_points_get_a_finite_density_that_falls_off_like_the_gaussians(tmp_path):
    data = make_toy("moons", 1000, seed=4)
    # The default 2-D flow, trained briefly (the tails are the architecture's, not the
    # training length's; an explicit budget keeps a loaded machine from changing the test).
    result = tfp_realnvp.fit(data, tmp_path / "run", settings={
        "epochs": 10, "time_budget": 20, "ensemble_size": 1, "jit_compile": False})
    gaussian = gaussian_of(data)
    std = data.std(0)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles)], 1)
    for distance in (10, 30, 100, 1000):
        points = (data.mean(0) + distance * directions * std).astype(np.float32)
        flow_nll = per_row_nll(result.flow, points)
        gaussian_nll = -gaussian.log_prob(points.astype(np.float64)).numpy()
        assert np.all(np.isfinite(flow_nll)), distance
        # Stated bound: within 3x the Gaussian's NLL plus 30 nats, at any distance.
        assert np.all(flow_nll <= 3 * gaussian_nll + 30), (distance, flow_nll.max())


def test_grid_steps_find_integer_and_rounded_columns():
    rng = np.random.default_rng(0)
    table = np.stack([rng.integers(0, 17, 400),                 # pixel-like levels
                      np.round(rng.normal(5, 1, 400), 1),        # prices on a 0.1 grid
                      rng.normal(0, 1, 400)], 1)                 # continuous
    auto = prepare_lib.grid_steps(table, "auto")
    assert auto[0] == 1.0 and auto[1] == pytest.approx(0.1) and auto[2] == 0.0
    assert prepare_lib.grid_steps(table, "none") is None
    assert all(step > 0 for step in prepare_lib.grid_steps(table, "uniform"))


def test_dequantised_training_learns_cells_not_spikes(tmp_path):
    rng = np.random.default_rng(1)
    table = np.stack([rng.integers(0, 6, 600), rng.integers(0, 4, 600)], 1).astype(np.float32)
    flow = FlowConfig(coupling="spline", num_couplings=4, hidden_units=32, num_hidden_layers=2,
                      activation="tanh")
    train = TrainConfig(epochs=40, learning_rate=5e-3, patience=40)
    spiky = tfp_realnvp.fit(table, tmp_path / "raw", flow, train)
    cells = tfp_realnvp.fit(table, tmp_path / "deq", flow, train.replace(dequantize="auto"))
    recorded = tfp_realnvp.rundir.RunDir(tmp_path / "deq").read_config().train
    assert recorded.dequantize_steps == (1.0, 1.0)
    # 24 equally likely grid values: a density over their unit cells is 1/24 per unit area,
    # NLL log(24) = 3.18 on the grid points and between them alike. Without the noise the
    # flow piles its mass onto the grid points instead.
    uniform_cells = math.log(24)
    assert per_row_nll(spiky.flow, table).mean() < uniform_cells - 1.0
    assert abs(per_row_nll(cells.flow, table).mean() - uniform_cells) < 0.3
    between = table[:100] + 0.5
    between = between[(between[:, 0] < 5) & (between[:, 1] < 3)]
    assert abs(per_row_nll(cells.flow, between).mean() - uniform_cells) < 0.5


def test_auto_choice_is_recorded_and_explicit_settings_win(tmp_path):
    """Also: the fit (an auto-chosen blended ensemble) stays in float32 throughout."""
    data = correlated_table(300)
    result = tfp_realnvp.fit(data, tmp_path / "run", settings={"epochs": 3,
                                                              "hidden_units": 24})
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["auto"]["chosen"] == ["flow", "train"]
    assert stored["auto"]["given"] == ["epochs", "hidden_units"]
    assert "ensemble_size" in stored["auto"]["reasons"]
    chosen = tfp_realnvp.auto.choose(300, 3)
    assert stored["flow"]["hidden_units"] == 24 and stored["train"]["epochs"] == 3
    assert stored["flow"]["ensemble_size"] == chosen.flow.ensemble_size
    assert stored["flow"]["coupling"] == chosen.flow.coupling
    assert result.metrics["epochs_run"] <= 3
    assert chosen.flow.ensemble_size > 1 and result.flow.dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in result.flow.trainable_variables)


@pytest.mark.parametrize("rows, dim, members, coupling", [
    (150, 4, 3, "autoregressive"), (5000, 30, 3, "autoregressive"),
    (3000, 2, 3, "spline"), (5001, 2, 1, "spline"), (5001, 10, 10, "affine"),
    (20000, 10, 10, "affine"), (100000, 10, 5, "affine"), (1_000_000, 10, 1, "affine")])
def test_auto_sizes_from_the_table_shape(rows, dim, members, coupling):
    choice = tfp_realnvp.auto.choose(rows, dim)
    assert choice.flow.ensemble_size == members and choice.flow.coupling == coupling
    assert choice.flow.whiten == (coupling != "autoregressive")
    if coupling == "autoregressive":  # a context (or categories) keeps the affine ensemble
        conditional = tfp_realnvp.auto.choose(rows, dim, conditional=True).flow
        assert (conditional.coupling, conditional.ensemble_size) == ("affine", 20)
    assert 0 < choice.train.time_budget <= tfp_realnvp.auto.DEFAULT_TIME_BUDGET
    assert tfp_realnvp.auto.choose(rows, dim, time_budget=7).train.time_budget == 7
    assert {"coupling", "time_budget"} <= set(choice.reasons)


def test_evaluate_reports_quantiles_and_writes_per_row_scores(tiny_run, tmp_path):
    data = make_toy("moons", 300, seed=5)
    np.save(tmp_path / "x.npy", data[:40])
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_run), "--data",
                                      str(tmp_path / "x.npy"), "--per-row",
                                      str(tmp_path / "scores.csv"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    scores = np.loadtxt(tmp_path / "scores.csv")
    assert scores.shape == (40,)
    assert summary["nll"] == pytest.approx(scores.mean(), rel=1e-5)
    assert summary["median"] == pytest.approx(np.median(scores), rel=1e-5)
    assert summary["max"] == pytest.approx(scores.max(), rel=1e-5)
    assert summary["median"] <= summary["p99"] <= summary["max"]
    assert summary["bits_per_dim"] == pytest.approx(summary["nll"] / (2 * math.log(2)))


def test_quality_benchmark_runs_every_method_on_a_tiny_budget():
    records = quality.run_quality(tables=("iris",), max_epochs=2, flow_settings={
        "ensemble_size": 1, "num_couplings": 2, "hidden_units": 8})
    # every default method but `exact`, which only the toy tables have (a known density)
    assert [r["method"] for r in records] == [m for m in quality.METHODS if m != "exact"]
    assert all(math.isfinite(r["nll"]) and r["seconds"] >= 0 for r in records)
    flow = next(r for r in records if r["method"] == "flow")
    assert flow["detail"].endswith(", 2 epochs") and " x " not in flow["detail"]  # as asked
    gaussian = next(r for r in records if r["method"] == "gaussian")
    table = quality.load_table("iris", 0)
    reference = -gaussian_of(table.train).log_prob(table.test.astype(np.float64)).numpy()
    assert gaussian["nll"] == pytest.approx(reference.mean(), rel=1e-3)
    text = quality.format_table(records)
    assert "| iris (120 x 4) |" in text and "gmm" in text.splitlines()[0]


def test_bench_quality_cli_prints_the_table_and_json():
    result = CliRunner().invoke(cli, ["bench", "quality", "--tables", "wine", "--methods",
                                      "gaussian,kde", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output[result.output.index("["):])
    assert {r["method"] for r in records} == {"gaussian", "kde"}
    bad = CliRunner().invoke(cli, ["bench", "quality", "--tables", "mnist"])
    assert bad.exit_code == 2 and "choose from" in bad.output
