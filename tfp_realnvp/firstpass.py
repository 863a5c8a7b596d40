"""The first pass over a streamed table: what training needs, in one read of its shards
(layout, row counts, data map, grid steps, validation rows), saved in the run (no TF).

Validation rows are chosen by a hash of each row's global index (`moments.row_uniforms`,
u in [0, 1)), not by holding out whole shards: the choice is the same for one large file
and for any number of shards, does not depend on how shards were cut (shards cut by date
or by source would make a held-out shard unlike the rest), and the training pipeline can
tell a row's side from its index alone. A row is

    held out   iff u < validation_fraction  (the flow never trains on it)
    validation iff u <= t, t: the `VALIDATION_ROWS`-th smallest u (kept in memory)
    training   iff u >= validation_fraction

so the statistics of the training rows are final after one pass whatever the row count;
on a table with more than VALIDATION_ROWS / validation_fraction rows, the held-out rows
beyond the validation ones are left unused. `SAMPLE_ROWS` training rows (smallest u above
the fraction) are kept too: the base mixture and TensorBoard are fitted on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.prepare import MemberData, PreparedData, check_trainable
from tfp_realnvp.tables.columns import resolve_columns
from tfp_realnvp.tables.layout import TableLayout
from tfp_realnvp.tables.moments import (
    GridSteps,
    Moments,
    SmallestKeys,
    affine_stats_of,
    row_uniforms,
)
from tfp_realnvp.tables.shards import STREAM_FIX, ShardSet, check_numeric_schema, open_shards

STREAM_BYTES = 512 * 2**20  # a table above this as float64 (or a CSV above it) is streamed
STREAM_MODES = ("auto", "always", "never")
VALIDATION_ROWS = 100_000
SAMPLE_ROWS = 50_000
STREAM_DIR = "stream"  # in the run: firstpass.json, validation.npy, sample.npy
CSV_BYTES_PER_CELL = 12  # a CSV's rows guessed from its size, before the pass counts them


def estimated_rows(shards: ShardSet) -> int:
    """The table's rows: a Parquet file's metadata, a CSV's size / (columns x 12 bytes)."""
    if shards.rows is not None:
        return sum(shards.rows)
    return shards.nbytes // (shards.width * CSV_BYTES_PER_CELL)


def choose_input(source: str | os.PathLike, mode: str = "auto") -> tuple[bool, str]:
    """(stream?, why) for a training table: streamed above `STREAM_BYTES` (rows x columns x
    8 from a Parquet file's metadata; a CSV's size on disk), in memory otherwise; `mode`
    "always"/"never" forces it. A .npy file is read into memory."""
    if mode not in STREAM_MODES:
        raise ConfigError(f"stream must be one of {STREAM_MODES}; got {mode!r}.")
    if Path(source).suffix.lower() == ".npy" or mode == "never":
        return False, "in memory" + (" (--stream never)" if mode == "never" else "")
    shards = open_shards(source)
    size = (sum(shards.rows) * shards.width * 8 if shards.rows is not None
            else shards.nbytes)
    what = (f"{len(shards.paths)} {shards.kind} shard(s), "
            f"{size / 2**20:,.0f} MB as float64" if shards.rows is not None else
            f"{len(shards.paths)} csv shard(s), {size / 2**20:,.0f} MB on disk")
    if mode == "always":
        return True, f"streamed from files ({what}; --stream always)"
    if size > STREAM_BYTES:
        return True, f"streamed from files ({what} > {STREAM_BYTES // 2**20} MB)"
    return False, f"in memory ({what} <= {STREAM_BYTES // 2**20} MB)"


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """What the training pipeline reads: the shards, the modelled columns (events then
    context, 0-based), each shard's first global row index, and the split's rule."""

    shards: ShardSet
    columns: tuple[int, ...]
    event_dim: int
    offsets: tuple[int, ...]
    seed: int
    validation_fraction: float
    num_train: int
    drop: bool

    def training_mask(self, rows: np.ndarray, start: int) -> np.ndarray:
        """The chunk's training rows (rows start.. of the table): finite, u >= fraction."""
        keep = np.isfinite(rows).all(axis=1)
        return keep & (row_uniforms(start, len(rows), self.seed) >= self.validation_fraction)


@dataclasses.dataclass(frozen=True)
class StreamedData(PreparedData):
    """`PreparedData` of a streamed table: member 0's `train_events` is a sample of the
    training rows (`SAMPLE_ROWS`), `stream` says where all of them are."""

    stream: StreamPlan | None = None
    num_train_rows: int = 0

    @property
    def num_train(self) -> int:
        return self.num_train_rows

    @property
    def train_sizes(self) -> list[int]:
        return [self.num_train_rows]


@dataclasses.dataclass
class FirstPass:
    """The first pass's results (module docstring); `record` is its JSON part."""

    record: dict[str, Any]
    validation: np.ndarray  # [V, D + C] float32, events then context
    sample: np.ndarray  # [S, D + C] float32

    def prepared(self, shards: ShardSet) -> StreamedData:
        """The `PreparedData` training is built from (one member)."""
        r, dim = self.record, self.record["event_dim"]
        conditional = len(r["columns"]) > dim
        member = MemberData(self.sample[:, :dim], self.validation[:, :dim],
                            self.sample[:, dim:] if conditional else None,
                            self.validation[:, dim:] if conditional else None)
        plan = StreamPlan(shards, tuple(r["columns"]), dim, tuple(r["offsets"]), r["seed"],
                          r["validation_fraction"], r["num_train"], r["drop"])
        return StreamedData((member,), r["data_map"], r["context_map"],
                            r["dequantize_steps"], {"stream_sha256": r["sha256"]},
                            stream=plan, num_train_rows=r["num_train"])

    def save(self, run_path: str | os.PathLike) -> None:
        folder = Path(run_path) / STREAM_DIR
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "validation.npy", self.validation)
        np.save(folder / "sample.npy", self.sample)
        (folder / "firstpass.json").write_text(json.dumps(self.record, indent=1))

    @classmethod
    def load(cls, run_path: str | os.PathLike) -> FirstPass:
        folder = Path(run_path) / STREAM_DIR
        if not (folder / "firstpass.json").is_file():
            raise DataError(f"{run_path}: no {STREAM_DIR}/firstpass.json; this streamed run "
                            "was stopped before its first pass was saved. Fit it again.")
        return cls(json.loads((folder / "firstpass.json").read_text()),
                   np.load(folder / "validation.npy"), np.load(folder / "sample.npy"))


def stream_layout(shards: ShardSet, context_columns: str | Sequence | None = None,
                  ignore: str | Sequence | None = None,
                  categorical: str | Sequence | None = None) -> TableLayout:
    """The layout of a streamed table: every column an event but the context and ignored
    ones; a categorical column is refused (DataError naming the fix)."""
    if categorical:
        raise DataError(f"{shards.source}: categorical columns ({categorical}) cannot be "
                        f"streamed; {STREAM_FIX}.")

    def positions(spec: str | Sequence | None) -> tuple[int, ...]:
        names = spec.split(",") if isinstance(spec, str) else list(spec or ())
        names = [n for n in names if str(n).strip()]
        return resolve_columns(names, shards.width, shards.names, shards.source) \
            if names else ()

    context, ignored = positions(context_columns), set(positions(ignore))
    events = [i for i in range(shards.width) if i not in set(context) | ignored]
    if len(events) < 2:
        raise DataError(f"{shards.source}: {len(events)} event column(s) left; a RealNVP "
                        "flow needs at least 2.")
    check_numeric_schema(shards, [*events, *context])
    return TableLayout.from_positions(shards.width, events, context, shards.names)


def first_pass(shards: ShardSet, layout: TableLayout, seed: int, validation_fraction: float,
               whiten: bool = True, dequantize: str = "none", drop: bool = True,
               on_shard: Callable[[int], None] | None = None) -> FirstPass:
    """One read of every shard (module docstring): the training rows' moments and grid
    steps, the validation rows and the sample, row counts and a content hash.

    `drop`: leave out rows with a blank, NaN or inf cell in a modelled column (counted);
    else such a row is a DataError naming its file and row.
    """
    if not 0 < validation_fraction < 1:
        raise DataError(f"'validation_fraction' must be in (0, 1); got {validation_fraction}.")
    columns = [*layout.events, *layout.context]
    moments = Moments.empty(len(columns))
    grid = GridSteps(len(layout.events))
    validation = SmallestKeys(VALIDATION_ROWS, len(columns))
    sample = SmallestKeys(SAMPLE_ROWS, len(columns))
    digest, offsets, start, dropped = hashlib.sha256(), [], 0, 0
    for shard in range(len(shards.paths)):
        offsets.append(start)
        begin = start
        for rows in shards.chunks(shard, columns):
            finite = np.isfinite(rows).all(axis=1)
            if not finite.all() and not drop:
                bad = int(np.flatnonzero(~finite)[0]) + start - begin
                raise DataError(f"{shards.paths[shard]}: data row {bad + 1} holds a blank, NaN "
                                "or inf cell; drop such rows with --drop-nonfinite.")
            dropped += int((~finite).sum())
            u = row_uniforms(start, len(rows), seed)
            index = np.arange(start, start + len(rows))
            digest.update(rows[finite].astype(np.float32).tobytes())
            train = finite & (u >= validation_fraction)
            held = finite & ~train
            moments = moments.add(rows[train])
            if dequantize != "none":
                grid.add(rows[train][:, :len(layout.events)])
            validation.offer(u[held], index[held], rows[held])
            sample.offer(u[train], index[train], rows[train])
            start += len(rows)
        if on_shard is not None:
            on_shard(shard)
    _, validation_rows = validation.rows()
    _, sample_rows = sample.rows()
    found = {"columns": columns, "offsets": offsets, "start": start, "dropped": dropped,
             "validation_rows": validation_rows, "whiten": whiten, "seed": seed,
             "validation_fraction": validation_fraction, "drop": drop,
             "dequantize": dequantize, "digest": digest}
    return FirstPass(_record(shards, layout, moments, grid, found), validation_rows,
                     sample_rows)


def _record(shards: ShardSet, layout: TableLayout, moments: Moments, grid: GridSteps,
            found: dict[str, Any]) -> dict[str, Any]:
    """firstpass.json: what `first_pass` found (`found`: its counts, settings, validation
    rows and hash), checked trainable."""
    dim = len(layout.events)
    if not len(found["validation_rows"]):
        raise DataError(f"{shards.source}: no row fell in the validation share; raise "
                        "validation_fraction or give more rows.")
    _check_columns(shards, layout, moments)
    stats = affine_stats_of(_part(moments, 0, dim), found["whiten"])
    context = None if dim == len(found["columns"]) else affine_stats_of(
        _part(moments, dim, len(found["columns"])), whiten=False)
    return {
        "source": shards.source, "kind": shards.kind, "fingerprint": shards.fingerprint(),
        "columns": found["columns"], "event_dim": dim, "offsets": found["offsets"],
        "num_rows": found["start"], "dropped": found["dropped"], "num_train": moments.count,
        "num_validation": len(found["validation_rows"]), "seed": found["seed"],
        "validation_fraction": found["validation_fraction"], "drop": found["drop"],
        "moments": moments.to_dict(), "data_map": stats,
        "context_map": {"context_shift": None if context is None else context["data_shift"],
                        "context_scale": None if context is None else context["data_scale"]},
        "dequantize_steps": grid.steps(found["dequantize"], moments.count),
        "sha256": found["digest"].hexdigest(),
    }


def _part(moments: Moments, begin: int, end: int) -> Moments:
    return Moments(moments.count, moments.mean[begin:end],
                   moments.comoment[begin:end, begin:end])


def _check_columns(shards: ShardSet, layout: TableLayout, moments: Moments) -> None:
    """`prepare.check_trainable` from the moments: enough rows, no constant column."""
    dim = len(layout.events)
    if moments.count < max(10, dim + 2):
        check_trainable(np.zeros((moments.count, dim)), shards.source)
    constant = np.flatnonzero(np.diag(moments.comoment)[:dim] == 0)
    if constant.size:
        column = layout.labels([layout.events[int(constant[0])]])[0]
        raise DataError(f"{shards.source}: column {column} is constant (every row is "
                        f"{moments.mean[int(constant[0])]:g}); a density over it would be "
                        "infinite. Leave it out (--ignore).")


def check_same_shards(record: dict[str, Any], shards: ShardSet, run_path: Any) -> None:
    """DataError when the shards differ (names, sizes) from those the first pass read."""
    if shards.fingerprint() != record["fingerprint"]:
        raise DataError(f"{run_path} was trained on {record['source']} "
                        f"({len(record['fingerprint'])} shard(s)); the shards given differ in "
                        "names or sizes. Resume with the run's own shards.")
