"""Data at the boundary: built-in toy sets, CSV/.npy loading, validation."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn import datasets as skdata

from tfp_realnvp.config import TOY_DATASET_NAMES, FlowConfig
from tfp_realnvp.errors import DataError, DataFileNotFoundError
from tfp_realnvp.rundir import atomic_write

TOY_DATASETS: dict[str, Callable[[int, float, int], np.ndarray]] = {
    "moons": lambda n, noise, seed: skdata.make_moons(n, noise=noise, random_state=seed)[0],
    "circles": lambda n, noise, seed: skdata.make_circles(
        n, noise=noise, factor=0.5, random_state=seed
    )[0],
    "blobs": lambda n, noise, seed: skdata.make_blobs(
        n, n_features=2, centers=3, cluster_std=max(noise, 1e-3) * 10, random_state=seed
    )[0],
    "swissroll": lambda n, noise, seed: skdata.make_swiss_roll(
        n, noise=noise, random_state=seed
    )[0][:, [0, 2]] / 5.0,
}
assert tuple(TOY_DATASETS) == TOY_DATASET_NAMES


def make_toy(name: str, num_points: int = 3000, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Samples `num_points` rows of a built-in 2-D toy set as float32.

    Args:
      name: one of `TOY_DATASETS` (moons, circles, blobs, swissroll).
      num_points: rows to draw.
      noise: the toy set's noise level (e.g. `make_moons(noise=...)`).
      seed: the same seed gives the same rows.
    """
    if name not in TOY_DATASETS:
        raise DataError(
            f"Unknown dataset {name!r}; choose one of {', '.join(sorted(TOY_DATASETS))}, "
            "or load your own table."
        )
    if num_points < 1:
        raise DataError(f"'num_points' must be >= 1; got {num_points}.")
    return TOY_DATASETS[name](num_points, noise, seed).astype(np.float32)


def load_array(path: str | os.PathLike) -> np.ndarray:
    """Loads a 2-D float32 table from `.npy` or CSV (an optional header row is skipped).

    Args:
      path: a `.npy` file (numeric, not pickled) or a CSV file (anything else; commas,
        semicolons or tabs, a UTF-8 byte-order mark and Windows line endings are fine).

    Raises:
      DataFileNotFoundError: no such file, or a directory.
      DataError: a non-numeric cell, a ragged row, NaN/inf, fewer than 2 columns, ...;
        the message names the file, row and column.
    """
    return validate_array(read_table(path), source=str(path))


def read_table(path: str | os.PathLike) -> np.ndarray:
    """Parses a `.npy` or CSV file into a float64 array, checking its format only (values
    are checked by `validate_array`)."""
    path = Path(path)
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "no such file"
        raise DataFileNotFoundError(f"{path}: {what}. Pass a .csv or .npy file of numeric rows.")
    return _load_npy(path) if path.suffix.lower() == ".npy" else _load_csv(path)


def read_header(path: str | os.PathLike) -> tuple[str, ...] | None:
    """The header row of a CSV file (its cells, stripped), or None: a `.npy` file, or a
    CSV whose first non-blank row is all numbers (no header). The delimiter and header
    rules are `read_table`'s."""
    path = Path(path)
    if path.suffix.lower() == ".npy" or not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8-sig") as handle:
        head = [line for line in (handle.readline() for _ in range(5)) if line.strip()]
    if not head:
        return None
    cells = next(csv.reader(head[:1], delimiter=_delimiter(head)))
    return None if _is_numeric_row(cells) else tuple(c.strip() for c in cells)


def describe_columns(width: int, header: Sequence[str] | None) -> str:
    """`0 (x1), 1 (x2), 2 (label)`: a table's columns as the CLI names them."""
    if header is None:
        return ", ".join(str(i) for i in range(width))
    return ", ".join(f"{i} ({name})" for i, name in enumerate(header))


def resolve_columns(names: Sequence[str | int], width: int, header: Sequence[str] | None,
                    source: str = "data") -> tuple[int, ...]:
    """0-based positions of the columns `names` picks in a table of `width` columns.

    Each entry is a header name (exact match, tried first) or a 0-based position (`0` is
    the first column; negative positions count from the end, as in NumPy). An unknown name,
    a position out of range or a column named twice is a DataError listing the columns.
    """
    positions = []
    names_of = {name: i for i, name in enumerate(header or ())}
    for name in names:
        token = str(name).strip()
        if token in names_of:
            positions.append(names_of[token])
            continue
        try:
            position = int(token)
        except ValueError:
            position = None
        if position is None or not -width <= position < width:
            what = "no column named" if position is None else "no column at position"
            raise DataError(
                f"{source}: {what} {token!r}; its columns (0-based position, header name) "
                f"are: {describe_columns(width, header)}.")
        positions.append(position % width)
    repeated = sorted({p for p in positions if positions.count(p) > 1})
    if repeated:
        raise DataError(f"{source}: column(s) {repeated} named more than once.")
    return tuple(positions)


def split_columns(table: np.ndarray, context_columns: Sequence[int],
                  source: str = "data") -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(event columns, context columns, the event columns' positions) of a 2-D table: the
    context is `context_columns` (0-based, in that order), the events every other column,
    in table order."""
    if table.ndim != 2:
        raise DataError(f"{source}: expected a 2-D table [rows, columns]; got shape "
                        f"{table.shape}.")
    events = tuple(i for i in range(table.shape[1]) if i not in set(context_columns))
    if len(events) < 2:
        raise DataError(
            f"{source}: {len(events)} column(s) left for the events once the context columns "
            f"{list(context_columns)} are taken out; a RealNVP flow needs at least 2.")
    return table[:, list(events)], table[:, list(context_columns)], events


def context_names(config: FlowConfig) -> tuple[str, ...] | None:
    """The names (header names, else 0-based positions) of a conditional model's context
    columns in its training table, or None when not recorded."""
    if config.context_columns is None:
        return None
    names = config.column_names
    return tuple(names[i] if names else str(i) for i in config.context_columns)


def split_like_training(table: np.ndarray, header: Sequence[str] | None, config: FlowConfig,
                        source: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """(events, context) of a table laid out like a conditional model's training table.

    Columns are found by their recorded header names when both tables have a header,
    else by their recorded 0-based positions. DataError when the model records no layout
    (trained through the library: give the context separately) or a column is missing.
    """
    if config.context_columns is None or config.event_columns is None:
        raise DataError(
            f"{source}: this conditional model records no column layout (it was trained from "
            "arrays, not a table); give the events alone and the context separately.")
    if table.ndim != 2:
        raise DataError(f"{source}: expected a 2-D table [rows, columns]; got shape "
                        f"{table.shape}.")
    wanted = (config.event_columns, config.context_columns)
    if header is not None and config.column_names is not None:
        wanted = tuple(tuple(config.column_names[i] for i in part) for part in wanted)
    events = resolve_columns(wanted[0], table.shape[1], header, source)
    context = resolve_columns(wanted[1], table.shape[1], header, source)
    return table[:, list(events)], table[:, list(context)]


def parse_context(value: str, config: FlowConfig, source: str = "--context") -> np.ndarray:
    """A context given as text: a CSV/.npy file (one row per sample or row, or one row for
    all; a file laid out like the training table has its context columns taken by header
    name), or comma-separated numbers for one row (`0.3,1`). Values are validated later."""
    path = Path(value)
    if path.is_file():
        table, header = read_table(path), read_header(path)
        if table.ndim == 2 and table.shape[1] != config.context_dim and header and \
                config.column_names and config.context_columns is not None:
            names = context_names(config) or ()
            table = table[:, list(resolve_columns(names, table.shape[1], header, str(path)))]
        return table
    try:
        return np.asarray([[float(v) for v in value.split(",")]], dtype=np.float64)
    except ValueError:
        raise DataError(
            f"{source}: {value!r} is neither a file nor comma-separated numbers (e.g. 0.3,1)."
        ) from None


def drop_nonfinite_rows(array: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows of a 2-D array without NaN or inf, and how many were dropped."""
    keep = np.isfinite(array).all(axis=1)
    return array[keep], int((~keep).sum())


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array of numbers ({error}).") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{path}: expected a real numeric array; got dtype {array.dtype}.")
    return array.astype(np.float64)


CSV_DELIMITERS = ",;\t"


def _load_csv(path: Path) -> np.ndarray:
    """NumPy's C parser for the table; on failure the row-by-row parser finds the bad
    cell for the message. The delimiter (comma, semicolon or tab) is detected from the
    first lines, a UTF-8 byte-order mark is skipped."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        head = [line for line in (handle.readline() for _ in range(5)) if line.strip()]
    if not head:
        raise DataError(f"{path}: no data rows. Expected rows of at least 2 numeric columns.")
    delimiter = _delimiter(head)
    header = 0 if _is_numeric_row(next(csv.reader(head[:1], delimiter=delimiter))) else 1
    try:
        with open(path, encoding="utf-8-sig") as handle:
            table = np.loadtxt(handle, delimiter=delimiter, skiprows=_first_rows(path, header),
                               ndmin=2, dtype=np.float64)
    except ValueError:
        table = _parse_csv_rows(path, delimiter)  # raises the precise DataError
    if table.size == 0:
        raise DataError(f"{path}: no data rows. Expected rows of at least 2 numeric columns.")
    return table


def _delimiter(lines: list[str]) -> str:
    try:
        return csv.Sniffer().sniff("".join(lines), delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ","  # one column, or nothing to tell: the comma


def _first_rows(path: Path, header: int) -> int:
    """Lines to skip: blank lines before the first row, then the header if there is one."""
    if not header:
        return 0
    with open(path, encoding="utf-8-sig") as handle:
        for skipped, line in enumerate(handle, start=1):
            if line.strip():
                return skipped
    return 0


def _parse_row(cells: list[str], line: int, path: Path) -> list[float]:
    values = []
    for column, cell in enumerate(cells, start=1):
        try:
            values.append(float(cell))
        except ValueError:
            raise DataError(
                f"{path}: row {line}, column {column}: {cell.strip()!r} is not a number. "
                "Every cell must be numeric (one optional header row is allowed)."
            ) from None
    return values


def _parse_csv_rows(path: Path, delimiter: str) -> np.ndarray:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        numbered = enumerate(csv.reader(handle, delimiter=delimiter), start=1)
        rows = [(i, r) for i, r in numbered if any(c.strip() for c in r)]
    if rows and not _is_numeric_row(rows[0][1]):
        rows = rows[1:]  # header
    if not rows:
        raise DataError(f"{path}: no data rows. Expected rows of at least 2 numeric columns.")
    width = len(rows[0][1])
    parsed = []
    for line, cells in rows:
        if len(cells) != width:
            raise DataError(
                f"{path}: row {line} has {len(cells)} columns; the first data row has {width}."
            )
        parsed.append(_parse_row(cells, line, path))
    return np.asarray(parsed, dtype=np.float64)


def _is_numeric_row(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def validate_array(
    array: np.ndarray, source: str = "data", expected_width: int | None = None
) -> np.ndarray:
    """Checks a table of events and returns it as float32 `[N, D]`.

    Rejects: not 2-D, no rows, fewer than 2 columns, a width other than `expected_width`,
    non-finite values (naming the first bad row, 1-based), values float32 cannot hold
    (naming the row and column).

    Args:
      array: anything `np.asarray` takes.
      source: how error messages name the data (a file name).
      expected_width: the columns a model expects, or None.
    """
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype,
                                                                    np.complexfloating):
        raise DataError(f"{source}: expected real numbers; got dtype {array.dtype}.")
    if array.ndim != 2:
        raise DataError(
            f"{source}: expected a 2-D table [rows, columns]; got shape {array.shape}."
        )
    if array.shape[0] == 0:
        raise DataError(f"{source}: no rows. Expected at least one row of numbers.")
    if array.shape[1] < 2:
        raise DataError(
            f"{source}: {array.shape[1]} column(s); a RealNVP flow needs at least 2 columns."
        )
    if expected_width is not None and array.shape[1] != expected_width:
        raise DataError(
            f"{source}: {array.shape[1]} columns; this model expects {expected_width} "
            f"(shape [N, {expected_width}])."
        )
    array = array.astype(np.float64)
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"{source}: row {rows[0] + 1} holds NaN or inf ({len(rows)} bad row(s) in all). "
            "Remove or impute them (the CLI's --drop-nonfinite drops them)."
        )
    too_big = np.abs(array) > np.finfo(np.float32).max
    if too_big.any():
        row, column = np.argwhere(too_big)[0]
        raise DataError(
            f"{source}: row {row + 1}, column {column + 1}: {array[row, column]:g} is beyond "
            "the float32 range (|x| <= 3.4e38); rescale that column.")
    return array.astype(np.float32)


def validate_context(context: np.ndarray, source: str = "context",
                     num_rows: int | None = None, width: int | None = None) -> np.ndarray:
    """Checks the context of a conditional flow and returns it as float32 `[N, C]`.

    Rejects: not 2-D (a single column is `context[:, None]`), no rows or no columns, a
    width other than `width` (what the model was trained with), a number of rows other
    than `num_rows` (one context row per data row), NaN/inf or values beyond float32
    (naming the first bad row, 1-based).

    Args:
      context: anything `np.asarray` takes, in raw units (the flow standardises it).
      source: how error messages name it.
      num_rows: the rows it must have, or None.
      width: the context columns a model expects, or None.
    """
    context = np.asarray(context)
    if not np.issubdtype(context.dtype, np.number) or np.issubdtype(context.dtype,
                                                                      np.complexfloating):
        raise DataError(f"{source}: expected real numbers; got dtype {context.dtype}.")
    if context.ndim != 2:
        hint = " (one context column: pass context[:, None])" if context.ndim == 1 else ""
        raise DataError(f"{source}: expected a 2-D table [rows, context columns]{hint}; got "
                        f"shape {context.shape}.")
    if context.shape[0] == 0 or context.shape[1] == 0:
        raise DataError(f"{source}: empty (shape {context.shape}); expected at least one row "
                        "and one column.")
    if width is not None and context.shape[1] != width:
        raise DataError(f"{source}: {context.shape[1]} context column(s); this model was "
                        f"trained with {width} (shape [N, {width}]).")
    if num_rows is not None and context.shape[0] != num_rows:
        raise DataError(f"{source}: {context.shape[0]} rows; the data has {num_rows}. Give one "
                        "context row per data row, in the same order.")
    context = context.astype(np.float64)
    bad = ~(np.isfinite(context) & (np.abs(context) <= np.finfo(np.float32).max)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{source}: row {rows[0] + 1} holds NaN, inf or a value beyond float32 "
                        f"({len(rows)} bad row(s) in all). Every context value must be finite.")
    return context.astype(np.float32)


def context_for_model(context: np.ndarray | None, context_dim: int, num_rows: int,
                      names: Sequence[str] | None = None, how: str = "context=",
                      source: str = "context") -> np.ndarray | None:
    """The context a model needs for `num_rows` rows, as float32 `[num_rows, C]`, or None
    for an unconditional model.

    A conditional model (`context_dim > 0`) needs one context row per row, or a single
    row that every row shares (broadcast); an unconditional one takes none. Either mistake
    is a DataError saying which model it is and how to pass the context (`how`).

    Args:
      context: raw context values `[num_rows or 1, context_dim]`, or None.
      context_dim: the model's context width (0: unconditional).
      num_rows: the rows (samples, or data rows) the context goes with.
      names: the context columns' names, for the message.
      how: how the caller passes a context (a CLI option, or `context=`).
      source: how error messages name the context.
    """
    if not context_dim:
        if context is not None:
            raise DataError(f"{source}: this model is unconditional (it models p(x)); it "
                            "takes no context. Leave the context out.")
        return None
    if context is None:
        columns = f" ({', '.join(names)})" if names else ""
        raise DataError(
            f"This model is conditional: it models p(x | c) with {context_dim} context "
            f"column(s){columns}. Pass the context with {how}: one row per row, or one row "
            "for all.")
    context = validate_context(context, source, width=context_dim)
    if len(context) not in (1, num_rows):
        raise DataError(f"{source}: {len(context)} rows; expected {num_rows} (one per row) or "
                        "1 (shared by every row).")
    return np.ascontiguousarray(np.broadcast_to(context, (num_rows, context_dim)))


def save_array(array: np.ndarray, path: str | os.PathLike) -> None:
    """Writes `.npy` or CSV by the file's extension, atomically (temp file, then rename).

    Args:
      array: the rows to write.
      path: `*.npy` for NumPy's format, anything else for CSV (8 significant digits).
    """
    path = Path(path)
    with atomic_write(path) as tmp:
        if path.suffix.lower() == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, array)
        else:
            np.savetxt(tmp, array, delimiter=",", fmt="%.8g")
