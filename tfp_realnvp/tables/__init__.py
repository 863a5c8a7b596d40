"""Tables in, no TensorFlow: readers, toy sets, validation, column choice, `TableLayout`.

`import tfp_realnvp.tables` never imports TensorFlow (a test checks it), so reading and
checking a table costs what pandas costs.
"""

from __future__ import annotations

from tfp_realnvp.tables import shards
from tfp_realnvp.tables.columns import describe_columns, resolve_columns, split_columns
from tfp_realnvp.tables.inputs import (
    context_names,
    fit_inputs,
    model_inputs,
    parse_context,
    read_training_table,
    recorded_data,
    split_like_training,
)
from tfp_realnvp.tables.kinds import describe_ignored, infer_layout
from tfp_realnvp.tables.layout import ColumnSpec, TableLayout, split_legacy_flow
from tfp_realnvp.tables.readers import (
    header_of,
    load_array,
    numeric_rows,
    read_frame,
    read_header,
    read_table,
)
from tfp_realnvp.tables.rows import (
    TableRows,
    context_width,
    read_training_frame,
    table_rows,
)
from tfp_realnvp.tables.toys import TOY_DATASETS, make_toy
from tfp_realnvp.tables.validate import (
    context_for_model,
    drop_nonfinite_rows,
    validate_array,
    validate_context,
)
from tfp_realnvp.tables.writers import save_array

__all__ = ["ColumnSpec", "TOY_DATASETS", "TableLayout", "TableRows", "context_for_model",
           "context_names", "context_width", "describe_columns", "describe_ignored",
           "drop_nonfinite_rows", "fit_inputs", "header_of", "infer_layout",
           "load_array", "make_toy", "model_inputs", "numeric_rows", "parse_context",
           "read_frame", "read_header", "read_table", "read_training_frame",
           "read_training_table", "recorded_data", "resolve_columns", "save_array", "shards",
           "split_columns", "split_legacy_flow", "split_like_training", "table_rows",
           "validate_array", "validate_context"]
