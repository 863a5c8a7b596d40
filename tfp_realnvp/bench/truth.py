"""The exact densities of the 2-D toy sets: the floor no model can beat on average.

Each toy generator puts a point on a curve `c(t)` and adds isotropic Gaussian noise:

    x = c(t) + s * eps,   eps ~ N(0, I_2),   t ~ the generator's law on the curve's parameter
    p(x) = E_t[ N(x; c(t), s^2 I) ]

so the density is a continuous mixture of Gaussians along the curve, computed here by
quadrature over `t` (midpoints of equal cells, about a quarter of `s` long along the
curve). scikit-learn's generators (what `tables.make_toy` calls):
- moons: half the points on the upper arc `(cos t, sin t)`, half on the lower arc
  `(1 - cos t, 1/2 - sin t)`, `t` evenly spaced on [0, pi]; `s = noise`.
- circles: half on the unit circle, half on the circle of radius 1/2 (`factor=0.5`), `t`
  evenly spaced on [0, 2 pi); `s = noise`.
- swissroll: `t ~ U(3 pi / 2, 9 pi / 2)`, the roll `(t cos t, t sin t)` and noise `noise`
  per coordinate, both divided by 5 (`make_toy` keeps columns x and z, over 5).

The generators space `t` evenly over the training points (moons, circles); with thousands
of points that grid is far finer than the noise, so the continuous density is the law the
rows follow. On fresh test points its mean NLL estimates the entropy, the lowest expected
NLL any model can reach; on the same points a model's mean NLL minus this one estimates
its KL divergence from the truth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tfp_realnvp.errors import ConfigError

CELLS_PER_NOISE = 4  # quadrature cells per noise scale along the curve
MIN_CELLS = 256
_CHUNK = 512  # test points per block of distances (memory: _CHUNK x curve points)


def _curve_points(curve: Callable[[np.ndarray], np.ndarray], start: float, stop: float,
                  scale: float) -> np.ndarray:
    """`curve(t)` at the midpoints of equal cells of [start, stop], `CELLS_PER_NOISE` cells
    per `scale` of arc length (at least `MIN_CELLS`): `[K, 2]`. The midpoint rule on a
    Gaussian bump `CELLS_PER_NOISE` cells wide per standard deviation errs by about
    `exp(-2 pi^2 CELLS_PER_NOISE^2)`: nothing at float64."""
    fine = curve(np.linspace(start, stop, 10001))
    length = np.linalg.norm(np.diff(fine, axis=0), axis=1).sum()
    cells = max(MIN_CELLS, int(np.ceil(CELLS_PER_NOISE * length / scale)))
    return curve(start + (np.arange(cells) + 0.5) * (stop - start) / cells)


def _moons(scale: float) -> np.ndarray:
    upper = _curve_points(lambda t: np.stack([np.cos(t), np.sin(t)], 1), 0.0, np.pi, scale)
    lower = _curve_points(lambda t: np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1), 0.0, np.pi,
                          scale)
    return np.concatenate([upper, lower])  # equal counts: half the points on each moon


def _circles(scale: float) -> np.ndarray:
    outer = _curve_points(lambda t: np.stack([np.cos(t), np.sin(t)], 1), 0.0, 2 * np.pi, scale)
    return np.concatenate([outer, 0.5 * outer])


def _swissroll(scale: float) -> np.ndarray:
    return _curve_points(lambda t: np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5.0,
                         1.5 * np.pi, 4.5 * np.pi, scale)


# name -> (the curve's points with equal weights for a noise scale, noise scale per `noise`)
_CURVES: dict[str, tuple[Callable[[float], np.ndarray], float]] = {
    "moons": (_moons, 1.0), "circles": (_circles, 1.0), "swissroll": (_swissroll, 0.2)}
EXACT_TOYS = tuple(_CURVES)


def exact_log_prob(name: str, x: np.ndarray, noise: float) -> np.ndarray:
    """log p(x) of the toy set `name` drawn with `noise` (float64, `[N]` for `x` `[N, 2]`):
    `logsumexp_k(-|x - c_k|^2 / (2 s^2)) - log K - log(2 pi s^2)` over curve points `c_k`."""
    if name not in _CURVES:
        raise ConfigError(f"No exact density for {name!r}; it is known for {EXACT_TOYS}.")
    if noise <= 0:
        raise ConfigError(f"'noise' must be > 0 for a density; got {noise}.")
    points, unit = _CURVES[name]
    scale = noise * unit
    curve = points(scale)
    x = np.asarray(x, np.float64)
    out = np.empty(len(x))
    norm = np.log(len(curve)) + np.log(2 * np.pi * scale**2)
    curve_sq = (curve**2).sum(1)
    for start in range(0, len(x), _CHUNK):
        block = x[start:start + _CHUNK]
        squared = (block**2).sum(1)[:, None] - 2 * block @ curve.T + curve_sq[None]
        exponent = -np.maximum(squared, 0.0) / (2 * scale**2)
        top = exponent.max(axis=1)
        out[start:start + _CHUNK] = top + np.log(np.exp(exponent - top[:, None]).sum(1)) - norm
    return out
