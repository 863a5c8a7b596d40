"""Reading the CLI's data files: tables, conditional columns, a model's inputs, a run's data.

The five readers below are kept together, bodies unchanged, until the library's `tables`
package offers them; `check_data_file` runs before TensorFlow is started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import tfp_realnvp
from tfp_realnvp.config import TOY_DATASET_NAMES
from tfp_realnvp.errors import DataError, DataFileNotFoundError


def check_data_file(path: Path | None) -> None:
    """Refuses a data file that does not exist or is a directory (DataFileNotFoundError,
    worded as the reader words it), so a command says so before TensorFlow loads."""
    if path is not None and not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "no such file"
        raise DataFileNotFoundError(f"{path}: {what}. Pass a .csv or .npy file of numeric rows.")


def _read_data(path: Path, drop_nonfinite: bool):
    """A data file's rows; with `drop_nonfinite`, without the rows holding NaN or inf."""
    return tfp_realnvp.data.validate_array(_read_table(path, drop_nonfinite), source=str(path))


def _read_table(path: Path, drop_nonfinite: bool):
    table = tfp_realnvp.data.read_table(path)
    if drop_nonfinite and table.ndim == 2:
        table, dropped = tfp_realnvp.data.drop_nonfinite_rows(table)
        click.echo(f"{path}: dropped {dropped} row(s) holding NaN or inf", err=True)
    return table


def _read_conditional(path: Path, drop_nonfinite: bool, spec: str):
    """(events, context, the FlowConfig column fields) of a table whose `spec` columns
    (header names or 0-based positions) are the context."""
    data_lib = tfp_realnvp.data
    table, header = _read_table(path, drop_nonfinite), data_lib.read_header(path)
    if table.ndim != 2:
        data_lib.validate_array(table, source=str(path))  # raises its shape error
    names = [n for n in spec.split(",") if n.strip()]
    if not names:
        raise DataError(f"--context-columns: no column named in {spec!r}; available: "
                        f"{data_lib.describe_columns(table.shape[1], header)}.")
    context_columns = data_lib.resolve_columns(names, table.shape[1], header, str(path))
    events, context, event_columns = data_lib.split_columns(table, context_columns, str(path))
    layout = {"event_columns": event_columns, "context_columns": context_columns,
              "column_names": header}
    source = f"{path} (columns {list(event_columns)})"
    return (data_lib.validate_array(events, source=source),
            data_lib.validate_context(context, f"{path} (context columns "
                                      f"{list(context_columns)})"), layout)


def _model_inputs(model, data_file: Path, context_arg: str | None):
    """The events of `data_file` and their context for a loaded model: a conditional
    model's context from --context, else from the data file's recorded context columns."""
    data_lib = tfp_realnvp.data
    config = model.config
    if not config.context_dim or context_arg is not None:
        data = data_lib.validate_array(data_lib.load_array(data_file), str(data_file),
                                       expected_width=config.event_dim)
        context = None if context_arg is None else data_lib.parse_context(context_arg, config)
        return data, context
    table, header = data_lib.read_table(data_file), data_lib.read_header(data_file)
    if table.ndim == 2 and table.shape[1] == config.event_dim:
        return data_lib.validate_array(table, str(data_file)), None  # says how to add one
    events, context = data_lib.split_like_training(table, header, config, str(data_file))
    return data_lib.validate_array(events, str(data_file)), context


def _recorded_data(info: dict[str, Any]):
    """The data a run was trained on, from what its config.json recorded."""
    source = info.get("source")
    if source in TOY_DATASET_NAMES and "num_points" in info:
        return tfp_realnvp.data.make_toy(source, info["num_points"], info["noise"],
                                         info["seed"])
    if source is None:
        raise DataError("The run records no data source; pass the training data with --data.")
    return tfp_realnvp.data.load_array(source)
