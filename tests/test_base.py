"""The Gaussian-mixture base: chosen on held-out rows, and the fresh flow *is* the mixture."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import auto, base_fit
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.tables import make_toy
from tfp_realnvp.training.distribute import make_strategy
from tfp_realnvp.training.trainer import Trainer

tfd = tfp.distributions


def prepared_for(rows, members: int, context=None):
    choice = auto.choose(*rows.shape)
    flow = choice.flow.replace(ensemble_size=members, mixing="lu" if members > 1 else "reverse",
                               num_couplings=2, hidden_units=8)
    train = choice.train.replace(epochs=1)
    return flow, train, prepare_lib.prepare(rows, context, flow, train)


@pytest.mark.parametrize("members", [1, 3])
def test_a_fresh_flow_is_the_mixture_fitted_in_data_units(members):
    rows = make_toy("circles", 800, 0.05, 0)
    flow_config, train_config, prepared = prepared_for(rows, members)
    base = base_fit.choose_base(prepared, 0, seed=0)
    assert base.components > 1 and len(base.mixtures) == members
    flow_config = flow_config.replace(event_dim=2, base_components=base.components,
                                      **prepared.data_map)
    trainer = Trainer(flow_config, train_config, prepared, make_strategy())
    trainer.set_fold_maps()
    trainer.set_base_mixtures(base.mixtures)
    for member, data in enumerate(prepared.members):
        points = data.validation_events
        if members == 1:
            got = trainer.flow.log_prob(points).numpy()
        else:
            got = trainer.stacked.log_prob(trainer.flow.per_member(points)).numpy()[:, member]
        want = base.mixtures[member].log_prob(points)
        np.testing.assert_allclose(got, want, atol=2e-4 * max(1.0, np.abs(want).max()))
    if members > 1:  # each member its own mixture, fitted on its own rows
        assert not np.allclose(base.mixtures[0].means, base.mixtures[1].means)


def test_held_out_rows_choose_the_number_of_components():
    rings = make_toy("circles", 1500, 0.05, 0)
    _, _, prepared = prepared_for(rings, 1)
    chosen = base_fit.choose_base(prepared, 0, seed=0)
    scores = chosen.validation_nll
    assert chosen.components >= 8  # two rings: many components
    assert scores[chosen.components] == min(scores.values())
    assert scores[chosen.components] < scores[1] - 0.5
    assert "held-out NLL" in chosen.reason()

    gaussian = np.random.default_rng(0).multivariate_normal([1, -2], [[2, 0.8], [0.8, 1]], 1500)
    _, _, prepared = prepared_for(gaussian.astype(np.float32), 1)
    chosen = base_fit.choose_base(prepared, 0, seed=0)
    assert chosen.validation_nll[chosen.components] > chosen.validation_nll[1] - 0.01
    # Few rows allow few components: K * 2 (D + 1) fitting rows at most.
    _, _, prepared = prepared_for(rings[:40], 1)
    fitting_rows = len(prepared.members[0].train_events)
    tried = base_fit.choose_base(prepared, 0, seed=0).validation_nll
    assert max(tried) <= fitting_rows // 6 < 8 and 1 in tried


def test_a_conditional_flow_refuses_a_mixture_base():
    rows = make_toy("moons", 200, 0.05, 0)
    context = rows[:, :1] * 2
    _, _, prepared = prepared_for(rows, 1, context=context)
    assert base_fit.choose_base(prepared, 0, seed=0).components == 1
    with pytest.raises(ConfigError, match="conditional flow keeps the standard Normal base"):
        base_fit.choose_base(prepared, 3, seed=0)
    with pytest.raises(ConfigError, match="'base_components' must be 1"):
        tfp_realnvp.FlowConfig(context_dim=2, base_components=2)


def test_fit_starts_at_the_mixture_records_it_and_loads_it(tmp_path):
    rows = make_toy("circles", 1000, 0.05, 1)
    result = tfp_realnvp.fit(rows, tmp_path / "run", settings={
        "epochs": 2, "num_couplings": 2, "hidden_units": 8, "time_budget": 600,
        "jit_compile": False, "base_components": 0})
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    components = recorded["flow"]["base_components"]
    assert components > 1
    assert "held-out NLL" in recorded["auto"]["reasons"]["base_components"]
    assert recorded["auto"]["given"] == sorted([
        "epochs", "num_couplings", "hidden_units", "time_budget", "jit_compile",
        "base_components"])
    # Epoch 0 is the mixture fitted on the training split: far below the Gaussian start.
    start = result.metrics["initial_validation_nll"]
    assert start < 1.2  # two rings' Gaussian: about 1.65 nats; the mixture about 0.8
    loaded = tfp_realnvp.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.log_prob(rows[:64]).numpy(),
                               result.flow.log_prob(rows[:64]).numpy(), rtol=1e-5, atol=1e-5)
    samples = loaded.sample(500, seed=[0, 1]).numpy()
    assert np.all(np.isfinite(samples))
    radii = np.linalg.norm(samples, axis=1)  # the rings: radii near 0.5 and 1, few at 0
    assert np.mean(radii < 0.3) < 0.1


@pytest.mark.parametrize("batch", [[], [3]])
def test_mixture_weights_draw_what_tfp_categorical_draws(batch):
    """QuietCategorical (no int32 transpose: oneDNN logs an ERROR line for one) draws the
    same categories as tfd.Categorical from the same seed, with its batch shape."""
    from tfp_realnvp.base import QuietCategorical

    logits = tf.math.log(tf.constant([0.1, 0.3, 0.6]) * tf.ones(batch + [3]))
    quiet = QuietCategorical(logits=logits).sample([4, 50], seed=tf.constant([1, 2]))
    tfp_draws = tfd.Categorical(logits=logits).sample([4, 50], seed=tf.constant([1, 2]))
    assert quiet.shape == [4, 50, *batch] and quiet.dtype == tf.int32
    np.testing.assert_array_equal(quiet, tfp_draws)
