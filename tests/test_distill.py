"""Distillation: a student flow trained on an ensemble's draws, stopped on real rows."""

import numpy as np
import pytest

import tfp_realnvp
from tfp_realnvp import FlowConfig, build_flow
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
