"""Column kinds found from a table's cells (continuous, grid, categorical, ignored), with the
user's overrides; a column's cells as numbers or as labels (no TensorFlow).

```none
every cell blank                         -> ignored ("every cell is blank")
bool, pandas category, text              -> categorical, levels = sorted labels as text
text unique per row (>= 10 rows)         -> ignored (an ID)
numbers                                  -> grid (on a grid: grid_steps(..., "auto")) or
                                            continuous
integers 1 apart, row after row          -> ignored (a running index), >= 10 rows
numbers all equal (finite)               -> ignored ("is constant"), >= 10 rows
```
Overrides (`categorical=`, `numeric=`, `ignore=`: header names or 0-based positions) win;
context columns are kept whatever they hold (numbers, or categories one-hot encoded).
A blank cell is missing: an empty or blank text, None, pandas NA, and in a DataFrame given
to the Python API a NaN (in a CSV or `.npy`, the text `nan` is a number: NaN).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfp_realnvp.errors import DataError
from tfp_realnvp.mixed.encoding import fit_vocabularies
from tfp_realnvp.prepare import grid_steps
from tfp_realnvp.tables.columns import resolve_columns
from tfp_realnvp.tables.layout import ColumnSpec, TableLayout
from tfp_realnvp.tables.readers import header_of

MIN_ID_ROWS = 10  # fewer rows are too few to call a column an ID or a running index
NUMERIC_SHARE = 0.5  # a text column whose cells are at least this share numbers is numeric


def parse_overrides(value: str | Sequence[str | int] | None) -> list[str | int]:
    """`"a,b"` or `["a", 2]` -> the column references (empty for None)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [v for v in items if str(v).strip()]


def nan_is_missing(frame: pd.DataFrame) -> bool:
    """A DataFrame from the caller marks missing cells NaN; a CSV or `.npy` file read by
    `read_frame` does not (there a blank is missing and `nan` a number)."""
    return "csv" not in frame.attrs and not frame.attrs.get("npy")


def blank_cells(column: pd.Series, nan_missing: bool) -> np.ndarray:
    """Which cells of a column are missing (bool `[N]`)."""
    values = column.to_numpy(dtype=object)
    out = np.fromiter((_blank(v, nan_missing) for v in values), bool, len(values))
    return out


def _blank(value: object, nan_missing: bool) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (float, np.floating)):
        return nan_missing and bool(np.isnan(value))
    return False


def column_numbers(column: pd.Series, blank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, NaN where blank or not a number; bool mask of cells that are text
    and no number). Python's float() rules: ` 1.5 `, `nan`, `inf` are numbers."""
    if _is_real(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan).copy()
        values[blank] = np.nan
        return values, np.zeros(len(values), bool)
    cells = column.to_numpy(dtype=object)
    values = np.full(len(cells), np.nan)
    bad = np.zeros(len(cells), bool)
    for i in np.flatnonzero(~blank):
        try:
            values[i] = float(cells[i])
        except (TypeError, ValueError):
            bad[i] = True
    return values, bad


def _is_real(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)


def row_number(frame: pd.DataFrame, row: int) -> int:
    """The 1-based row a user sees for the frame's row `row`: a CSV's line in the file
    (header and blank lines counted), else `row + 1`."""
    source = frame.attrs.get("csv")
    if source is None:
        return row + 1
    with open(source["path"], newline="", encoding=source["encoding"]) as handle:
        reader = csv.reader(handle, delimiter=source["delimiter"])
        lines = [reader.line_num for cells in reader if any(c.strip() for c in cells)]
    lines = lines[1:] if header_of(frame) is not None else lines
    return lines[row] if row < len(lines) else row + 1


def refuse_text(frame: pd.DataFrame, column: int, row: int, source: str, hint: str) -> None:
    """DataError for a cell that is no number: `row R, column C: 'x' is not a number`."""
    cell = str(frame.iat[row, column]).strip()
    raise DataError(f"{source}: row {row_number(frame, row)}, column {column + 1}: {cell!r} "
                    f"is not a number ({hint}).")


def infer_layout(frame: pd.DataFrame, context_columns: str | Sequence | None = None,
                 categorical: str | Sequence | None = None,
                 numeric: str | Sequence | None = None, ignore: str | Sequence | None = None,
                 source: str = "data", option: str = "context_columns") -> TableLayout:
    """The layout of a training table: each column's kind (module docstring), role and, for
    a categorical one, its levels; an ignored column carries the note why.

    Args:
      frame: the table as `read_frame` returns it, or a caller's DataFrame.
      context_columns: the context c (names or 0-based positions, "a,b" or a list).
      categorical, numeric, ignore: columns whose kind the user sets.
      source: how messages name the table.
      option: how the caller names `context_columns` in messages.
    """
    width, header = frame.shape[1], header_of(frame)
    if frame.shape[0] == 0:
        raise DataError(f"{source}: no data rows.")

    def positions(value, what: str) -> set[int]:
        return set(resolve_columns(parse_overrides(value), width, header, f"{source} ({what})"))

    context = resolve_columns(parse_overrides(context_columns), width, header,
                              f"{source} ({option})")
    forced = {"categorical": positions(categorical, "categorical"),
              "numeric": positions(numeric, "numeric"), "ignore": positions(ignore, "ignore")}
    for a, b in (("categorical", "numeric"), ("categorical", "ignore"), ("numeric", "ignore")):
        both = sorted(forced[a] & forced[b])
        if both:
            raise DataError(f"{source}: column {both[0] + 1} is given as both {a} and {b}.")
    if forced["ignore"] & set(context):
        raise DataError(f"{source}: column {min(forced['ignore'] & set(context)) + 1} is "
                        "given as both context and ignored.")
    nan_missing = nan_is_missing(frame)
    columns = []
    for j in range(width):
        name = None if header is None else header[j]
        given = next((k for k, v in forced.items() if j in v), None)
        spec = _column_spec(frame, j, name, given, j in context, nan_missing, source)
        role = "ignored" if spec.kind == "ignored" else "context" if j in context else "event"
        columns.append(ColumnSpec(name, role, spec.kind, spec.levels, spec.note))
    order = tuple(context)
    return TableLayout(tuple(columns), None if list(order) == sorted(order) else order)


def _column_spec(frame: pd.DataFrame, j: int, name: str | None, given: str | None,
                 context: bool, nan_missing: bool, source: str) -> ColumnSpec:
    """One column's kind (role left to the caller)."""
    column = frame.iloc[:, j]
    label = f"column {j + 1}" + ("" if name is None else f" ({name})")
    if given == "ignore":
        return ColumnSpec(name, "ignored", "ignored", note="is ignored as asked")
    blank = blank_cells(column, nan_missing)
    if blank.all():
        if context or given is not None:
            raise DataError(f"{source}: {label}: every cell is blank; it cannot be "
                            f"{'the context' if context else given}.")
        return ColumnSpec(name, "ignored", "ignored", note="is blank in every row")
    if given == "categorical" or (given is None and _labelled(column)):
        return _categorical(column, blank, name, label, context or given is not None)
    values, bad = column_numbers(column, blank)
    if bad.any():
        share = (~bad & ~blank).sum() / (~blank).sum()
        if given == "numeric" or share >= NUMERIC_SHARE:
            ref = name if name is not None else j
            hint = f"{label} was given as numeric" if given == "numeric" else \
                f"{label} is otherwise numeric: fix the cell, or pass --categorical {ref} " \
                "(categorical= in Python) to model its values as categories"
            refuse_text(frame, j, int(np.flatnonzero(bad)[0]), source, hint)
        return _categorical(column, blank, name, label, context)
    if given is None and not context:
        note = _numeric_note(values, blank)
        if note is not None:
            return ColumnSpec(name, "ignored", "ignored", note=note)
    finite = values[np.isfinite(values)]  # a context column is not dequantised: continuous
    on_grid = not context and len(finite) > 1 and grid_steps(finite[:, None], "auto")[0] > 0
    return ColumnSpec(name, "event", "grid" if on_grid else "continuous")


def _labelled(column: pd.Series) -> bool:
    """Cells that are labels by their type: bool or pandas category."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return True
    cells = column.dropna()
    return pd.api.types.is_object_dtype(dtype) and len(cells) > 0 and \
        all(isinstance(v, (bool, np.bool_)) for v in cells)


def _categorical(column: pd.Series, blank: np.ndarray, name: str | None, label: str,
                 keep: bool) -> ColumnSpec:
    """A categorical column's levels; a text column unique per row is an ID (ignored)."""
    cells = column.to_numpy(dtype=object)[~blank]
    texts = [str(v).strip() for v in cells]
    if not keep and not blank.any() and len(texts) >= MIN_ID_ROWS and \
            len(set(texts)) == len(texts):
        return ColumnSpec(name, "ignored", "ignored",
                          note=f"is unique per row ({len(texts)} distinct values): an ID")
    vocabulary = fit_vocabularies({label: cells}, [label])[0]
    return ColumnSpec(name, "event", "categorical", vocabulary.labels)


def _numeric_note(values: np.ndarray, blank: np.ndarray) -> str | None:
    """Why a numeric column is left out (constant, a running index), or None."""
    finite = values[~blank]
    if len(finite) >= MIN_ID_ROWS and np.isfinite(finite).all() and np.ptp(finite) == 0:
        return f"is constant (every row is {finite[0]:g})"
    whole = np.isfinite(values).all() and np.all(values == np.round(values))
    if whole and not blank.any() and len(values) >= MIN_ID_ROWS and \
            np.all(np.diff(values) == 1):
        return f"is a running index ({values[0]:g} to {values[-1]:g})"
    return None


def describe_ignored(layout: TableLayout) -> str:
    """`column 1 (id) is unique per row ...; ...`: the ignored columns and why."""
    return "; ".join(f"column {i + 1}{'' if c.name is None else f' ({c.name})'} "
                     f"{c.note or 'is ignored'}"
                     for i, c in enumerate(layout.columns) if c.role == "ignored")


def frame_source(frame: pd.DataFrame, default: str = "data") -> str:
    """How messages name a frame: its CSV's path, else `default`."""
    csv_source = frame.attrs.get("csv")
    return str(Path(csv_source["path"])) if csv_source else default
