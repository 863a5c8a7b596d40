"""Which named inputs a table export takes: its columns, their kinds and TensorFlow-safe names.

No TensorFlow: `info` and the export share it. A column's input name is its header name
made a valid TensorFlow input (and Python identifier): every run of characters outside
`[A-Za-z0-9_]` becomes one `_` (and then `_` at either end is dropped), a name starting
with a digit (or empty, a Python keyword, `num_samples` or `seed`) gets the prefix `c_`,
and a name already taken gets `_2`, `_3`, ... in table order. So `carat` stays `carat`,
`price (usd)` becomes `price_usd`, `depth (%)` becomes `depth`, `2nd` becomes `c_2nd`.
"""

from __future__ import annotations

import dataclasses
import keyword
import re

from tfp_realnvp.errors import ConfigError
from tfp_realnvp.tables.layout import TableLayout

COLUMNS_FILE = "columns.json"  # in an export's assets.extra: column name -> input name
MISSING_LABELS = ("", "nan", "NaN", "None", "NaT", "<NA>")  # as `encoding.label_text`
RESERVED = ("num_samples", "seed")  # the sampling signatures' own inputs


def input_names(columns: list[str]) -> dict[str, str]:
    """`{column name: input name}` for `columns` in table order (see the module docstring)."""
    taken: set[str] = set(RESERVED)
    out: dict[str, str] = {}
    for column in columns:
        base = re.sub(r"[^A-Za-z0-9_]+", "_", column)
        if base != column:
            base = base.strip("_")
        if not base or base[0].isdigit() or keyword.iskeyword(base) or base in RESERVED:
            base = f"c_{base}"
        name, suffix = base, 2
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        out[column] = name
    return out


@dataclasses.dataclass(frozen=True)
class ServedColumns:
    """The served columns of a table, in table order.

    Attributes:
      numeric: the flow's event columns (names), in the flow's order.
      categorical: the categorical columns (names), in the codes' order.
      context: the user's own numeric context columns (after the one-hot in the context).
      levels: each categorical column's labels (code i <-> levels[i]).
      inputs: column name -> input name, every served column in table order.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    context: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    inputs: dict[str, str]

    @classmethod
    def from_layout(cls, layout: TableLayout | None,
                    unnamed: bool = False) -> ServedColumns | None:
        """The columns a layout names; None when it has no header (nothing to name), unless
        `unnamed`: then column i is named `column_<i+1>`."""
        if layout is None or (layout.names is None and not unnamed):
            return None
        names = layout.names or tuple(f"column_{i + 1}" for i in range(layout.width))
        numeric, categorical, levels = [], [], []
        for name, column in zip(names, layout.columns, strict=True):
            if column.role != "event":
                continue
            if column.kind == "categorical":
                categorical.append(name)
                levels.append(tuple(column.levels))
            else:
                numeric.append(name)
        context = [names[i] for i in layout.context]
        served = [n for n, c in zip(names, layout.columns, strict=True) if c.role != "ignored"]
        if len(set(served)) != len(served):
            raise ConfigError(f"the layout repeats a column name among {served}; named-column "
                              "serving needs distinct names.")
        return cls(tuple(numeric), tuple(categorical), tuple(context), tuple(levels),
                   input_names(served))

    def input(self, column: str) -> str:
        return self.inputs[column]
