"""A RealNVP flow as the surrogate posterior of `tfp.vi.fit_surrogate_posterior`.

The target is a density known only through its `target_log_prob_fn`, with curvature that
no Gaussian can follow: the banana `x1 ~ N(0, 1), x2 | x1 ~ N(x1^2 - 1, 0.5^2)` or Neal's
funnel `v ~ N(0, 1.5^2), x | v ~ N(0, exp(v/2)^2)`. Both are normalised (log Z = 0) and can
be sampled exactly, so each fit is checked both ways:

- ELBO = E_q[log p(x) - log q(x)] = -KL(q || p): what VI maximises (0 is perfect);
- KL(p || q) from exact target samples: how much of the target q misses;
- the importance-sampling effective sample size of q's draws, and moments against the truth.

`tfp_realnvp.surrogate_posterior(event_dim)` is the flow (loc + scale around four affine
couplings, starting as the mean-field Normal); the mean-field Normal it is compared with is
the same loc and scale alone, trained the same way for the same steps.

Run: python examples/variational_inference.py [--target banana|funnel] [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from _quiet_tf import import_tensorflow  # noqa: E402

tf = import_tensorflow()

import numpy as np  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
import tf_keras  # noqa: E402

import tfp_realnvp  # noqa: E402

tfb = tfp.bijectors
tfd = tfp.distributions


def banana_log_prob(x: tf.Tensor) -> tf.Tensor:
    """`log p(x1, x2) = log N(x1; 0, 1) + log N(x2; x1^2 - 1, 0.5^2)`, normalised."""
    x1, x2 = x[..., 0], x[..., 1]
    return tfd.Normal(0.0, 1.0).log_prob(x1) + tfd.Normal(x1**2 - 1.0, 0.5).log_prob(x2)


def banana_sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(n)
    return np.stack([x1, x1**2 - 1.0 + 0.5 * rng.standard_normal(n)], -1).astype(np.float32)


def funnel_log_prob(x: tf.Tensor) -> tf.Tensor:
    """Neal's funnel in 2-D: `log N(v; 0, 1.5^2) + log N(x; 0, exp(v / 2)^2)`, normalised."""
    v, y = x[..., 0], x[..., 1]
    return tfd.Normal(0.0, 1.5).log_prob(v) + tfd.Normal(0.0, tf.exp(v / 2.0)).log_prob(y)


def funnel_sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = 1.5 * rng.standard_normal(n)
    return np.stack([v, np.exp(v / 2.0) * rng.standard_normal(n)], -1).astype(np.float32)


TARGETS = {"banana": (banana_log_prob, banana_sample),
           "funnel": (funnel_log_prob, funnel_sample)}


def mean_field_normal(event_dim: int) -> tfd.Distribution:
    """`N(loc, diag(scale^2))` with trainable loc and softplus-parameterised scale."""
    return tfd.MultivariateNormalDiag(
        loc=tf.Variable(tf.zeros([event_dim]), name="loc"),
        scale_diag=tfp.util.TransformedVariable(tf.ones([event_dim]), tfb.Softplus(),
                                                name="scale"),
        name="mean_field")


def train(surrogate: tfd.Distribution, target_log_prob_fn, steps: int, sample_size: int,
          learning_rate: float, seed: int) -> np.ndarray:
    """Maximises the ELBO with `tfp.vi.fit_surrogate_posterior`; returns the loss trace."""
    losses = tfp.vi.fit_surrogate_posterior(
        target_log_prob_fn, surrogate, tf_keras.optimizers.Adam(learning_rate),
        num_steps=steps, sample_size=sample_size, seed=tf.constant([seed, 0]))
    return losses.numpy()


def evaluate(surrogate: tfd.Distribution, target_log_prob_fn, exact: np.ndarray,
             num_draws: int, seed: int) -> dict[str, Any]:
    """ELBO, KL(p || q), importance-sampling ESS and moments of `surrogate`'s draws."""
    draws = surrogate.sample(num_draws, seed=tf.constant([seed, 1]))
    log_q = surrogate.log_prob(draws)
    log_w = (target_log_prob_fn(draws) - log_q).numpy().astype(np.float64)
    weights = np.exp(log_w - log_w.max())
    exact_log_p = target_log_prob_fn(tf.constant(exact)).numpy()
    exact_log_q = surrogate.log_prob(tf.constant(exact)).numpy()
    draws = draws.numpy()
    return {
        "elbo": float(log_w.mean()),
        "kl_p_q": float(np.mean(exact_log_p - exact_log_q)),
        "ess_fraction": float(weights.sum() ** 2 / (weights**2).sum() / num_draws),
        "mean": draws.mean(axis=0).tolist(),
        "std": draws.std(axis=0).tolist(),
    }


def run(target: str = "banana", steps: int = 1500, sample_size: int = 128,
        learning_rate: float = 5e-3, num_draws: int = 50_000, seed: int = 0,
        flow_settings: dict[str, Any] | None = None, verbose: bool = True) -> dict[str, Any]:
    """Fits the flow and the mean-field Normal to `target` and returns both evaluations."""
    log_prob_fn, sample_fn = TARGETS[target]
    exact = sample_fn(num_draws, seed + 7)
    tf_keras.utils.set_random_seed(seed)  # the conditioners' hidden layers start random
    surrogates = {"mean_field": mean_field_normal(2),
                  "flow": tfp_realnvp.surrogate_posterior(2, **(flow_settings or {}))}
    results: dict[str, Any] = {"target": target, "steps": steps,
                               "exact": {"mean": exact.mean(0).tolist(),
                                         "std": exact.std(0).tolist()}}
    for name, surrogate in surrogates.items():
        started = time.perf_counter()
        losses = train(surrogate, log_prob_fn, steps, sample_size, learning_rate, seed)
        results[name] = {**evaluate(surrogate, log_prob_fn, exact, num_draws, seed),
                         "seconds": time.perf_counter() - started,
                         "variables": len(surrogate.trainable_variables),
                         "final_loss": float(np.mean(losses[-50:]))}
        if verbose:
            print(f"{name}: {results[name]['variables']} variables trained for {steps} steps "
                  f"in {results[name]['seconds']:.1f} s", flush=True)
    if verbose:
        print_report(results)
    return results


def print_report(results: dict[str, Any]) -> None:
    print(f"\n{results['target']}: normalised, so ELBO = -KL(q || p) and 0 is perfect")
    print(f"{'surrogate':<12}{'ELBO':>9}{'KL(p||q)':>10}{'ESS':>8}   mean, std of draws")
    for name in ("mean_field", "flow"):
        r = results[name]
        moments = ", ".join(f"{m:+.2f}/{s:.2f}" for m, s in zip(r["mean"], r["std"], strict=True))
        print(f"{name:<12}{r['elbo']:>9.3f}{r['kl_p_q']:>10.3f}{r['ess_fraction']:>8.1%}   "
              f"{moments}")
    exact = results["exact"]
    moments = ", ".join(f"{m:+.2f}/{s:.2f}" for m, s in zip(exact["mean"], exact["std"],
                                                           strict=True))
    print(f"{'exact':<12}{0.0:>9.3f}{0.0:>10.3f}{1.0:>8.1%}   {moments}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="banana")
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps per surrogate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds: 300 steps, a smaller flow, fewer draws (tests)")
    args = parser.parse_args(argv)
    if args.quick:
        return run(args.target, steps=300, sample_size=64, learning_rate=1e-2,
                   num_draws=5000, seed=args.seed,
                   flow_settings={"hidden_units": 16, "num_hidden_layers": 1})
    return run(args.target, steps=args.steps, seed=args.seed)


if __name__ == "__main__":
    main(sys.argv[1:])
