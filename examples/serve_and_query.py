"""Export a trained flow, then ask it what TensorFlow Serving would be asked.

Without a model server on this machine, the export is loaded with `tf.saved_model.load`
and each of its signatures is fed exactly what a server would hand it:

- REST: the request bodies the kit ships (`export/requests/*.json`), decoded the way the
  server decodes them (row format `"instances"`: one object per row, stacked into a
  batch; columnar `"inputs"`: one value per input), cast to the dtypes the signature
  declares, and answered in the server's JSON shape (`"predictions"` / `"outputs"`);
- gRPC: the `PredictRequest` protos that `export/grpc_client.py`'s `make_request` builds
  from the same inputs, unpacked with `tf.make_ndarray` as the server does.

Both routes must give the same numbers, and the same as the flow `tfp_realnvp.load`
rebuilds from the export. At the end it prints the commands to start a real server on the
export (`export/serve_local.sh`, `export/serve_docker.sh`) and to query it with `curl` and
`export/grpc_client.py`.

Run: python examples/serve_and_query.py [--run RUN_DIR] [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from _quiet_tf import import_tensorflow  # noqa: E402

tf = import_tensorflow()

import numpy as np  # noqa: E402

import tfp_realnvp  # noqa: E402
from tfp_realnvp.tables import make_toy  # noqa: E402

KIT = Path(__file__).resolve().parents[1] / "export"
MODEL_NAME = "realnvp"


def grpc_client() -> ModuleType:
    """`export/grpc_client.py` as a module (it is a script of the kit, not of the package)."""
    spec = importlib.util.spec_from_file_location("grpc_client", KIT / "grpc_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rest_inputs(body: dict[str, Any]) -> dict[str, np.ndarray]:
    """The named inputs a REST `:predict` body carries: row format (`instances`, one object
    per row, stacked along a new batch axis) or columnar (`inputs`, taken as they are)."""
    if "instances" in body:
        names = body["instances"][0].keys()
        return {name: np.asarray([row[name] for row in body["instances"]]) for name in names}
    return {name: np.asarray(value) for name, value in body["inputs"].items()}


def call_signature(signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Calls a loaded signature with `inputs` cast to the dtypes it declares (what the server
    does with JSON numbers; over gRPC the proto already has the right dtype)."""
    specs = signature.structured_input_signature[1]
    tensors = {name: tf.constant(value, dtype=specs[name].dtype) for name, value in inputs.items()}
    return {name: value.numpy() for name, value in signature(**tensors).items()}


def rest_answer(body: dict[str, Any], outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON TensorFlow Serving returns: `predictions` (row format) or `outputs`
    (columnar); with a single output its name is left out."""
    values = next(iter(outputs.values())) if len(outputs) == 1 else outputs
    if isinstance(values, dict):
        values = {name: value.tolist() for name, value in values.items()}
    else:
        values = values.tolist()
    return {"predictions" if "instances" in body else "outputs": values}


def query(version_dir: Path, verbose: bool = True) -> dict[str, Any]:
    """Asks the export every request body of the kit over both routes; returns the answers
    and how far apart the routes and the rebuilt flow are."""
    loaded = tf.saved_model.load(str(version_dir))
    client = grpc_client()
    flow = tfp_realnvp.load(version_dir)
    answers: dict[str, Any] = {}
    for path in sorted((KIT / "requests").glob("*.json")):
        body = json.loads(path.read_text())
        name = body.get("signature_name", "serving_default")
        signature = loaded.signatures[name]
        inputs = rest_inputs(body)
        if not set(inputs) <= set(signature.structured_input_signature[1]):
            continue  # a request for a table model (named columns), not for this flow
        rest = call_signature(signature, inputs)
        request = client.make_request(MODEL_NAME, name, inputs)
        grpc = {key: value.numpy() for key, value in signature(**{
            key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()
        }).items()}
        library = library_answer(flow, name, inputs)
        answers[path.name] = {
            "signature": name,
            "answer": rest_answer(body, rest),
            "grpc_equals_rest": all(np.array_equal(rest[k], grpc[k]) for k in rest),
            "max_abs_diff_library": max(float(np.max(np.abs(rest[k] - library[k])))
                                        for k in rest),
        }
        if verbose:
            print(f"\n{path.relative_to(KIT.parent)} -> signature '{name}'")
            print(f"  body:   {json.dumps(body, separators=(',', ':'))}")
            print(f"  answer: {json.dumps(round_floats(answers[path.name]['answer']))}")
            print(f"  gRPC make_request gives the same numbers: "
                  f"{answers[path.name]['grpc_equals_rest']}; tfp_realnvp.load's flow differs "
                  f"by {answers[path.name]['max_abs_diff_library']:.1e}")
    return answers


def library_answer(flow, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the live flow (rebuilt by `tfp_realnvp.load`) says to the same inputs."""
    if signature in ("log_prob", "serving_default"):
        return {"log_prob": flow.log_prob(inputs["x"].astype(np.float32)).numpy()}
    if signature == "encode":
        return {"z": tfp_realnvp.flow.encode(flow, tf.constant(inputs["x"], tf.float32)).numpy()}
    if signature == "decode":
        return {"x": tfp_realnvp.flow.decode(flow, tf.constant(inputs["z"], tf.float32)).numpy()}
    seed = tf.constant(inputs["seed"], tf.int32)
    return {"samples": flow.sample(int(inputs["num_samples"]), seed=seed).numpy()}


def round_floats(value: Any, digits: int = 4) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list):
        return [round_floats(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    return value


def print_server_commands(base_dir: Path) -> None:
    base = base_dir.resolve()
    kit = KIT.relative_to(Path.cwd()) if KIT.is_relative_to(Path.cwd()) else KIT
    print(f"""
To ask a real TensorFlow Serving (gRPC on 8500, REST on 8501):
  {kit}/serve_local.sh {base}          # tensorflow_model_server on PATH
  {kit}/serve_docker.sh {base}         # or the tensorflow/serving image
  curl http://localhost:8501/v1/models/{MODEL_NAME}          # wait for AVAILABLE
  curl -X POST -H 'Content-Type: application/json' \\
       --data @{kit}/requests/log_prob.json http://localhost:8501/v1/models/{MODEL_NAME}:predict
  {kit}/curl_examples.sh                               # every body in {kit}/requests
  python {kit}/grpc_client.py --target localhost:8500  # log_prob, sample, round trip""")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--run", type=Path, help="a finished 2-D run to export (default: "
                        "train one on two moons)")
    parser.add_argument("--out", type=Path, default=Path(f"runs/example-serving-{stamp}"),
                        help="where the new run and the exports go")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds: a small flow trained for 2 s (tests)")
    args = parser.parse_args(argv)
    run_dir = args.run
    if run_dir is None:
        settings = {"ensemble_size": 1, "coupling": "affine", "num_couplings": 2,
                    "hidden_units": 16,
                    "jit_compile": False, "time_budget": 2.0} if args.quick else {}
        run_dir = tfp_realnvp.fit(make_toy("moons", 3000, noise=0.05, seed=0),
                                  args.out / "run", settings=settings).run_dir
    version_dir = tfp_realnvp.export(run_dir, args.out / "exports", name=MODEL_NAME)
    print(f"exported {run_dir} to {version_dir}")
    answers = query(version_dir)
    print_server_commands(args.out / "exports")
    return {"version_dir": str(version_dir), "answers": answers}


if __name__ == "__main__":
    main(sys.argv[1:])
