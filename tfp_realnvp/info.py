"""What a run directory or an export holds: configuration, signatures, metrics, versions.

Reading it needs no TensorFlow: a run's files are JSON, and an export's signatures are read
from `assets.extra/signatures.json`, written at export time with the sha256 of the
SavedModel's files. Only an export without that record (written before it existed), or
whose files no longer match it, is read through TensorFlow (`needs_tensorflow` says when).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tfp_realnvp.errors import ModelNotFoundError
from tfp_realnvp.rundir import ASSETS_EXTRA, SAVED_MODEL_FILE, RunDir, find_model

SIGNATURES_FILE = "signatures.json"  # in an export's assets.extra
PRICE_FILE = "price.json"  # in an export's assets.extra: `price.measure_price`
PRICE_BATCHES = (1, 4096)  # the batch sizes whose log_prob rows/s an export measures
METRIC_KEYS = ("status", "epochs_run", "best_epoch", "best_validation_nll",
               "initial_validation_nll", "stop_reason", "wall_time_s", "num_workers",
               "test_nll", "test_median", "test_p99", "test_max", "test_num_points")


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-ready summary of a run or an export.

    Keys: `kind` ("run" or "export"), `path`, `event_dim`, `context_dim`, `ensemble_size`,
    `flow` (the FlowConfig), `notes` (lines on the flow's speed, e.g. an autoregressive
    flow's slow direction), `layout` (the training table's columns: a `TableLayout` as
    JSON, None when not recorded), `metrics` (the summary keys of metrics.json, None when the
    model has none), `versions` (software that wrote it; None when not recorded); a run
    adds `train` (the TrainConfig), `data` and `auto`; an export adds `versions_on_disk`
    (its model folder's integer versions), `signatures` (name -> inputs and outputs with
    dtype and shape, -1 for a dynamic size) and `export_info`. Both add `price`: an
    export's `assets.extra/price.json` (members, trainable parameters, log_prob rows/s at
    batch 1 and 4,096 measured when it was written; `{"members": K, "unknown": why}` for
    an export written before prices were measured); a run's gives its members and says the
    rest is measured at export: `info` reads a run without TensorFlow, which alone takes
    seconds to start, and a throughput belongs to the serving graph, not the checkpoint.

    Args:
      path: a run directory, an export version folder, or the model folder above versions.
    """
    model = find_model(path)
    flow = model.config
    metrics = model.metrics
    summary: dict[str, Any] = {
        "kind": model.kind, "path": str(model.path),
        "event_dim": 0 if flow is None else flow.event_dim,
        "context_dim": 0 if flow is None else flow.context_dim,
        "ensemble_size": 0 if flow is None else flow.ensemble_size,
        "flow": None if flow is None else
        {k: v for k, v in flow.to_dict().items() if not k.startswith("data_")},
        "mixed": model.mixed,
        "layout": None if model.layout is None else model.layout.to_dict(),
        "metrics": None if metrics is None else {k: metrics[k] for k in METRIC_KEYS
                                                 if k in metrics},
        "versions": None if metrics is None else metrics.get("versions"),
        "notes": [] if flow is None else flow_notes(flow.coupling, flow.spline_direction,
                                                    flow.event_dim),
    }
    distilled = (metrics or {}).get("distilled")
    if distilled and flow is not None and flow.ensemble_size == 1:  # the student is served
        summary["notes"].append(
            f"distilled: serves one student flow trained on {distilled['num_draws']:,} rows "
            f"drawn from the {distilled['members']}-member ensemble (NLL on the real rows: "
            f"student {distilled['student_nll_real_rows']:.4g}, ensemble "
            f"{distilled['ensemble_nll_real_rows']:.4g}); `export --ensemble` exports the "
            "ensemble")
    if model.kind == "run":
        stored = RunDir(model.path).read_config()
        summary.update(train=None if stored.train is None else stored.train.to_dict(),
                       data=stored.data, auto=stored.auto,
                       price=_unknown_price(flow, "measured when the run is exported "
                                            "(`tfp-realnvp export RUN BASE`)"))
        return summary
    found = recorded_signatures(model.path)
    if found is None:
        model.load()  # a corrupt export gets the one clear message `load` gives (not a summary)
        found = signatures(model.path)
    info_file = model.path / ASSETS_EXTRA / "export_info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    summary["export_info"] = info
    summary["versions"] = {k: info[f"{k}_version"] for k in
                           ("tfp_realnvp", "tensorflow", "tensorflow_probability")
                           if f"{k}_version" in info} or summary["versions"]
    summary["versions_on_disk"] = sorted(
        int(p.name) for p in model.path.parent.iterdir()
        if p.name.isdigit() and (p / SAVED_MODEL_FILE).is_file())
    summary["signatures"] = found
    summary["price"] = read_price(model.path) or _unknown_price(
        flow, "unknown: exported before prices were measured (export again to measure)")
    return summary


def read_price(version_dir: Path) -> dict[str, Any] | None:
    """An export's recorded price (`assets.extra/price.json`), None if it has none."""
    try:
        price = json.loads((version_dir / ASSETS_EXTRA / PRICE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return price if isinstance(price, dict) and "log_prob" in price else None


def _unknown_price(flow: Any, why: str) -> dict[str, Any]:
    return {"members": 0 if flow is None else flow.ensemble_size, "unknown": why}


def format_price(price: dict[str, Any]) -> str:
    """`20 members, 123,456 trainable parameters; log_prob 773 rows/s at batch 1, 29,027
    rows/s at batch 4,096 (CPU ..., measured at export)` (or what is unknown)."""
    members = f"{price['members']} member{'s' if price['members'] != 1 else ''}"
    if "unknown" in price:
        return f"{members}; parameters and log_prob rows/s {price['unknown']}"
    speeds = ", ".join(f"{timing['rows_per_s']:,.0f} rows/s at batch {int(batch):,}" + (
        f" (timed at {timing['timed_batch']:,})" if timing.get("timed_batch", int(batch))
        != int(batch) else "") for batch, timing in price["log_prob"].items())
    return (f"{members}, {price['trainable_parameters']:,} trainable parameters; log_prob "
            f"{speeds} ({price.get('machine', 'machine not recorded')}, measured at export)")


def flow_notes(coupling: str, direction: str, event_dim: int) -> list[str]:
    """What a user should know about the flow's speed: an autoregressive flow computes one
    direction in one network pass per layer and the other in `event_dim` passes."""
    if coupling != "autoregressive":
        return []
    fast, slow = ("log_prob", "sampling") if direction == "density" else ("sampling",
                                                                            "log_prob")
    return [f"autoregressive flow: {fast} takes one network pass per layer (fast); "
            f"{slow} takes {event_dim} sequential passes per layer (slow)"]


def needs_tensorflow(path: str | os.PathLike) -> bool:
    """Whether `describe(path)` will import TensorFlow: only for an export whose
    signatures.json is missing or does not match its files."""
    model = find_model(path)
    return model.kind == "export" and recorded_signatures(model.path) is None


def record_signatures(version_dir: Path) -> dict[str, Any]:
    """Writes `assets.extra/signatures.json` into an export version folder and returns it:
    `{"signatures": signatures(version_dir), "sha256": {relative path: hex digest}}` over
    saved_model.pb and every file of variables/. Called by the export (TensorFlow loaded)."""
    record = {"signatures": signatures(version_dir), "sha256": _file_hashes(version_dir)}
    (version_dir / ASSETS_EXTRA / SIGNATURES_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def recorded_signatures(version_dir: Path) -> dict[str, dict[str, dict[str, Any]]] | None:
    """The signatures recorded at export time, if the SavedModel's files are still the ones
    hashed then; None for an export without the record, or with a file changed or missing."""
    path = version_dir / ASSETS_EXTRA / SIGNATURES_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("sha256") != _file_hashes(version_dir):
        return None
    return record.get("signatures")


def _file_hashes(version_dir: Path) -> dict[str, str]:
    """sha256 of saved_model.pb and of each file under variables/, by relative path."""
    files = [version_dir / SAVED_MODEL_FILE, *sorted((version_dir / "variables").rglob("*"))]
    hashes = {}
    for file in files:
        if file.is_file():
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            hashes[file.relative_to(version_dir).as_posix()] = digest.hexdigest()
    return hashes


def signatures(version_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Each serving signature's inputs and outputs: `{"dtype": "float32", "shape": [-1, 2]}`
    (a scalar has shape [])."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    try:
        saved = saved_model_pb2.SavedModel.FromString(
            (version_dir / SAVED_MODEL_FILE).read_bytes())
    except DecodeError:
        raise ModelNotFoundError(f"{version_dir}: {SAVED_MODEL_FILE} is unreadable (truncated "
                                 "or not a SavedModel); export the run again.") from None

    def tensors(infos: Any) -> dict[str, dict[str, Any]]:
        return {key: {"dtype": types_pb2.DataType.Name(info.dtype)[3:].lower(),
                      "shape": [d.size for d in info.tensor_shape.dim]}
                for key, info in sorted(infos.items())}

    found = {}
    for meta in saved.meta_graphs:
        for name, definition in meta.signature_def.items():
            if not name.startswith("__"):
                found[name] = {"inputs": tensors(definition.inputs),
                               "outputs": tensors(definition.outputs)}
    return dict(sorted(found.items()))


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as lines of text for a terminal."""
    lines = [f"{summary['kind']}: {summary['path']}"]
    if summary["kind"] == "export":
        lines[0] += f" (versions on disk: {', '.join(map(str, summary['versions_on_disk']))})"
    versions = summary["versions"]
    lines.append("written by: " + (", ".join(f"{k} {v}" for k, v in versions.items())
                                   if versions else "not recorded"))
    if summary.get("mixed"):
        lines.append("model: log P(categories) + log p(numbers | categories)" if
                     summary["flow"] else "model: the categories' mass alone (no numbers)")
    if summary["flow"] is not None:
        lines.append(f"dimension: {summary['event_dim']} (context {summary['context_dim']}, "
                     f"ensemble of {summary['ensemble_size']})")
        lines.append("flow: " + _pairs(summary["flow"]))
        lines.extend(f"note: {note}" for note in summary.get("notes", ()))
    if summary.get("layout"):
        lines.append("columns: " + ", ".join(
            _column(i, c) for i, c in enumerate(summary["layout"]["columns"])))
        ignored = [_column(i, c) + f": {c['note']}"
                   for i, c in enumerate(summary["layout"]["columns"]) if c.get("note")]
        if ignored:
            lines.append("ignored: " + "; ".join(ignored))
    inputs = (summary.get("export_info") or {}).get("column_inputs")
    if inputs:
        lines.append("named inputs: " + ", ".join(
            name if name == column else f"{column} -> {name}" for column, name in inputs.items()))
    if summary.get("train"):
        lines.append("train: " + _pairs(summary["train"]))
        lines.append("data: " + _pairs({k: v for k, v in summary["data"].items()
                                        if k != "sha256"}))
    if summary.get("price"):
        lines.append("price: " + format_price(summary["price"]))
    metrics = summary["metrics"]
    lines.append("metrics: " + (_pairs(metrics) if metrics else "none"))
    for name, signature in summary.get("signatures", {}).items():
        ins = ", ".join(f"{k} {v['dtype']} {tuple(v['shape'])}"
                        for k, v in signature["inputs"].items())
        outs = ", ".join(f"{k} {v['dtype']} {tuple(v['shape'])}"
                         for k, v in signature["outputs"].items())
        lines.append(f"signature {name}: {ins} -> {outs}")
    return "\n".join(lines)


def _column(position: int, column: dict[str, Any], shown: int = 5) -> str:
    """`colour (event, categorical: 3 levels: blue, green, red)`, `x (event, grid)`."""
    name = column["name"] if column["name"] is not None else str(position)
    kind = column.get("kind", "continuous")
    if column["role"] == "ignored":
        return f"{name} (ignored)"
    levels = column.get("levels")
    if levels is not None:
        head = ", ".join(levels[:shown]) + (", ..." if len(levels) > shown else "")
        kind = f"categorical: {len(levels)} level{'s' if len(levels) != 1 else ''}: {head}"
    return f"{name} ({column['role']}, {kind})"


def _pairs(values: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k}={show(v)}" for k, v in values.items())
