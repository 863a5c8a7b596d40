"""Distillation: a student flow trained on an ensemble's draws, stopped on real rows."""

import numpy as np
import pytest

import tfp_realnvp
from tfp_realnvp import FlowConfig, build_flow
from tfp_realnvp.blend import blended_flow
from tfp_realnvp.rundir import RunDir, find_model
from tfp_realnvp.training.distill import DRAW_CHUNK, distill, draw

TEACHER = FlowConfig(event_dim=3, num_couplings=2, hidden_units=8, ensemble_size=3,
                     data_shift=[1.0, -2.0, 0.5], data_scale=[2.0, 1.0, 0.5])


def test_draws_are_seeded_and_chunked():
    flow = build_flow(TEACHER)
    rows = draw(flow, DRAW_CHUNK + 7, seed=3)
    assert rows.shape == (DRAW_CHUNK + 7, 3) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[:50], draw(flow, 50, seed=3))
    assert not np.allclose(rows[:50], draw(flow, 50, seed=4))


def test_the_student_is_one_flow_of_a_members_architecture_in_a_complete_run(tmp_path):
    teacher = build_flow(TEACHER)
    real = draw(teacher, 120, seed=9)
    result = distill(teacher, TEACHER, real, tmp_path / "student", num_draws=600,
                     train_changes={"epochs": 3, "batch_size": 64})
    stored = RunDir(tmp_path / "student").read_config()
    assert stored.flow.ensemble_size == 1 and stored.flow.hidden_units == 8
    assert stored.flow.num_couplings == 2 and stored.train.epochs == 3
    assert stored.data["num_train"] == 600 and stored.data["num_validation"] == 120
    assert stored.auto == {"distilled_from": 3}
    assert result.metrics["epochs_run"] == 3
    assert np.isfinite(result.metrics["best_validation_nll"])
    loaded = find_model(tmp_path / "student").load()
    np.testing.assert_allclose(loaded.log_prob(real).numpy(), result.flow.log_prob(real).numpy(),
                               rtol=1e-5, atol=1e-5)
    assert len(tfp_realnvp.info.describe(tmp_path / "student")["flow"]) > 0


def test_a_conditional_teacher_is_refused(tmp_path):
    config = FlowConfig(event_dim=2, num_couplings=2, hidden_units=8, ensemble_size=2,
                        context_dim=1)
    with pytest.raises(ValueError, match="distill takes an unconditional teacher"):
        distill(build_flow(config), config, np.zeros((10, 2), np.float32), tmp_path / "s")
    assert not (tmp_path / "s").exists()


def table(rows=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 1))
    return np.hstack([x, x**2 + 0.3 * rng.normal(size=(rows, 1)),
                      rng.normal(size=(rows, 1))]).astype(np.float32)


TINY = ["--coupling", "affine", "--ensemble-size", "2", "--num-couplings", "2",
        "--hidden-units", "8", "--epochs", "2", "--no-jit-compile", "--quiet"]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    from click.testing import CliRunner

    from tfp_realnvp.cli import cli

    root = tmp_path_factory.mktemp("distilled")
    np.save(root / "rows.npy", table())
    result = CliRunner().invoke(cli, ["fit", "--data", str(root / "rows.npy"), "--out",
                                      str(root / "run"), "--distill", *TINY])
    assert result.exit_code == 0, result.output
    assert "distilled: one student flow on 20,000 draws of the 2 members in " in result.output
    return root


def test_fit_distill_serves_the_student_and_keeps_the_ensemble(distilled, tmp_path):
    from click.testing import CliRunner

    from tfp_realnvp.bijectors.ensemble import FlowEnsemble
    from tfp_realnvp.cli import cli

    run = distilled / "run"
    metrics = RunDir(run).read_metrics()["distilled"]
    assert metrics["members"] == 2 and metrics["num_draws"] == 20000
    assert metrics["real_rows"] == 300 and metrics["epochs_run"] <= 2
    assert np.isfinite(metrics["student_nll_real_rows"])
    assert find_model(run).config.ensemble_size == 1
    notes = tfp_realnvp.info.describe(run)["notes"]
    assert any(n.startswith("distilled: serves one student flow trained on 20,000 rows drawn "
                            "from the 2-member ensemble") for n in notes)
    assert not isinstance(tfp_realnvp.load(run), FlowEnsemble)
    teacher = find_model(run).__class__(kind="run", path=run, ensemble=True).load()
    assert isinstance(blended_flow(teacher), FlowEnsemble)  # the blended ensemble
    runner = CliRunner()
    served = runner.invoke(cli, ["export", str(run), str(tmp_path)])
    assert served.exit_code == 0 and "price: 1 member, " in served.output
    whole = runner.invoke(cli, ["export", str(run), str(tmp_path), "--ensemble"])
    assert whole.exit_code == 0 and "price: 2 members, " in whole.output
    assert find_model(tmp_path / "realnvp" / "1").config.ensemble_size == 1
    assert find_model(tmp_path / "realnvp" / "2").config.ensemble_size == 2
    x = table(20, seed=5)
    np.testing.assert_allclose(tfp_realnvp.load(tmp_path / "realnvp" / "1").log_prob(x),
                               tfp_realnvp.load(run).log_prob(x), rtol=1e-5, atol=1e-5)


def test_no_distill_trains_no_student_and_resume_without_it_drops_a_stale_one(
        distilled, tmp_path):
    import shutil

    from click.testing import CliRunner

    from tfp_realnvp.cli import cli

    runner = CliRunner()
    plain = runner.invoke(cli, ["fit", "--data", str(distilled / "rows.npy"), "--out",
                                str(tmp_path / "plain"), "--no-distill", *TINY])
    assert plain.exit_code == 0, plain.output
    assert not (tmp_path / "plain" / "student").exists()
    assert find_model(tmp_path / "plain").config.ensemble_size == 2
    shutil.copytree(distilled / "run", tmp_path / "run")
    tfp_realnvp.resume(tmp_path / "run", table(), epochs=3, distill=False)
    assert not (tmp_path / "run" / "student").exists()
    assert "distilled" not in RunDir(tmp_path / "run").read_metrics()
    assert find_model(tmp_path / "run").config.ensemble_size == 2


def test_distillation_is_opt_in_whatever_the_table():
    from tfp_realnvp import auto

    for rows, dim, conditional in ((10000, 5, False), (10000, 5, True), (1000, 5, False)):
        choice = auto.choose(rows, dim, conditional=conditional)
        assert not choice.train.distill and "distill" not in choice.reasons
