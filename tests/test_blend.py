"""The flow blended with a Gaussian mixture: w p_flow + (1 - w) p_mix, w chosen on held-out
rows after training."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import auto, base_fit, blend_fit
from tfp_realnvp.base_fit import Mixture
from tfp_realnvp.blend import MixtureBlend
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.tables import make_toy

tfd = tfp.distributions

SMALL = {"epochs": 3, "num_couplings": 2, "hidden_units": 8, "time_budget": 600,
         "jit_compile": False}


def test_the_weight_is_the_one_with_the_best_held_out_likelihood():
    rng = np.random.default_rng(0)
    flow, mixture = rng.normal(-1.0, 1.0, 400), rng.normal(-1.0, 1.0, 400)
    w = blend_fit.choose_weight(flow, mixture)
    scores = [np.logaddexp(np.log(v) + flow, np.log1p(-v) + mixture).mean()
              for v in (0.2, 0.5, 0.8)]
    assert 0.2 < w < 0.8 and np.logaddexp(np.log(w) + flow,
                                          np.log1p(-w) + mixture).mean() >= max(scores)
    assert blend_fit.choose_weight(flow, mixture - 50.0) == 1.0  # a useless mixture
    assert blend_fit.choose_weight(flow - 50.0, mixture) == 0.0  # a useless flow
    with_nan = flow.copy()
    with_nan[0] = np.nan  # a row the flow cannot score: the mixture must cover it
    assert blend_fit.choose_weight(with_nan, mixture) < 1.0


def test_the_blended_mixture_averages_mixtures_from_different_starts():
    rows, fresh = make_toy("circles", 3000, 0.05, 1), make_toy("circles", 20000, 0.05, 7)
    single = base_fit.fit_mixture(rows, 24, seed=1)
    bag = blend_fit.bagged(rows, single, seed=1)
    assert bag.components == blend_fit.BAGS * 24
    assert bag.weights.sum() == pytest.approx(1.0)
    # Measured: 0.635 nats for one mixture, 0.624 for the average of 10.
    assert -bag.log_prob(fresh).mean() < -single.log_prob(fresh).mean() - 0.005


def test_a_blend_is_the_weighted_mixture_of_its_two_densities():
    flow = tfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=[1.0, 1.0])
    blend = MixtureBlend(flow, components=2)
    mixture = Mixture(np.array([0.3, 0.7]), np.array([[20.0, 20.0], [25.0, 20.0]]),
                      np.stack([np.eye(2), 0.5 * np.eye(2)]))
    x = np.array([[0.0, 0.1], [20.0, 20.5], [24.0, 19.0]], np.float32)
    np.testing.assert_allclose(blend.log_prob(x), flow.log_prob(x), rtol=1e-6)  # w = 1
    blend.set_blend(mixture, 0.25)
    expected = np.logaddexp(np.log(0.25) + flow.log_prob(x).numpy(),
                            np.log(0.75) + mixture.log_prob(x))
    np.testing.assert_allclose(blend.log_prob(x), expected, rtol=1e-5)
    draw = tf.function(lambda seed: blend.sample(4000, seed=seed))
    samples = draw(tf.constant([3, 4])).numpy()
    np.testing.assert_array_equal(samples, draw(tf.constant([3, 4])).numpy())
    from_mixture = np.mean(samples[:, 0] > 10)
    assert abs(from_mixture - 0.75) < 0.03
    with pytest.raises(ValueError, match="'flow_weight' must be in"):
        blend.set_blend(mixture, 1.5)


def test_auto_blends_unconditional_tables_up_to_5000_rows():
    for rows, dim in ((3000, 2), (120, 4), (5000, 30)):
        assert auto.choose(rows, dim).flow.blend
        assert "blend" in auto.choose(rows, dim).reasons
        assert not auto.choose(rows, dim, conditional=True).flow.blend
    assert not auto.choose(5001, 2).flow.blend and not auto.choose(5001, 10).flow.blend
    # 2 columns: 3 K-fold members when blended, every row held out once for the weight
    assert auto.choose(3000, 2).flow.ensemble_size == 3
    assert auto.choose(5001, 2).flow.ensemble_size == 1
    assert auto.choose(5001, 2).train.time_budget == auto.TWO_COLUMN_BUDGET
    assert auto.choose(3000, 2).train.time_budget == auto.DEFAULT_TIME_BUDGET


@pytest.mark.parametrize("members", [1, 3])
def test_fit_blends_records_the_weight_loads_and_resumes(tmp_path, members):
    rows = make_toy("circles", 900, 0.05, 2)
    result = tfp_realnvp.fit(rows, tmp_path / "run", settings={
        **SMALL, "ensemble_size": members, "mixing": "lu" if members > 1 else "reverse"})
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["flow"]["blend"] and recorded["flow"]["blend_components"] >= 1
    assert "held-out NLL" in recorded["auto"]["reasons"]["blend"]
    weight = result.metrics["blend_flow_weight"]
    assert 0.0 <= weight <= 1.0
    assert isinstance(result.flow, MixtureBlend)
    assert float(result.flow.flow_weight.numpy()) == pytest.approx(weight)
    # Three epochs of a tiny flow on two rings: the tuned mixture carries the blend.
    assert weight < 0.5
    loaded = tfp_realnvp.load(tmp_path / "run")
    np.testing.assert_allclose(loaded.log_prob(rows[:64]), result.flow.log_prob(rows[:64]),
                               rtol=1e-5, atol=1e-5)
    test = make_toy("circles", 2000, 0.05, 99)
    mixture_only = -np.mean(loaded.mixture.log_prob(test))
    assert -np.mean(loaded.log_prob(test)) < mixture_only + 0.05
    resumed = tfp_realnvp.resume(tmp_path / "run", rows, epochs=4)
    assert resumed.metrics["epochs_run"] == 4
    assert 0.0 <= resumed.metrics["blend_flow_weight"] <= 1.0


def test_a_conditional_flow_refuses_the_blend():
    with pytest.raises(ConfigError, match="'blend' must be off for a conditional flow"):
        tfp_realnvp.FlowConfig(context_dim=2, blend=True)
    rows = make_toy("moons", 300, 0.05, 0)
    with pytest.raises(ConfigError, match="'blend' must be off"):
        tfp_realnvp.fit(rows, "unused-run", context=rows[:, :1], settings={
            **SMALL, "blend": True})
