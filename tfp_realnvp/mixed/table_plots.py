"""A mixed-table model drawn by column name: its numeric columns' pairwise marginals, data
against model samples (categories drawn with them), and the training history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tfp_realnvp.errors import ConfigError
from tfp_realnvp.mixed.frames import event_groups, frame_inputs
from tfp_realnvp.mixed.table_io import sample_frame
from tfp_realnvp.plots import (
    PANEL_INCHES,
    check_columns,
    data_subset,
    draw_history,
    draw_pairs,
    has_history,
)
from tfp_realnvp.tables.layout import TableLayout


def plot_table_model(model: Any, layout: TableLayout, table: Any,
                     metrics: dict[str, Any] | None = None,
                     columns: Sequence[int] | None = None, num_samples: int = 2000,
                     seed: int = 0, max_points: int = 2000, title: str | None = None) -> Figure:
    """One figure of a `MixedTableModel`'s numeric part, axes named by the layout.

    Args:
      model: the mixed model (with numeric columns).
      layout: its `TableLayout`.
      table: rows to draw (a DataFrame or a file, read by the layout's names); rows with a
        missing numeric cell are left out.
      metrics: a run's metrics.json (None: no curves).
      columns: 0-based numeric columns to draw (default: the first 4).
      num_samples, seed, max_points: model samples, their seed, data rows drawn at most.
      title: a line above the figure.
    """
    numeric_at = event_groups(layout)[0]
    if len(numeric_at) < 2:
        raise ConfigError("plot draws numeric columns against each other; this model has "
                          f"{len(numeric_at)} numeric column(s).")
    names = layout.labels(numeric_at)
    columns = check_columns(columns, len(numeric_at))
    numeric = frame_inputs(table, layout).numeric
    data = data_subset(numeric[~np.isnan(numeric).any(axis=1)], max_points, seed)
    keys = list(names) if layout.names is not None else list(numeric_at)
    samples = sample_frame(model, layout, num_samples, seed)[keys].to_numpy()
    rows = [2.4 * len(columns)] + ([PANEL_INCHES] if has_history(metrics) else [])
    figure = Figure(figsize=(4 * PANEL_INCHES, sum(rows) + 0.6), layout="constrained")
    outer = figure.add_gridspec(len(rows), 1, height_ratios=rows)
    draw_pairs(figure, outer[0], data, samples, columns, names)
    if has_history(metrics):
        draw_history(figure.add_subplot(outer[1]), metrics)
    if title:
        figure.suptitle(title)
    return figure
