"""A minimal gRPC client for a tfp-realnvp model served by TensorFlow Serving.

Needs ``tensorflow`` and ``tensorflow-serving-api`` (``pip install tensorflow-serving-api``
brings both), not this package. Every input is sent with the dtype and rank the exported
signatures declare, because the server does not convert: a float64 array or a
``num_samples`` of shape [1] is rejected.

    from grpc_client import predict
    out = predict("localhost:8500", "realnvp", "log_prob", {"x": points})
    out["log_prob"]                                   # float32 [N]
    out = predict("localhost:8500", "realnvp", "sample",
                  {"num_samples": 5, "seed": [1, 2]})
    out["samples"]                                    # float32 [5, D]

Run as a script for a short demonstration against a running server::

    python export/grpc_client.py --target localhost:8500
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

__all__ = ["INPUT_SPECS", "make_request", "predict"]

# Input name -> (dtype, rank) as declared by the exported signatures:
# x, z: [N, D]; context: [N, C] ([1, C] or [num_samples, C] for `sample`);
# num_samples: a scalar; seed: [2].
INPUT_SPECS: dict[str, tuple[tf.DType, int]] = {
    "x": (tf.float32, 2),
    "z": (tf.float32, 2),
    "context": (tf.float32, 2),
    "num_samples": (tf.int32, 0),
    "seed": (tf.int32, 1),
}


def _as_array(name: str, value: Any) -> np.ndarray:
    if name not in INPUT_SPECS:
        raise ValueError(f"unknown input {name!r}; the signatures take {sorted(INPUT_SPECS)}")
    dtype, rank = INPUT_SPECS[name]
    array = np.asarray(value, dtype=dtype.as_numpy_dtype)
    if array.ndim != rank:
        raise ValueError(f"input {name!r} must have rank {rank}, got shape {list(array.shape)}")
    if name == "seed" and array.shape != (2,):
        raise ValueError(f"input 'seed' must have shape [2], got {list(array.shape)}")
    return array


def make_request(
    model: str,
    signature: str,
    inputs: Mapping[str, Any],
    version: int | None = None,
) -> predict_pb2.PredictRequest:
    """Builds a PredictRequest for `signature` of `model` (optionally one `version`).

    `inputs` maps input names (x, z, context, num_samples, seed) to array-likes; each is cast
    to its signature dtype (float32 or int32) and checked for rank, so `num_samples=5`
    becomes a 0-d int32 tensor and `seed=[1, 2]` an int32 vector.
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        array = _as_array(name, value)
        dtype = INPUT_SPECS[name][0]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
    return request


def predict(
    target: str,
    model: str,
    signature: str,
    inputs: Mapping[str, Any],
    timeout: float = 10.0,
    version: int | None = None,
) -> dict[str, np.ndarray]:
    """Calls `signature` on the server at `target` ("host:port") and returns its outputs.

    Raises `grpc.RpcError` on failure; `error.code()` is `INVALID_ARGUMENT` for a request of
    the wrong shape or dtype, and `error.details()` holds the server's message.
    """
    request = make_request(model, signature, inputs, version)
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:8500", help="gRPC host:port")
    parser.add_argument("--model", default="realnvp", help="model name on the server")
    parser.add_argument("--version", type=int, help="model version (default: newest loaded)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    parser.add_argument("--num-samples", type=int, default=5)
    parser.add_argument("--seed", type=int, nargs=2, default=[1, 2], metavar=("S1", "S2"))
    parser.add_argument(
        "--context",
        type=float,
        nargs="+",
        help="context vector for a conditional flow (used for every point and sample)",
    )
    args = parser.parse_args(argv)

    def call(signature: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        if args.context is not None:
            rows = 1 if signature == "sample" else len(next(iter(inputs.values())))
            inputs = {**inputs, "context": np.tile(args.context, (rows, 1))}
        return predict(args.target, args.model, signature, inputs, args.timeout, args.version)

    points = np.array([[0.0, 0.5], [1.0, -0.45], [-0.8, 0.6], [3.0, 3.0]], np.float32)
    try:
        log_prob = call("log_prob", {"x": points})["log_prob"]
        for point, value in zip(points, log_prob, strict=True):
            coordinates = ", ".join(f"{c:g}" for c in point)
            print(f"log_prob([{coordinates}]) = {value:.4f}")

        sample_inputs = {"num_samples": args.num_samples, "seed": args.seed}
        samples = call("sample", sample_inputs)["samples"]
        print(f"{len(samples)} samples with seed {args.seed}:\n{samples}")

        # encode then decode is the identity up to float32 round-off.
        z = call("encode", {"x": samples})["z"]
        x = call("decode", {"z": z})["x"]
        print(f"encode/decode round trip: max |error| = {np.max(np.abs(x - samples)):.2e}")
    except grpc.RpcError as error:
        print(f"{args.target}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
