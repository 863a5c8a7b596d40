"""A table's modelled cells as arrays, by its `TableLayout`: the numeric event columns, the
categorical ones' codes, the context (numbers; categories one-hot), rows with blank cells
left out, refused or kept (no TensorFlow).

```none
numeric  [N, D] float64   the numeric event columns (continuous, grid) in table order
codes    [N, K] int64     the categorical event columns: level l of levels -> l, a label
                          outside them -> L (unseen), a blank -> -1
context  [N, C] float64   the context columns in context order: a number as is, a
                          categorical column as its one-hot block of L columns (an unseen
                          label: all zeros)
```
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.mixed.encoding import Vocabulary, encode
from tfp_realnvp.tables.kinds import (
    blank_cells,
    column_numbers,
    describe_ignored,
    frame_source,
    infer_layout,
    nan_is_missing,
    refuse_text,
    row_number,
)
from tfp_realnvp.tables.layout import TableLayout
from tfp_realnvp.tables.readers import header_of, read_frame

MISSING_MODES = ("drop", "error", "keep")
NUMERIC_KINDS = ("continuous", "grid")


def numeric_events(layout: TableLayout) -> tuple[int, ...]:
    return tuple(i for i in layout.events if layout.columns[i].kind in NUMERIC_KINDS)


def categorical_events(layout: TableLayout) -> tuple[int, ...]:
    return tuple(i for i in layout.events if layout.columns[i].kind == "categorical")


def vocabularies(layout: TableLayout, positions: Sequence[int] | None = None
                 ) -> list[Vocabulary]:
    """The vocabularies of the categorical event columns (or of `positions`)."""
    chosen = categorical_events(layout) if positions is None else positions
    return [Vocabulary(layout.labels([i])[0], layout.columns[i].levels) for i in chosen]


def context_width(layout: TableLayout) -> int:
    """Columns of the encoded context: 1 per numeric context column, L per categorical."""
    return sum(len(layout.columns[i].levels) if layout.columns[i].kind == "categorical"
               else 1 for i in layout.context)


@dataclasses.dataclass(frozen=True)
class TableRows:
    """A table's modelled cells (module docstring), the layout, and which rows were kept
    (`rows`: 0-based rows of the frame) or left out (blank cells, NaN/inf)."""

    numeric: np.ndarray
    codes: np.ndarray
    context: np.ndarray | None
    layout: TableLayout
    rows: np.ndarray
    dropped_missing: int = 0
    dropped_nonfinite: int = 0
    source: str = "data"

    @property
    def vocabularies(self) -> list[Vocabulary]:
        return vocabularies(self.layout)

    def info(self) -> dict[str, Any]:
        """What a run records about its table in config.json's data info."""
        out: dict[str, Any] = {"num_rows": len(self.rows),
                               "rows_dropped_missing": self.dropped_missing}
        if self.dropped_nonfinite:
            out["rows_dropped_nonfinite"] = self.dropped_nonfinite
        ignored = {self.layout.labels([i])[0]: c.note
                   for i, c in enumerate(self.layout.columns) if c.role == "ignored"}
        if ignored:
            out["ignored_columns"] = ignored
        return out


def locate(frame: pd.DataFrame, layout: TableLayout, source: str = "data") -> list[int | None]:
    """Where each layout column is in `frame`: by header name when both are named (an
    ignored column may be absent: None), else by position. DataError for a missing column."""
    header = header_of(frame)
    if header is not None and layout.names is not None:
        at = {name: i for i, name in enumerate(header)}
        found = [at.get(c.name) for c in layout.columns]
        lost = [c.name for c, f in zip(layout.columns, found, strict=True)
                if f is None and c.role != "ignored"]
        if lost:
            raise DataError(f"{source}: no column named {lost[0]!r}; the model's columns are "
                            f"{', '.join(n for n in layout.names)}.")
        return found
    if frame.shape[1] != layout.width:
        raise DataError(f"{source}: {frame.shape[1]} columns; the model's table has "
                        f"{layout.width} (shape [N, {layout.width}]).")
    return list(range(layout.width))


def table_rows(frame: pd.DataFrame, layout: TableLayout, source: str = "data",
               missing: str = "drop", drop_nonfinite: bool = False) -> TableRows:
    """The modelled cells of `frame`, laid out by `layout`.

    Args:
      frame: a table as `read_frame` returns it, or a caller's DataFrame.
      layout: the columns' kinds, roles and levels (`infer_layout`, or a model's).
      source: how messages name the table.
      missing: a row with a blank cell in a modelled column is left out ("drop"), refused
        with the first such row and column ("error"), or kept ("keep": NaN, code -1).
      drop_nonfinite: leave out rows with NaN or inf numbers instead of refusing them.
    """
    if missing not in MISSING_MODES:
        raise ConfigError(f"'missing' must be one of {MISSING_MODES}; got {missing!r}.")
    at = locate(frame, layout, source)
    nan_missing = nan_is_missing(frame)
    blank = np.zeros((len(frame), 0), bool)
    modelled = [*numeric_events(layout), *categorical_events(layout), *layout.context]
    numbers: dict[int, np.ndarray] = {}
    for i in modelled:
        column = frame.iloc[:, at[i]]
        cells_blank = blank_cells(column, nan_missing)
        if layout.columns[i].kind == "categorical":  # `nan` text is no label either
            cells_blank |= _codes(frame, at, layout, [i])[:, 0] < 0
        blank = np.column_stack([blank, cells_blank])
        if layout.columns[i].kind in NUMERIC_KINDS:
            numbers[i], bad = column_numbers(column, cells_blank)
            if bad.any():
                refuse_text(frame, at[i], int(np.flatnonzero(bad)[0]), source,
                            f"the model's column {layout.labels([i])[0]!r} is numeric")
    keep = np.ones(len(frame), bool)
    dropped_missing = 0
    if blank.any() and missing != "keep":
        row, k = np.argwhere(blank)[0]
        if missing == "error":
            i = modelled[k]
            raise DataError(
                f"{source}: row {row_number(frame, int(row))}, column {at[i] + 1} "
                f"({layout.labels([i])[0]}) is blank ({int(blank.any(axis=1).sum())} row(s) "
                "with blank cells in all). Fill them, or leave such rows out (missing='drop'; "
                "the CLI's default).")
        keep &= ~blank.any(axis=1)
        dropped_missing = int((~keep).sum())
    numeric_at = [i for i in modelled if i in numbers]
    values = np.column_stack([numbers[i] for i in numeric_at]) if numeric_at else \
        np.zeros((len(frame), 0))
    nonfinite = ~np.isfinite(values) & ~blank[:, [modelled.index(i) for i in numeric_at]] \
        if numeric_at else np.zeros((len(frame), 0), bool)
    bad_rows = np.flatnonzero(nonfinite.any(axis=1) & keep)
    dropped_nonfinite = 0
    if len(bad_rows) and drop_nonfinite:
        keep[bad_rows] = False
        dropped_nonfinite = len(bad_rows)
    elif len(bad_rows):
        raise DataError(
            f"{source}: row {row_number(frame, int(bad_rows[0]))} holds NaN or inf "
            f"({len(bad_rows)} bad row(s) in all). Remove or impute them (the CLI's "
            "--drop-nonfinite drops them).")
    rows = np.flatnonzero(keep)
    numeric = np.column_stack([numbers[i][rows] for i in numeric_events(layout)]) \
        if numeric_events(layout) else np.zeros((len(rows), 0))
    codes = _codes(frame.iloc[rows], at, layout, categorical_events(layout))
    context = _context(frame.iloc[rows], at, layout, numbers, rows)
    return TableRows(numeric, codes, context, layout, rows, dropped_missing,
                     dropped_nonfinite, source)


def _codes(frame: pd.DataFrame, at: list[int | None], layout: TableLayout,
           positions: Sequence[int]) -> np.ndarray:
    if not positions:
        return np.zeros((len(frame), 0), np.int64)
    cells = {layout.labels([i])[0]: frame.iloc[:, at[i]].to_numpy(dtype=object)
             for i in positions}
    return encode(cells, vocabularies(layout, positions))


def _context(frame: pd.DataFrame, at: list[int | None], layout: TableLayout,
             numbers: dict[int, np.ndarray], rows: np.ndarray) -> np.ndarray | None:
    if not layout.context:
        return None
    blocks = []
    for i in layout.context:
        levels = layout.columns[i].levels
        if levels is None:
            blocks.append(numbers[i][rows][:, None])
            continue
        codes = _codes(frame, at, layout, [i])[:, 0]
        table = np.concatenate([np.eye(len(levels)), np.zeros((1, len(levels))),
                                np.full((1, len(levels)), np.nan)])
        blocks.append(table[np.where(codes < 0, len(levels) + 1, codes)])
    return np.concatenate(blocks, axis=1)


def read_training_frame(
    data: str | os.PathLike | pd.DataFrame,
    context_columns: str | Sequence[str | int] | None = None,
    categorical: str | Sequence[str | int] | None = None,
    numeric: str | Sequence[str | int] | None = None,
    ignore: str | Sequence[str | int] | None = None,
    missing: str = "drop",
    drop_nonfinite: bool = False,
    option: str = "context_columns",
) -> TableRows:
    """A training table (a file's path or a DataFrame) read, its kinds found
    (`infer_layout`, with the overrides), its cells encoded (`table_rows`), and checked:
    something to model, and a numeric part a RealNVP flow can take (0 or >= 2 columns)."""
    frame = read_frame(data) if not isinstance(data, pd.DataFrame) else data
    source = str(data) if not isinstance(data, pd.DataFrame) else frame_source(frame)
    if frame.shape[0] == 0:
        raise DataError(f"{source}: no data rows.")
    layout = infer_layout(frame, context_columns, categorical, numeric, ignore, source, option)
    table = table_rows(frame, layout, source, missing, drop_nonfinite)
    _check_modelled(table)
    return table


def _check_modelled(table: TableRows) -> None:
    width, kinds = table.numeric.shape[1], table.codes.shape[1]
    ignored = describe_ignored(table.layout)
    why = f" ({ignored}; pass --numeric or --categorical to keep one)" if ignored else ""
    if width == 1 or (width == 0 and kinds == 0):
        with_categories = " as numbers beside the categorical columns" if kinds else ""
        name = table.layout.labels(numeric_events(table.layout))
        raise DataError(
            f"{table.source}: {width} column(s) left for the events{with_categories}"
            f"{f' ({name[0]})' if name else ''}{why}; a RealNVP flow needs at least 2 "
            "columns. Add a numeric column, or pass --categorical NAME to model a column's "
            "values as categories.")
    if width == 0 and table.context is not None:
        raise DataError(f"{table.source}: an all-categorical table is modelled by its "
                        "categories' mass alone; it takes no context columns.")
