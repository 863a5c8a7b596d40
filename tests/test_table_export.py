"""Named-column serving of table models: one input per column, labels as text, scored like
the Python model on every loader TF Serving uses (TF1 session, C API), warm-up included."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from serving_capi import CApiSavedModel  # noqa: E402
from tensorflow.core.framework import types_pb2  # noqa: E402

import tfp_realnvp  # noqa: E402
from tfp_realnvp import FlowConfig, TrainConfig, build_flow  # noqa: E402
from tfp_realnvp.errors import ConfigError  # noqa: E402
from tfp_realnvp.info import describe, format_summary  # noqa: E402
from tfp_realnvp.mixed import encoding  # noqa: E402
from tfp_realnvp.mixed.model import MixedTableModel, fit_mixed  # noqa: E402
from tfp_realnvp.rundir import RunDir, find_model  # noqa: E402
from tfp_realnvp.serving import SIGNATURES, WARMUP_FILE  # noqa: E402
from tfp_realnvp.serving_columns import input_names  # noqa: E402
from tfp_realnvp.tables.layout import ColumnSpec, TableLayout  # noqa: E402

REQUESTS = Path(__file__).resolve().parents[1] / "export" / "requests"
TINY_FLOW = FlowConfig(num_couplings=2, hidden_units=8, num_hidden_layers=1)
TINY_TRAIN = TrainConfig(epochs=3, batch_size=64, jit_compile=False)
INPUTS = {"carat": "carat", "cut": "cut", "depth (%)": "depth", "color": "color"}


def diamonds(rows=300, seed=0):
    """A small table: an ID, two numeric and two categorical columns (cut drives carat)."""
    rng = np.random.default_rng(seed)
    cut = rng.choice(["Fair", "Good", "Ideal"], rows, p=[0.2, 0.3, 0.5])
    color = rng.choice(["D", "E"], rows)
    carat = rng.normal(size=rows) + 1.5 * (cut == "Ideal")
    depth = 2.0 * rng.normal(size=rows) + 60.0
    return {"carat": carat, "cut": cut, "depth (%)": depth, "color": color}


def write_layout(run_dir, layout):
    """Puts `layout` in a run's config.json (what the `core` fit path will do itself)."""
    run = RunDir(run_dir)
    run.write_config(dataclasses.replace(run.read_config(), layout=layout))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("table_export")
    table = diamonds()
    vocabularies = encoding.fit_vocabularies({k: table[k] for k in ("cut", "color")})
    codes = encoding.encode({k: table[k] for k in ("cut", "color")}, vocabularies)
    numeric = np.stack([table["carat"], table["depth (%)"]], axis=1)
    model = fit_mixed(numeric, codes, root / "run", TINY_FLOW, TINY_TRAIN,
                      vocabularies=vocabularies)
    layout = TableLayout((
        ColumnSpec("id", "ignored", "ignored"), ColumnSpec("carat"),
        ColumnSpec("cut", kind="categorical", levels=vocabularies[0].labels),
        ColumnSpec("depth (%)"),
        ColumnSpec("color", kind="categorical", levels=vocabularies[1].labels)))
    write_layout(root / "run", layout)
    version_dir = tfp_realnvp.export(root / "run", root / "exports")
    return {"model": model, "vocabularies": vocabularies, "version_dir": version_dir,
            "table": table, "root": root}


def python_scores(fixture, rows):
    """`MixedTableModel.log_prob` of rows given as `{column: values}` (labels as text)."""
    codes = encoding.encode({k: rows[k] for k in ("cut", "color")}, fixture["vocabularies"])
    numeric = np.stack([rows["carat"], rows["depth (%)"]], axis=1)
    return fixture["model"].log_prob(numeric, codes)


def feed(rows):
    """Named inputs as a server builds them: float32 numbers, strings as bytes."""
    return {INPUTS[k]: (np.asarray(v, np.float32) if k in ("carat", "depth (%)")
                        else np.array([str(s).encode() for s in v], dtype=object))
            for k, v in rows.items()}


def rest_rows_to_inputs(body, signature_def):
    """TF Serving's REST row format: each input key's values across `instances` stacked
    along dimension 0, in the dtype the signature declares."""
    out = {}
    for key, info in signature_def.inputs.items():
        values = [instance[key] for instance in body["instances"]]
        out[key] = np.array([v.encode() for v in values], dtype=object) \
            if info.dtype == types_pb2.DT_STRING else np.asarray(values, np.float32)
    return out


def tf1_session_run(version_dir, signature, inputs):
    """Runs a signature through the TF1 session loader (TF Serving's `LoadSavedModel`)."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        definition = meta.signature_def[signature]
        names = sorted(definition.outputs)
        values = session.run([definition.outputs[k].name for k in names],
                             {definition.inputs[k].name: v for k, v in inputs.items()})
        return dict(zip(names, values, strict=True))


def test_input_names_are_sanitised_deterministically():
    assert input_names(["carat", "price (usd)", "depth (%)", "2nd", "class", "seed", "a-b",
                        "a b", ""]) == {
        "carat": "carat", "price (usd)": "price_usd", "depth (%)": "depth", "2nd": "c_2nd",
        "class": "c_class", "seed": "c_seed", "a-b": "a_b", "a b": "a_b_2", "": "c_"}


def test_signatures_take_one_named_input_per_column(mixed):
    version_dir = mixed["version_dir"]
    summary = describe(version_dir)
    signatures = summary["signatures"]
    assert sorted(signatures) == ["log_prob", "sample", "sample_from_seeds", "serving_default"]
    columns = {"carat": {"dtype": "float", "shape": [-1]},
               "color": {"dtype": "string", "shape": [-1]},
               "cut": {"dtype": "string", "shape": [-1]},
               "depth": {"dtype": "float", "shape": [-1]}}
    for name in ("serving_default", "log_prob"):
        assert signatures[name] == {"inputs": columns,
                                    "outputs": {"log_prob": {"dtype": "float", "shape": [-1]}}}
    assert signatures["sample"]["outputs"] == columns
    assert signatures["sample"]["inputs"] == {"num_samples": {"dtype": "int32", "shape": []},
                                              "seed": {"dtype": "int32", "shape": [2]}}
    assert summary["export_info"]["column_inputs"] == INPUTS
    assert summary["export_info"]["table_model"] == "mixed"
    extra = version_dir / "assets.extra"
    assert json.loads((extra / "columns.json").read_text())["column_inputs"] == INPUTS
    assert (extra / "categorical.json").is_file() and (extra / "layout.json").is_file()
    text = format_summary(summary)
    assert "named inputs: carat, cut, depth (%) -> depth, color" in text
    assert "signature log_prob: carat float (-1,), color string (-1,)" in text


def test_load_returns_a_mixed_model_that_scores_like_the_run(mixed):
    loaded = tfp_realnvp.load(mixed["version_dir"])
    assert isinstance(loaded, MixedTableModel)
    assert find_model(mixed["version_dir"]).load().vocabularies == \
        mixed["vocabularies"]
    table = mixed["table"]
    codes = encoding.encode({k: table[k][:40] for k in ("cut", "color")},
                            mixed["vocabularies"])
    codes[3, 0] = -1  # a missing cell: the loaded model sums it out like the run's
    numeric = np.stack([table["carat"][:40], table["depth (%)"][:40]], axis=1)
    np.testing.assert_allclose(loaded.log_prob(numeric, codes),
                               mixed["model"].log_prob(numeric, codes), rtol=1e-6)


def test_every_loader_scores_like_the_python_model(mixed):
    table = mixed["table"]
    rows = {k: v[:8].copy() for k, v in table.items()}
    rows["cut"][1] = "  Ideal "  # labels are stripped, as the Python encoding does
    rows["color"][2] = "Z"  # unseen: the unseen level's mass
    rows["carat"][4] = np.nan  # a missing number: that row's score only is NaN
    kept = {k: np.delete(v, 4) for k, v in rows.items()}
    expected = np.insert(python_scores(mixed, kept), 4, np.nan)
    inputs = feed(rows)
    session = tf1_session_run(mixed["version_dir"], "log_prob", inputs)["log_prob"]
    with CApiSavedModel(str(mixed["version_dir"])) as model:
        c_api = model.run("log_prob", inputs)["log_prob"]
        default = model.run("serving_default", inputs)["log_prob"]
        empty = model.run("log_prob", {k: v[:0] for k, v in inputs.items()})["log_prob"]
    eager = tf.saved_model.load(str(mixed["version_dir"])).signatures["log_prob"](
        **{k: tf.constant(v) for k, v in inputs.items()})["log_prob"].numpy()
    for got in (session, c_api, default, eager):
        assert got.dtype == np.float32 and got.shape == (8,)
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    assert empty.shape == (0,)


def test_warmup_holds_named_column_requests_that_replay(mixed):
    from tensorflow.python.framework import tensor_util
    from tensorflow.python.lib.io import tf_record
    from tensorflow_serving.apis import prediction_log_pb2

    replayed = {}
    with CApiSavedModel(str(mixed["version_dir"])) as model:
        for record in tf_record.tf_record_iterator(
                str(mixed["version_dir"] / "assets.extra" / WARMUP_FILE)):
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            inputs = {k: tensor_util.MakeNdarray(v) for k, v in request.inputs.items()}
            out = model.run(request.model_spec.signature_name, inputs)
            replayed[request.model_spec.signature_name] = (inputs, out)
    assert sorted(replayed) == ["log_prob", "sample_from_seeds", "serving_default"]
    inputs, out = replayed["log_prob"]
    assert sorted(inputs) == sorted(INPUTS.values())
    assert inputs["cut"][0].decode() in mixed["vocabularies"][0].labels
    assert np.isfinite(out["log_prob"]).all()


def test_the_rest_request_file_scores_each_row(mixed):
    body = json.loads((REQUESTS / "table_log_prob.json").read_text())
    assert set(body) == {"signature_name", "instances"} and body["signature_name"] == "log_prob"
    with CApiSavedModel(str(mixed["version_dir"])) as model:
        inputs = rest_rows_to_inputs(body, model.signature_defs["log_prob"])
        got = model.run("log_prob", inputs)["log_prob"]
    columns = {v: k for k, v in INPUTS.items()}
    rows = {columns[k]: [i[k] for i in body["instances"]] for k in body["instances"][0]}
    np.testing.assert_allclose(got, python_scores(mixed, rows), rtol=2e-5, atol=2e-5)
    assert "Premium" not in mixed["vocabularies"][0].labels  # scored with the unseen mass


def test_a_missing_label_is_refused_naming_the_column(mixed):
    inputs = feed({k: v[:3] for k, v in mixed["table"].items()})
    inputs["cut"] = np.array([b"Good", b"", b"Fair"], dtype=object)
    with CApiSavedModel(str(mixed["version_dir"])) as model:
        with pytest.raises(RuntimeError, match=r"column cut \(input cut\): a missing label"
                                               r"(.|\n)*\[2\](.|\n)*does not sum missing"):
            model.run("log_prob", inputs)
        bad = {**inputs, "cut": np.array([b"Good", b"Good"], dtype=object)}
        with pytest.raises(RuntimeError, match="(?i)shape"):
            model.run("log_prob", bad)


def test_samples_are_named_stateless_and_follow_the_masses(mixed):
    version_dir = mixed["version_dir"]
    request = {"num_samples": np.array(3000, np.int32), "seed": np.array([1, 2], np.int32)}
    seeds = np.array([[3, 4], [5, 6], [3, 4]], np.int32)
    with CApiSavedModel(str(version_dir)) as model:
        first = model.run("sample", request)
        again = model.run("sample", request)
        rows = model.run("sample_from_seeds", {"seed": seeds})
        singles = [model.run("sample", {"num_samples": np.array(1, np.int32), "seed": s})
                   for s in seeds[:2]]
        scores = model.run("log_prob", first)["log_prob"]
    session = tf1_session_run(version_dir, "sample", request)
    assert sorted(first) == sorted(INPUTS.values())
    for key, value in first.items():
        np.testing.assert_array_equal(value, again[key])
        np.testing.assert_array_equal(value, session[key])
        for i, single in enumerate(singles):
            np.testing.assert_array_equal(rows[key][i], single[key][0])
        np.testing.assert_array_equal(rows[key][0], rows[key][2])
    assert np.isfinite(first["carat"]).all() and np.isfinite(scores).all()
    labels = {*mixed["vocabularies"][0].labels, "<unseen>"}
    assert {v.decode() for v in first["cut"]} <= labels
    categorical = mixed["model"].categorical
    cells = categorical.all_cells()
    mass = np.exp(categorical.log_mass(cells))
    for level, label in enumerate(mixed["vocabularies"][0].labels):
        share = np.mean([v.decode() == label for v in first["cut"]])
        assert share == pytest.approx(mass[cells[:, 0] == level].sum(), abs=0.035), label


def test_numeric_export_keeps_its_signatures_and_adds_named_columns(tmp_path):
    config = FlowConfig(event_dim=2, num_couplings=2, hidden_units=8, num_hidden_layers=1,
                        data_shift=[1.0, -1.0], data_scale=[2.0, 0.5])
    flow = build_flow(config)
    layout = TableLayout.from_positions(3, [0, 2], names=["x (m)", "id", "y"])
    version_dir = tfp_realnvp.export(flow, tmp_path, config=config, layout=layout)
    signatures = describe(version_dir)["signatures"]
    assert sorted(signatures) == sorted([*SIGNATURES, "log_prob_columns", "sample_columns",
                                         "sample_from_seeds_columns"])
    assert signatures["serving_default"]["inputs"] == {"x": {"dtype": "float",
                                                             "shape": [-1, 2]}}
    assert sorted(signatures["log_prob_columns"]["inputs"]) == ["x_m", "y"]
    x = np.array([[0.5, -1.2], [1.5, -0.8], [3.0, 0.0]], np.float32)
    with CApiSavedModel(str(version_dir)) as model:
        named = model.run("log_prob_columns", {"x_m": x[:, 0], "y": x[:, 1]})["log_prob"]
        plain = model.run("log_prob", {"x": x})["log_prob"]
        drawn = model.run("sample_columns", {"num_samples": np.array(4, np.int32),
                                             "seed": np.array([1, 2], np.int32)})
    np.testing.assert_allclose(named, plain, rtol=1e-6)
    np.testing.assert_allclose(named, flow.log_prob(x).numpy(), rtol=1e-5, atol=1e-5)
    assert sorted(drawn) == ["x_m", "y"] and drawn["y"].shape == (4,)
    info = json.loads((version_dir / "assets.extra" / "export_info.json").read_text())
    assert info["column_inputs"] == {"x (m)": "x_m", "y": "y"}
    assert "log_prob_columns" in info["batchable_signatures"]
    assert "sample_columns" not in info["batchable_signatures"]


def test_a_mixed_export_refuses_a_layout_that_does_not_fit(mixed, tmp_path):
    model = mixed["model"]
    layout = TableLayout((
        ColumnSpec("carat"), ColumnSpec("cut", kind="categorical", levels=("Fair", "Good")),
        ColumnSpec("depth"), ColumnSpec("color", kind="categorical", levels=("D", "E"))))
    config = RunDir(mixed["root"] / "run").read_config().flow
    with pytest.raises(ConfigError, match=r"The layout gives \(2, 2\) levels per categorical "
                                          r"column; the mixed model has \(3, 2\)"):
        tfp_realnvp.export(model, tmp_path, config=config, layout=layout)
    with pytest.raises(ConfigError, match="needs its TableLayout"):
        tfp_realnvp.export(model, tmp_path, config=config)
    assert not any(tmp_path.rglob("saved_model.pb"))


def test_a_conditional_numeric_export_takes_its_context_columns_by_name(tmp_path):
    config = FlowConfig(event_dim=2, num_couplings=2, hidden_units=8, num_hidden_layers=1,
                        context_dim=1)
    flow = build_flow(config)
    layout = TableLayout.from_positions(3, [0, 1], [2], names=["a", "b", "temp (C)"])
    version_dir = tfp_realnvp.export(flow, tmp_path, config=config, layout=layout)
    signatures = describe(version_dir)["signatures"]
    assert "sample_columns" not in signatures  # sampling needs the context: use `sample`
    assert sorted(signatures["log_prob_columns"]["inputs"]) == ["a", "b", "temp_C"]
    x = np.array([[0.5, -1.2], [1.5, -0.8]], np.float32)
    context = np.array([[0.3], [-2.0]], np.float32)
    with CApiSavedModel(str(version_dir)) as model:
        named = model.run("log_prob_columns", {"a": x[:, 0], "b": x[:, 1],
                                               "temp_C": context[:, 0]})["log_prob"]
        plain = model.run("log_prob", {"x": x, "context": context})["log_prob"]
    np.testing.assert_allclose(named, plain, rtol=1e-6)


def test_a_mixed_export_states_the_price_of_its_named_column_log_prob(mixed):
    price = json.loads((mixed["version_dir"] / "assets.extra" / "price.json").read_text())
    flow = mixed["model"].flow
    assert price["members"] == find_model(mixed["version_dir"]).config.ensemble_size
    assert price["trainable_parameters"] == sum(int(np.prod(v.shape))
                                                for v in flow.trainable_variables)
    assert all(t["rows_per_s"] > 0 for t in price["log_prob"].values())
    assert describe(mixed["version_dir"])["price"] == price
