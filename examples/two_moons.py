"""Two moons with the library API: the original RealNVP notebook's story, end to end.

1. Data: `make_moons(3000, noise=0.05)`.
2. Training: `tfp_realnvp.fit` (configuration chosen from the table's shape), with the
   training and validation NLL per epoch.
3. Inference: the data mapped to latent space (`tfp_realnvp.flow.encode`) should look like
   the base N(0, I): means near 0, standard deviations near 1, no correlation.
4. Generation: draws of the base N(0, I) mapped back to data space
   (`tfp_realnvp.flow.decode`) should land on the moons: we measure how many lie within
   0.15 of a noiseless moon arc (3 noise standard deviations), against the data's own share.
   (The default fit is an ensemble of flows; its latent space is its first member's.)
5. Beyond the notebook: the exact NLL of 20,000 fresh points (the floor is 0.294 nats,
   the entropy of the true density), the figure (data, log-density, samples, latent
   space), an export for TensorFlow Serving and `tfp_realnvp.load` back from it.

Run: python examples/two_moons.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

from _quiet_tf import import_tensorflow  # noqa: E402

tf = import_tensorflow()

import numpy as np  # noqa: E402

import tfp_realnvp  # noqa: E402
from tfp_realnvp.flow import decode, encode  # noqa: E402
from tfp_realnvp.plots import plot_flow  # noqa: E402
from tfp_realnvp.scoring import mean_nll  # noqa: E402
from tfp_realnvp.tables import make_toy  # noqa: E402

NOISE = 0.05
ENTROPY = 0.294  # nats: the true density's entropy, no model's held-out NLL goes below it


def distance_to_moons(points: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearer of the two noiseless arcs `make_moons` draws
    around: `(cos t, sin t)` and `(1 - cos t, 0.5 - sin t)`, `t` in `[0, pi]`."""
    t = np.linspace(0.0, np.pi, 2000)
    arcs = np.concatenate([np.stack([np.cos(t), np.sin(t)], -1),
                           np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], -1)])
    nearest = [np.min(np.linalg.norm(chunk[:, None, :] - arcs[None], axis=-1), axis=1)
               for chunk in np.array_split(points, max(1, len(points) // 500))]
    return np.concatenate(nearest)


def run(out: Path, num_fresh: int = 20_000, settings: dict[str, Any] | None = None,
        verbose: bool = True) -> dict[str, Any]:
    """Trains, encodes, generates, scores, draws, exports and reloads; returns the figures."""
    say = print if verbose else (lambda *args, **kwargs: None)
    data = make_toy("moons", 3000, noise=NOISE, seed=0)
    result = tfp_realnvp.fit(data, out / "run", settings=settings)
    flow, metrics = result.flow, result.metrics
    history = metrics["history"]
    say(f"trained {len(history)} epochs ({metrics['stop_reason'] or 'all epochs'}); "
        f"validation NLL: Gaussian start {metrics['initial_validation_nll']:.3f}, "
        f"best {metrics['best_validation_nll']:.3f} at epoch {metrics['best_epoch']}")
    for row in history[:: max(1, len(history) // 6)]:
        say(f"  epoch {row['epoch']:4d}  train {row['train_nll']:.3f}  "
            f"validation {row['validation_nll']:.3f}")

    # Inference: data space -> latent space.
    z = encode(flow, tf.constant(data)).numpy()
    correlation = float(np.corrcoef(z.T)[0, 1])
    say(f"data in latent space: mean {np.round(z.mean(0), 3)}, std {np.round(z.std(0), 3)}, "
        f"correlation {correlation:.3f} (the base N(0, I): 0, 1, 0)")

    # Generation: base N(0, I) -> data space.
    base = tf.random.stateless_normal([len(data), 2], seed=[0, 1])
    generated = decode(flow, base).numpy()
    on_arc = float(np.mean(distance_to_moons(generated) < 3 * NOISE))
    data_on_arc = float(np.mean(distance_to_moons(data) < 3 * NOISE))
    say(f"base draws mapped to data space within {3 * NOISE:g} of a moon: {on_arc:.1%} "
        f"(the data: {data_on_arc:.1%})")

    fresh = make_toy("moons", num_fresh, noise=NOISE, seed=123)
    nll = mean_nll(flow, fresh)
    say(f"NLL of {num_fresh} fresh points: {nll:.4f} nats (floor {ENTROPY})")
    figure = out / "moons.png"
    plot_flow(flow, data, figure)
    version_dir = tfp_realnvp.export(result.run_dir, out / "exports")
    reloaded_nll = mean_nll(tfp_realnvp.load(version_dir), fresh)
    say(f"figure: {figure}\nexport: {version_dir}; the reloaded flow's NLL: {reloaded_nll:.4f}")
    return {"epochs": len(history), "latent_mean": z.mean(0).tolist(),
            "latent_std": z.std(0).tolist(), "latent_correlation": correlation,
            "generated_on_arc": on_arc, "data_on_arc": data_on_arc, "nll": nll,
            "gaussian_validation_nll": metrics["initial_validation_nll"],
            "best_validation_nll": metrics["best_validation_nll"],
            "figure": str(figure), "run_dir": str(result.run_dir),
            "version_dir": str(version_dir),
            "reloaded_nll": reloaded_nll}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--out", type=Path, default=Path(f"runs/example-moons-{stamp}"),
                        help="folder for the run, the figure and the export")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds: one small flow trained for 2 s (tests)")
    args = parser.parse_args(argv)
    if args.quick:
        return run(args.out, num_fresh=2000,
                   settings={"ensemble_size": 1, "coupling": "affine", "num_couplings": 2,
                             "hidden_units": 16,
                             "jit_compile": False, "time_budget": 2.0})
    return run(args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
