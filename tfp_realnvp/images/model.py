"""`build_image_flow`: RealNVP's multi-scale image model as a TFP `TransformedDistribution`."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.bijectors.image_coupling import MaskedImageCoupling, make_mask
from tfp_realnvp.bijectors.image_maps import ActNorm, LogitPixels, Squeeze
from tfp_realnvp.bijectors.image_scales import FactorOut
from tfp_realnvp.images.config import ImageConfig
from tfp_realnvp.images.networks import make_conv_conditioner

tfb = tfp.bijectors
tfd = tfp.distributions


def _coupling(config: ImageConfig, shape: tuple[int, int, int], kind: str, parity: int,
              name: str) -> list[tfb.Bijector]:
    """[actnorm, coupling] (actnorm left out when the config says so), data -> latent."""
    network = make_conv_conditioner(shape, config.filters, config.num_blocks,
                                    name=f"{name}_net")
    coupling = MaskedImageCoupling(make_mask(kind, shape, parity), network,
                                   config.log_scale_bound, name=name)
    if not config.actnorm:
        return [coupling]
    return [ActNorm(shape[-1], name=f"{name}_actnorm"), coupling]


def _scale(config: ImageConfig, shape: tuple[int, int, int], index: int) -> list[tfb.Bijector]:
    """Scale `index`'s steps in application order (data -> latent), shape-keeping."""
    height, width, channels = shape
    last = index == config.num_scales - 1
    steps: list[tfb.Bijector] = []
    for i in range(config.last_checkerboard if last else config.checkerboard):
        steps += _coupling(config, shape, "checkerboard", i % 2, f"scale{index}_checker{i}")
    if last:
        return steps
    squeezed = (height // 2, width // 2, 4 * channels)
    steps.append(Squeeze(name=f"scale{index}_squeeze"))
    for i in range(config.channel):
        steps += _coupling(config, squeezed, "channel", i % 2, f"scale{index}_channel{i}")
    deeper = _scale(config, (height // 2, width // 2, 2 * channels), index + 1)
    steps.append(FactorOut(2 * channels, _chain(deeper, f"scale{index + 1}"),
                           name=f"scale{index}_factor_out"))
    steps.append(tfb.Invert(Squeeze(), name=f"scale{index}_unsqueeze"))
    return steps


def _chain(steps: list[tfb.Bijector], name: str) -> tfb.Chain:
    """A `tfb.Chain` applying `steps` in the order given (Chain applies its list last first)."""
    return tfb.Chain(list(reversed(steps)), name=name)


def build_encoder(config: ImageConfig) -> tfb.Chain:
    """The bijector from dequantised images (level units) to the latent `[H, W, C]`:
    the logit map, then the scales."""
    steps = [LogitPixels(config.levels, config.alpha)] + _scale(config, config.shape, 0)
    return _chain(steps, "encoder")


def build_image_flow(config: ImageConfig) -> tfd.Distribution:
    """The image model: `TransformedDistribution(N(0, I) on [H, W, C], Invert(encoder))`.

    `log_prob(x) = log N(encoder(x)) + log|det d encoder / dx|` for dequantised images `x`
    in level units, every Jacobian counted (the logit map's included), so `-log_prob` is
    the NLL of the dequantised discrete image in nats; `sample` returns images in level
    units (clip and floor them to get levels back). Not a CompositeTensor (its couplings
    hold Keras networks): the object is TFP's `_TransformedDistribution`.
    """
    base = tfd.Independent(tfd.Normal(tf.zeros(config.shape), 1.0),
                           reinterpreted_batch_ndims=3, name="latent")
    return tfd.TransformedDistribution(base, tfb.Invert(build_encoder(config)),
                                       name="image_flow")


def encoder_of(flow: tfd.Distribution) -> tfb.Chain:
    """The encoder inside an image flow built by `build_image_flow`."""
    return flow.bijector.bijector


def _steps(bijector: tfb.Bijector):
    """The steps of an encoder in application order, factor-outs entered (with the slice
    of channels each inner step sees). `tfb.Chain` builds TFP's `_Chain` when a step is not
    a CompositeTensor, so the test is on their common base, `tfb.Composition`."""
    if isinstance(bijector, tfb.Composition):
        for step in reversed(bijector.bijectors):
            yield from _steps(step)
    else:
        yield bijector


def initialize_actnorms(flow: tfd.Distribution, images: np.ndarray) -> None:
    """Data-dependent initialisation: runs `images` (a batch of training images, level
    units) through the encoder on the host and sets every actnorm from the statistics of
    its own input, in order, so each scale starts standardised."""
    _initialize(encoder_of(flow), tf.constant(images, tf.float32))


def _initialize(bijector: tfb.Bijector, x: tf.Tensor) -> tf.Tensor:
    for step in _steps(bijector):
        if isinstance(step, ActNorm):
            step.initialize_from(x.numpy())
        if isinstance(step, FactorOut):
            rest = _initialize(step.inner, x[..., step.num_out:])
            x = tf.concat([x[..., : step.num_out], rest], -1)
        else:
            x = step.forward(x)
    return x


def encode(flow: tfd.Distribution, x: tf.Tensor) -> tf.Tensor:
    """Images (level units) -> latents `[..., H, W, C]`."""
    return encoder_of(flow).forward(x)


def decode(flow: tfd.Distribution, z: tf.Tensor) -> tf.Tensor:
    """Latents -> images (level units)."""
    return encoder_of(flow).inverse(z)


def sample_images(flow: tfd.Distribution, num: int | tf.Tensor, seed: tf.Tensor,
                  temperature: float | tf.Tensor = 1.0) -> tf.Tensor:
    """`num` images drawn with latents `temperature * N(0, I)` (Glow's reduced-temperature
    sampling; 1 is the model itself), stateless for a `[2]` int32 `seed`."""
    z = flow.distribution.sample(num, seed=seed)
    return decode(flow, tf.cast(temperature, tf.float32) * z)
