"""A table in files: one large Parquet/CSV file, a folder or a glob of shards, read in
chunks of rows (pyarrow) without ever holding the whole table (no TensorFlow).

Shards are taken in sorted path order, so a row's global index (its shard's offset plus
its place in the shard) is the same on every read: the streamed run's validation rows are
chosen by a hash of that index (`tables.moments.row_uniforms`).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from tfp_realnvp.errors import DataError, DataFileNotFoundError

CHUNK_ROWS = 1 << 16  # rows per chunk read
SUFFIXES = (".parquet", ".csv")
STREAM_FIX = ("streaming reads numeric tables only: leave the column out (--ignore NAME) or "
              "train in memory (--stream never), where categorical columns are modelled")


@dataclasses.dataclass(frozen=True)
class ShardSet:
    """The shard files of one table (sorted), their format, and the table's header.

    `names` are the header's column names (a CSV without header: None); `rows` the rows of
    each shard when its metadata tells (Parquet), else None (CSV: counted by a pass).
    """

    source: str
    paths: tuple[Path, ...]
    kind: str  # "parquet" or "csv"
    names: tuple[str, ...] | None
    width: int
    rows: tuple[int, ...] | None

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    def fingerprint(self) -> list[list]:
        """[name, size in bytes] of every shard: what a resumed run checks."""
        return [[p.name, p.stat().st_size] for p in self.paths]

    def chunks(self, shard: int, columns: Sequence[int]) -> Iterator[np.ndarray]:
        """Shard `shard`'s `columns` (0-based positions) as float64 chunks `[n, len(columns)]`
        in file order; a blank (null) cell is NaN. DataError for a cell that is no number."""
        path = self.paths[shard]
        try:
            yield from (_parquet_chunks if self.kind == "parquet" else _csv_chunks)(
                self, path, list(columns))
        except DataError:
            raise
        except Exception as error:  # pyarrow's ArrowInvalid: a cell that is not a number
            first = (str(error).strip().splitlines() or [""])[0][:300]
            raise DataError(f"{path}: {first}. Every modelled cell of a streamed table must be "
                            f"a number; {STREAM_FIX}.") from None


def open_shards(source: str | os.PathLike) -> ShardSet:
    """The shards of `source`: a file, a folder (its *.parquet, else its *.csv files) or a
    glob pattern. DataError when there are none, formats are mixed, or headers differ."""
    paths = shard_paths(source)
    kinds = {p.suffix.lower() for p in paths}
    if len(kinds) > 1:
        raise DataError(f"{source}: shards of several formats ({', '.join(sorted(kinds))}); "
                        "keep one format per table.")
    kind = kinds.pop().lstrip(".")
    heads = [_parquet_head(p) if kind == "parquet" else _csv_head(p) for p in paths]
    names, width = heads[0][0], heads[0][1]
    for path, (other, other_width, _) in zip(paths[1:], heads[1:], strict=True):
        if other != names or other_width != width:
            raise DataError(f"{path}: its columns {other or other_width} differ from "
                            f"{paths[0]}'s {names or width}; every shard needs the same "
                            "columns.")
    rows = tuple(h[2] for h in heads) if kind == "parquet" else None
    return ShardSet(str(source), tuple(paths), kind, names, width, rows)


def shard_paths(source: str | os.PathLike) -> list[Path]:
    """The sorted shard files of a file, folder or glob (module docstring)."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        for suffix in SUFFIXES:
            found = sorted(path.glob(f"*{suffix}"))
            if found:
                return found
        raise DataFileNotFoundError(f"{path}: a directory, not a file, and it holds no "
                                    ".parquet or .csv shards. Pass a table file, a folder of "
                                    "table shards or a glob.")
    if path.is_file():
        return [path]
    if glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if found:
            return found
        raise DataFileNotFoundError(f"{text}: the pattern matches no file. Pass a folder of "
                                    "table shards, a glob or a file.")
    raise DataFileNotFoundError(f"{path}: no such file. Pass a .csv, .parquet or .npy file, "
                                "a folder of shards or a glob.")


def is_shard_source(source: str | os.PathLike | None) -> bool:
    """Whether `source` names several shards: a folder or a glob pattern."""
    if source is None:
        return False
    text = str(source)
    return Path(text).is_dir() or (not Path(text).exists() and glob.has_magic(text))


def read_all(source: str | os.PathLike):
    """Every shard of `source` read into one DataFrame (for a table small enough for
    memory), columns as the first shard's."""
    import pandas as pd

    from tfp_realnvp.tables.readers import read_frame

    frames = [read_frame(p) for p in shard_paths(source)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame.attrs.pop("csv", None)  # line numbers no longer point into one file
    return frame


def _parquet_head(path: Path) -> tuple[tuple[str, ...], int, int]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
    except Exception as error:
        raise DataError(f"{path}: not a readable Parquet file ({str(error)[:200]}).") from None
    names = tuple(meta.schema_arrow.names)
    return names, len(names), meta.metadata.num_rows


def _csv_head(path: Path) -> tuple[tuple[str, ...] | None, int, None]:
    import csv

    from tfp_realnvp.tables import readers

    encoding = _head_encoding(path)
    head = readers._head_lines(path, encoding)
    if not head:
        raise DataError(f"{path}: {readers.NO_ROWS}")
    cells = next(csv.reader(head[:1], delimiter=readers._delimiter(head)))
    names = None if readers._is_numeric_row(cells) else tuple(c.strip() for c in cells)
    return names, len(cells), None


def check_numeric_schema(shards: ShardSet, columns: Sequence[int]) -> None:
    """DataError naming a Parquet column of text or categories among `columns`."""
    if shards.kind != "parquet":
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(shards.paths[0])
    for i in columns:
        kind = schema.field(i).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind)):
            raise DataError(f"{shards.paths[0]}: column {schema.names[i]!r} holds {kind} "
                            f"(categorical); {STREAM_FIX}.")


def _parquet_chunks(shards: ShardSet, path: Path, columns: list[int]) -> Iterator[np.ndarray]:
    import pyarrow.parquet as pq

    names = [shards.names[i] for i in columns]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS, columns=names):
        yield _to_numbers(batch)


def _csv_chunks(shards: ShardSet, path: Path, columns: list[int]) -> Iterator[np.ndarray]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from tfp_realnvp.tables import readers

    encoding = _head_encoding(path)
    head = readers._head_lines(path, encoding)
    names = [str(i) for i in range(shards.width)]
    skip = readers._first_rows(path, encoding) if shards.names is not None else 0
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(column_names=names, skip_rows=skip, block_size=1 << 22,
                                      encoding="utf8" if encoding.startswith("utf") else
                                      "latin-1"),
        parse_options=pcsv.ParseOptions(delimiter=readers._delimiter(head)),
        convert_options=pcsv.ConvertOptions(
            column_types={names[i]: pa.float64() for i in columns},
            include_columns=[names[i] for i in columns], null_values=[""],
            strings_can_be_null=True))
    for batch in reader:
        yield _to_numbers(batch)


def _head_encoding(path: Path) -> str:
    """UTF-8 (a byte-order mark skipped) when the file's head decodes so, else latin-1: the
    head only, so a large CSV is not read through for its encoding."""
    import codecs

    with open(path, "rb") as handle:
        probe = handle.read(1 << 16)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(probe)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8-sig" if probe.startswith(codecs.BOM_UTF8) else "utf-8"


def _to_numbers(batch) -> np.ndarray:
    """A record batch's columns as float64 `[n, W]`; nulls become NaN."""
    if batch.num_rows == 0:
        return np.empty((0, batch.num_columns))
    return np.column_stack([np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.float64)
                            for c in batch.columns])
