"""SavedModel export: layout, signatures on every loader TF Serving-like clients use, reload."""

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import (
    CAPI_EXPORTED,
    EXPORTED,
    FLOW_SUITE,
    randomise_weights,
    suite_flow,
    suite_requests,
)
from serving_checks import (
    CAPI_LOADER,
    SEED,
    TF1_SESSION_LOADER,
    TF2_LOADER,
    assert_outputs_match,
    expected_outputs,
    fresh_result,
    run_fresh_scripts,
    signature_inputs,
    to_json,
)

import tfp_realnvp
from tfp_realnvp import FlowConfig, TrainConfig, build_flow
from tfp_realnvp import training as train_lib
from tfp_realnvp.blend import MixtureBlend
from tfp_realnvp.serving import BATCHABLE_SIGNATURES, WARMUP_FILE
from tfp_realnvp.tables import make_toy

tfd = tfp.distributions
STATEFUL_RANDOM = {"RandomStandardNormal", "RandomUniform", "RandomUniformInt",
                   "TruncatedNormal", "Multinomial", "RandomGamma", "RandomPoisson",
                   "RandomPoissonV2", "RandomShuffle", "ParameterizedTruncatedNormal",
                   "RandomCrop", "RandomShuffleQueue"}


@pytest.fixture(scope="module")
def trained(tiny_run, tiny_export):
    """(run's parent, version 1, the run's flow): conftest's session run (2 affine couplings,
    trained on moons) and its export. Read-only: tests that add versions use their own base."""
    return tiny_run.parent, tiny_export[1], tfp_realnvp.load(tiny_run)


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    root = tmp_path_factory.mktemp("conditional")
    config = FlowConfig(event_dim=3, num_couplings=2, hidden_units=8, context_dim=2,
                        data_shift=[1.0, 0.0, -1.0], data_scale=[2.0, 1.0, 0.5])
    flow = build_flow(config)
    randomise_weights(flow, seed=5, scale=0.3)
    return flow, tfp_realnvp.export(flow, root, name="cond", config=config)


def test_layout_versions_and_assets(trained, tmp_path):
    root, version_dir, _ = trained
    assert version_dir.parent.name == "realnvp" and version_dir.name == "1"
    names = {p.name for p in version_dir.iterdir()}
    assert {"saved_model.pb", "variables", "assets.extra"} <= names
    extra = version_dir / "assets.extra"
    info = json.loads((extra / "export_info.json").read_text())
    assert info["tensorflow_version"] == tf.__version__
    assert FlowConfig.from_json((extra / "flow_config.json").read_text()).num_couplings == 2
    assert json.loads((extra / "metrics.json").read_text())["status"] == "completed"

    # Versions count up in a base of their own (the shared export is never written to):
    # the shared export went to version 1 of its empty base (asserted above); a copy of it is
    # version 1 here.
    first = tmp_path / "exports" / "realnvp" / "1"
    shutil.copytree(version_dir, first)
    second = tfp_realnvp.export(root / "run", tmp_path / "exports")
    assert second.name == "2"
    before = (first / "saved_model.pb").read_bytes()
    with pytest.raises(FileExistsError, match="already exists; versions are never overwritten"):
        tfp_realnvp.export(root / "run", tmp_path / "exports", version=1)
    assert (first / "saved_model.pb").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "exports" / "realnvp").iterdir()) == ["1", "2"]


# What the TensorFlow-only checks send (all of them run in one fresh interpreter: `fresh`).
TF2_X, TF2_Z = make_toy("moons", 7, seed=9), np.random.default_rng(0).standard_normal(
    (4, 2)).astype(np.float32)
TF1_X, TF1_Z = make_toy("moons", 6, seed=10), np.random.default_rng(1).standard_normal(
    (3, 2)).astype(np.float32)
BAD_X = make_toy("moons", 4, seed=14)
BAD_X[2, 1] = np.nan


def test_tf_only_subprocess_matches_in_process(trained, fresh):
    _, _, flow = trained
    got = fresh_result(fresh, "tf2")
    assert got.pop("modules") == []
    assert got["sample_again"] == got["sample"]["samples"]
    got.pop("sample_again")
    assert_outputs_match(got, expected_outputs(flow, TF2_X, TF2_Z))


def test_tf1_session_path_matches_and_signatures_are_predict(trained, fresh):
    _, _, flow = trained
    x, z = TF1_X, TF1_Z
    tf1 = fresh_result(fresh, "tf1")
    [got], modules = tf1["results"], tf1["modules"]
    assert modules == []
    methods = got.pop("methods")
    assert all(m[0] == "tensorflow/serving/predict" for m in methods.values())
    assert methods["sample"][1] == ["num_samples", "seed"]
    assert methods["log_prob"][1] == ["x"] and methods["decode"][1] == ["z"]
    assert_outputs_match(got, expected_outputs(flow, x, z))


# Suite entries (conftest.CAPI_EXPORTED: spline couplings with LU mixing, stacked ensembles,
# a flow blended with a mixture) exported once per session by conftest's `suite_exports`,
# which runs them through the C API loader.
KINDS = CAPI_EXPORTED


def test_the_c_api_kinds_are_exported_suite_entries():
    assert set(KINDS) <= set(EXPORTED)
    kinds = [FLOW_SUITE[name] for name in KINDS]
    assert {c.coupling for c in kinds} >= {"spline", "autoregressive", "affine"}
    assert "lu" in {c.mixing for c in kinds}
    assert any(c.ensemble_size > 1 for c in kinds) and any(c.blend for c in kinds)


def capi_job(version_dir, x, z, num_samples=5, context=None) -> dict:
    dim = x.shape[1]
    inputs = signature_inputs(x, z, num_samples=num_samples, context=context)
    return {"path": str(version_dir), "dim": dim,
            "context_dim": 0 if context is None else context.shape[1],
            "warmup": str(version_dir / "assets.extra" / WARMUP_FILE), "inputs": to_json(inputs)}


@pytest.fixture(scope="module")
def capi_cases(trained, conditional):
    """This file's own exports for the C API loader (TF Serving's): ({key: job}, {key: what
    to expect})."""
    jobs, expected = {}, {}
    _, version_dir, flow = trained
    x = make_toy("moons", 5, seed=11)
    z = np.random.default_rng(2).standard_normal((2, 2)).astype(np.float32)
    jobs["trained"] = capi_job(version_dir, x, z)
    expected["trained"] = expected_outputs(flow, x, z)

    flow, version_dir = conditional
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    z = rng.standard_normal((4, 3)).astype(np.float32)
    context = rng.standard_normal((4, 2)).astype(np.float32)
    jobs["conditional"] = capi_job(version_dir, x, z, num_samples=4, context=context)
    expected["conditional"] = expected_outputs(flow, x, z, num_samples=4,
                                               context=tf.constant(context))
    return jobs, expected


@pytest.fixture(scope="module")
def fresh(trained, capi_cases):
    """Every TensorFlow-only check of this file in ONE fresh interpreter (one start-up, not
    one per check), the way a model server or client loads an export: the TF2 and TF1
    loaders, the C API loader (TF Serving's) on this file's exports (conftest's
    `suite_exports` runs it on the suite's), bad requests, float64 and saved_model_cli.
    {check: what it returned}."""
    _, version_dir, _ = trained
    path = str(version_dir)
    return run_fresh_scripts({
        "tf2": (TF2_LOADER, {"path": path, "inputs": to_json(signature_inputs(TF2_X, TF2_Z))}),
        "tf1": (TF1_SESSION_LOADER, {"jobs": [
            {"path": path, "inputs": to_json(signature_inputs(TF1_X, TF1_Z))}]}),
        "capi": (CAPI_LOADER, {"jobs": capi_cases[0]}),
        "requests": (REQUESTS_LOADER, {"path": path, "dim": 2, "x": BAD_X.tolist()}),
        "float64": (FLOAT64_TF1, {"path": path, "x": BAD_X[[0, 1]].tolist()}),
        "saved_model_cli": (SAVED_MODEL_CLI, {"path": path}),
    })


@pytest.fixture(scope="module")
def capi_runs(fresh, capi_cases):
    """{key: (what the C API loader returned for the export, what to expect)}."""
    got = fresh_result(fresh, "capi")
    return {key: (got[key], capi_cases[1][key]) for key in capi_cases[0]}


def test_c_api_loader_runs_signatures_and_replays_warmup(capi_runs):
    got, expected = copy.deepcopy(capi_runs["trained"])
    signatures = got.pop("signatures")
    assert signatures == {
        "serving_default": ["tensorflow/serving/predict", ["x"], ["log_prob"]],
        "log_prob": ["tensorflow/serving/predict", ["x"], ["log_prob"]],
        "sample": ["tensorflow/serving/predict", ["num_samples", "seed"], ["samples"]],
        "sample_from_seeds": ["tensorflow/serving/predict", ["seed"], ["samples"]],
        "encode": ["tensorflow/serving/predict", ["x"], ["z"]],
        "decode": ["tensorflow/serving/predict", ["z"], ["x"]],
    }
    assert sorted(got.pop("warmup")) == sorted(BATCHABLE_SIGNATURES)
    assert "expected shape [?,2]" in got.pop("bad_width")
    assert_outputs_match(got, expected)


def test_conditional_export_takes_context_everywhere(capi_runs):
    got, expected = copy.deepcopy(capi_runs["conditional"])
    assert got["signatures"]["sample"][1] == ["context", "num_samples", "seed"]
    assert got["signatures"]["log_prob"][1] == ["context", "x"]
    assert len(got.pop("warmup")) == 5
    assert "expected shape [?,3]" in got.pop("bad_width")
    got.pop("signatures")
    assert_outputs_match(got, expected)


@pytest.mark.parametrize("name", KINDS)
def test_c_api_loader_runs_spline_lu_and_ensemble_exports(name, suite_exports):
    """The new kinds (spline couplings, LU mixing, stacked ensembles, a flow blended with
    a mixture) through the loader TF Serving uses, warm-up replay included."""
    got = copy.deepcopy(suite_exports[name]["capi"])
    _, flow = suite_flow(name)
    x, z, context = suite_requests(name)
    expected = expected_outputs(flow, x, z, num_samples=4,
                                context=None if context is None else tf.constant(context))
    event_dim = FLOW_SUITE[name].event_dim
    assert len(got.pop("warmup")) == 5
    assert f"expected shape [?,{event_dim}]" in got.pop("bad_width")
    got.pop("signatures")
    assert_outputs_match(got, expected, atol=1e-4)


# `saved_model_cli show --all` as the console script runs it (its entry point is this
# `main`), in the fresh interpreter of `fresh`.
SAVED_MODEL_CLI = """
    import contextlib, io, json, sys
    from tensorflow.python.tools import saved_model_cli
    path = json.load(sys.stdin)["path"]
    sys.argv, shown = ["saved_model_cli", "show", "--dir", path, "--all"], io.StringIO()
    with contextlib.redirect_stdout(shown):
        try:
            saved_model_cli.main()
        except SystemExit as done:
            assert not done.code, done.code
    print(json.dumps({"shown": shown.getvalue()}))
"""


def test_saved_model_cli_lists_the_signatures(fresh):
    shown = fresh_result(fresh, "saved_model_cli")["shown"]
    for signature in ("serving_default", "log_prob", "sample", "sample_from_seeds", "encode",
                      "decode"):
        assert f"signature_def['{signature}']" in shown
    assert "shape: (-1, 2)" in shown and "name: serving_default_x:0" in shown
    assert "inputs['num_samples'] tensor_info:\n        dtype: DT_INT32\n        shape: ()" in shown
    assert "shape: (2)" in shown and "outputs['log_prob']" in shown


def test_graph_holds_only_stock_stateless_ops(trained):
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    _, version_dir, _ = trained
    saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    ops = set()
    for meta in saved.meta_graphs:
        ops |= {node.op for node in meta.graph_def.node}
        for function in meta.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    assert "StatelessRandomNormalV2" in ops
    assert not ops & STATEFUL_RANDOM
    assert not {op for op in ops if op.startswith("Stateful") and op != "StatefulPartitionedCall"}
    assert not {"PyFunc", "EagerPyFunc", "PyFuncStateless"} & ops
    assert [op for op in ops if op_def_registry.get(op) is None] == []


def test_load_returns_a_live_tfp_distribution(trained):
    root, version_dir, flow = trained
    loaded = tfp_realnvp.load(version_dir)
    # A 2-column table without a context is blended (auto.py): the flow and a Gaussian
    # mixture, w p_flow + (1 - w) p_mix, itself a TFP distribution. The flow inside is a
    # tfd.TransformedDistribution(...), which builds its non-CompositeTensor base class
    # here, because a bijector holding a Keras model is not a CompositeTensor.
    assert isinstance(loaded, MixtureBlend) and isinstance(loaded, tfd.Distribution)
    assert type(loaded.flow).__name__.endswith("TransformedDistribution")
    assert len(tfp_realnvp.couplings(loaded)) == 2
    assert 0.0 <= float(loaded.flow_weight) <= 1.0
    x = tf.constant(make_toy("moons", 50, seed=12))
    served = tf.saved_model.load(str(version_dir)).signatures["log_prob"](x=x)["log_prob"]
    np.testing.assert_allclose(loaded.log_prob(x), served, atol=1e-6, rtol=0)
    np.testing.assert_allclose(tfp_realnvp.load(version_dir.parent).log_prob(x),
                               served, atol=1e-6, rtol=0)
    samples = loaded.sample(10, seed=tf.constant(SEED))
    np.testing.assert_array_equal(samples, flow.sample(10, seed=tf.constant(SEED)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        log_prob = loaded.log_prob(x)
    grad = tape.gradient(log_prob, x)
    assert grad.shape == x.shape and np.all(np.isfinite(grad)) and np.any(grad != 0)

    # Composes like any TFP distribution: a component of a mixture.
    wide = tfd.MultivariateNormalDiag(loc=[0.5, 0.25], scale_diag=[3.0, 3.0])
    mixture = tfd.Mixture(tfd.Categorical(probs=[0.9, 0.1]), [loaded, wide])
    expected = np.logaddexp(np.log(0.9) + loaded.log_prob(x), np.log(0.1) + wide.log_prob(x))
    np.testing.assert_allclose(mixture.log_prob(x), expected, rtol=1e-5)
    assert mixture.sample(6, seed=tf.constant(SEED)).shape == [6, 2]


def test_load_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        tfp_realnvp.load(tmp_path)


def test_cli_export_of_a_run_serves_what_the_run_does(trained, tmp_path):
    from click.testing import CliRunner

    from tfp_realnvp.cli import cli as main

    root, version_dir, _ = trained
    runner = CliRunner()
    base = tmp_path / "served"
    result = runner.invoke(main, ["export", str(root / "run"), str(base), "--name", "moons",
                                  "--version", "7"])
    assert result.exit_code == 0, result.output
    assert (base / "moons" / "7" / "saved_model.pb").is_file()
    again = runner.invoke(main, ["export", str(root / "run"), str(base), "--name", "moons",
                                 "--version", "7"])
    assert again.exit_code == 1 and "versions are never overwritten" in again.output

    sampled = runner.invoke(main, ["sample", str(base / "moons" / "7"), "-n", "4", "--seed", "2"])
    from_run = runner.invoke(main, ["sample", str(root / "run"), "-n", "4", "--seed", "2"])
    assert sampled.exit_code == 0 and sampled.output == from_run.output
    np.save(tmp_path / "x.npy", make_toy("moons", 30, seed=13))
    scores = [json.loads(runner.invoke(main, ["evaluate", str(p), "--data",
                                              str(tmp_path / "x.npy"), "--json"]).output)
              for p in (base / "moons", root / "run")]
    assert scores[0]["nll"] == pytest.approx(scores[1]["nll"], abs=1e-5)

    # `fit --export`: tests/test_plots.py (fit --plot --tensorboard --export, then the
    # export drawn) and tests/test_conventions.py (fit --config ... --export) run it.


def test_concurrent_exports_get_distinct_complete_versions(trained, tmp_path):
    root, _, _ = trained
    base = tmp_path / "served"
    command = [sys.executable, "-m", "tfp_realnvp", "export", str(root / "run"), str(base)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    reported = sorted(line.rsplit("/", 1)[-1] for out, _ in outputs
                      for line in out.splitlines() if line.startswith("exported SavedModel: "))
    assert reported == ["1", "2"]
    assert sorted(p.name for p in (base / "realnvp").iterdir()) == ["1", "2"]  # no leftovers
    for version in ("1", "2"):
        folder = base / "realnvp" / version
        assert (folder / "saved_model.pb").is_file()
        assert (folder / "variables" / "variables.index").is_file()
        assert (folder / "assets.extra" / "flow_config.json").is_file()


REQUESTS_LOADER = """
    import json, sys
    import numpy as np
    from serving_capi import CApiSavedModel
    payload = json.load(sys.stdin)
    dim, out = payload["dim"], {}

    def attempt(name, signature, feed):
        try:
            result = model.run(signature, feed)
            out[name] = {k: np.asarray(v).tolist() for k, v in result.items()}
        except RuntimeError as error:
            out[name] = {"error": str(error)}

    with CApiSavedModel(payload["path"]) as model:
        x = np.asarray(payload["x"], "float32")
        attempt("nan_row", "log_prob", {"x": x})
        attempt("empty", "log_prob", {"x": np.zeros((0, dim), "float32")})
        attempt("rank_3", "log_prob", {"x": np.zeros((2, 1, dim), "float32")})
        seed = np.array([1, 2], "int32")
        for name, n in (("negative", -3), ("huge", 2_000_000), ("zero", 0)):
            attempt(name, "sample", {"num_samples": np.array(n, "int32"), "seed": seed})
    print(json.dumps(out))
"""


def test_bad_requests_get_clear_errors_or_correct_answers(trained, fresh):
    """Through the C API loader (TF Serving's); float64 through the TF1 session loader."""
    _, _, flow = trained
    x = BAD_X
    got = fresh_result(fresh, "requests")
    log_prob = np.asarray(got["nan_row"]["log_prob"], dtype=float)
    expected = flow.log_prob(x).numpy()
    assert np.isnan(log_prob[2]) and np.all(np.isfinite(log_prob[[0, 1, 3]]))
    np.testing.assert_allclose(log_prob[[0, 1, 3]], expected[[0, 1, 3]], atol=1e-5)
    assert got["empty"] == {"log_prob": []}
    assert "expected shape [?,2]" in got["rank_3"]["error"]
    assert "num_samples must be >= 0" in got["negative"]["error"]
    assert "num_samples must be <= 1000000 per request" in got["huge"]["error"]
    assert got["zero"] == {"samples": []}
    double = fresh_result(fresh, "float64")
    if "error" in double:  # refusing is fine, if it says why
        assert "double" in double["error"] or "float64" in double["error"]
    else:  # converting is fine, if the answer is right
        np.testing.assert_allclose(double["log_prob"], expected[[0, 1]], atol=1e-5)


FLOAT64_TF1 = """
    import json, sys
    import numpy as np
    import tensorflow as tf
    payload = json.load(sys.stdin)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], payload["path"])
        signature = meta.signature_def["log_prob"]
        feed = {signature.inputs["x"].name: np.asarray(payload["x"], "float64")}
        try:
            value = session.run(signature.outputs["log_prob"].name, feed_dict=feed)
            print(json.dumps({"log_prob": value.tolist()}))
        except Exception as error:
            print(json.dumps({"error": str(error)}))
"""


@pytest.mark.parametrize("damage, message", [
    ("no_variables", "no variables/ (an incomplete export)"),
    ("truncated_pb", "saved_model.pb is unreadable (truncated or not a SavedModel)"),
    ("no_config", "no assets.extra/flow_config.json"),
    ("bad_weights", "the weights are missing, unreadable or do not fit"),
])
def test_corrupt_exports_get_one_clear_message(trained, tmp_path, damage, message):
    from click.testing import CliRunner

    from tfp_realnvp.cli import cli

    _, version_dir, _ = trained
    broken = tmp_path / "realnvp" / "1"
    shutil.copytree(version_dir, broken)
    if damage == "no_variables":
        shutil.rmtree(broken / "variables")
    elif damage == "truncated_pb":
        pb = broken / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:200])
    elif damage == "no_config":
        (broken / "assets.extra" / "flow_config.json").unlink()
    else:
        (broken / "variables" / "variables.data-00000-of-00001").write_bytes(b"garbage")
    np.save(tmp_path / "x.npy", make_toy("moons", 10, seed=15))
    for args in (["sample", str(broken), "-n", "3"],
                 ["evaluate", str(broken), "--data", str(tmp_path / "x.npy")],
                 ["info", str(broken)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


def test_an_unfinished_run_says_to_resume(tmp_path):
    from click.testing import CliRunner

    from tfp_realnvp.cli import cli

    data = make_toy("moons", 300, seed=16)
    with pytest.raises(KeyboardInterrupt):
        train_lib.fit(data, tmp_path / "run", FlowConfig(num_couplings=2, hidden_units=8),
                      TrainConfig(epochs=5, checkpoint_every=1),
                      on_epoch=lambda record: (_ for _ in ()).throw(KeyboardInterrupt))
    result = CliRunner().invoke(cli, ["sample", str(tmp_path / "run"), "-n", "2"])
    assert result.exit_code == 1
    assert "training has not finished; resume it" in result.output


def test_a_failed_export_leaves_nothing_a_server_could_pick_up(trained, tmp_path, monkeypatch):
    root, _, _ = trained

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        tfp_realnvp.export(root / "run", tmp_path)
    assert list((tmp_path / "realnvp").iterdir()) == []  # no version, no hidden staging
