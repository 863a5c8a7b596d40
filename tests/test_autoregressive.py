"""The autoregressive kind: MADE masks, the identity at the start, both directions, XLA,
a context, and what `info` says about its speed."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from click.testing import CliRunner
from conftest import TINY_FIT, randomise_weights

from tfp_realnvp import FlowConfig, build_flow
from tfp_realnvp.bijectors.autoregressive import MaskedAutoregressiveSpline
from tfp_realnvp.cli import cli
from tfp_realnvp.made import make_made

DIM, PARAMS = 5, 3


def made_jacobian(members: int, context_dim: int = 0) -> np.ndarray:
    """d params[n, (m,) i, p] / d inputs[n, (m,) j] of a MADE with random weights:
    `[rows, (M,) D, P, D + context_dim]`."""
    net = make_made(DIM, PARAMS, hidden_units=16, num_hidden_layers=2, members=members,
                    context_dim=context_dim)
    randomise_weights(net, seed=members)
    shape = [6, DIM + context_dim] if members == 1 else [6, members, DIM + context_dim]
    inputs = tf.random.stateless_normal(shape, seed=[3, 4])
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = tf.reshape(net(inputs), [*shape[:-1], DIM, PARAMS])
    return tape.batch_jacobian(out, inputs).numpy()


@pytest.mark.parametrize("members", [1, 3])
def test_made_output_i_depends_only_on_inputs_before_i(members):
    jacobian = made_jacobian(members)
    if members > 1:  # member m's outputs read member m's inputs only
        for m in range(members):
            others = [k for k in range(members) if k != m]
            assert np.all(jacobian[:, m, :, :, others, :] == 0)
        jacobian = np.stack([jacobian[:, m, :, :, m, :] for m in range(members)])
    jacobian = jacobian.reshape(-1, DIM, PARAMS, DIM)
    for i in range(DIM):
        assert np.all(jacobian[:, i, :, i:] == 0), f"output {i} reads an input >= {i}"
        if i > 0:  # and it does read every input before it
            assert np.all(np.any(jacobian[:, i, :, :i] != 0, axis=(0, 1)))


def test_made_context_reaches_every_output():
    jacobian = made_jacobian(1, context_dim=2)
    assert np.all(jacobian[:, :, :, DIM:].any(axis=0).any(axis=1))
    assert np.all(jacobian[:, 0, :, :DIM] == 0)


def layer(direction: str = "density", members: int = 1) -> MaskedAutoregressiveSpline:
    net = make_made(DIM, 3 * 6 - 1, hidden_units=16, num_hidden_layers=1, members=members)
    return MaskedAutoregressiveSpline(DIM, net, num_bins=6, bound=3.0, num_members=members,
                                      direction=direction)


@pytest.mark.parametrize("members", [1, 2])
def test_a_fresh_layer_is_the_identity(members):
    bijector = layer(members=members)
    shape = [7, DIM] if members == 1 else [7, members, DIM]
    x = tf.random.stateless_normal(shape, seed=[1, 1]) * 2.0
    np.testing.assert_allclose(bijector.inverse(x), x, atol=1e-5)
    np.testing.assert_allclose(bijector.forward(x), x, atol=1e-5)
    np.testing.assert_allclose(bijector.inverse_log_det_jacobian(x, event_ndims=1), 0,
                               atol=1e-5)


def test_a_fresh_flow_is_the_data_maps_gaussian():
    rng = np.random.default_rng(0)
    tril = np.linalg.cholesky(0.5 * np.eye(DIM) + 0.5)
    config = FlowConfig(event_dim=DIM, coupling="autoregressive", num_couplings=3,
                        hidden_units=16, num_hidden_layers=1, data_shift=list(range(DIM)),
                        data_scale=[2.0] * DIM, data_tril=tril.tolist())
    x = rng.normal(size=(9, DIM)).astype(np.float32) * 3
    covariance = 4.0 * tril @ tril.T
    gaussian = tfp.distributions.MultivariateNormalTriL(
        np.arange(DIM, dtype=np.float32), np.linalg.cholesky(covariance).astype(np.float32))
    np.testing.assert_allclose(build_flow(config).log_prob(x), gaussian.log_prob(x),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("direction", ["density", "sampling"])
def test_both_directions_round_trip_with_triangular_exact_jacobians(direction):
    """density: a MAF (the spline reads the data); sampling: an IAF (it reads the latent)."""
    bijector = layer(direction)
    randomise_weights(bijector, seed=4, scale=0.4)
    x = tf.random.stateless_normal([12, DIM], seed=[2, 5]) * 1.5
    y = bijector.forward(x)
    np.testing.assert_allclose(bijector.inverse(tf.identity(y)), x, atol=1e-4)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = bijector.forward(x + 0.0)
    jacobian = tape.batch_jacobian(out, x).numpy().astype(np.float64)
    assert np.all(np.triu(jacobian, k=1) == 0)  # y_i reads x_<=i only
    _, log_det = np.linalg.slogdet(jacobian)
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(x, event_ndims=1), log_det,
                               atol=1e-4)
    np.testing.assert_allclose(bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=1),
                               -log_det, atol=1e-4)


def test_log_prob_calls_each_made_once_and_sampling_event_dim_times():
    bijector = layer()
    calls = []
    made = bijector.made
    bijector._made = lambda v: calls.append(1) or made(v)
    y = tf.random.stateless_normal([4, DIM], seed=[6, 6])
    bijector.inverse(y)
    bijector.inverse_log_det_jacobian(y, event_ndims=1)
    assert len(calls) == 1
    calls.clear()
    bijector.forward(tf.random.stateless_normal([4, DIM], seed=[6, 7]))
    assert len(calls) == DIM


def test_log_prob_and_sample_compile_with_xla():
    config = FlowConfig(event_dim=DIM, coupling="autoregressive", num_couplings=2,
                        hidden_units=16, num_hidden_layers=1, mixing="lu")
    flow = build_flow(config)
    randomise_weights(flow, seed=2, scale=0.3)
    x = tf.random.stateless_normal([8, DIM], seed=[1, 9])
    compiled = tf.function(flow.log_prob, jit_compile=True)
    np.testing.assert_allclose(compiled(x), flow.log_prob(x), rtol=1e-4, atol=1e-4)
    # XLA draws other stateless normals than the CPU kernel: compare the sampling map.
    z = tf.random.stateless_normal([8, DIM], seed=[2, 9])
    decode = tf.function(flow.bijector.forward, jit_compile=True)
    np.testing.assert_allclose(decode(z), flow.bijector.forward(z), rtol=1e-4, atol=1e-4)
    sample = tf.function(lambda seed: flow.sample(8, seed=seed), jit_compile=True)
    assert np.all(np.isfinite(sample(tf.constant([1, 2]))))


def test_a_conditional_layer_reads_the_context_and_broadcasts_it():
    net = make_made(DIM, 3 * 6 - 1, hidden_units=16, num_hidden_layers=1, context_dim=2)
    bijector = MaskedAutoregressiveSpline(DIM, net, num_bins=6, bound=3.0, context_dim=2,
                                          context_shift=[1.0, -1.0], context_scale=[2.0, 0.5])
    randomise_weights(bijector, seed=5, scale=0.4)
    x = tf.random.stateless_normal([DIM], seed=[3, 3])  # one event, three contexts
    context = tf.random.stateless_normal([3, 2], seed=[4, 4])
    y = bijector.forward(x, context=context)
    assert y.shape == [3, DIM]
    np.testing.assert_allclose(bijector.inverse(tf.identity(y), context=context),
                               np.broadcast_to(x, [3, DIM]), atol=1e-4)
    assert not np.allclose(y[0], y[1])  # the context changes every coordinate's spline
    assert not np.allclose(y[0, 0], y[1, 0])
    with pytest.raises(ValueError, match="is conditional: pass context= of shape"):
        bijector.forward(x)


def test_fit_and_info_say_sampling_is_sequential(tmp_path):
    fit = [a if a != "affine" else "autoregressive" for a in TINY_FIT]
    runner = CliRunner()
    result = runner.invoke(cli, ["fit", "--out", str(tmp_path / "run"), *fit])
    assert result.exit_code == 0, result.output
    text = runner.invoke(cli, ["info", str(tmp_path / "run")]).output
    assert "coupling=autoregressive" in text
    assert ("note: autoregressive flow: log_prob takes one network pass per layer (fast); "
            "sampling takes 2 sequential passes per layer (slow)") in text


@pytest.mark.parametrize("whiten", [False, True])
def test_ensemble_members_start_at_a_diagonal_gaussian_unless_the_flow_whitens(tmp_path,
                                                                                 whiten):
    """Member m's starting Gaussian follows `whiten`: the per-member fold maps of an
    ensemble that does not whiten are diagonal (full ones cost a 64-D autoregressive
    ensemble on digits 19 nats: 121.3 against 102.2)."""
    import tfp_realnvp
    from tfp_realnvp.bijectors.ensemble import FoldAffine, stacked_flow

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 3)) @ np.array([[1, 0.8, 0], [0, 1, 0.5], [0, 0, 1]])
    result = tfp_realnvp.fit(rows.astype(np.float32), tmp_path / "run", settings={
        "coupling": "autoregressive", "ensemble_size": 2, "whiten": whiten, "epochs": 1,
        "hidden_units": 8, "num_couplings": 2, "num_hidden_layers": 1, "jit_compile": False})
    fold = [b for b in stacked_flow(result.flow).bijector.bijectors
            if isinstance(b, FoldAffine)][0]
    tril = fold.scale_tril.numpy()
    off_diagonal = tril - np.stack([np.diag(np.diag(t)) for t in tril])
    assert np.all(off_diagonal == 0) != whiten
