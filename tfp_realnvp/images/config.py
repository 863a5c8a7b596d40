"""`ImageConfig`: everything that rebuilds an image flow (no TensorFlow), and its sizing rule."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from tfp_realnvp.config import _Config, setting
from tfp_realnvp.errors import ConfigError

MODEL_KIND = "image"


@dataclasses.dataclass(frozen=True)
class ImageConfig(_Config):
    """RealNVP's multi-scale image flow (Dinh et al. 2017, section 3.6).

    Events are dequantised images `[H, W, C]` in level units (`level + U(0, 1)` in
    `[0, levels]`). From data to latent: the logit map, then per scale `checkerboard`
    checkerboard couplings, a 2x2 squeeze, `channel` channel-wise couplings and half the
    channels factored out (each scale's output unsqueezed back); the last scale is
    `last_checkerboard` checkerboard couplings. An actnorm step precedes every coupling.
    """

    LEGACY_VALUES: ClassVar[dict[str, Any]] = {}

    height: int = setting(8, "Image height in pixels.", low=1, cli=False)
    width: int = setting(8, "Image width in pixels.", low=1, cli=False)
    channels: int = setting(1, "Channels per pixel.", low=1, cli=False)
    levels: int = setting(256, "Discrete levels per value (256 for 8-bit images).", low=2,
                          cli=False)
    alpha: float = setting(0.05, "Logit map margin a: logit(a + (1 - 2a) x / levels).",
                           low=0, low_open=True, high=0.5, high_open=True)
    num_scales: int = setting(2, "Scales, the last one included (each other one squeezes "
                              "and factors out half its channels).", low=1)
    checkerboard: int = setting(3, "Checkerboard couplings per scale.", low=1)
    channel: int = setting(3, "Channel-wise couplings per scale after the squeeze.", low=0)
    last_checkerboard: int = setting(4, "Checkerboard couplings of the last scale.", low=1)
    filters: int = setting(32, "Channels of each conditioner's convolutions.", low=1)
    num_blocks: int = setting(1, "Residual blocks per conditioner.", low=0)
    log_scale_bound: float = setting(2.0, "Bound B on each log-scale, s = B tanh(raw / B).",
                                     low=0, low_open=True)
    actnorm: bool = setting(True, "An actnorm step (data-initialised) before each coupling.")

    def __post_init__(self) -> None:
        self._check_settings()
        side = 2 ** (self.num_scales - 1)
        if self.height % side or self.width % side:
            raise ConfigError(
                f"{self.num_scales} scales need the height and width to be multiples of "
                f"{side}; got {self.height}x{self.width}. Use fewer scales (num_scales).")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def dims(self) -> int:
        return self.height * self.width * self.channels

    @property
    def event_dim(self) -> int:
        """Values per image (what the epoch loop calls an event's width)."""
        return self.dims

    @property
    def context_dim(self) -> int:
        """0: an image flow is unconditional."""
        return 0


def max_scales(height: int, width: int, smallest_side: int = 4) -> int:
    """The most scales whose last one still has a side of at least `smallest_side` (or
    the image's own side when smaller), halving the sides at each."""
    scales = 1
    h, w = height, width
    while h % 2 == 0 and w % 2 == 0 and min(h, w) // 2 >= smallest_side:
        h, w, scales = h // 2, w // 2, scales + 1
    return scales


def choose(shape: tuple[int, int, int], count: int, levels: int) -> tuple[ImageConfig, dict]:
    """The default image flow for `count` images of `shape` `(H, W, C)` and its reasons.

    The rule: as many scales as keep the last one at least 4x4 (capped at 4, the paper's
    CIFAR-10 depth); conditioners of 32 filters and one residual block below 2^22
    pixel values in the data (a CPU minute's worth of steps), 64 filters and two blocks
    above (more data pays for a wider network).
    """
    height, width, channels = shape
    scales = min(4, max_scales(height, width))
    values = count * height * width * channels
    big = values >= 2 ** 22
    filters, blocks = (64, 2) if big else (32, 1)
    config = ImageConfig(height=height, width=width, channels=channels, levels=levels,
                         num_scales=scales, filters=filters, num_blocks=blocks)
    size = f"{count} images x {height * width * channels} values = {values}"
    reasons = {
        "num_scales": f"{scales}: halving {height}x{width} while the last scale keeps a side "
                      ">= 4 (at most 4)",
        "filters": f"{filters}: {size} {'>=' if big else '<'} 2^22",
        "num_blocks": f"{blocks}: {size} {'>=' if big else '<'} 2^22",
    }
    return config, reasons


def bits_per_dim(nll_nats: float, dims: int) -> float:
    """A per-image NLL in nats (level units) as bits per value of the discrete image."""
    return nll_nats / (dims * math.log(2.0))
