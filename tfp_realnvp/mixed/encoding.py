"""Categorical columns <-> integer codes <-> one-hot context: vocabularies, unseen and
missing cells (no TensorFlow).

A column's vocabulary is its sorted distinct labels as text (numbers sorted by value,
`True`/`False` as text). Codes: label `labels[l]` -> `l`; a label outside the vocabulary
-> `L` (the unseen level, `L = len(labels)`); a missing cell (None, NaN, "" or blanks)
-> -1. One-hot: column k's block has `L_k` entries, `e_l` for level l; the unseen level
gets the block the caller gives (`unseen_rows[k]`, e.g. the column's training frequencies,
which the flow's context standardisation maps to 0, the average context).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfp_realnvp.errors import DataError

MISSING = -1
UNSEEN_LABEL = "<unseen>"


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """One categorical column: its name and its sorted labels (codes 0..L-1)."""

    name: str
    labels: tuple[str, ...]

    @property
    def size(self) -> int:
        """L, the seen levels; code L is the unseen level."""
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Vocabulary:
        return cls(str(values["name"]), tuple(str(v) for v in values["labels"]))


def label_text(value: Any) -> str | None:
    """A cell as its label text, or None when missing (None, NaN, NaT, "", blanks)."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode()
    text = str(value).strip()
    return None if text in ("", "nan", "NaN", "None", "NaT", "<NA>") else text


def _sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def table_columns(table: Any, names: Sequence[str] | None = None
                  ) -> list[tuple[str, np.ndarray]]:
    """`(name, cells)` per column of a DataFrame, a mapping name -> cells, or a 2-D array
    (columns named `names`, or "column 1", ...)."""
    if hasattr(table, "columns") and hasattr(table, "__getitem__") and not isinstance(
            table, np.ndarray):
        chosen = list(names) if names is not None else list(table.columns)
        return [(str(n), np.asarray(table[n], dtype=object)) for n in chosen]
    if isinstance(table, Mapping):
        chosen = list(names) if names is not None else list(table)
        return [(str(n), np.asarray(table[n], dtype=object)) for n in chosen]
    array = np.asarray(table, dtype=object)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"categorical table: expected 2-D [rows, columns]; got shape "
                        f"{array.shape}.")
    chosen = list(names) if names is not None else [f"column {k + 1}"
                                                    for k in range(array.shape[1])]
    if len(chosen) != array.shape[1]:
        raise DataError(f"categorical table: {array.shape[1]} column(s) but {len(chosen)} "
                        "name(s); give one name per column.")
    return [(str(n), array[:, k]) for k, n in enumerate(chosen)]


def fit_vocabularies(table: Any, names: Sequence[str] | None = None) -> list[Vocabulary]:
    """The vocabulary of every column (missing cells left out).

    DataError for a column with no label at all (every cell missing).
    """
    vocabularies = []
    for name, cells in table_columns(table, names):
        labels = {t for t in map(label_text, cells) if t is not None}
        if not labels:
            raise DataError(f"categorical column {name!r}: every cell is missing; drop the "
                            "column or fill it.")
        vocabularies.append(Vocabulary(name, tuple(sorted(labels, key=_sort_key))))
    return vocabularies


def encode(table: Any, vocabularies: Sequence[Vocabulary],
           names: Sequence[str] | None = None) -> np.ndarray:
    """Labels -> int64 codes `[N, K]`: seen labels 0..L-1, unseen L, missing -1."""
    columns = table_columns(table, names if names is not None else
                            [v.name for v in vocabularies] if _named(table) else None)
    if len(columns) != len(vocabularies):
        raise DataError(f"categorical table: {len(columns)} column(s); the vocabularies "
                        f"have {len(vocabularies)}.")
    rows = {len(cells) for _, cells in columns}
    if len(rows) > 1:
        raise DataError(f"categorical table: columns of different lengths {sorted(rows)}.")
    codes = np.empty((rows.pop() if rows else 0, len(columns)), np.int64)
    for k, ((_, cells), vocabulary) in enumerate(zip(columns, vocabularies, strict=True)):
        lookup = {label: code for code, label in enumerate(vocabulary.labels)}
        texts = [label_text(c) for c in cells]
        codes[:, k] = [MISSING if t is None else lookup.get(t, vocabulary.size)
                       for t in texts]
    return codes


def _named(table: Any) -> bool:
    return isinstance(table, Mapping) or (hasattr(table, "columns")
                                          and not isinstance(table, np.ndarray))


def decode(codes: np.ndarray, vocabularies: Sequence[Vocabulary]) -> np.ndarray:
    """Codes -> labels, an object array `[N, K]` (unseen: "<unseen>", missing: None)."""
    codes = np.asarray(codes, np.int64)
    out = np.empty(codes.shape, dtype=object)
    for k, vocabulary in enumerate(vocabularies):
        labels = np.array([*vocabulary.labels, UNSEEN_LABEL, None], dtype=object)
        column = np.where(codes[:, k] < 0, vocabulary.size + 1,
                          np.minimum(codes[:, k], vocabulary.size))
        out[:, k] = labels[column]
    return out


def one_hot(codes: np.ndarray, levels: Sequence[int],
            unseen_rows: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Codes `[N, K]` -> float32 `[N, sum_k L_k]`: block k is `e_l` for level l < L_k and
    `unseen_rows[k]` (None or default: all zero) for the unseen level (any code >= L_k).

    DataError for a missing cell (-1): marginalise it instead (`MixedTableModel`).
    """
    codes = np.asarray(codes, np.int64)
    missing = np.argwhere(codes < 0)
    if len(missing):
        row, column = missing[0]
        raise DataError(f"codes: row {row + 1}, column {column + 1} is missing (-1); a one-hot "
                        "context needs every cell (the model marginalises missing ones).")
    blocks = []
    for k, size in enumerate(levels):
        given = None if unseen_rows is None else unseen_rows[k]
        unseen = np.zeros(size) if given is None else np.asarray(given, np.float64)
        if unseen.shape != (size,):
            raise DataError(f"unseen_rows[{k}]: shape {unseen.shape}; expected ({size},).")
        table = np.concatenate([np.eye(size), unseen[None, :]]).astype(np.float32)
        blocks.append(table[np.minimum(codes[:, k], size)])
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(codes), 0), np.float32)


@dataclasses.dataclass(frozen=True)
class MissingReport:
    """Where cells are missing: per column name, the count and the first rows (1-based)."""

    counts: dict[str, int]
    first_rows: dict[str, list[int]]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        if not self.total:
            return "no missing categorical cells"
        parts = [f"{name}: {count} (rows {', '.join(map(str, self.first_rows[name]))}"
                 f"{', ...' if count > len(self.first_rows[name]) else ''})"
                 for name, count in self.counts.items() if count]
        return f"{self.total} missing categorical cell(s): " + "; ".join(parts)


def find_missing(codes: np.ndarray, vocabularies: Sequence[Vocabulary],
                 shown: int = 5) -> MissingReport:
    """The missing cells (-1) of encoded codes, per column."""
    codes = np.asarray(codes, np.int64)
    counts, rows = {}, {}
    for k, vocabulary in enumerate(vocabularies):
        where = np.flatnonzero(codes[:, k] < 0)
        counts[vocabulary.name] = len(where)
        rows[vocabulary.name] = (where[:shown] + 1).tolist()
    return MissingReport(counts, rows)
