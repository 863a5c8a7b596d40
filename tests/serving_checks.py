"""What the export tests share: inputs and expected outputs per signature, and running a
script in a fresh Python process (a TensorFlow-only client, like a model server)."""

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfp_realnvp import context_kwargs
from tfp_realnvp.flow import decode, encode

TESTS = Path(__file__).parent
SEED = np.array([3, 4], np.int32)
SEED_ROWS = np.array([[3, 4], [5, 6], [3, 4]], np.int32)  # a repeated seed: a repeated row


def seed_rows(count: int) -> np.ndarray:
    """`count` seed rows for `sample_from_seeds`, cycling through SEED_ROWS."""
    return SEED_ROWS[np.arange(count) % len(SEED_ROWS)]


def samples_from_seeds(flow, seeds, context=None):
    """Row i: `flow.sample(1, seed=seeds[i])` (given context row i): what the batchable
    `sample_from_seeds` signature must return."""
    rows = []
    for i, seed in enumerate(np.asarray(seeds)):
        kwargs = {} if context is None else context_kwargs(flow, context[i:i + 1])
        rows.append(flow.sample(1, seed=tf.constant(seed), **kwargs)[0].numpy())
    return np.stack(rows) if rows else np.zeros((0, flow.event_shape[-1]), np.float32)


def expected_outputs(flow, x, z, num_samples=5, seed=SEED, context=None):
    """What each signature must return, computed in-process with the live flow."""
    kwargs = context_kwargs(flow, context) if context is not None else {}
    return {
        "serving_default": {"log_prob": flow.log_prob(x, **kwargs).numpy()},
        "log_prob": {"log_prob": flow.log_prob(x, **kwargs).numpy()},
        "sample": {"samples": flow.sample(num_samples, seed=tf.constant(seed), **kwargs).numpy()},
        "sample_from_seeds": {"samples": samples_from_seeds(
            flow, seed_rows(3 if context is None else len(context)), context)},
        "encode": {"z": encode(flow, x, context).numpy()},
        "decode": {"x": decode(flow, z, context).numpy()},
    }


def signature_inputs(x, z, num_samples=5, seed=SEED, context=None):
    inputs = {
        "serving_default": {"x": x}, "log_prob": {"x": x},
        "sample": {"num_samples": np.array(num_samples, np.int32), "seed": seed},
        "sample_from_seeds": {"seed": seed_rows(3 if context is None else len(context))},
        "encode": {"x": x}, "decode": {"z": z},
    }
    if context is not None:
        for request in inputs.values():
            request["context"] = np.asarray(context)
    return inputs


def run_fresh_python(script: str, payload: dict) -> dict:
    """Runs `script` in a new interpreter; it reads JSON on stdin and prints JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], input=json.dumps(payload),
        capture_output=True, text=True, timeout=900, cwd=TESTS,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# Runs several scripts in one interpreter, each with its own stdin payload and globals; a
# script's failure is its own result ({"__failed__": traceback}), not the others'.
SCRIPTS_DRIVER = """
    import contextlib, io, json, sys, traceback
    results = {}
    for key, (script, payload) in json.load(sys.stdin).items():
        sys.stdin, printed = io.StringIO(json.dumps(payload)), io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(script, key, "exec"), {"__name__": "__main__"})
            results[key] = json.loads(printed.getvalue().strip().splitlines()[-1])
        except BaseException:
            results[key] = {"__failed__": traceback.format_exc()[-3000:]}
    print(json.dumps(results))
"""


def run_fresh_scripts(scripts: dict[str, tuple[str, dict]]) -> dict[str, dict]:
    """Like `run_fresh_python` for each `{key: (script, payload)}`, all in ONE new
    interpreter (one TensorFlow start-up, not one per script): {key: what it printed, or
    {"__failed__": its traceback}}. The scripts must not import more than the TensorFlow-only
    checks need: a check of the modules loaded sees what the earlier scripts imported."""
    return run_fresh_python(SCRIPTS_DRIVER, {
        key: (textwrap.dedent(script), payload) for key, (script, payload) in scripts.items()})


def fresh_result(results: dict[str, dict], key: str) -> dict:
    """One script's result from `run_fresh_scripts`, failing the test with its traceback."""
    got = results[key]
    assert "__failed__" not in got, got["__failed__"]
    return copy.deepcopy(got)


def to_json(inputs):
    return {sig: {k: np.asarray(v).tolist() for k, v in req.items()}
            for sig, req in inputs.items()}


def assert_outputs_match(got, expected, atol=1e-5):
    assert set(got) == set(expected)
    for signature, outputs in expected.items():
        assert set(got[signature]) == set(outputs), signature
        for key, value in outputs.items():
            np.testing.assert_allclose(np.asarray(got[signature][key]), value, atol=atol,
                                       rtol=1e-5, err_msg=f"{signature}/{key}")


TF2_LOADER = """
    import json, sys
    import numpy as np
    import tensorflow as tf
    payload = json.load(sys.stdin)
    model = tf.saved_model.load(payload["path"])
    dtypes = {"num_samples": tf.int32, "seed": tf.int32}
    out = {}
    for signature, inputs in payload["inputs"].items():
        fn = model.signatures[signature]
        feed = {k: tf.constant(v, dtype=dtypes.get(k, tf.float32)) for k, v in inputs.items()}
        out[signature] = {k: v.numpy().tolist() for k, v in fn(**feed).items()}
    again = model.signatures["sample"](**{k: tf.constant(v, tf.int32)
                                         for k, v in payload["inputs"]["sample"].items()})
    out["sample_again"] = again["samples"].numpy().tolist()
    out["modules"] = sorted(m for m in ("tensorflow_probability", "tfp_realnvp", "tf_keras")
                            if m in sys.modules)
    print(json.dumps(out))
"""

TF1_SESSION_LOADER = """
    import json, sys
    import numpy as np
    import tensorflow as tf
    results = []
    for job in json.load(sys.stdin)["jobs"]:
        out, methods = {}, {}
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], job["path"])
            for signature, inputs in job["inputs"].items():
                definition = meta.signature_def[signature]
                methods[signature] = [definition.method_name, sorted(definition.inputs)]
                feed = {definition.inputs[k].name: np.asarray(v, dtype="int32"
                        if k in ("num_samples", "seed") else "float32")
                        for k, v in inputs.items()}
                names = sorted(definition.outputs)
                values = session.run([definition.outputs[k].name for k in names], feed_dict=feed)
                out[signature] = {k: v.tolist() for k, v in zip(names, values)}
        out["methods"] = methods
        results.append(out)
    modules = sorted(m for m in ("tensorflow_probability", "tfp_realnvp") if m in sys.modules)
    print(json.dumps({"results": results, "modules": modules}))
"""


# The C API loader (TF Serving's `LoadSavedModel`, tests/serving_capi.py) over jobs
# {key: {"path", "dim", "context_dim", "inputs", "warmup"}}: every signature, the
# signature defs, the warm-up file replayed as the model server does, a request one column
# too wide.
CAPI_LOADER = """
    import json, sys
    import numpy as np
    from serving_capi import CApiSavedModel
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.python.lib.io import tf_record
    from tensorflow.python.framework import tensor_util
    def run_job(payload, out):
        with CApiSavedModel(payload["path"]) as model:
            for signature, inputs in payload["inputs"].items():
                feed = {k: np.asarray(v, dtype="int32" if k in ("num_samples", "seed")
                        else "float32") for k, v in inputs.items()}
                out[signature] = {k: v.tolist() for k, v in model.run(signature, feed).items()}
            out["signatures"] = {name: [d.method_name, sorted(d.inputs), sorted(d.outputs)]
                                 for name, d in model.signature_defs.items()
                                 if not name.startswith("__")}
            # Replay the warm-up file exactly as the model server does before serving.
            from tensorflow_serving.apis import prediction_log_pb2
            replayed = []
            for record in tf_record.tf_record_iterator(payload["warmup"]):
                request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
                feed = {k: tensor_util.MakeNdarray(v) for k, v in request.inputs.items()}
                result = model.run(request.model_spec.signature_name, feed)
                assert all(np.all(np.isfinite(v)) for v in result.values())
                replayed.append(request.model_spec.signature_name)
            out["warmup"] = replayed
            try:
                bad = {"x": np.zeros((2, payload["dim"] + 1), "float32")}
                if payload.get("context_dim"):
                    bad["context"] = np.zeros((2, payload["context_dim"]), "float32")
                model.run("log_prob", bad)
                out["bad_width"] = "no error"
            except RuntimeError as error:
                out["bad_width"] = str(error)
    results = {}
    for key, payload in json.load(sys.stdin)["jobs"].items():
        results[key] = {}
        run_job(payload, results[key])
    print(json.dumps(results))
"""


def run_tf1_loader(jobs: list[dict]) -> tuple[list[dict], list[str]]:
    """Runs every `{"path", "inputs"}` job through the TF1 session loader (the loader TF
    Serving uses) in one fresh TensorFlow-only process; returns the outputs and the
    modules beyond TensorFlow that the process had imported."""
    got = run_fresh_python(TF1_SESSION_LOADER, {"jobs": jobs})
    return got["results"], got["modules"]
