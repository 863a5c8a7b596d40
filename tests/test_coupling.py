"""AffineCoupling specifics: context, bounded log-scale, one network call, tracking.

The contract every flow configuration meets is in test_flow_suite.py."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import randomise_weights

from tfp_realnvp import AffineCoupling, FlowConfig, build_flow, context_kwargs
from tfp_realnvp.bijectors.spline import OneHotSpline, SplineCoupling
from tfp_realnvp.networks import make_conditioner

tfb = tfp.bijectors

def test_context_broadcasts_and_changes_the_density():
    flow = build_flow(FlowConfig(num_couplings=2, hidden_units=8, context_dim=2))
    randomise_weights(flow, seed=2)
    x = tf.random.stateless_normal([5, 2], seed=[4, 4])
    one_context = tf.constant([[0.3, -1.0]])
    tiled = tf.tile(one_context, [5, 1])
    lp_broadcast = flow.log_prob(x, **context_kwargs(flow, one_context))
    lp_tiled = flow.log_prob(x, **context_kwargs(flow, tiled))
    np.testing.assert_allclose(lp_broadcast, lp_tiled, rtol=1e-6)
    other = flow.log_prob(x, **context_kwargs(flow, tf.constant([[2.0, 1.0]])))
    assert np.max(np.abs(other - lp_tiled)) > 1e-3
    samples = flow.sample(5, seed=[1, 1], **context_kwargs(flow, tiled))
    assert samples.shape == [5, 2]


def test_conditional_coupling_requires_context():
    flow = build_flow(FlowConfig(num_couplings=2, hidden_units=8, context_dim=2))
    with pytest.raises(ValueError, match="is conditional: pass context="):
        flow.log_prob(tf.zeros([1, 2]))


def test_log_scale_is_bounded():
    net = make_conditioner(1, 2, hidden_units=4, num_hidden_layers=1)
    for variable in net.trainable_variables:
        variable.assign(tf.fill(variable.shape, 50.0))
    coupling = AffineCoupling(event_dim=2, num_conditioning=1, conditioner=net,
                              log_scale_bound=1.5)
    x = tf.constant([[3.0, 1.0], [-2.0, 0.5]])
    fldj = coupling.forward_log_det_jacobian(x, event_ndims=1)
    assert np.all(np.abs(fldj) <= 1.5) and np.all(np.abs(fldj) > 1.4)
    assert np.all(np.isfinite(coupling.forward(x)))


def test_fresh_flow_is_the_standardised_gaussian():
    flow = build_flow(FlowConfig(event_dim=2, data_shift=[1.0, -1.0], data_scale=[2.0, 0.5]))
    x = tf.constant([[0.0, 0.0], [1.0, -1.0], [3.0, 2.0]])
    reference = tfp.distributions.MultivariateNormalDiag([1.0, -1.0], [2.0, 0.5])
    np.testing.assert_allclose(flow.log_prob(x), reference.log_prob(x), rtol=1e-6)


def test_log_prob_runs_each_network_once():
    """The greedy cache hands the inverse's log-det to ildj: one network call per coupling."""
    config = FlowConfig(event_dim=3, num_couplings=4, hidden_units=8, num_hidden_layers=2)
    flow = build_flow(config)
    graph = tf.function(flow.log_prob).get_concrete_function(
        tf.TensorSpec([None, 3], tf.float32)).graph
    matmuls = [op for op in graph.get_operations() if op.type == "MatMul"]
    assert len(matmuls) == config.num_couplings * (config.num_hidden_layers + 1)


def test_constructor_arguments_are_checked():
    net = make_conditioner(1, 2, 4, 1)
    with pytest.raises(ValueError, match="'num_conditioning' must be in \\[1, 1\\]; got 2"):
        AffineCoupling(event_dim=2, num_conditioning=2, conditioner=net)
    with pytest.raises(ValueError, match="'log_scale_bound' must be > 0; got 0"):
        AffineCoupling(event_dim=2, num_conditioning=1, conditioner=net, log_scale_bound=0)
    coupling = AffineCoupling(event_dim=2, num_conditioning=1, conditioner=net)
    with pytest.raises(ValueError, match="expected events of width 2"):
        coupling.forward(tf.zeros([4, 3]))


def test_tf_keras_network_is_tracked_and_keras3_is_not():
    """Why networks.py uses tf-keras: a Keras 3 model inside a bijector is invisible."""
    import keras

    tracked = AffineCoupling(2, 1, make_conditioner(1, 2, 4, 1))
    assert len(tracked.trainable_variables) == 4

    keras3 = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    untracked = AffineCoupling(2, 1, keras3)
    assert len(untracked.trainable_variables) == 0


def spline_couplings(seed: int = 0) -> dict[str, SplineCoupling]:
    """A spline coupling per direction, sharing one randomised conditioner (one spline)."""
    net = make_conditioner(1, 23, hidden_units=16, num_hidden_layers=1)
    rng = np.random.default_rng(seed)
    for variable in net.trainable_variables:
        variable.assign(rng.standard_normal(variable.shape).astype(np.float32))
    return {direction: SplineCoupling(event_dim=2, num_conditioning=1, conditioner=net,
                                      direction=direction)
            for direction in ("density", "sampling")}


def test_spline_directions_are_each_others_inverse():
    """`density` evaluates the spline on the way to the latent (log_prob, training) and
    solves it to sample; `sampling` the reverse. Same spline, so one's inverse is the
    other's forward, log-dets included, and density's log_prob never solves the spline."""
    couplings = spline_couplings()
    x = tf.random.stateless_normal([256, 2], seed=[3, 4]) * 2.0
    density, sampling = couplings["density"], couplings["sampling"]
    np.testing.assert_allclose(density.inverse(x), sampling.forward(x), atol=1e-5)
    np.testing.assert_allclose(density.inverse_log_det_jacobian(x, event_ndims=1),
                               sampling.forward_log_det_jacobian(x, event_ndims=1),
                               atol=1e-4)
    np.testing.assert_allclose(density.forward(x), sampling.inverse(x), atol=1e-5)
    graph = tf.function(density.inverse).get_concrete_function(
        tf.TensorSpec([None, 2], tf.float32)).graph
    ops = graph.get_operations()
    assert not any(op.type == "Sqrt" for op in ops)  # the closed form...
    assert all(t.dtype != tf.float64 for op in ops for t in op.outputs)  # ...in float32
    graph = tf.function(density.forward).get_concrete_function(
        tf.TensorSpec([None, 2], tf.float32)).graph
    assert any(op.type == "Sqrt" and op.outputs[0].dtype == tf.float64
               for op in graph.get_operations())  # the quadratic solve, in float64


def test_legacy_spline_configs_keep_their_direction():
    """A config written before `spline_direction` existed ran the spline latent -> data."""
    written = FlowConfig(coupling="spline").to_dict()
    del written["spline_direction"]
    assert FlowConfig.from_dict(written).spline_direction == "sampling"
    assert FlowConfig.from_dict(FlowConfig(coupling="spline").to_dict()).spline_direction \
        == "density"


def test_spline_inverse_is_differentiable_at_the_knots():
    """TFP's inverse returns a constant 0 where y is exactly a knot, so its gradient there
    is 0; ours keeps the true slope dx/dy = 1 / RQS'(x)."""
    widths = tf.constant([[0.5, 1.5, 2.0, 4.0]])
    heights = tf.constant([[2.0, 1.0, 1.0, 4.0]])
    spline = OneHotSpline(widths, heights, tf.constant([[0.7, 1.3, 2.0]]), range_min=-4.0)
    y = tf.constant([[-2.0, -1.0, 0.0, 1.5]])  # knots and a point inside a bin, in y
    with tf.GradientTape() as tape:
        tape.watch(y)
        x = spline.inverse(y)
    slope = tape.gradient(x, y)
    expected = tf.exp(-spline.forward_log_det_jacobian(x, event_ndims=0))
    np.testing.assert_allclose(slope, expected, rtol=1e-5)
    np.testing.assert_allclose(x[:, :3], [[-3.5, -2.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("config, per_dim", [
    (FlowConfig(event_dim=5), 2),
    (FlowConfig(event_dim=5, coupling="spline", spline_bins=5), 14),
])
def test_each_coupling_kind_gives_its_conditioners_widths(config, per_dim):
    """One rule per kind: the network `make_coupling` builds has the widths the class
    states, and the coupling reshapes its output with the same count."""
    from tfp_realnvp.flow import COUPLING_KINDS, make_coupling

    kind = COUPLING_KINDS[config.coupling]
    assert kind.conditioner_inputs(2, 3) == 5
    assert kind.conditioner_outputs(3, config) == 3 * per_dim
    coupling = make_coupling(config, layer=0)
    assert type(coupling) is kind and coupling.params_per_dim == per_dim
    assert coupling.conditioner.input_shape == (None, 2)
    assert coupling.conditioner.output_shape == (None, 3 * per_dim)
