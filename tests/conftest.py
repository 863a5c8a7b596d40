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


def export_features(config: FlowConfig) -> set[tuple[str, object]]:
    """What an export of `config` exercises: its coupling, mixing and activation kinds,
    its base (Normal or mixture), whether it is conditional, an ensemble, and both (each
    member given the context), and whether it is blended with a mixture (`MixtureBlend`),
    one flow or an ensemble."""
    conditional, ensemble = config.context_dim > 0, config.ensemble_size > 1
    return {("coupling", config.coupling), ("mixing", config.mixing),
            ("activation", config.activation), ("conditional", conditional),
            ("ensemble", ensemble), ("conditional ensemble", conditional and ensemble),
            ("mixture base", config.base_components > 1),
            ("blend", config.blend_components > 0),
            ("blended ensemble", config.blend_components > 0 and ensemble)}


def covering(names: list[str]) -> list[str]:
    """The fewest suite entries (greedy, in suite order on ties) whose exports exercise every
    kind the suite has: a new coupling or mixing kind in FLOW_SUITE is exported too. Every
    entry still gets every in-process contract test of test_flow_suite.py; an export of each
    of the others would prove nothing new (their kinds' graphs are in these exports)."""
    left = set().union(*(export_features(FLOW_SUITE[n]) for n in names))
    chosen = []
    while left:
        best = max(names, key=lambda n: len(export_features(FLOW_SUITE[n]) & left))
        chosen.append(best)
        left -= export_features(FLOW_SUITE[best])
    return [n for n in names if n in chosen]


# The suite entries exported once per test session (`suite_exports`): every kind of the suite.
EXPORTED = covering(list(FLOW_SUITE))
# Those the C API loader (TF Serving's) runs too: spline couplings with LU mixing and a
# context, a conditional stacked ensemble, an autoregressive ensemble blended with a mixture.
CAPI_EXPORTED = ["spline-lu-conditional-4d", "ensemble-conditional-2d",
                 "blend-autoregressive-ensemble-3d"]


def suite_events(config: FlowConfig, batch_shape, seed: int) -> tf.Tensor:
    """Events in data units around the data statistics (a few scales out)."""
    z = tf.random.stateless_normal([*batch_shape, config.event_dim], seed=[seed, 11])
    return z * 1.5 * np.float32(config.data_scale) + np.float32(config.data_shift)


def suite_requests(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(x, z, context or None): 4 rows each, what the loaders send an export of `name`."""
    config = suite_config(name)
    x = suite_events(config, [4], seed=8).numpy()
    z = np.random.default_rng(EXPORTED.index(name)).standard_normal(
        (4, config.event_dim)).astype(np.float32)
    context = suite_context(config, [4])
    return x, z, None if context is None else context.numpy()


def _build_suite_exports(root) -> dict:
    """Exports every EXPORTED entry (`suite_flow(name)`, seed 0) under `root`, then runs the
    TF1 session loader over all of them and the C API loader (TF Serving's, warm-up replay
    and a request of the wrong width included) over CAPI_EXPORTED, in ONE fresh
    TensorFlow-only interpreter. {name: {"path", "tf1", "capi" (None: not run)}}."""
    from serving_checks import (
        CAPI_LOADER,
        TF1_SESSION_LOADER,
        run_fresh_scripts,
        signature_inputs,
        to_json,
    )

    import tfp_realnvp
    from tfp_realnvp.serving import WARMUP_FILE

    paths, tf1_jobs, capi_jobs = {}, [], {}
    for name in EXPORTED:
        config, flow = suite_flow(name)
        x, z, context = suite_requests(name)
        path = tfp_realnvp.export(flow, root, name=name, config=config)
        inputs = to_json(signature_inputs(x, z, num_samples=4, context=context))
        paths[name] = str(path)
        tf1_jobs.append({"path": str(path), "inputs": inputs})
        if name in CAPI_EXPORTED:
            capi_jobs[name] = {"path": str(path), "dim": config.event_dim,
                               "context_dim": config.context_dim, "inputs": inputs,
                               "warmup": str(path / "assets.extra" / WARMUP_FILE)}
    got = run_fresh_scripts({"tf1": (TF1_SESSION_LOADER, {"jobs": tf1_jobs}),
                             "capi": (CAPI_LOADER, {"jobs": capi_jobs})})
    for key in ("tf1", "capi"):
        assert "__failed__" not in got[key], got[key]["__failed__"]
    assert got["tf1"]["modules"] == [], got["tf1"]["modules"]  # the loaders need TF only
    return {name: {"path": paths[name], "tf1": tf1, "capi": got["capi"].get(name)}
            for name, tf1 in zip(EXPORTED, got["tf1"]["results"], strict=True)}


@pytest.fixture(scope="session")
def suite_exports(tmp_path_factory) -> dict:
    """Every EXPORTED suite entry exported once and run through the TF1 session loader, the
    CAPI_EXPORTED ones through the C API loader too (`_build_suite_exports`): {name: {"path",
    "tf1", "capi"}}. Read-only.

    Under pytest-xdist the workers share one build (a file lock in the session's temporary
    folder: the first builds, the others read its JSON), as pytest-xdist documents; the live
    flows are rebuilt from the seed by whoever needs them (`suite_flow(name)`)."""
    import fcntl
    import json

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _build_suite_exports(tmp_path_factory.mktemp("suite-exports"))
    shared = tmp_path_factory.getbasetemp().parent / "suite-exports"
    shared.mkdir(exist_ok=True)
    done = shared / "results.json"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            results = _build_suite_exports(shared / "models")
            done.write_text(json.dumps(results))
    return json.loads(done.read_text())


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
