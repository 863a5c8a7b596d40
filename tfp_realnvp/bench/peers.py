"""FlowJAX's two spline flows, fitted as its docs show: the peers of the quality benchmark.

Each fit sees only the training rows. The columns are standardised with the training rows'
mean m and standard deviation s, z = (x - m) / s; FlowJAX fits p_z with its own 10%
validation split, early stopping (patience 5) and Adam at 5e-3 in float32; the NLL in data
units is then

    -log p_x(x) = -log p_z((x - m) / s) + sum_j log s_j.

JAX and FlowJAX are optional (the `bench` extra) and imported only inside `fit_flowjax`: the
package never needs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfp_realnvp.errors import ConfigError

FLOW_KINDS = {"maf": "MAF-RQS", "coupling": "coupling-RQS"}
KNOTS, INTERVAL = 8, 4.0
LEARNING_RATE = 5e-3
MAX_EPOCHS = 100  # fit_to_data's default


def _import_flowjax(method: str) -> dict[str, Any]:
    """jax, jax.numpy and the FlowJAX names used here, or a ConfigError naming the fix."""
    try:
        import jax
        import jax.numpy as jnp
        from flowjax.bijections import RationalQuadraticSpline
        from flowjax.distributions import Normal
        from flowjax.flows import coupling_flow, masked_autoregressive_flow
        from flowjax.train import fit_to_data
    except ImportError as error:
        raise ConfigError(
            f"Method {method!r} needs FlowJAX and JAX ({error.name} is not installed): "
            'pip install -e ".[bench]" (or pip install "tfp-realnvp[bench]").') from None
    return {"jax": jax, "jnp": jnp, "spline": RationalQuadraticSpline, "normal": Normal,
            "maf": masked_autoregressive_flow, "coupling": coupling_flow,
            "fit_to_data": fit_to_data}


def fit_flowjax(kind: str, train: np.ndarray, test: np.ndarray, seed: int,
                max_epochs: int | None = None) -> tuple[np.ndarray, str]:
    """Fits FlowJAX's `kind` ("maf" or "coupling") flow with a rational-quadratic spline
    transformer (8 knots on [-4, 4]) on `train`; returns the per-row NLL of `test` in data
    units (float64) and a note: the flow and its epochs (best / run)."""
    names = _import_flowjax(f"flowjax_{kind}")
    jax, jnp = names["jax"], names["jnp"]
    train = np.asarray(train, np.float32)
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, np.float32(1))  # a constant column: left as it is
    flow_key, train_key = jax.random.split(jax.random.key(seed))
    flow = names[kind](flow_key, base_dist=names["normal"](jnp.zeros(train.shape[1])),
                       transformer=names["spline"](knots=KNOTS, interval=INTERVAL))
    flow, losses = names["fit_to_data"](
        train_key, flow, jnp.asarray((train - mean) / std), learning_rate=LEARNING_RATE,
        max_epochs=max_epochs or MAX_EPOCHS, show_progress=False)
    standard = jnp.asarray((np.asarray(test, np.float32) - mean) / std)
    nll = -np.asarray(flow.log_prob(standard), np.float64)
    nll += float(np.log(std.astype(np.float64)).sum())
    best = int(np.argmin(losses["val"])) + 1
    return nll, f"{FLOW_KINDS[kind]}, {best} of {len(losses['val'])} epochs"
