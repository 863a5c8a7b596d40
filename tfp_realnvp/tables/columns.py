"""Picking a table's columns by header name or 0-based position; events apart from context."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfp_realnvp.errors import DataError


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
