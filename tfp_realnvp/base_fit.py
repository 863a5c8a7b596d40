"""The flow's Gaussian-mixture base, fitted on the training rows (scikit-learn, no TF).

A flow whose couplings are the identity is an affine map `z = A x + b` of its rows, so a
base set to the image of a mixture fitted in data units,

```none
p(x) = sum_k w_k N(x; mu_k, S_k)   ->   base(z) = sum_k w_k N(z; A mu_k + b, A S_k A^T)
```

makes the fresh flow *that* mixture (`|det A|` is the flow's log-det): epoch 0 is the tuned
Gaussian mixture, and training keeps whatever beats it on the held-out rows. One component
is the standard Normal base of before (the fresh flow the rows' Gaussian), so choosing
the number of components on held-out rows, 1 among them, can only add to it.

Mixtures are fitted on standardised columns (scikit-learn's covariance ridge is absolute)
and returned in data units; grid-valued columns get one seeded draw of the training noise.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np

from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.errors import ConfigError

CANDIDATES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
ROWS_PER_COMPONENT_DIM = 2  # a candidate K needs K * 2 (D + 1) fitting rows
MEMBER_EM_STEPS = 100  # each member's mixture: EM from the chosen fit, at most this many


@dataclasses.dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture in data units: weights `[K]`, means `[K, D]`, covariances
    `[K, D, D]` (float64)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @property
    def components(self) -> int:
        return len(self.weights)

    def log_prob(self, rows: np.ndarray) -> np.ndarray:
        """`log sum_k w_k N(x; mu_k, S_k)` per row of `rows` `[N, D]`."""
        rows = np.asarray(rows, np.float64)
        per_component = []
        for weight, mean, covariance in zip(self.weights, self.means, self.covariances,
                                            strict=True):
            tril = np.linalg.cholesky(covariance)
            whitened = np.linalg.solve(tril, (rows - mean).T)
            per_component.append(
                np.log(weight) - 0.5 * np.sum(whitened**2, axis=0)
                - np.log(np.diag(tril)).sum() - 0.5 * len(mean) * np.log(2 * np.pi))
        stacked = np.stack(per_component)
        top = stacked.max(axis=0)
        return top + np.log(np.exp(stacked - top).sum(axis=0))


@dataclasses.dataclass(frozen=True)
class BaseChoice:
    """The base `fit` trains from: `components` (1: standard Normal), each member's
    `mixtures` (None for one component) and the held-out NLL of every candidate tried
    (nats per row, data units), recorded in config.json."""

    components: int
    mixtures: tuple[Mixture, ...] | None
    validation_nll: dict[int, float]

    def reason(self) -> str:
        tried = ", ".join(f"{k}: {v:.4g}" for k, v in self.validation_nll.items())
        return (f"{self.components} component(s): the Gaussian mixture with the lowest "
                f"held-out NLL (nats per row, tried {tried}); the fresh flow is that mixture")


def choose_base(prepared: prepare_lib.PreparedData, requested: int, seed: int,
                steps: list[float] | None = None) -> BaseChoice:
    """The base for a run: `requested` components (0: chosen on held-out rows), each
    member's mixture fitted on its own training rows.

    Components are chosen on member 0's split for a single flow, and on an 80/20 split of
    the rows for an ensemble (whose folds are small); candidates rise from 1 while the
    rows allow (`ROWS_PER_COMPONENT_DIM`); every one is tried (held-out NLL is not monotone
    in K: on two circles 3 components beat 4 and 6, and 24 beat them all).
    A conditional flow keeps the standard Normal base.
    """
    if prepared.conditional and requested > 1:
        raise ConfigError(
            f"base_components={requested}: a conditional flow keeps the standard Normal base "
            "(a mixture base does not depend on the context); use 0 or 1.")
    if prepared.conditional or requested == 1:
        return BaseChoice(1, None, {})
    first = prepared.members[0]
    if len(prepared.members) == 1:
        fit_rows, held_out = first.train_events, first.validation_events
    else:
        rows = np.concatenate([first.train_events, first.validation_events])
        fit_rows, held_out = prepare_lib.train_validation_split(rows, 0.2, seed)
    fit_rows = dequantised(fit_rows, steps, seed)
    if requested == 0:
        chosen, scores = select(fit_rows, held_out, seed)
    else:
        chosen, scores = fit_mixture(fit_rows, requested, seed), {}
    if chosen is None or chosen.components == 1:
        return BaseChoice(1, None, scores)
    mixtures = tuple(
        refit(dequantised(member.train_events, steps, seed + index), chosen, seed)
        for index, member in enumerate(prepared.members))
    return BaseChoice(chosen.components, mixtures, scores)


def select(rows: np.ndarray, held_out: np.ndarray,
            seed: int) -> tuple[Mixture | None, dict[int, float]]:
    """The candidate mixture with the lowest held-out NLL, and every candidate's NLL."""
    limit = max(1, len(rows) // (ROWS_PER_COMPONENT_DIM * (rows.shape[1] + 1)))
    best, scores = None, {}
    for components in (k for k in CANDIDATES if k <= limit):
        mixture = fit_mixture(rows, components, seed)
        score = np.inf if mixture is None else -float(np.mean(mixture.log_prob(held_out)))
        scores[components] = score if np.isfinite(score) else float("inf")
        if mixture is not None and (best is None or score < scores[best.components]):
            best = mixture
    return best, scores


def fit_mixture(rows: np.ndarray, components: int, seed: int,
         start: Mixture | None = None) -> Mixture | None:
    """scikit-learn's full-covariance mixture on standardised columns, in data units;
    from `start` (a few EM steps) if given; None if a component collapsed."""
    from sklearn.mixture import GaussianMixture

    mean, scale = _standardisation(rows)
    options = {}
    if start is not None:
        standardised = _standardised_mixture(start, mean, scale)
        options = {"weights_init": standardised.weights, "means_init": standardised.means,
                   "precisions_init": np.linalg.inv(standardised.covariances),
                   "max_iter": MEMBER_EM_STEPS}
    model = GaussianMixture(components, covariance_type="full", random_state=seed, **options)
    # One BLAS thread: these matrices are small, and TensorFlow's threads share the cores
    # (measured: 0.1-0.3 s per two-circle candidate with one thread, seconds with many).
    with warnings.catch_warnings(), _thread_pools().limit(limits=1):
        warnings.simplefilter("ignore")  # not converged within max_iter: still a mixture
        try:
            model.fit((rows - mean) / scale)
        except ValueError:  # a component collapsed onto too few rows
            return None
    return Mixture(model.weights_, model.means_ * scale + mean,
                   model.covariances_ * np.outer(scale, scale))


@functools.cache
def _thread_pools():
    """The process's BLAS/OpenMP thread pools (threadpoolctl), found once: finding them
    scans every loaded library (measured: 7.7 ms a time against 12 ms for a 4-component
    fit of 800 rows), and scikit-learn's are loaded by the time the first mixture fits."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def refit(rows: np.ndarray, start: Mixture, seed: int) -> Mixture:
    """`start` moved to `rows` by EM (a member's own training rows), or `start` itself if
    that fails."""
    return fit_mixture(rows, start.components, seed, start) or start


def _standardisation(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(rows, np.float64)
    scale = rows.std(axis=0)
    return rows.mean(axis=0), np.where(scale > 0, scale, 1.0)


def _standardised_mixture(mixture: Mixture, mean: np.ndarray, scale: np.ndarray) -> Mixture:
    return Mixture(mixture.weights, (mixture.means - mean) / scale,
                   mixture.covariances / np.outer(scale, scale))


def dequantised(rows: np.ndarray, steps: list[float] | None, seed: int) -> np.ndarray:
    """`rows` (float64) with one seeded draw of the training noise `step * (U - 1/2)` on
    grid-valued columns, so a mixture does not collapse onto grid points."""
    rows = np.asarray(rows, np.float64)
    if not steps or not any(steps):
        return rows
    noise = np.random.default_rng(seed).random(rows.shape) - 0.5
    return rows + noise * np.asarray(steps, np.float64)
