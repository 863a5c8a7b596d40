"""Training: NLL falls, checkpoints, resume, seeds, MirroredStrategy, run directory."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import FlowConfig, TrainConfig, build_flow
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp import training as train_lib
from tfp_realnvp.errors import DataError
from tfp_realnvp.scoring import mean_nll
from tfp_realnvp.tables import make_toy

SMALL_FLOW = FlowConfig(num_couplings=4, hidden_units=32, num_hidden_layers=2)
# For what needs a run, not a good fit (seeds, strategies): its graphs trace faster.
TINY_FLOW = FlowConfig(num_couplings=2, hidden_units=8, num_hidden_layers=1)


def small_train(**changes) -> TrainConfig:
    values = dict(epochs=6, batch_size=64, learning_rate=5e-3, patience=50, checkpoint_every=2)
    values.update(changes)
    return TrainConfig(**values)


def test_end_to_end_training_lowers_held_out_nll(tmp_path):
    data = make_toy("moons", 1500, 0.05, seed=0)
    test = make_toy("moons", 2000, 0.05, seed=99)
    untrained = build_flow(SMALL_FLOW.replace(
        data_shift=data.mean(0).tolist(), data_scale=data.std(0).tolist()))
    start = mean_nll(untrained, test)
    result = train_lib.fit(data, tmp_path / "run", SMALL_FLOW,
                           small_train(epochs=40, batch_size=128, learning_rate=1e-2))
    end = mean_nll(result.flow, test)
    assert start > 1.8
    assert end < start - 0.8, (start, end)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and len(metrics["history"]) == metrics["epochs_run"]
    first, best = metrics["history"][0], metrics["best_validation_nll"]
    assert best < first["validation_nll"] - 0.5
    assert metrics["history"][metrics["best_epoch"] - 1]["validation_nll"] == pytest.approx(best)


@pytest.fixture(scope="module")
def seeded_runs(tmp_path_factory):
    """(data, [(run directory, FitResult)]) of three tiny runs on one table: seeds 7, 7, 8.
    Read-only: a test that writes into a run trains its own."""
    data = make_toy("moons", 300, 0.05, seed=3)
    root = tmp_path_factory.mktemp("seeded")
    return data, [(root / f"run{i}", train_lib.fit(data, root / f"run{i}", TINY_FLOW,
                                                   small_train(epochs=3, seed=seed)))
                  for i, seed in enumerate([7, 7, 8])]


def test_run_directory_reloads_the_best_weights(seeded_runs):
    data, [(run_dir, result), *_] = seeded_runs
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints", "config.json", "metrics.json", "model"]
    reloaded = tfp_realnvp.load(run_dir)
    x = tf.constant(data[:50])
    np.testing.assert_array_equal(reloaded.log_prob(x), result.flow.log_prob(x))
    _, validation = prepare_lib.train_validation_split(data, 0.1, 7)  # the run's seed
    assert mean_nll(reloaded, validation) == pytest.approx(
        result.metrics["best_validation_nll"], abs=1e-5)


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    data = make_toy("moons", 200, 0.05, seed=2)
    # A learning rate this high makes validation NLL bounce; patience 2 stops soon after.
    result = train_lib.fit(data, tmp_path / "run", TINY_FLOW,
                           small_train(epochs=200, patience=2, learning_rate=0.05,
                                       schedule="constant"))
    metrics = result.metrics
    assert metrics["stopped_early"] and metrics["epochs_run"] < 200
    assert metrics["epochs_run"] == metrics["best_epoch"] + 2
    # Epoch 0 (the Gaussian start) is a candidate too.
    history = [metrics["initial_validation_nll"]] + [h["validation_nll"]
                                                      for h in metrics["history"]]
    assert metrics["best_validation_nll"] == pytest.approx(min(history))
    assert history[metrics["best_epoch"]] == pytest.approx(min(history))


def test_same_seed_same_run_other_seed_other_run(seeded_runs):
    _, runs = seeded_runs
    histories = [[h["validation_nll"] for h in r.metrics["history"]] for _, r in runs]
    assert histories[0] == histories[1]
    assert histories[0] != histories[2]


def test_resume_continues_from_the_checkpoint(tmp_path):
    data = make_toy("moons", 300, 0.05, seed=4)
    run_dir = tmp_path / "run"

    def interrupt(record):
        if record.epoch == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lib.fit(data, run_dir, TINY_FLOW, small_train(), on_epoch=interrupt)
    assert not (run_dir / "model").exists()
    interrupted = json.loads((run_dir / "metrics.json").read_text())
    assert interrupted["status"] == "running" and interrupted["epochs_run"] == 4

    resumed = train_lib.resume(run_dir, data)
    history = resumed.metrics["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert history[:4] == interrupted["history"]
    steps = resumed.metrics["steps_per_epoch"] * 6
    trainer_iterations = tf.train.load_variable(
        str(run_dir / "checkpoints"), "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")
    assert trainer_iterations == steps


def test_mirrored_strategy_matches_the_default_strategy(tmp_path):
    data = make_toy("moons", 600, 0.05, seed=5)
    strategy = train_lib.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    # One per process: two MirroredStrategy objects training in one process collide on
    # their collective ops' keys.
    assert train_lib.make_strategy("mirrored") is strategy
    config = small_train(epochs=3, batch_size=128)
    flow = TINY_FLOW.replace(hidden_units=16)
    mirrored = train_lib.fit(data, tmp_path / "m", flow, config, strategy=strategy)
    default = train_lib.fit(data, tmp_path / "d", flow, config)
    assert mirrored.metrics["num_replicas"] == 2 and default.metrics["num_replicas"] == 1
    np.testing.assert_allclose(
        [h["validation_nll"] for h in mirrored.metrics["history"]],
        [h["validation_nll"] for h in default.metrics["history"]], atol=2e-4)
    assert mirrored.metrics["history"][-1]["validation_nll"] < (
        mirrored.metrics["history"][0]["validation_nll"])


def test_existing_run_directory_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        train_lib.fit(make_toy("moons", 100), run_dir, SMALL_FLOW, small_train())
    assert [p.name for p in run_dir.iterdir()] == ["keep.txt"]


def test_bad_data_writes_nothing(tmp_path):
    bad = make_toy("moons", 100)
    bad[17, 1] = np.nan
    with pytest.raises(DataError, match="row 18 holds NaN"):
        train_lib.fit(bad, tmp_path / "run", SMALL_FLOW, small_train())
    assert not (tmp_path / "run").exists()


def test_train_config_is_checked():
    with pytest.raises(ValueError, match="'schedule' must be one of \\('cosine', 'constant'\\)"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="'validation_fraction' must be in \\(0, 1\\); got 1.5"):
        TrainConfig(validation_fraction=1.5)


@pytest.mark.parametrize("config", [FlowConfig(
    num_couplings=2, hidden_units=16, num_hidden_layers=2), FlowConfig(
    coupling="spline", num_couplings=2, hidden_units=16, num_hidden_layers=2,
    activation="tanh")], ids=["affine", "spline"])
def test_jit_compiled_step_trains_like_the_plain_one(tmp_path, config):
    data = make_toy("moons", 300, seed=6)
    plain = train_lib.fit(data, tmp_path / "plain", config, small_train(epochs=3))
    jit = train_lib.fit(data, tmp_path / "jit", config, small_train(epochs=3, jit_compile=True))
    first = [h["validation_nll"] for h in plain.metrics["history"]]
    second = [h["validation_nll"] for h in jit.metrics["history"]]
    np.testing.assert_allclose(second, first, atol=5e-3)
    assert second[-1] < second[0]


def test_each_member_is_validated_on_its_own_fold_only():
    """Folds of unequal sizes: member m's validation NLL is its mean NLL over its own held-out
    rows, the padding that evens the folds out counts for nothing."""
    rng = np.random.default_rng(0)
    folds = [rng.standard_normal((n, 2)).astype(np.float32) for n in (10, 11, 13)]
    prepared = prepare_lib.PreparedData(tuple(prepare_lib.MemberData(
        rng.standard_normal((40, 2)).astype(np.float32), fold) for fold in folds))
    config = SMALL_FLOW.replace(event_dim=2, ensemble_size=3)
    trainer = train_lib.Trainer(config, small_train(), prepared, train_lib.make_strategy())
    randomise = np.random.default_rng(1)
    for variable in trainer.variables:
        variable.assign(0.3 * randomise.standard_normal(variable.shape).astype(np.float32))
    got = trainer.validation_nll().numpy()
    # Every member scores every fold; member m's own fold is column m.
    expected = [-np.mean(trainer.stacked.log_prob(trainer.flow.per_member(fold))[:, m])
                for m, fold in enumerate(folds)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert len(set(np.round(got, 4))) == 3  # distinct members, distinct folds


def test_the_cli_learns_the_planned_epochs_from_fit_which_alone_chooses(tmp_path, monkeypatch):
    """`fit` is the only caller of `auto.choose`; the CLI's progress bar takes its length
    from `EpochMetrics.planned_epochs` (not a field of metrics.json's history)."""
    import click
    from click.testing import CliRunner

    from tfp_realnvp import auto
    from tfp_realnvp import cli as cli_lib
    from tfp_realnvp.cli import cli

    calls = []
    real = auto.choose

    def counted(*args, **kwargs):
        calls.append(args)
        chosen = real(*args, **kwargs)
        return dataclasses.replace(chosen, train=chosen.train.replace(epochs=2))

    monkeypatch.setattr(auto, "choose", counted)
    result = CliRunner().invoke(cli, ["fit", "--out", str(tmp_path / "run"), "--num-points",
                                      "300", "--num-couplings", "2", "--hidden-units", "8",
                                      "--ensemble-size", "1", "--no-jit-compile"])
    assert result.exit_code == 0, result.output
    assert calls == [(300, 2)]
    lengths = []
    real_bar = click.progressbar

    def recorded_bar(*args, **kwargs):
        bar = real_bar(*args, **kwargs)
        lengths.append(bar)
        return bar

    monkeypatch.setattr(click, "progressbar", recorded_bar)
    # the bar of `fit` without --epochs
    with cli_lib.runtime.progress(None, quiet=True) as on_epoch:
        on_epoch(train_lib.EpochMetrics(1, 1.0, 1.0, 0.1, planned_epochs=7))
    assert lengths[0].length == 7 and lengths[0].pos == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and "planned_epochs" not in metrics["history"][0]
