"""The flow contract, over every configuration of `conftest.FLOW_SUITE`, eager and traced.

Round trip, log-dets against the autodiff Jacobian, gradients, batch shapes, normalisation,
seeded sampling, config/checkpoint round trips; export round trips of the fewest entries
that cover every kind in the suite (through the TF1 session loader that TF Serving uses, in
a TensorFlow-only process).
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    EXPORTED,
    FLOW_SUITE,
    export_features,
    suite_config,
    suite_context,
    suite_events,
    suite_flow,
    suite_kwargs,
    suite_requests,
)
from serving_checks import assert_outputs_match, expected_outputs

import tfp_realnvp
from tfp_realnvp import FlowConfig, build_flow, context_kwargs
from tfp_realnvp.bijectors.ensemble import num_members, stacked_flow
from tfp_realnvp.rundir import restore_weights

NAMES = list(FLOW_SUITE)
MODES = ["eager", "function"]


def in_mode(fn, mode: str):
    return tf.function(fn) if mode == "function" else fn


events = suite_events


def autodiff_jacobian(bijector, chain, z) -> np.ndarray:
    """The Jacobian blocks `[rows, D, D]` of `bijector.forward` at the events `z` (`[16, D]`,
    or `[16, M, D]` for stacked members: every row an event of its own), by autodiff.

    The map is block-diagonal over the rows, so the gradient of the sum over rows of output
    column i is row n's Jacobian row i: D reverse passes give every block (eager: the
    reference does not depend on the mode under test, and tracing a `batch_jacobian` through
    an autoregressive layer's sampling loop cost 20 s)."""
    dim = z.shape[-1]
    rows = tf.reshape(z, [-1, dim])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(rows)
        out = tf.reshape(bijector.forward(tf.reshape(rows, z.shape) + 0.0, **chain), [-1, dim])
        columns = [out[:, i] for i in range(dim)]  # + 0.0 above: a cache miss
    return np.stack([tape.gradient(c, rows).numpy() for c in columns], axis=1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_log_dets_match_the_autodiff_jacobian(name, mode):
    """On the bijector that holds the weights: for an ensemble, the members stacked
    (events `[16, M, D]`, each member its own latent rows). Forward, inverse and both
    log-dets run eagerly or traced; the autodiff reference is the same in both modes."""
    config, flow = suite_flow(name)
    bijector = stacked_flow(flow).bijector
    _, chain = suite_kwargs(config, flow, [16])
    dim, members = config.event_dim, num_members(flow)
    shape = [16, dim] if members == 1 else [16, members, dim]
    z = tf.random.stateless_normal(shape, seed=[1, 2])

    forward = in_mode(lambda v: bijector.forward(v, **chain), mode)
    inverse = in_mode(lambda v: bijector.inverse(v, **chain), mode)
    fldj = in_mode(lambda v: bijector.forward_log_det_jacobian(v, event_ndims=1, **chain), mode)
    ildj = in_mode(lambda v: bijector.inverse_log_det_jacobian(v, event_ndims=1, **chain), mode)

    x = forward(z)
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(inverse(tf.identity(x)), z, rtol=1e-4, atol=5e-4)
    forward_log_det = fldj(z)
    np.testing.assert_allclose(forward_log_det, -ildj(tf.identity(x)), rtol=1e-4, atol=1e-4)
    jacobian = autodiff_jacobian(bijector, chain, z)
    np.testing.assert_allclose(tf.reshape(x, [-1, dim]),
                               tf.reshape(bijector.forward(z + 0.0, **chain), [-1, dim]),
                               rtol=1e-5, atol=1e-5)  # the map whose Jacobian it is
    _, log_det = np.linalg.slogdet(jacobian.astype(np.float64))
    np.testing.assert_allclose(tf.reshape(forward_log_det, [-1]), log_det, atol=1e-4)
    data_map = bijector.bijectors[0]
    assert not np.allclose(x, data_map.forward(z), atol=1e-3)  # the couplings do something


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_variable(name):
    config, flow = suite_flow(name)
    x = events(config, [32], seed=2)
    kwargs, _ = suite_kwargs(config, flow, [32])
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(flow.log_prob(x, **kwargs))
    variables = flow.trainable_variables
    assert variables
    for variable, grad in zip(variables, tape.gradient(loss, variables), strict=True):
        assert grad is not None, variable.name
        assert np.all(np.isfinite(grad)), variable.name
        assert np.any(grad.numpy() != 0), variable.name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_any_batch_shape(name, mode):
    config, flow = suite_flow(name)
    dim = config.event_dim
    for batch_shape in ([], [3], [2, 4]):
        x = events(config, batch_shape, seed=3)
        kwargs, _ = suite_kwargs(config, flow, batch_shape)
        log_prob = in_mode(lambda v, kw=kwargs: flow.log_prob(v, **kw), mode)(x)
        assert log_prob.shape == batch_shape
        flat_kwargs = context_kwargs(flow, None if not config.context_dim else tf.reshape(
            suite_context(config, batch_shape), [-1, config.context_dim]))
        flat = flow.log_prob(tf.reshape(x, [-1, dim]), **flat_kwargs)
        np.testing.assert_allclose(tf.reshape(log_prob, [-1]), flat, rtol=1e-5, atol=1e-5)
    kwargs, _ = suite_kwargs(config, flow, [2, 3])
    sample = in_mode(lambda: flow.sample([2, 3], seed=tf.constant([1, 2]), **kwargs), mode)
    assert sample().shape == [2, 3, dim]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_seeded_sampling(name, mode):
    config, flow = suite_flow(name)
    kwargs, _ = suite_kwargs(config, flow, [7])
    draw = in_mode(lambda seed: flow.sample(7, seed=seed, **kwargs), mode)
    a, b, c = draw(tf.constant([1, 2])), draw(tf.constant([1, 2])), draw(tf.constant([1, 3]))
    assert a.shape == [7, config.event_dim] and a.dtype == tf.float32
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", [n for n in NAMES if FLOW_SUITE[n].event_dim == 2])
def test_two_d_density_integrates_to_one(name):
    config, flow = suite_flow(name, seed=11)
    kwargs, _ = suite_kwargs(config, flow, [1])
    n = 601
    axes = [np.linspace(m - 8 * s, m + 8 * s, n, dtype=np.float32)
            for m, s in zip(config.data_shift, config.data_scale, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    density = np.exp(flow.log_prob(grid, **kwargs).numpy().astype(np.float64))
    cell = np.prod([(a[-1] - a[0]) / (n - 1) for a in axes])
    assert abs(density.sum() * cell - 1.0) < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_config_json_round_trip_rebuilds_the_same_flow(name):
    config, flow = suite_flow(name)
    restored = FlowConfig.from_json(config.to_json())
    assert restored == config
    rebuilt = build_flow(restored)
    for source, target in zip(flow.variables, rebuilt.variables, strict=True):
        target.assign(source)
    x = events(config, [9], seed=5)
    kwargs, _ = suite_kwargs(config, flow, [9])
    np.testing.assert_array_equal(flow.log_prob(x, **kwargs), rebuilt.log_prob(x, **kwargs))


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip(name, tmp_path):
    config, flow = suite_flow(name)
    prefix = tf.train.Checkpoint(flow=flow).write(str(tmp_path / "weights"))
    fresh = build_flow(config)
    x = events(config, [9], seed=6)
    kwargs, _ = suite_kwargs(config, flow, [9])
    assert not np.allclose(fresh.log_prob(x, **kwargs), flow.log_prob(x, **kwargs))
    restore_weights(fresh, prefix)
    np.testing.assert_array_equal(fresh.log_prob(x, **kwargs), flow.log_prob(x, **kwargs))


def test_the_exported_entries_cover_every_kind_of_the_suite():
    every = set().union(*(export_features(c) for c in FLOW_SUITE.values()))
    assert set().union(*(export_features(FLOW_SUITE[n]) for n in EXPORTED)) == every
    assert len(EXPORTED) < len(NAMES)


@pytest.mark.parametrize("name", EXPORTED)
def test_export_load_and_tf1_loader_round_trip(name, suite_exports):
    """conftest's `suite_exports`: the entry exported once per session and run through the
    TF1 session loader (TF Serving's) in a TensorFlow-only process."""
    config, flow = suite_flow(name)
    x, z, context = suite_requests(name)
    version_dir, got = Path(suite_exports[name]["path"]), dict(suite_exports[name]["tf1"])
    methods = got.pop("methods")
    assert all(m[0] == "tensorflow/serving/predict" for m in methods.values())
    expected = expected_outputs(flow, x, z, num_samples=4,
                                context=None if context is None else tf.constant(context))
    assert_outputs_match(got, expected)
    loaded = tfp_realnvp.load(version_dir)
    kwargs = context_kwargs(loaded, None if context is None else tf.constant(context))
    np.testing.assert_allclose(loaded.log_prob(x, **kwargs),
                               expected["log_prob"]["log_prob"], atol=1e-5, rtol=1e-6)
    assert suite_config(name) == config == tfp_realnvp.rundir.find_model(version_dir).config
