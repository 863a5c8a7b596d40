"""User rows at the boundary: events and contexts checked (2-D, finite, float32 range)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfp_realnvp.errors import DataError


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


def drop_nonfinite_rows(array: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows of a 2-D array without NaN or inf, and how many were dropped."""
    keep = np.isfinite(array).all(axis=1)
    return array[keep], int((~keep).sum())
