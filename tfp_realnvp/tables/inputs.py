"""A model's inputs from tables: training rows and their layout, rows to score, contexts.

What the CLI and notebooks share: a training table split into events and context with its
`TableLayout`, a table laid out like the training one split the same way (by header name,
else by position), a context given as a file or as numbers, and a run's recorded data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfp_realnvp.config import TOY_DATASET_NAMES
from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.tables.columns import describe_columns, resolve_columns, split_columns
from tfp_realnvp.tables.layout import TableLayout
from tfp_realnvp.tables.readers import (
    header_of,
    load_array,
    numeric_rows,
    read_frame,
    read_header,
    read_table,
)
from tfp_realnvp.tables.toys import make_toy
from tfp_realnvp.tables.validate import drop_nonfinite_rows, validate_array, validate_context


def read_training_table(
    path: str | os.PathLike,
    context_columns: str | Sequence[str | int] | None = None,
    drop_nonfinite: bool = False,
    option: str = "context_columns",
) -> tuple[np.ndarray, np.ndarray | None, TableLayout, int]:
    """(events, context, layout, rows dropped) of a training table.

    Args:
      path: a CSV, Parquet or `.npy` table.
      context_columns: the columns that are the context c (header names or 0-based
        positions; a comma-separated string or a list); the others are the events x.
        None: every column is an event.
      drop_nonfinite: drop the rows holding NaN or inf (counted) instead of refusing them.
      option: how the caller names `context_columns` in messages (`--context-columns`).
    """
    frame = read_frame(path)
    table, header = numeric_rows(frame, str(path)), header_of(frame)
    dropped = 0
    if drop_nonfinite:
        table, dropped = drop_nonfinite_rows(table)
    width = table.shape[1]
    if context_columns is None:
        events = validate_array(table, source=str(path))
        return events, None, TableLayout.from_positions(width, range(width), (), header), \
            dropped
    if isinstance(context_columns, str):
        context_columns = context_columns.split(",")
    names = [n for n in context_columns if str(n).strip()]
    if not names:
        raise DataError(f"{option}: no column named in {context_columns!r}; available: "
                        f"{describe_columns(width, header)}.")
    context_at = resolve_columns(names, width, header, str(path))
    events, context, events_at = split_columns(table, context_at, str(path))
    layout = TableLayout.from_positions(width, events_at, context_at, header)
    return (validate_array(events, source=f"{path} (columns {list(events_at)})"),
            validate_context(context, f"{path} (context columns {list(context_at)})"),
            layout, dropped)


def context_names(layout: TableLayout | None) -> tuple[str, ...] | None:
    """The names (header names, else 0-based positions) of a conditional model's context
    columns in its training table, or None when not recorded."""
    if layout is None or not layout.context:
        return None
    return layout.labels(layout.context)


def split_like_training(table: np.ndarray, header: Sequence[str] | None,
                        layout: TableLayout | None,
                        source: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """(events, context) of a table laid out like a conditional model's training table.

    Columns are found by their recorded header names when both tables have a header,
    else by their recorded 0-based positions. DataError when the model records no layout
    (trained through the library: give the context separately) or a column is missing.
    """
    if layout is None or not layout.context:
        raise DataError(
            f"{source}: this conditional model records no column layout (it was trained from "
            "arrays, not a table); give the events alone and the context separately.")
    if table.ndim != 2:
        raise DataError(f"{source}: expected a 2-D table [rows, columns]; got shape "
                        f"{table.shape}.")
    wanted: tuple[Sequence[str | int], ...] = (layout.events, layout.context)
    if header is not None and layout.names is not None:
        wanted = (layout.labels(layout.events), layout.labels(layout.context))
    events = resolve_columns(wanted[0], table.shape[1], header, source)
    context = resolve_columns(wanted[1], table.shape[1], header, source)
    return table[:, list(events)], table[:, list(context)]


def parse_context(value: str, layout: TableLayout | None, context_dim: int,
                  source: str = "--context") -> np.ndarray:
    """A context given as text: a table file (one row per sample or row, or one row for
    all; a file laid out like the training table has its context columns taken by header
    name), or comma-separated numbers for one row (`0.3,1`). Values are validated later."""
    path = Path(value)
    if path.is_file():
        table, header = read_table(path), read_header(path)
        names = context_names(layout)
        if table.ndim == 2 and table.shape[1] != context_dim and header and names and \
                layout is not None and layout.names is not None:
            table = table[:, list(resolve_columns(names, table.shape[1], header, str(path)))]
        return table
    try:
        return np.asarray([[float(v) for v in value.split(",")]], dtype=np.float64)
    except ValueError:
        raise DataError(
            f"{source}: {value!r} is neither a file nor comma-separated numbers (e.g. 0.3,1)."
        ) from None


def model_inputs(path: str | os.PathLike, event_dim: int, context_dim: int,
                 layout: TableLayout | None,
                 context: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The events of the table at `path` and their context for a model: from `context`
    (text for `parse_context`) when given, else, for a conditional model, from the table's
    columns that were the context in its training table. An unconditional model (or a
    table of the events alone) gets None: `context_for_model` then says what is missing."""
    if not context_dim or context is not None:
        data = validate_array(load_array(path), str(path), expected_width=event_dim)
        return data, None if context is None else parse_context(context, layout, context_dim)
    table, header = read_table(path), read_header(path)
    if table.ndim == 2 and table.shape[1] == event_dim:
        return validate_array(table, str(path)), None
    events, found = split_like_training(table, header, layout, str(path))
    return validate_array(events, str(path)), found


def recorded_data(info: dict[str, Any]) -> np.ndarray:
    """The data a run was trained on, from what its config.json recorded (`data`)."""
    source = info.get("source")
    if source in TOY_DATASET_NAMES and "num_points" in info:
        return make_toy(source, info["num_points"], info["noise"], info["seed"])
    if source is None:
        raise DataError("The run records no data source; pass the training data with --data.")
    return load_array(source)


def fit_inputs(data: Any, context: Any = None, layout: TableLayout | None = None
               ) -> tuple[np.ndarray, np.ndarray | None, TableLayout | None]:
    """What `fit` trains on: arrays of the events and the context, and the table layout.

    A pandas DataFrame gives its numbers and its column names: events then context, one
    layout over both (names kept when every column of both is named). A given `layout` is
    kept and must match the widths.
    """
    names: list[str] | None = []
    arrays = []
    for part, source in ((data, "data"), (context, "context")):
        if isinstance(part, pd.DataFrame):
            header = header_of(part)
            names = None if header is None or names is None else [*names, *header]
            part = numeric_rows(part, source)
        elif part is not None:
            names = None
        arrays.append(part)
    data, context = arrays
    if layout is None and names:
        width = np.shape(data)[1] + (0 if context is None else np.shape(context)[1])
        dim = np.shape(data)[1]
        layout = TableLayout.from_positions(width, range(dim), range(dim, width), names)
    if layout is not None:
        _check_layout(layout, np.shape(data), None if context is None else np.shape(context))
    return data, context, layout


def _check_layout(layout: TableLayout, data_shape: tuple, context_shape: tuple | None) -> None:
    """The flow's events are the layout's numeric event columns; its context the one-hot
    of the categorical event columns, then the context columns (categories one-hot)."""
    from tfp_realnvp.tables.rows import categorical_events, context_width, numeric_events

    width = 0 if context_shape is None or len(context_shape) < 2 else context_shape[1]
    events = numeric_events(layout)
    if len(data_shape) == 2 and len(events) != data_shape[1]:
        raise ConfigError(f"The layout has {len(events)} event columns; the data has "
                          f"{data_shape[1]}.")
    hot = sum(len(layout.columns[i].levels) for i in categorical_events(layout))
    if hot + context_width(layout) != width:
        raise ConfigError(f"The layout has {len(layout.context)} context columns; the "
                          f"context has {width}.")
