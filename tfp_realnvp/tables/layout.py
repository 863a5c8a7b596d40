"""`TableLayout`: where a training table's columns went (names, events, context), as JSON.

A run keeps its layout in config.json (`"layout"`), an export in
`assets.extra/layout.json`; `find_model(...).layout` gives it back. Runs and exports written
before the layout existed recorded it as three `FlowConfig` fields (`event_columns`,
`context_columns`, `column_names`): `from_legacy_flow` reads those into a layout.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from tfp_realnvp.errors import ConfigError

ROLES = ("event", "context", "ignored")
# Per-column kinds: continuous numbers, numbers on a grid (dequantised), categories (with
# their vocabulary, `levels`), and columns left out (an ID, a constant).
KINDS = ("continuous", "grid", "categorical", "ignored")
LEGACY_FLOW_FIELDS = ("event_columns", "context_columns", "column_names")


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    """One column of the source table: its header name (None: the table had no header),
    its role in the model (event x, context c, or ignored), its kind, and for a categorical
    column its vocabulary `levels` (sorted labels as text: code i is `levels[i]`, code
    `len(levels)` the unseen level); an ignored column may say why (`note`)."""

    name: str | None
    role: str = "event"
    kind: str = "continuous"
    levels: tuple[str, ...] | None = None
    note: str | None = None  # why an ignored column was left out

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"column role must be one of {ROLES}; got {self.role!r}.")
        if self.kind not in KINDS:
            raise ConfigError(f"column kind must be one of {KINDS}; got {self.kind!r}.")
        if self.name is not None:
            object.__setattr__(self, "name", str(self.name))
        if self.levels is not None:
            object.__setattr__(self, "levels", tuple(str(v) for v in self.levels))
        if (self.levels is not None) != (self.kind == "categorical"):
            raise ConfigError(f"column {self.name!r}: a categorical column has levels and only "
                              f"it does; got kind {self.kind!r} with levels {self.levels!r}.")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["note"] is None:
            del out["note"]
        if self.levels is None:
            del out["levels"]  # numeric columns: as written before levels existed
        else:
            out["levels"] = list(self.levels)
        return out


@dataclasses.dataclass(frozen=True)
class TableLayout:
    """The columns of a training table, in table order.

    `events` and `context` are 0-based positions in the table (the model's event columns,
    in order, then its context columns, in the order the context was given).
    """

    columns: tuple[ColumnSpec, ...]
    context_order: tuple[int, ...] | None = None  # None: context columns in table order

    def __post_init__(self) -> None:
        columns = tuple(c if isinstance(c, ColumnSpec) else ColumnSpec(**c)
                        for c in self.columns)
        object.__setattr__(self, "columns", columns)
        named = [c.name is not None for c in columns]
        if any(named) and not all(named):
            raise ConfigError("a table layout names every column or none.")
        if self.context_order is not None:
            order = tuple(int(i) for i in self.context_order)
            if sorted(order) != [i for i, c in enumerate(columns) if c.role == "context"]:
                raise ConfigError(f"'context_order' {list(order)} must list the context "
                                  "columns' positions.")
            object.__setattr__(self, "context_order", order)

    @classmethod
    def from_positions(cls, width: int, events: Sequence[int], context: Sequence[int] = (),
                       names: Sequence[str] | None = None) -> TableLayout:
        """A layout of a `width`-column table: `events` and `context` 0-based positions
        (the rest ignored), `names` the header (None: no header)."""
        if names is not None and len(names) != width:
            raise ConfigError(f"{len(names)} column names for a table of {width} columns.")
        roles = {**{int(i): "event" for i in events}, **{int(i): "context" for i in context}}
        columns = tuple(ColumnSpec(None if names is None else names[i], roles.get(i, "ignored"))
                        for i in range(width))
        order = tuple(int(i) for i in context)
        return cls(columns, None if list(order) == sorted(order) else order)

    @property
    def width(self) -> int:
        return len(self.columns)

    @property
    def names(self) -> tuple[str, ...] | None:
        """The header, every column (None: the table had none)."""
        if not self.columns or self.columns[0].name is None:
            return None
        return tuple(c.name for c in self.columns)

    @property
    def events(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.columns) if c.role == "event")

    @property
    def context(self) -> tuple[int, ...]:
        if self.context_order is not None:
            return self.context_order
        return tuple(i for i, c in enumerate(self.columns) if c.role == "context")

    def labels(self, positions: Sequence[int]) -> tuple[str, ...]:
        """Header names of `positions`, else the positions as text."""
        names = self.names
        return tuple(names[i] if names else str(i) for i in positions)

    @property
    def event_names(self) -> tuple[str, ...] | None:
        return None if self.names is None else self.labels(self.events)

    @property
    def context_names(self) -> tuple[str, ...] | None:
        return None if self.names is None else self.labels(self.context)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"columns": [c.to_dict() for c in self.columns]}
        if self.context_order is not None:
            out["context_order"] = list(self.context_order)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TableLayout:
        unknown = sorted(set(values) - {"columns", "context_order"})
        if unknown:
            raise ConfigError(f"Unknown TableLayout fields {unknown}; known: columns, "
                              "context_order.")
        return cls(tuple(ColumnSpec(**c) for c in values["columns"]),
                   values.get("context_order"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TableLayout:
        return cls.from_dict(json.loads(text))


def from_legacy_flow(flow_values: dict[str, Any]) -> TableLayout | None:
    """The layout a config written before `TableLayout` recorded in its flow fields
    `event_columns`, `context_columns` and `column_names` (None when it recorded none)."""
    events = flow_values.get("event_columns")
    context = flow_values.get("context_columns")
    names = flow_values.get("column_names")
    if events is None or context is None:
        return None
    width = len(names) if names is not None else max([*events, *context]) + 1
    return TableLayout.from_positions(width, events, context, names)


def split_legacy_flow(values: dict[str, Any]) -> tuple[dict[str, Any], TableLayout | None]:
    """(the flow fields without the legacy column fields, the layout they recorded)."""
    layout = from_legacy_flow(values)
    return {k: v for k, v in values.items() if k not in LEGACY_FLOW_FIELDS}, layout
