"""Reading tables: CSV (pandas' C parser), Parquet (pyarrow) and `.npy` into a DataFrame;
`numeric_rows` then takes its numbers, naming the file, row and column of any other cell.

`read_frame` keeps every cell as read (numeric columns as numbers, anything else as text), so
the kind of each column can be inferred from the frame; today `numeric_rows` refuses any
cell that is not a number with the message the user needs.
"""

from __future__ import annotations

import codecs
import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tfp_realnvp.errors import DataError, DataFileNotFoundError

CSV_DELIMITERS = ",;\t|"
TEXT_PROBE_BYTES = 1 << 16  # how much of a CSV is checked for binary bytes
DECODE_CHUNK_BYTES = 1 << 23
CONTROL_BYTES = frozenset([*range(0, 9), 11, 12, *range(14, 32), 127])
NO_ROWS = "no data rows. Expected rows of at least 2 numeric columns."


def read_frame(path: str | os.PathLike) -> pd.DataFrame:
    """A table file as a DataFrame, cells as read.

    Columns are the header's names (strings) or, for a table without a header (a CSV whose
    first non-blank row is all numbers, a `.npy` array), the integers 0..W-1. Reads `.npy`
    (a 2-D numeric array), `.parquet`, and anything else as CSV: delimiter , ; tab or |
    (detected), quoted cells, UTF-8 (a byte-order mark is skipped) or latin-1, blank lines
    skipped.

    Raises:
      DataFileNotFoundError: no such file, or a directory.
      DataError: an unreadable file (binary bytes in a CSV, a broken `.npy` or Parquet
        file), no data rows, or ragged rows; the message names the file and the row.
    """
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = _load_npy(path)
        if array.ndim != 2:
            raise DataError(f"{path}: expected a 2-D table [rows, columns]; got shape "
                            f"{array.shape}.")
        frame = pd.DataFrame(array)
        frame.attrs["npy"] = True  # NaN here is a number, not a blank (see tables.kinds)
        return frame
    if suffix == ".parquet":
        return _read_parquet(path)
    return _read_csv(path)


def header_of(frame: pd.DataFrame) -> tuple[str, ...] | None:
    """A frame's column names, or None when its columns are plain positions 0..W-1."""
    if all(isinstance(c, (int, np.integer)) for c in frame.columns) and \
            list(frame.columns) == list(range(frame.shape[1])):
        return None
    return tuple(str(c) for c in frame.columns)


def numeric_rows(frame: pd.DataFrame, source: str = "data") -> np.ndarray:
    """Every cell of `frame` as a float64 `[rows, columns]` array.

    Text that Python reads as a number (`nan`, `inf`, ` 1.5 `) is one; any other cell (a
    word, a blank) is a DataError naming the row (the file's line for a CSV, else the
    1-based row) and the column. Non-finite values are left to `validate_array`.
    """
    if frame.shape[0] == 0:
        raise DataError(f"{source}: {NO_ROWS}")
    if all(_is_real(dtype) for dtype in frame.dtypes):
        return frame.to_numpy(dtype=np.float64)
    columns = []
    for j in range(frame.shape[1]):
        column = frame.iloc[:, j]
        if _is_real(column.dtype):
            columns.append(column.to_numpy(dtype=np.float64))
            continue
        values, bad = _numbers(column)
        if bad is not None:
            _refuse_cell(frame, source, bad, j)
        columns.append(values)
    return np.column_stack(columns)


def read_table(path: str | os.PathLike) -> np.ndarray:
    """A `.npy`, Parquet or CSV file's numbers as a float64 array, checking its format only
    (values are checked by `validate_array`). A `.npy` file keeps its shape, whatever it is."""
    path = _existing(path)
    if path.suffix.lower() == ".npy":
        return _load_npy(path)
    return numeric_rows(read_frame(path), str(path))


def read_header(path: str | os.PathLike) -> tuple[str, ...] | None:
    """The column names of a table file, reading only its head: a CSV's header row (cells
    stripped), a Parquet file's schema; None for a `.npy` file or a CSV without header."""
    path = Path(path)
    if path.suffix.lower() == ".npy" or not path.is_file():
        return None
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return tuple(pq.read_schema(path).names)
    encoding = _encoding(path)
    head = _head_lines(path, encoding)
    if not head:
        return None
    cells = next(csv.reader(head[:1], delimiter=_delimiter(head)))
    return None if _is_numeric_row(cells) else tuple(c.strip() for c in cells)


def load_array(path: str | os.PathLike) -> np.ndarray:
    """A 2-D float32 table from `.npy`, Parquet or CSV (an optional header row is skipped),
    values validated (`validate_array`): the message of any problem names file, row, column."""
    from tfp_realnvp.tables.validate import validate_array

    return validate_array(read_table(path), source=str(path))


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "no such file"
        raise DataFileNotFoundError(
            f"{path}: {what}. Pass a .csv, .parquet or .npy file of numeric rows.")
    return path


def _is_real(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)


def _numbers(column: pd.Series) -> tuple[np.ndarray, int | None]:
    """A text column's cells as float64, and the position of the first that is no number."""
    converted = np.array(pd.to_numeric(column, errors="coerce"), dtype=np.float64)
    values = column.to_numpy(dtype=object)
    for i in np.flatnonzero(np.isnan(converted)):
        try:
            number = float(values[i])
        except (TypeError, ValueError):
            return converted, int(i)
        converted[i] = number
    return converted, None


def _refuse_cell(frame: pd.DataFrame, source: str, row: int, column: int) -> None:
    """Raises the DataError for the cell at `row`, `column` (0-based) of `frame`; a CSV's
    message counts the file's lines (blank lines and the header included)."""
    csv_source = frame.attrs.get("csv")
    if csv_source is not None:
        _explain_csv(Path(csv_source["path"]), csv_source["encoding"],
                     csv_source["delimiter"])
    cell = frame.iat[row, column]
    name = "" if header_of(frame) is None else f" ({frame.columns[column]})"
    shown = "a blank" if cell is None or (isinstance(cell, float) and np.isnan(cell)) \
        else repr(str(cell).strip())
    raise DataError(f"{source}: row {row + 1}, column {column + 1}{name}: {shown} is not a "
                    "number. Every cell must be numeric.")


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array of numbers ({error}).") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{path}: expected a real numeric array; got dtype {array.dtype}.")
    return array.astype(np.float64)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow).") \
            from None
    except Exception as error:  # pyarrow's ArrowInvalid and OSError for a broken file
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{path}: not a readable Parquet file ({first}).") from None
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    """pandas' C parser over the rows after the optional header; the header is read with
    the csv module so its names stay exactly as written (pandas would rename repeats)."""
    encoding = _encoding(path)
    head = _head_lines(path, encoding)
    if not head:
        raise DataError(f"{path}: {NO_ROWS}")
    delimiter = _delimiter(head)
    first = next(csv.reader(head[:1], delimiter=delimiter))
    header = None if _is_numeric_row(first) else [c.strip() for c in first]
    try:
        frame = pd.read_csv(path, sep=delimiter, header=None, encoding=encoding,
                            skiprows=_first_rows(path, encoding) if header else 0,
                            na_filter=False, skip_blank_lines=True, engine="c")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: {NO_ROWS}") from None
    except pd.errors.ParserError:
        _explain_csv(path, encoding, delimiter)  # raises the precise DataError
        raise
    if frame.shape[0] == 0:
        raise DataError(f"{path}: {NO_ROWS}")
    if header is not None:
        if len(header) != frame.shape[1]:
            raise DataError(f"{path}: the header names {len(header)} columns; the rows have "
                            f"{frame.shape[1]}.")
        frame.columns = header
    frame.attrs["csv"] = {"path": str(path), "encoding": encoding, "delimiter": delimiter}
    return frame


def _encoding(path: Path) -> str:
    """UTF-8 (with or without byte-order mark) if the whole file decodes so, else latin-1;
    DataError for a file that is not text (NUL or many control bytes near its start)."""
    with open(path, "rb") as handle:
        probe = handle.read(TEXT_PROBE_BYTES)
        controls = sum(probe.count(bytes([b])) for b in CONTROL_BYTES)
        if b"\x00" in probe or controls > max(1, len(probe) // 100):
            raise DataError(
                f"{path}: not a text table (binary bytes in its first {len(probe)} bytes). "
                "Pass a CSV (UTF-8 or latin-1 text), a .parquet or a .npy file.")
        decoder = codecs.getincrementaldecoder("utf-8")()
        chunk = probe
        try:
            while chunk:
                decoder.decode(chunk)
                chunk = handle.read(DECODE_CHUNK_BYTES)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8-sig" if probe.startswith(codecs.BOM_UTF8) else "utf-8"


def _head_lines(path: Path, encoding: str, count: int = 5) -> list[str]:
    with open(path, newline="", encoding=encoding) as handle:
        return [line for line in (handle.readline() for _ in range(count)) if line.strip()]


def _delimiter(lines: list[str]) -> str:
    try:
        return csv.Sniffer().sniff("".join(lines), delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ","  # one column, or nothing to tell: the comma


def _first_rows(path: Path, encoding: str) -> int:
    """Lines before the first data row: blank lines, then the header."""
    with open(path, encoding=encoding) as handle:
        for skipped, line in enumerate(handle, start=1):
            if line.strip():
                return skipped
    return 0


def _is_numeric_row(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def _explain_csv(path: Path, encoding: str, delimiter: str) -> None:
    """Scans a CSV row by row for its first ragged row or non-numeric cell and raises the
    DataError naming its line and column (the error path only: pandas read the file)."""
    with open(path, newline="", encoding=encoding) as handle:
        numbered = enumerate(csv.reader(handle, delimiter=delimiter), start=1)
        rows = [(i, r) for i, r in numbered if any(c.strip() for c in r)]
    if rows and not _is_numeric_row(rows[0][1]):
        rows = rows[1:]  # header
    if not rows:
        raise DataError(f"{path}: {NO_ROWS}")
    width = len(rows[0][1])
    for line, cells in rows:
        if len(cells) != width:
            raise DataError(
                f"{path}: row {line} has {len(cells)} columns; the first data row has {width}.")
        for column, cell in enumerate(cells, start=1):
            try:
                float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: row {line}, column {column}: {cell.strip()!r} is not a number. "
                    "Every cell must be numeric (one optional header row is allowed).") from None
