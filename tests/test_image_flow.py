"""The image bijectors and the multi-scale image flow: the flow contract on tiny images.

Round trip, log-dets against the autodiff Jacobian (every step alone and the whole model),
gradients to every variable, one network call per coupling, seeded sampling, config and
checkpoint round trips; eager and traced.
"""

import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.bijectors.image_coupling import MaskedImageCoupling, make_mask
from tfp_realnvp.bijectors.image_maps import ActNorm, LogitPixels, Squeeze
from tfp_realnvp.bijectors.image_scales import FactorOut
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.images import config as config_lib
from tfp_realnvp.images.config import ImageConfig
from tfp_realnvp.images.model import (
    _steps,
    build_image_flow,
    decode,
    encode,
    encoder_of,
    initialize_actnorms,
    sample_images,
)
from tfp_realnvp.images.networks import make_conv_conditioner

tfb = tfp.bijectors

# Every code path of the image model on tiny images: one channel (the first channel
# coupling sees a squeezed 4-channel image), two channels, one scale, three scales, no actnorm.
IMAGE_SUITE = {
    "4x4x1": ImageConfig(height=4, width=4, channels=1, levels=17, filters=4),
    "4x4x2-two-blocks": ImageConfig(height=4, width=4, channels=2, levels=256, filters=4,
                                    num_blocks=2, checkerboard=2, channel=2,
                                    last_checkerboard=2),
    "4x2x3-one-scale": ImageConfig(height=4, width=2, channels=3, levels=4, num_scales=1,
                                   filters=3, last_checkerboard=2, actnorm=False),
    "8x8x1-three-scales": ImageConfig(height=8, width=8, channels=1, levels=17, num_scales=3,
                                      filters=2, checkerboard=1, channel=1,
                                      last_checkerboard=1, num_blocks=0),
}
NAMES = list(IMAGE_SUITE)
MODES = ["eager", "function"]


def images(config: ImageConfig, count: int, seed: int) -> np.ndarray:
    """Dequantised images in level units: levels + U(0, 1), away from the edges."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, config.levels, size=(count, *config.shape))
    return (levels + rng.uniform(0.05, 0.95, size=levels.shape)).astype(np.float32)


def suite_flow(name: str, seed: int = 0):
    """(config, flow) for a suite entry: actnorm from data, then every weight perturbed
    so no step is the identity."""
    config = IMAGE_SUITE[name]
    flow = build_image_flow(config)
    initialize_actnorms(flow, images(config, 64, seed))
    rng = np.random.default_rng(seed)
    for variable in flow.trainable_variables:
        variable.assign_add(0.15 * rng.standard_normal(variable.shape).astype(np.float32))
    return config, flow


@functools.cache
def shared_suite_flow(name: str):
    """`suite_flow(name)`, built once per file: for the tests that only read the flow (a
    test that changes one, like the call counter, builds its own)."""
    return suite_flow(name)


def in_mode(fn, mode):
    return tf.function(fn) if mode == "function" else fn


def autodiff_log_det(fn, x: tf.Tensor) -> float:
    """log|det d fn(x) / dx| of one image, from the dense Jacobian built column by column
    with forward-mode autodiff: one pass of fn over D copies of x, copy i pushed along the
    i-th basis image."""
    dims = int(np.prod(x.shape))
    copies = tf.repeat(x[tf.newaxis], dims, axis=0)
    basis = tf.reshape(tf.eye(dims), [dims, *x.shape])
    with tf.autodiff.ForwardAccumulator(copies, basis) as accumulator:
        y = fn(copies)
    columns = tf.reshape(accumulator.jvp(y), [dims, -1]).numpy().astype(np.float64)
    sign, log_det = np.linalg.slogdet(columns.T)
    assert sign != 0
    return log_det


def single_steps():
    """(name, bijector, input image) for each image bijector alone, far from identity."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(4, 4, 2)), tf.float32)
    actnorm = ActNorm(2)
    actnorm.initialize_from(rng.normal(0.5, 2.0, size=(10, 4, 4, 2)))
    out = [("logit", LogitPixels(levels=5), tf.constant(rng.uniform(0.1, 4.9, (4, 4, 2)),
                                                        tf.float32)),
           ("squeeze", Squeeze(), x), ("actnorm", actnorm, x)]
    for kind, parity in (("checkerboard", 0), ("checkerboard", 1), ("channel", 0),
                         ("channel", 1)):
        net = make_conv_conditioner((4, 4, 2), 4, 1)
        for variable in net.trainable_variables:
            variable.assign(0.3 * rng.standard_normal(variable.shape))
        out.append((f"{kind}{parity}", MaskedImageCoupling(
            make_mask(kind, (4, 4, 2), parity), net, log_scale_bound=1.5), x))
    net = make_conv_conditioner((4, 4, 1), 2, 0)
    for variable in net.trainable_variables:
        variable.assign(0.3 * rng.standard_normal(variable.shape))
    inner = MaskedImageCoupling(make_mask("checkerboard", (4, 4, 1), 0), net)
    out.append(("factor_out", FactorOut(1, tfb.Chain([inner, ActNorm(1)])), x))
    return out


def test_each_image_bijector_inverts_and_its_log_det_is_the_jacobians():
    for name, bijector, x in single_steps():
        y = bijector.forward(x)
        np.testing.assert_allclose(bijector.inverse(y).numpy(), x.numpy(), atol=2e-5,
                                   err_msg=name)
        fldj = float(bijector.forward_log_det_jacobian(x, event_ndims=3))
        ildj = float(bijector.inverse_log_det_jacobian(y, event_ndims=3))
        expected = autodiff_log_det(bijector.forward, x)
        assert fldj == pytest.approx(expected, abs=2e-3, rel=1e-4), name
        assert ildj == pytest.approx(-expected, abs=2e-3, rel=1e-4), name


def test_squeeze_moves_each_2x2_block_into_the_channels():
    x = tf.reshape(tf.range(16.0), [1, 4, 4, 1])
    y = Squeeze().forward(x)
    assert y.shape == (1, 2, 2, 4)
    assert y[0, 0, 0].numpy().tolist() == [0.0, 1.0, 4.0, 5.0]
    assert Squeeze().forward_event_shape([4, 6, 3]) == [2, 3, 12]
    assert Squeeze().inverse_event_shape([2, 3, 12]) == [4, 6, 3]


def test_masks_and_their_errors():
    board = make_mask("checkerboard", (2, 2, 3), 0)[..., 0]
    assert board.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert make_mask("channel", (2, 2, 4), 1)[0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="A channel mask needs >= 2 channels; got shape"):
        make_mask("channel", (2, 2, 1), 0)
    with pytest.raises(ConfigError, match="'mask' must be one of"):
        make_mask("stripes", (2, 2, 1), 0)
    with pytest.raises(ConfigError, match="'alpha' must be in"):
        LogitPixels(levels=256, alpha=0.5)
    with pytest.raises(ConfigError, match="3 scales need the height and width to be multiples"
                                          " of 4; got 6x8"):
        ImageConfig(height=6, width=8, num_scales=3)


def test_a_fresh_coupling_is_the_identity():
    coupling = MaskedImageCoupling(make_mask("checkerboard", (4, 4, 2), 0),
                                   make_conv_conditioner((4, 4, 2), 4, 1))
    x = tf.random.stateless_normal([3, 4, 4, 2], seed=[1, 2])
    assert float(tf.reduce_max(tf.abs(coupling.forward(x) - x))) == 0.0
    assert float(tf.reduce_max(tf.abs(coupling.forward_log_det_jacobian(x, 3)))) == 0.0


# The whole-model Jacobian (a forward-mode pass over D copies) on the entries whose chains
# differ most: channel couplings after a squeeze of a 2-channel image, and three nested
# scales; every step's own log-det is checked alone above, every entry's round trip below.
JACOBIAN_NAMES = ["4x4x2-two-blocks", "8x8x1-three-scales"]


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_log_prob_match_the_autodiff_jacobian(name):
    config, flow = shared_suite_flow(name)
    x = tf.constant(images(config, 3, seed=5))
    log_prob = flow.log_prob(x).numpy()
    z = encode(flow, x)
    assert z.shape == (3, *config.shape)
    np.testing.assert_allclose(decode(flow, z).numpy(), x.numpy(), atol=1e-3 * config.levels)
    assert np.all(np.isfinite(log_prob))
    if name not in JACOBIAN_NAMES:
        return
    latent = z[0].numpy().astype(np.float64)
    base = -0.5 * np.sum(latent ** 2) - 0.5 * config.dims * np.log(2 * np.pi)
    expected = base + autodiff_log_det(lambda v: encode(flow, v), x[0])
    assert log_prob[0] == pytest.approx(expected, abs=5e-3, rel=1e-4)


@pytest.mark.parametrize("name", NAMES[:1])
def test_traced_maps_match_the_eager_ones(name):
    config, flow = shared_suite_flow(name)
    x = tf.constant(images(config, 3, seed=6))
    np.testing.assert_allclose(tf.function(flow.log_prob)(x).numpy(), flow.log_prob(x).numpy(),
                               rtol=1e-5, atol=1e-4)
    z = encode(flow, x)
    np.testing.assert_allclose(tf.function(lambda v: decode(flow, v))(z).numpy(), x.numpy(),
                               atol=1e-3 * config.levels)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_variable(name):
    config, flow = shared_suite_flow(name)
    x = tf.constant(images(config, 4, seed=1))
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(flow.log_prob(x))
    grads = tape.gradient(loss, flow.trainable_variables)
    assert len(flow.trainable_variables) > 0
    for variable, grad in zip(flow.trainable_variables, grads, strict=True):
        assert grad is not None, variable.name
        assert np.all(np.isfinite(grad.numpy())), variable.name
        assert float(tf.reduce_max(tf.abs(grad))) > 0, variable.name


def count_network_calls(flow) -> list[int]:
    """Wraps every coupling's conditioner with a counter; returns the counter."""
    calls = [0]

    def wrap(bijector):
        for step in _steps(bijector):
            if isinstance(step, MaskedImageCoupling):
                network = step.conditioner

                def counted(x, network=network):
                    calls[0] += 1
                    return network(x)
                step._conditioner = counted
            if isinstance(step, FactorOut):
                wrap(step.inner)
    wrap(encoder_of(flow))
    return calls


def test_log_prob_and_sample_call_each_network_once():
    config, flow = suite_flow("4x4x1")
    couplings = 3 + 3 + 4
    calls = count_network_calls(flow)
    flow.log_prob(images(config, 3, seed=0))
    assert calls[0] == couplings
    calls[0] = 0
    flow.sample(2, seed=tf.constant([1, 2]))
    assert calls[0] == couplings


@pytest.mark.parametrize("mode", MODES)
def test_seeded_sampling_with_a_temperature(mode):
    config, flow = shared_suite_flow("4x4x2-two-blocks")
    draw = in_mode(lambda seed, t: sample_images(flow, 3, seed, t), mode)
    first = draw(tf.constant([4, 5]), tf.constant(0.7)).numpy()
    again = draw(tf.constant([4, 5]), tf.constant(0.7)).numpy()
    assert first.shape == (3, 4, 4, 2)
    np.testing.assert_array_equal(first, again)
    cold = draw(tf.constant([4, 5]), tf.constant(0.0)).numpy()
    np.testing.assert_allclose(cold[0], cold[1], atol=1e-4)  # T = 0: every draw is the mode


def test_config_json_and_checkpoint_round_trip(tmp_path):
    config, flow = shared_suite_flow("4x4x1")
    again = ImageConfig.from_json(config.to_json())
    assert again == config
    checkpoint = tf.train.Checkpoint(flow=flow).write(str(tmp_path / "ckpt"))
    rebuilt = build_image_flow(again)
    tf.train.Checkpoint(flow=rebuilt).read(checkpoint).assert_consumed()
    x = images(config, 3, seed=2)
    np.testing.assert_array_equal(rebuilt.log_prob(x).numpy(), flow.log_prob(x).numpy())


def test_the_sizing_rule():
    digits, reasons = config_lib.choose((8, 8, 1), 1437, 17)
    assert (digits.num_scales, digits.filters, digits.num_blocks) == (2, 32, 1)
    assert "1437 images" in reasons["filters"]
    cifar, _ = config_lib.choose((32, 32, 3), 50000, 256)
    assert (cifar.num_scales, cifar.filters, cifar.num_blocks) == (4, 64, 2)
    assert config_lib.choose((6, 10, 3), 100, 256)[0].num_scales == 1
    assert config_lib.bits_per_dim(64 * np.log(2.0), 64) == pytest.approx(1.0)


def test_a_fresh_flow_scores_in_level_units_with_the_logit_jacobian_counted():
    """Couplings at the identity, actnorm not set: log p(x) = sum log N(logit(p)) +
    sum log((1 - 2a) / (L p (1 - p))), p = a + (1 - 2a) x / L, by hand in float64."""
    config = IMAGE_SUITE["4x4x1"]
    flow = build_image_flow(config)
    x = images(config, 2, seed=4).astype(np.float64)
    a, levels = config.alpha, config.levels
    p = a + (1 - 2 * a) * x / levels
    y = np.log(p) - np.log1p(-p)
    expected = (-0.5 * y ** 2 - 0.5 * np.log(2 * np.pi)
                + np.log((1 - 2 * a) / (levels * p * (1 - p)))).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(flow.log_prob(x.astype(np.float32)).numpy(), expected,
                               rtol=1e-5)


def test_scale_latents_cut_the_latent_as_the_encoder_factored_it_out():
    from tfp_realnvp.images.plots import scale_latents, space_to_depth

    z = np.random.default_rng(0).normal(size=(2, 8, 8, 1))
    np.testing.assert_array_equal(space_to_depth(z), tf.nn.space_to_depth(z, 2).numpy())
    parts = scale_latents(z, 3)
    assert [p.shape[1:] for p in parts] == [(4, 4, 2), (2, 2, 4), (2, 2, 4)]
    assert sum(p[0].size for p in parts) == 64
