"""The speed benchmark and the big-table path: `bench speed` end to end on tiny settings,
ratios from the measured figures, FLOP counting, the quality clock, batched sampling and
a step budget honoured inside an epoch."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import tfp_realnvp
from tfp_realnvp import FlowConfig, auto, build_flow
from tfp_realnvp.bench import bigtable, profile, speed, time_to_quality
from tfp_realnvp.bench import report as speed_report
from tfp_realnvp.bench.notebook import NotebookRealNVP
from tfp_realnvp.cli import cli as main
from tfp_realnvp.sampling import sample_flow, stateless_seed

TINY = ["--dim", "3", "--hidden-units", "8", "--num-hidden-layers", "1", "--num-couplings",
        "2", "--batch-size", "16", "--steps", "2", "--repeats", "1", "--eval-points", "32"]


def positive_finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    plot = tmp_path_factory.mktemp("speed") / "cost.png"
    result = CliRunner().invoke(main, [
        "bench", "speed", *TINY, "--models", "flow,flow_xla,tfp_realnvp,keras_notebook",
        "--no-time-to-quality", "--scaling", "--scaling-dims", "2,4", "--scaling-widths",
        "4", "--plot", str(plot), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), plot


def test_bench_speed_json_has_every_figure(report):
    result, plot = report
    assert result["device"].startswith(("CPU: ", "GPU: "))
    assert positive_finite(result["machine_matmul_gflops"])
    records = {r["name"]: r for r in result["throughput"]}
    assert sorted(records) == ["flow", "flow_xla", "keras_notebook", "tfp_realnvp"]
    for record in records.values():
        for field in ("train_steps_per_s", "train_rows_per_s", "log_prob_points_per_s",
                      "sample_per_s", "warm_up_s"):
            assert positive_finite(record[field]), (record["name"], field)
        assert record["peak_memory_mb"] >= 0 and record["loss_finite"]
        assert record["train_rows_per_s"] == pytest.approx(16 * record["train_steps_per_s"])
    assert records["flow_xla"]["xla"] and not records["flow"]["xla"]
    # The same architecture: one network per coupling each, the notebook's two.
    assert records["flow"]["parameters"] == records["tfp_realnvp"]["parameters"]
    assert records["keras_notebook"]["parameters"] > records["flow"]["parameters"]
    [profile] = result["profile"]
    assert profile["name"] == "flow_xla" and profile["graph_ops"] > 0
    for field in ("trace_s", "forward_ms", "forward_and_gradients_ms", "step_ms",
                  "matmul_gflop_per_step", "matmul_floor_ms"):
        assert positive_finite(profile[field]), field
    assert {(r["dim"], r["hidden_units"]) for r in result["scaling"]} == {(2, 4), (4, 4)}
    assert all(positive_finite(r["train_steps_per_s"]) for r in result["scaling"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ratios_are_the_measured_figures_divided(report):
    result, _ = report
    records = {r["name"]: r for r in result["throughput"]}
    for field in speed_report.RATIO_FIELDS:
        assert result["ratios"]["flow / tfp_realnvp"][field] == pytest.approx(
            records["flow"][field] / records["tfp_realnvp"][field])
        best = max(records["flow"][field], records["flow_xla"][field])
        assert result["ratios"]["best flow / keras_notebook"][field] == pytest.approx(
            best / records["keras_notebook"][field])
    # No figure for tfp_realnvp_xla or default: no ratio that needs one.
    assert "flow_xla / tfp_realnvp_xla" not in result["ratios"]
    assert "default / keras_notebook" not in result["ratios"]


def test_text_report_and_bad_options():
    records = [{"name": "flow", "train_steps_per_s": 30.0, "log_prob_points_per_s": 8.0,
                "sample_per_s": 2.0},
               {"name": "tfp_realnvp", "train_steps_per_s": 10.0, "log_prob_points_per_s": 4.0,
                "sample_per_s": 4.0}]
    assert speed_report.ratios(records) == {"flow / tfp_realnvp": {
        "train_steps_per_s": 3.0, "log_prob_points_per_s": 2.0, "sample_per_s": 0.5},
        "best flow / best tfp_realnvp": {
        "train_steps_per_s": 3.0, "log_prob_points_per_s": 2.0, "sample_per_s": 0.5}}
    result = CliRunner().invoke(main, ["bench", "speed", "--plot", "x.png"])
    assert result.exit_code == 2 and "--scaling" in result.output
    result = CliRunner().invoke(main, ["bench", "speed", "--models", "flow,nope"])
    assert result.exit_code == 2 and "nope" in result.output
    with pytest.raises(tfp_realnvp.ConfigError, match="'steps' must be >= 1; got 0"):
        speed.SpeedOptions(steps=0)


def test_matmul_flops_counts_matmul_and_einsum():
    a, b = tf.ones([8, 5]), tf.ones([5, 3])
    graph = tf.function(lambda a, b: tf.matmul(a, b)).get_concrete_function(a, b).graph
    assert profile.matmul_flops(graph) == 2 * 8 * 5 * 3
    x, w = tf.ones([8, 2, 5]), tf.ones([2, 5, 3])
    graph = tf.function(lambda x, w: tf.einsum("nmi,mio->nmo", x, w)).get_concrete_function(
        x, w).graph
    assert profile.matmul_flops(graph) == 2 * 8 * 2 * 3 * 5


def test_quality_clock_excludes_scoring_and_records_first_crossings():
    points = np.zeros((5, 2), np.float32)
    clock = time_to_quality.QualityClock(points, shift=0.5, thresholds=(0.40, 0.35))
    clock.start()
    nlls = iter([0.0, -0.12, -0.2])  # + 0.5: 0.5, 0.38, 0.3

    def log_prob(x):
        import time
        time.sleep(0.05)  # scoring time: excluded from the clock
        return -tf.fill([tf.shape(x)[0]], next(nlls))

    assert clock.score(log_prob) == pytest.approx(0.5)
    assert not clock.reached
    assert clock.score(log_prob) == pytest.approx(0.38)
    assert list(clock.reached) == [0.40] and not clock.done()
    assert clock.score(log_prob) == pytest.approx(0.3)
    assert clock.done() and clock.reached[0.35] >= clock.reached[0.40]
    assert clock.excluded >= 0.15 and clock.elapsed() < clock.excluded


def test_notebook_model_is_invertible_and_its_density_is_normalised_at_start():
    model = NotebookRealNVP(dim=3, num_couplings=2, hidden_units=8, num_hidden_layers=1)
    x = tf.random.stateless_normal([16, 3], seed=[1, 2])
    z, _ = model(x, training=True)
    back, _ = model(z, training=False)
    np.testing.assert_allclose(back, x, atol=1e-5)
    samples = model.sample(32, tf.constant([0, 3]))
    assert samples.shape == (32, 3) and np.isfinite(model.log_prob(samples)).all()


def test_sample_flow_in_batches_is_seeded_and_matches_one_call():
    flow = build_flow(FlowConfig(event_dim=2, num_couplings=2, hidden_units=8,
                                 num_hidden_layers=1))
    for variable in flow.trainable_variables:
        variable.assign(0.3 * tf.random.stateless_normal(variable.shape, seed=[4, 5]))
    batched = sample_flow(flow, 20, seed=7, batch_size=6)
    assert batched.shape == (20, 2) and batched.dtype == np.float32
    assert np.isfinite(batched).all()
    np.testing.assert_array_equal(batched, sample_flow(flow, 20, seed=7, batch_size=6))
    assert not np.array_equal(batched, sample_flow(flow, 20, seed=8, batch_size=6))
    # Batch 0 is one call with the seed [0, seed]; batch k uses [k, seed].
    np.testing.assert_array_equal(batched[:6], flow.sample(6, seed=stateless_seed(7)))
    np.testing.assert_array_equal(batched[18:], flow.sample(2, seed=stateless_seed(7, 3)))
    np.testing.assert_array_equal(sample_flow(flow, 5, seed=7),
                                  flow.sample(5, seed=stateless_seed(7)).numpy())
    with pytest.raises(ValueError, match="'batch_size' must be >= 1; got 0"):
        sample_flow(flow, 5, seed=7, batch_size=0)


def test_a_step_budget_holds_inside_an_epoch(tmp_path):
    rows = bigtable.make_table(4000, 3, seed=1)
    # A small affine flow with no blended mixture (choosing one costs a third of a fit):
    # the step and time budgets are what this test checks.
    settings = {"max_steps_per_epoch": 3, "batch_size": 16, "epochs": 2, "hidden_units": 8,
                "ensemble_size": 1, "num_couplings": 2, "patience": 50, "coupling": "affine",
                "blend": False, "time_budget": 600}  # the epochs bind here, never the clock
    seen = []
    result = tfp_realnvp.fit(rows, tmp_path / "run", settings=settings,
                             on_epoch=lambda record: seen.append(record))
    # A full pass would be 3600 // 16 = 225 steps; the cap makes each epoch 3.
    assert result.metrics["steps_per_epoch"] == 3 and result.metrics["epochs_run"] == 2
    assert [r.epoch for r in seen] == [1, 2] and seen[-1].flow is result.flow
    assert "flow" not in result.metrics["history"][0]
    budget = tfp_realnvp.fit(rows, tmp_path / "budget", on_epoch=None,
                             settings={**settings, "epochs": 400, "time_budget": 1e-3})
    assert budget.metrics["epochs_run"] == 1 and budget.metrics["stop_reason"] == "time_budget"
    chosen = auto.choose(1_000_000, 10)
    assert chosen.train.max_steps_per_epoch == auto.MAX_STEPS_PER_EPOCH
    assert "max_steps_per_epoch" in chosen.reasons


def test_big_table_run_reports_every_step(tmp_path):
    figures = bigtable.run_big_table(
        rows=600, columns=3, time_budget=0.5, workdir=tmp_path,
        settings={"hidden_units": 8, "num_couplings": 2, "ensemble_size": 1,
                  "coupling": "affine", "blend": False, "max_steps_per_epoch": 2, "epochs": 3})
    for field in ("read_csv_s", "read_npy_s", "fit_s", "training_s", "evaluate_s",
                  "sample_s", "evaluate_rows_per_s", "sample_rows_per_s", "csv_mb"):
        assert positive_finite(figures[field]), field
    assert figures["steps_per_epoch"] == 2 and figures["samples_finite"]
    assert math.isfinite(figures["mean_nll"]) and figures["rows"] == 600
    assert list(tmp_path.iterdir()) == []  # the temporary files are gone
