#!/usr/bin/env python3
"""Checks that this TensorFlow's exports load and answer alike on older TF Serving runtimes.

TensorFlow Serving loads a model with TensorFlow's C++ `LoadSavedModel`: the function the
TF1 session loader (`tf.compat.v1.saved_model.loader.load`) and the C API's
`TF_LoadSessionFromSavedModel` run. So a model server built from TensorFlow X accepts an
export if both loaders of TensorFlow X do. This script:

1. writes fresh exports with the installed TensorFlow (an affine flow, a conditional
   spline flow with LU mixing, an ensemble: every op kind the package emits) and runs
   every signature on them in this process (the reference answers);
2. for each `--tensorflow` version, makes a throwaway virtualenv, installs
   `tensorflow-cpu==VERSION` there, and in it loads every export through the TF1 session
   loader and the C API (tests/serving_capi.py), runs every signature on the same inputs
   and replays the warm-up file, as the model server does before serving;
3. compares every output with the reference and prints one table row per version and
   loader; exits 1 if any load, run or comparison failed.

    python export/check_compat.py --tensorflow 2.20.0 --tensorflow 2.18.0

Each wheel is about 250 MB to download and install; the virtualenvs are removed at the end
(`--keep` keeps them in `--work`, and a second run reuses them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAPI_MODULE_DIR = ROOT / "tests"  # serving_capi.py: the C API loader the test suite uses
RTOL = ATOL = 1e-5

# name -> FlowConfig fields (random weights, a data map that is not the identity)
FLOWS: dict[str, dict[str, Any]] = {
    "affine-2d": dict(event_dim=2, num_couplings=4, hidden_units=16, mixing="reverse"),
    "spline-lu-conditional-4d": dict(event_dim=4, num_couplings=3, hidden_units=16,
                                     coupling="spline", mixing="lu", context_dim=2),
    "ensemble-affine-3d": dict(event_dim=3, num_couplings=2, hidden_units=8, mixing="random",
                               ensemble_size=3),
}

WORKER = """
import json, sys
import numpy as np
import tensorflow as tf
from serving_capi import CApiSavedModel

def feed_arrays(inputs):
    return {k: np.asarray(v["value"], dtype=v["dtype"]) for k, v in inputs.items()}

def tf1_session(job):
    out = {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], job["path"])
        for name, inputs in job["inputs"].items():
            definition = meta.signature_def[name]
            feed = {definition.inputs[k].name: v for k, v in feed_arrays(inputs).items()}
            keys = sorted(definition.outputs)
            values = session.run([definition.outputs[k].name for k in keys], feed_dict=feed)
            out[name] = {k: v.tolist() for k, v in zip(keys, values)}
    return out, None

def c_api(job):
    out = {}
    with CApiSavedModel(job["path"]) as model:
        for name, inputs in job["inputs"].items():
            out[name] = {k: v.tolist() for k, v in model.run(name, feed_arrays(inputs)).items()}
        for request in job["warmup"]:  # what the model server replays before serving
            result = model.run(request["signature"], feed_arrays(request["inputs"]))
            if not all(np.all(np.isfinite(v)) for v in result.values()):
                raise RuntimeError(f"warm-up {request['signature']}: non-finite output")
    return out, len(job["warmup"])

results = {"tensorflow": tf.__version__, "loaders": {}}
for loader_name, loader in (("tf1_session", tf1_session), ("c_api", c_api)):
    per_export = {}
    for job in json.load(open(sys.argv[1]))["jobs"]:
        try:
            outputs, replayed = loader(job)
            per_export[job["name"]] = {"outputs": outputs, "warmup_replayed": replayed}
        except Exception as error:  # reported, not raised: the table says what failed
            per_export[job["name"]] = {"error": f"{type(error).__name__}: {error}"[:2000]}
    results["loaders"][loader_name] = per_export
print(json.dumps(results))
"""


def make_exports(work: Path, flows: list[str]) -> list[dict[str, Any]]:
    """Exports every flow of FLOWS and returns the jobs: path, inputs per signature (with
    dtypes), warm-up requests, and the exporting process's answers."""
    import numpy as np
    import tensorflow as tf

    import tfp_realnvp

    jobs = []
    rng = np.random.default_rng(0)
    for name in flows:
        fields = FLOWS[name]
        dim = fields["event_dim"]
        config = tfp_realnvp.FlowConfig(**fields, data_shift=[0.5 * i for i in range(dim)],
                                        data_scale=[1.0 + 0.5 * i for i in range(dim)])
        flow = tfp_realnvp.build_flow(config)
        for variable in flow.trainable_variables:  # far from the identity
            variable.assign(0.3 * rng.standard_normal(variable.shape).astype(np.float32))
        path = tfp_realnvp.export(flow, work / "exports", name=name, config=config)
        loaded = tf.saved_model.load(str(path))
        inputs, expected = {}, {}
        for signature, function in loaded.signatures.items():
            arrays = _inputs_for(function.structured_input_signature[1], rng, dim)
            inputs[signature] = {k: {"value": v.tolist(), "dtype": v.dtype.name}
                                 for k, v in arrays.items()}
            answer = function(**{k: tf.constant(v) for k, v in arrays.items()})
            expected[signature] = {k: v.numpy().tolist() for k, v in answer.items()}
        jobs.append({"name": name, "path": str(path), "inputs": inputs, "expected": expected,
                     "warmup": _warmup_requests(path)})
    return jobs


def _inputs_for(specs: dict[str, Any], rng: Any, dim: int) -> dict[str, Any]:
    """Valid inputs for a signature, from its TensorSpecs: 4 rows where there is a batch
    dimension, `num_samples` 4, seeds [2] or [4, 2]."""
    import numpy as np

    rows = 4
    arrays = {}
    for key, spec in specs.items():
        if key == "num_samples":
            arrays[key] = np.array(rows, np.int32)
        elif key == "seed":
            shape = [rows, 2] if spec.shape.rank == 2 else [2]
            arrays[key] = rng.integers(0, 2**31 - 1, size=shape).astype(np.int32)
        else:  # x, z, context: [batch, width]
            width = spec.shape[-1] if spec.shape[-1] is not None else dim
            arrays[key] = rng.standard_normal((rows, width)).astype(np.float32)
    if "num_samples" in arrays and "context" in arrays:
        arrays["context"] = arrays["context"][:1]  # one context shared by every sample
    return arrays


def _warmup_requests(version_dir: Path) -> list[dict[str, Any]]:
    """The export's warm-up records as plain inputs (an old TensorFlow venv has no
    tensorflow-serving-api to parse them)."""
    from tensorflow.python.framework import tensor_util
    from tensorflow.python.lib.io import tf_record
    from tensorflow_serving.apis import prediction_log_pb2

    from tfp_realnvp.rundir import ASSETS_EXTRA
    from tfp_realnvp.serving import WARMUP_FILE

    requests = []
    for record in tf_record.tf_record_iterator(str(version_dir / ASSETS_EXTRA / WARMUP_FILE)):
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        arrays = {k: tensor_util.MakeNdarray(v) for k, v in request.inputs.items()}
        requests.append({"signature": request.model_spec.signature_name,
                         "inputs": {k: {"value": v.tolist(), "dtype": v.dtype.name}
                                    for k, v in arrays.items()}})
    return requests


def make_venv(version: str, work: Path) -> Path:
    """A virtualenv holding tensorflow-cpu==version (reused if a kept one is there)."""
    venv = work / f"venv-tf{version}"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", f"tensorflow-cpu=={version}"], capture_output=True, text=True)
    if install.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"pip install tensorflow-cpu=={version} failed: "
                           f"{install.stderr.strip()[-1500:]}")
    return python


def run_worker(python: Path, jobs_file: Path) -> dict[str, Any]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(CAPI_MODULE_DIR),
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([str(python), "-c", WORKER, str(jobs_file)], capture_output=True,
                          text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the loader process failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(jobs: list[dict[str, Any]], per_export: dict[str, Any]) -> dict[str, Any]:
    """One loader's outcome over every export: failures, outputs compared, max |diff|."""
    import numpy as np

    failures, compared, identical, worst, replayed = [], 0, 0, 0.0, 0
    for job in jobs:
        got = per_export[job["name"]]
        if "error" in got:
            failures.append(f"{job['name']}: {got['error']}")
            continue
        replayed += got["warmup_replayed"] or 0
        for signature, outputs in job["expected"].items():
            for key, want in outputs.items():
                have = np.asarray(got["outputs"][signature][key], np.float32)
                want = np.asarray(want, np.float32)
                compared += 1
                if have.shape != want.shape or not np.allclose(have, want, rtol=RTOL,
                                                                atol=ATOL):
                    failures.append(f"{job['name']}/{signature}/{key} differs")
                    continue
                identical += int(np.array_equal(have, want))
                if want.size:
                    worst = max(worst, float(np.max(np.abs(have - want))))
    return {"failures": failures, "outputs_compared": compared,
            "outputs_bit_identical": identical, "max_abs_diff": worst,
            "warmup_replayed": replayed}


def check(versions: list[str], work: Path, keep: bool, flows: list[str],
          python: Path | None = None) -> list[dict[str, Any]]:
    """Table rows: per TensorFlow version (or the given interpreter) and loader."""
    import tensorflow as tf

    jobs = make_exports(work, flows)
    jobs_file = work / "jobs.json"
    jobs_file.write_text(json.dumps({"jobs": jobs}))
    rows = []
    signatures = sorted(jobs[0]["expected"])
    for version in versions or ["given"]:
        base = {"exported_with": tf.__version__, "tensorflow": version,
                "exports": [j["name"] for j in jobs], "signatures": signatures}
        try:
            result = run_worker(python or make_venv(version, work), jobs_file)
        except (RuntimeError, subprocess.SubprocessError, OSError) as error:
            rows.append({**base, "loader": "-", "ok": False, "failures": [str(error)]})
            continue
        finally:
            if not keep:
                shutil.rmtree(work / f"venv-tf{version}", ignore_errors=True)
        for loader, per_export in result["loaders"].items():
            outcome = compare(jobs, per_export)
            rows.append({**base, "tensorflow": result["tensorflow"], "loader": loader,
                         "ok": not outcome["failures"], **outcome})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| exported with | loaded by | loader | outputs equal (bit-identical) | "
             "max abs diff | warm-up records | result |",
             "| --- | --- | --- | --- | ---: | ---: | --- |"]
    for row in rows:
        if row["loader"] == "-":
            lines.append(f"| TF {row['exported_with']} | TF {row['tensorflow']} | - | - | - | "
                         f"- | FAILED: {row['failures'][0][:200]} |")
            continue
        equal = row["outputs_compared"] - len(row["failures"])
        lines.append(
            f"| TF {row['exported_with']} | TF {row['tensorflow']} | {row['loader']} | "
            f"{equal}/{row['outputs_compared']} ({row['outputs_bit_identical']}) | "
            f"{row['max_abs_diff']:.1e} | {row['warmup_replayed']} | "
            f"{'ok' if row['ok'] else 'FAILED: ' + '; '.join(row['failures'])[:300]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tensorflow", action="append", metavar="VERSION",
                        help="tensorflow-cpu release to load the exports with (repeatable; "
                             "default: 2.20.0)")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, "
                        "removed at the end)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the virtualenvs (and --work) for another run")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    parser.add_argument("--flows", default=",".join(FLOWS),
                        help=f"comma-separated flows to export (default: {','.join(FLOWS)})")
    parser.add_argument("--python", type=Path,
                        help="load with this Python (an environment that has the TensorFlow "
                             "to check) instead of making virtualenvs")
    args = parser.parse_args(argv)
    flows = [f for f in args.flows.split(",") if f]
    unknown = sorted(set(flows) - set(FLOWS))
    if unknown or not flows:
        parser.error(f"--flows: unknown {unknown or flows}; choose from {', '.join(FLOWS)}")
    if args.python is not None and args.tensorflow:
        parser.error("give --python or --tensorflow, not both")
    versions = [] if args.python is not None else args.tensorflow or ["2.20.0"]
    work = args.work or Path(tempfile.mkdtemp(prefix="tfp-realnvp-compat-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows = check(versions, work, args.keep, flows, args.python)
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    failed = [row for row in rows if not row["ok"]]
    if failed:
        print(textwrap.fill(f"{len(failed)} of {len(rows)} checks failed.", 88),
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))  # this checkout's tfp_realnvp, not another installed one
    sys.exit(main())
