"""A table laid out by a model's `TableLayout` -> its numeric cells, category codes and
context (and back, for samples), keeping the rows' order (no TensorFlow).

Columns are found by the layout's header names when both the layout and the table have
names, else by the layout's 0-based positions; other columns of the table are allowed and
kept. A numeric cell: a number (a blank or NaN is missing, NaN in `numeric`). A categorical
cell: its label, encoded with the layout's `levels` (code i <-> `levels[i]`; a label outside
them gets the unseen code `len(levels)`; a blank is missing, code -1).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfp_realnvp.errors import DataError
from tfp_realnvp.mixed.encoding import Vocabulary, encode, label_text
from tfp_realnvp.tables.columns import resolve_columns
from tfp_realnvp.tables.layout import TableLayout
from tfp_realnvp.tables.readers import header_of, read_frame


@dataclasses.dataclass(frozen=True)
class FrameInputs:
    """A table's cells as a model takes them, row i of each being the table's row i.

    Attributes:
      frame: the table as read (every column, the extra ones included).
      numeric: float64 `[N, D]`, the numeric event columns in layout order (NaN: missing).
      codes: int64 `[N, K]`, the categorical event columns in layout order (-1: missing,
        `len(levels)`: unseen).
      context: float64 `[N, C]` (NaN: missing), or None for an unconditional model.
      unseen: per categorical column name, how many cells hold a label outside its levels.
    """

    frame: pd.DataFrame
    numeric: np.ndarray
    codes: np.ndarray
    context: np.ndarray | None
    unseen: dict[str, int]

    @property
    def numeric_missing(self) -> np.ndarray:
        """bool `[N]`: the rows with a missing numeric cell (events or context)."""
        missing = np.isnan(self.numeric).any(axis=1)
        if self.context is not None:
            missing |= np.isnan(self.context).any(axis=1)
        return missing

    @property
    def categorical_missing(self) -> np.ndarray:
        """bool `[N]`: the rows with a missing categorical cell (summed out exactly)."""
        return (self.codes < 0).any(axis=1)


def as_frame(table: Any, source: str = "data") -> tuple[pd.DataFrame, str]:
    """(a DataFrame, the name messages use) for a DataFrame, a 2-D array or a file path."""
    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True), source
    if isinstance(table, (str, os.PathLike)):
        return read_frame(table), str(table)
    array = np.asarray(table)
    if array.ndim != 2:
        raise DataError(f"{source}: expected a 2-D table [rows, columns]; got shape "
                        f"{array.shape}.")
    return pd.DataFrame(array), source


def layout_or_default(layout: TableLayout | None, event_dim: int) -> TableLayout:
    """`layout`, or (a model trained from arrays) every column an event, by position."""
    return layout if layout is not None else TableLayout.from_positions(event_dim,
                                                                         range(event_dim))


def event_groups(layout: TableLayout) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(numeric event positions, categorical event positions), each in table order."""
    numeric = tuple(i for i in layout.events if layout.columns[i].kind != "categorical")
    categorical = tuple(i for i in layout.events if layout.columns[i].kind == "categorical")
    return numeric, categorical


def vocabularies(layout: TableLayout) -> list[Vocabulary]:
    """The categorical event columns' vocabularies, in layout order."""
    return [Vocabulary(layout.labels([i])[0], layout.columns[i].levels)
            for i in event_groups(layout)[1]]


def locate(frame: pd.DataFrame, layout: TableLayout, source: str = "data"
           ) -> dict[int, int]:
    """Layout position -> the frame's column position, for the layout's event and context
    columns: by header name when both have names, else by position. A DataError names a
    column the table lacks and lists the table's columns."""
    header = header_of(frame)
    wanted = [*layout.events, *layout.context]
    by_name = header is not None and layout.names is not None
    keys = layout.labels(wanted) if by_name else wanted
    try:
        found = resolve_columns(keys, frame.shape[1], header, source)
    except DataError as error:
        if not by_name:
            raise DataError(f"{error} The model reads {layout.width} column(s) by position "
                            "(its training table had no header).") from None
        raise DataError(f"{error} (the model's columns: {', '.join(layout.names)})") from None
    return dict(zip(wanted, found, strict=True))


def numeric_cells(column: pd.Series, source: str, name: str) -> np.ndarray:
    """A column's cells as float64, blanks and NaN as NaN; DataError for any other text or
    an infinite value, naming the row (1-based, data rows) and the column."""
    if pd.api.types.is_numeric_dtype(column.dtype) and \
            not pd.api.types.is_bool_dtype(column.dtype):
        out = column.to_numpy(dtype=np.float64)
    else:
        out = np.array(pd.to_numeric(column, errors="coerce"), dtype=np.float64)
        values = column.to_numpy(dtype=object)
        for i in np.flatnonzero(np.isnan(out)):  # blanks, and text pandas did not read
            text = label_text(values[i])
            try:
                out[i] = np.nan if text is None else float(text)
            except ValueError:
                raise DataError(f"{source}: row {i + 1}, column {name!r}: {text!r} is not a "
                                "number (the model reads this column as numeric).") from None
    infinite = np.flatnonzero(np.isinf(out))
    if len(infinite):
        raise DataError(f"{source}: row {infinite[0] + 1}, column {name!r} holds "
                        f"{out[infinite[0]]}; a numeric cell is a finite number or blank.")
    return out


def frame_inputs(table: Any, layout: TableLayout, source: str = "data") -> FrameInputs:
    """The model's inputs from a table laid out like its training table (module docstring).

    Args:
      table: a DataFrame, a 2-D array, or a CSV / Parquet / `.npy` file.
      layout: the model's layout (`find_model(...).layout`).
      source: the table's name in messages (a path names itself).
    """
    frame, source = as_frame(table, source)
    columns = locate(frame, layout, source)
    numeric_at, categorical_at = event_groups(layout)

    def numbers(positions: Sequence[int]) -> np.ndarray:
        cells = [numeric_cells(frame.iloc[:, columns[i]], source, layout.labels([i])[0])
                 for i in positions]
        return np.column_stack(cells) if cells else np.zeros((len(frame), 0))

    vocab = vocabularies(layout)
    codes = np.zeros((len(frame), 0), np.int64)
    if categorical_at:
        cells = np.column_stack([frame.iloc[:, columns[i]].to_numpy(dtype=object)
                                 for i in categorical_at])
        codes = encode(cells, vocab)
    unseen = {v.name: int((codes[:, k] == v.size).sum()) for k, v in enumerate(vocab)}
    context = numbers(layout.context) if layout.context else None
    return FrameInputs(frame, numbers(numeric_at), codes, context, unseen)


def samples_frame(layout: TableLayout, numeric: np.ndarray | None,
                  codes: np.ndarray | None) -> pd.DataFrame:
    """Sampled rows as a DataFrame: the event columns in table order, named by the layout
    (header names, else positions), categories as their labels (text), numbers as float."""
    numeric_at, categorical_at = event_groups(layout)
    rows = len(numeric) if numeric is not None else len(codes)
    out: dict[Any, Any] = {}
    names = layout.names
    for i in layout.events:
        key = names[i] if names is not None else i
        if i in categorical_at:
            levels = np.asarray(layout.columns[i].levels, dtype=object)
            out[key] = levels[codes[:, categorical_at.index(i)]] if rows else levels[:0]
        else:
            out[key] = np.asarray(numeric[:, numeric_at.index(i)], np.float64)
    return pd.DataFrame(out, columns=list(out))
