"""What one export serves: the flow's signatures, or a table's named-column ones, with
their batchable subset and warm-up requests (`ServedModel`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfp_realnvp.config import FlowConfig
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.mixed.model import MixedTableModel
from tfp_realnvp.serving_columns import ServedColumns
from tfp_realnvp.serving_flow import (
    BATCHABLE_SIGNATURES,
    COLUMN_SUFFIX,
    MIXED_SIGNATURES,
    FlowServingModule,
    flow_warmup_inputs,
)
from tfp_realnvp.serving_tables import TableServingModule
from tfp_realnvp.tables.layout import TableLayout


class ServedModel:
    """What one export serves: its module, signatures, batchable ones and warm-up inputs."""

    def __init__(self, model: Any, config: FlowConfig, layout: TableLayout | None) -> None:
        self.model = model
        mixed = isinstance(model, MixedTableModel)
        self.columns = served_columns(model, config, layout)
        if mixed:
            self.module = TableServingModule(model.flow, self.columns, model.categorical)
            table = self.module.signatures()
            self.signatures = {"serving_default": table["log_prob"], **table}
            self.batchable = [s for s in MIXED_SIGNATURES if s != "sample"]
            inputs = self.module.warmup_inputs(config.data_shift)
            self.warmup = {"serving_default": inputs, "log_prob": inputs}
            self.warmup["sample_from_seeds"] = {"seed": np.array([[0, 0], [0, 1]], np.int32)}
            return
        self.module = FlowServingModule(model, config)
        self.signatures = self.module.signatures()
        self.batchable = list(BATCHABLE_SIGNATURES)
        self.warmup = flow_warmup_inputs(config)
        if self.columns is not None:
            self.module.columns = TableServingModule(model, self.columns)
            self.signatures.update(self.module.columns.signatures(COLUMN_SUFFIX))
            self.batchable += [s for s in self.signatures if s.endswith(COLUMN_SUFFIX)
                               and not s.startswith("sample_columns")]
            self.warmup[f"log_prob{COLUMN_SUFFIX}"] = self.module.columns.warmup_inputs(
                config.data_shift)
            if f"sample_from_seeds{COLUMN_SUFFIX}" in self.signatures:
                self.warmup[f"sample_from_seeds{COLUMN_SUFFIX}"] = {
                    "seed": np.array([[0, 0], [0, 1]], np.int32)}

    def info(self) -> dict[str, Any]:
        if self.columns is None:
            return {}
        return {"table_model": "mixed" if isinstance(self.model, MixedTableModel) else
                "numeric", "column_inputs": dict(self.columns.inputs)}


def served_columns(model: Any, config: FlowConfig,
                    layout: TableLayout | None) -> ServedColumns | None:
    """The named columns of a table export (None: a numeric model without a header, or a
    layout that does not describe the flow's columns); ConfigError for a mixed model whose
    layout does not match it."""
    if not isinstance(model, MixedTableModel):
        columns = ServedColumns.from_layout(layout)
        fits = columns is not None and not columns.categorical and \
            len(columns.numeric) == config.event_dim and \
            len(columns.context) == config.context_dim
        return columns if fits else None
    if model.flow is None:
        raise ConfigError("An all-categorical model has no flow to export; score it with "
                          "tfp_realnvp (MixedTableModel) instead.")
    columns = ServedColumns.from_layout(layout, unnamed=True)
    if columns is None:
        raise ConfigError("Exporting a mixed-table model needs its TableLayout (layout=).")
    levels = tuple(len(v) for v in columns.levels)
    problems = [
        (len(columns.numeric), model.numeric_dim, "numeric event column(s)"),
        (levels, model.categorical.levels, "levels per categorical column"),
        (len(columns.context), 0, "context column(s) (a mixed model takes none)"),
    ]
    if model.vocabularies is not None:
        problems.append((columns.levels, tuple(v.labels for v in model.vocabularies),
                         "labels per categorical column"))
    for got, want, what in problems:
        if got != want:
            raise ConfigError(f"The layout gives {got} {what}; the mixed model has {want}. "
                              "Write the run's layout from the same table.")
    return columns
