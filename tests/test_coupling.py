"""AffineCoupling and the flow's bijector: inverse, log-dets, shapes, tracking."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import randomise_weights

from tfp_realnvp import AffineCoupling, FlowConfig, build_flow, context_kwargs
from tfp_realnvp.networks import make_conditioner

tfb = tfp.bijectors

CONFIGS = [
    dict(num_couplings=2, hidden_units=8, num_hidden_layers=1),
    dict(num_couplings=4, hidden_units=16, num_hidden_layers=2, activation="tanh",
         permutation="random", permutation_seed=3),
    dict(num_couplings=3, hidden_units=8, num_hidden_layers=1, log_scale_bound=0.5,
         context_dim=2),
]


def _flow(dim: int, config: dict):
    config = FlowConfig(event_dim=dim, data_shift=[0.5] * dim,
                        data_scale=[2.0 + i for i in range(dim)], **config)
    flow = build_flow(config)
    randomise_weights(flow, seed=dim)
    return config, flow


def _kwargs(config: FlowConfig, flow, batch: int):
    if not config.context_dim:
        return {}
    context = tf.random.stateless_normal([batch, config.context_dim], seed=[7, 7])
    return context_kwargs(flow, context)["bijector_kwargs"]


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("config_index", range(len(CONFIGS)))
def test_bijector_contract(dim, config_index):
    config, flow = _flow(dim, CONFIGS[config_index])
    bijector = flow.bijector
    x = tf.random.stateless_normal([16, dim], seed=[1, dim])
    kwargs = _kwargs(config, flow, 16)

    y = bijector.forward(x, **kwargs)
    x_back = bijector.inverse(tf.identity(y), **kwargs)  # identity: defeat the cache
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(y))
    assert not np.allclose(y, x * config.data_scale + config.data_shift, atol=1e-3)

    fldj = bijector.forward_log_det_jacobian(x, event_ndims=1, **kwargs)
    ildj = bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=1, **kwargs)
    np.testing.assert_allclose(fldj, -ildj, atol=1e-4)

    # log|det J| from autodiff, event by event: the Jacobian of a [16, D] -> [16, D] map is
    # block-diagonal over the batch, batch_jacobian gives the [16, D, D] blocks.
    with tf.GradientTape() as tape:
        tape.watch(x)
        y_again = bijector.forward(tf.identity(x), **kwargs)  # a cache miss, on the tape
    jacobian = tape.batch_jacobian(y_again, x)
    _, logdet = np.linalg.slogdet(jacobian.numpy().astype(np.float64))
    np.testing.assert_allclose(fldj, logdet, atol=1e-4)


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("config_index", range(len(CONFIGS)))
def test_gradients_reach_every_variable(dim, config_index):
    config, flow = _flow(dim, CONFIGS[config_index])
    x = tf.random.stateless_normal([32, dim], seed=[2, dim]) * 2.0
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(flow.log_prob(x, **context_kwargs_or_empty(config, flow, 32)))
    grads = tape.gradient(loss, flow.trainable_variables)
    expected = config.num_couplings * 2 * (config.num_hidden_layers + 1)
    assert len(flow.trainable_variables) == expected
    for variable, grad in zip(flow.trainable_variables, grads, strict=True):
        assert grad is not None, variable.name
        assert np.all(np.isfinite(grad)), variable.name
        assert np.any(grad.numpy() != 0), variable.name


def context_kwargs_or_empty(config, flow, batch):
    kwargs = _kwargs(config, flow, batch)
    return {"bijector_kwargs": kwargs} if kwargs else {}


@pytest.mark.parametrize("batch_shape", [[], [3], [2, 4]])
def test_any_batch_shape(batch_shape):
    config, flow = _flow(3, CONFIGS[1])
    x = tf.random.stateless_normal(batch_shape + [3], seed=[3, 3])
    log_prob = flow.log_prob(x)
    assert log_prob.shape == batch_shape
    flat = flow.log_prob(tf.reshape(x, [-1, 3]))
    np.testing.assert_allclose(tf.reshape(log_prob, [-1]), flat, rtol=1e-5, atol=1e-5)
    assert flow.sample(batch_shape, seed=[1, 2]).shape == batch_shape + [3]


def test_context_broadcasts_and_changes_the_density():
    config, flow = _flow(2, CONFIGS[2])
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
    _, flow = _flow(2, CONFIGS[2])
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
