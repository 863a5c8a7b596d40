"""Scoring a table in its files: `-log p(row)` shard by shard, chunk by chunk, with the
per-row values written out as they come (memory bounded by one chunk)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp.errors import DataError
from tfp_realnvp.flow import context_kwargs
from tfp_realnvp.tables.layout import TableLayout
from tfp_realnvp.tables.shards import open_shards


def score_shards(flow: Any, source: str | os.PathLike, layout: TableLayout | None,
                 event_dim: int, per_row: str | os.PathLike | None = None,
                 on_rows: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The mean and count of `-log p(row)` (nats) over every row of the shards in
    `source`, read a chunk at a time; with `per_row`, each row's value written to that
    Parquet (or CSV) file as it goes, column `nll`, in row order.

    Columns are the model's by the recorded layout's header names (else its positions;
    without a layout, every column). `on_rows(n)` hears each chunk's row count. A row with
    a blank, NaN or inf cell is a DataError naming its file and row.
    """
    shards = open_shards(source)
    columns = _columns(shards, layout, event_dim)
    total, count, worst, started = 0.0, 0, -np.inf, time.perf_counter()
    with _PerRowWriter(per_row) as write:
        for shard, path in enumerate(shards.paths):
            seen = 0
            for rows in shards.chunks(shard, columns):
                bad = ~np.isfinite(rows).all(axis=1)
                if bad.any():
                    raise DataError(f"{path}: data row {seen + int(np.flatnonzero(bad)[0]) + 1} "
                                    "holds a blank, NaN or inf cell; every scored row must be "
                                    "finite.")
                events = tf.constant(rows[:, :event_dim].astype(np.float32))
                context = None if rows.shape[1] == event_dim else \
                    tf.constant(rows[:, event_dim:].astype(np.float32))
                nll = -flow.log_prob(events, **context_kwargs(flow, context)).numpy()
                total += float(np.sum(nll, dtype=np.float64))
                worst = max(worst, float(np.max(nll)))
                count, seen = count + len(rows), seen + len(rows)
                write(nll.astype(np.float64))
                if on_rows is not None:
                    on_rows(len(rows))
    seconds = time.perf_counter() - started
    return {"rows": count, "mean_nll": total / max(count, 1), "max_nll": worst,
            "shards": len(shards.paths), "seconds": seconds,
            "rows_per_s": count / seconds if seconds else None}


def _columns(shards: Any, layout: TableLayout | None, event_dim: int) -> list[int]:
    """The positions of the model's event then context columns in these shards."""
    if layout is None:
        return list(range(shards.width))
    from tfp_realnvp.tables.columns import resolve_columns

    wanted = [*layout.events, *layout.context]
    if shards.names is not None and layout.names is not None:
        return list(resolve_columns(layout.labels(wanted), shards.width, shards.names,
                                    shards.source))
    return wanted


class _PerRowWriter:
    """A context manager giving `write(values)`: appends to the per-row file (written
    under a temporary name and renamed at the end: never half-written), or nothing."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.final = None if path is None else Path(path)
        self.path = None if path is None else self.final.with_name(f".{self.final.name}.part")
        self.handle: Any = None

    def __enter__(self) -> Callable[[np.ndarray], None]:
        return self.write

    def write(self, values: np.ndarray) -> None:
        if self.path is None:
            return
        import pyarrow as pa

        table = pa.table({"nll": values})
        if self.handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.final.suffix.lower() == ".parquet":
                import pyarrow.parquet as pq

                self.handle = pq.ParquetWriter(self.path, table.schema)
            else:
                import pyarrow.csv as pcsv

                self.handle = pcsv.CSVWriter(self.path, table.schema)
        self.handle.write_table(table)

    def __exit__(self, kind: Any, *exc_info: Any) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.path is not None and self.path.exists():
            if kind is None:
                self.path.replace(self.final)
            else:
                self.path.unlink()
