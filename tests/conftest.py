"""Shared test set-up: quiet TensorFlow, two logical CPUs, fixtures, and the flow suite.

`FLOW_SUITE` names every flow configuration the package ships a code path for; the
contract tests in `test_flow_suite.py` run over all of it. Adding a coupling or mixing
kind means adding a line here.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_realnvp import FlowConfig, bijector_kwargs, build_flow, context_kwargs  # noqa: E402
from tfp_realnvp import base as base_lib  # noqa: E402
from tfp_realnvp.base_fit import Mixture  # noqa: E402
from tfp_realnvp.bijectors.ensemble import FoldAffine, stacked_flow  # noqa: E402
from tfp_realnvp.blend import MixtureBlend  # noqa: E402

# Must happen before TensorFlow initialises its devices: the MirroredStrategy tests need
# two replicas, and a CI machine has one physical CPU device.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

FLOW_SUITE = {
    "reverse-2d": FlowConfig(event_dim=2, num_couplings=2, hidden_units=8,
                             num_hidden_layers=1),
    "random-5d-tanh": FlowConfig(event_dim=5, num_couplings=4, hidden_units=16,
                                 num_hidden_layers=2, activation="tanh", mixing="random",
                                 mixing_seed=3),
    "conditional-3d": FlowConfig(event_dim=3, num_couplings=3, hidden_units=8,
                                 num_hidden_layers=1, log_scale_bound=0.5, context_dim=2),
    "lu-5d": FlowConfig(event_dim=5, num_couplings=3, hidden_units=8, mixing="lu"),
    "spline-2d": FlowConfig(event_dim=2, num_couplings=3, hidden_units=8, coupling="spline",
                            spline_bins=5, spline_bound=3.0, base_components=4),
    "spline-lu-conditional-4d": FlowConfig(event_dim=4, num_couplings=2, hidden_units=8,
                                           coupling="spline", mixing="lu", context_dim=2),
    "ensemble-spline-lu-3d": FlowConfig(event_dim=3, num_couplings=2, hidden_units=8,
                                        coupling="spline", mixing="lu", ensemble_size=3,
                                        base_components=2),
    "ensemble-conditional-2d": FlowConfig(event_dim=2, num_couplings=2, hidden_units=8,
                                          ensemble_size=2, context_dim=2),
    "blend-spline-2d": FlowConfig(event_dim=2, num_couplings=2, hidden_units=8,
                                  coupling="spline", spline_bins=5, blend=True,
                                  blend_components=3),
    "blend-autoregressive-ensemble-3d": FlowConfig(
        event_dim=3, num_couplings=2, hidden_units=8, num_hidden_layers=1,
        coupling="autoregressive", mixing="random", spline_bins=5, ensemble_size=2,
        whiten=False, blend=True, blend_components=2),
    "autoregressive-conditional-ensemble-4d": FlowConfig(
        event_dim=4, num_couplings=2, hidden_units=8, num_hidden_layers=1,
        coupling="autoregressive", mixing="random", spline_bins=5, ensemble_size=2,
        context_dim=2),
}


def randomise_weights(flow, seed: int = 0, scale: float = 0.5) -> None:
    """Gives every weight a random value so the flow is far from the identity."""
    rng = np.random.default_rng(seed)
    for variable in flow.trainable_variables:
        variable.assign(scale * rng.standard_normal(variable.shape).astype(np.float32))


def suite_config(name: str) -> FlowConfig:
    """The suite's config with a data map (means, scales, correlations), so the affine map
    to data units is not the identity."""
    config = FLOW_SUITE[name]
    dim = config.event_dim
    correlation = 0.6 * np.eye(dim) + 0.4  # every pair correlated 0.4
    return config.replace(data_shift=[0.5 - 0.25 * i for i in range(dim)],
                          data_scale=[1.5 + 0.5 * i for i in range(dim)],
                          data_tril=np.linalg.cholesky(correlation).tolist())


def suite_flow(name: str, seed: int = 0):
    """(config, flow) for a suite entry, with random weights (far from the identity)."""
    config = suite_config(name)
    flow = build_flow(config)
    randomise_weights(flow, seed=seed, scale=0.4)
    rng = np.random.default_rng(seed)
    for step in stacked_flow(flow).bijector.bijectors:
        if isinstance(step, FoldAffine):  # each member's own Gaussian: not the identity
            for member in range(config.ensemble_size):
                mixing = rng.normal(size=(config.event_dim, config.event_dim))
                rows = rng.normal(size=(50, config.event_dim)) @ mixing + 0.3 * member
                step.set_from_rows(member, rows)
    base = stacked_flow(flow).distribution
    if base_lib.is_mixture(base):  # each member its own mixture: not N(0, I)
        for member in range(config.ensemble_size):
            base_lib.set_member_mixture(base, member, config.ensemble_size,
                                        random_mixture(rng, config))
    if isinstance(flow, MixtureBlend):  # half the density from a mixture in data units
        mixture = random_mixture(rng, config, config.blend_components)
        flow.set_blend(Mixture(mixture.weights,
                               mixture.means * config.data_scale + config.data_shift,
                               mixture.covariances), 0.5)
    return config, flow


def random_mixture(rng, config: FlowConfig, components: int | None = None) -> Mixture:
    """A mixture of `config.base_components` (or `components`) well-separated Gaussians
    in latent units."""
    k, dim = components or config.base_components, config.event_dim
    factors = rng.normal(size=(k, dim, dim)) * 0.3 + np.eye(dim)
    return Mixture(rng.dirichlet(np.ones(k) * 3), rng.normal(size=(k, dim)) * 1.5,
                   factors @ np.swapaxes(factors, 1, 2))


def suite_context(config: FlowConfig, batch_shape, seed: int = 7):
    """A random context for conditional flows, None otherwise."""
    if not config.context_dim:
        return None
    return tf.random.stateless_normal([*batch_shape, config.context_dim], seed=[seed, seed])


def suite_kwargs(config: FlowConfig, flow, batch_shape) -> tuple[dict, dict]:
    """(distribution kwargs, bijector kwargs) routing a random context where one is needed."""
    context = suite_context(config, batch_shape)
    return context_kwargs(flow, context), bijector_kwargs(flow, context)


# The smallest honest `fit` through the CLI: 300 moons points, 3 epochs, 2 affine couplings.
# The epochs bound it, never the clock: a loaded machine must not end a fit early.
TINY_FIT = ["--num-points", "300", "--epochs", "3", "--num-couplings", "2", "--hidden-units",
            "8", "--batch-size", "64", "--coupling", "affine", "--ensemble-size", "1",
            "--no-jit-compile", "--time-budget", "600", "--quiet"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One small trained run directory (`fit --out RUN` + TINY_FIT), trained once per test
    session and shared by every test that only reads a run. Read-only: a test that writes
    into a run (resume, export into it) trains its own."""
    from click.testing import CliRunner

    from tfp_realnvp.cli import cli

    out = tmp_path_factory.mktemp("tiny") / "run"
    result = CliRunner().invoke(cli, ["fit", "--out", str(out), *TINY_FIT])
    assert result.exit_code == 0, result.output
    assert "held-out test NLL" in result.output
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory):
    """`tiny_run` exported once: (export base, version 1's folder). Read-only, like the run."""
    import tfp_realnvp

    base = tmp_path_factory.mktemp("tiny_exports")
    return base, tfp_realnvp.export(tiny_run, base)


@pytest.fixture
def moons() -> np.ndarray:
    from tfp_realnvp.tables import make_toy

    return make_toy("moons", 400, 0.05, seed=0)
