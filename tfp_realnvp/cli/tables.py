"""The CLI's side of reading data files: path checks before TensorFlow, and the messages a
user sees about dropped rows. The reading itself is the library's (`tfp_realnvp.tables`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tfp_realnvp import tables
from tfp_realnvp.errors import DataFileNotFoundError


def check_data_file(path: Path | None, shards: bool = False) -> None:
    """Refuses a data file that does not exist or is a directory (DataFileNotFoundError,
    worded as the reader words it), so a command says so before TensorFlow loads; with
    `shards`, a folder or glob of table shards is fine when it holds some."""
    if shards and tables.shards.is_shard_source(path):
        tables.shards.shard_paths(path)
        return
    if path is not None and not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "no such file"
        raise DataFileNotFoundError(f"{path}: {what}. Pass a .csv or .npy file of numeric rows.")


def report_dropped(path: Path, drop_nonfinite: bool, dropped: int) -> None:
    """Says how many rows `--drop-nonfinite` left out of `path`."""
    if drop_nonfinite:
        click.echo(f"{path}: dropped {dropped} row(s) holding NaN or inf", err=True)


def read_data(path: Path, drop_nonfinite: bool, context_spec: str | None = None):
    """(events, context or None, TableLayout) of a training file; `context_spec` names the
    context columns (header names or 0-based positions, comma-separated)."""
    events, context, layout, dropped = tables.read_training_table(
        path, context_spec, drop_nonfinite, option="--context-columns")
    report_dropped(path, drop_nonfinite, dropped)
    return events, context, layout


def read_table(path: Path, drop_nonfinite: bool):
    """A file's numeric rows as read (not validated); with `drop_nonfinite`, without the
    rows holding NaN or inf."""
    table = tables.read_table(path)
    if drop_nonfinite and table.ndim == 2:
        table, dropped = tables.drop_nonfinite_rows(table)
        report_dropped(path, drop_nonfinite, dropped)
    return table


def read_training_rows(path: Path, drop_nonfinite: bool, context_spec: str | None = None,
                       **kinds: Any) -> tables.TableRows:
    """A training file read as a table (`tables.read_training_frame`: kinds, overrides in
    `kinds`, blanks), saying which columns were left out and how many rows."""
    data = tables.shards.read_all(path) if tables.shards.is_shard_source(path) else path
    table = tables.read_training_frame(data, context_spec, drop_nonfinite=drop_nonfinite,
                                       option="--context-columns", **kinds)
    ignored = tables.describe_ignored(table.layout)
    if ignored:
        click.echo(f"{path}: left out {ignored}", err=True)
    if table.dropped_missing:
        click.echo(f"{path}: left out {table.dropped_missing} row(s) with blank cells "
                   "(--missing error refuses them)", err=True)
    report_dropped(path, drop_nonfinite, table.dropped_nonfinite)
    return table


def explain_streamed(path: Path, why: str, context_spec: str | None, kinds: dict[str, Any],
                     given: dict[str, Any]) -> None:
    """`fit --explain` of a table that would be streamed: its shape from the files' heads
    (Parquet metadata; a CSV's rows estimated from its size), the choice, the input."""
    from tfp_realnvp import auto, firstpass

    shards = tables.shards.open_shards(path)
    layout = firstpass.stream_layout(shards, context_spec, kinds.get("ignore"),
                                     kinds.get("categorical"))
    rows, dim = firstpass.estimated_rows(shards), len(layout.events)
    shown = f"{rows} rows" if shards.rows is not None else f"about {rows:,} rows (its size)"
    click.echo(f"{path}: {shown} x {dim} numeric columns; fit would run (nothing is trained "
               "or written):")
    for line in auto.explain(rows, dim, given, conditional=bool(layout.context)):
        click.echo(f"  {line}")
    click.echo(f"  input: {why}: one flow (no ensemble, no blend), numeric columns only, "
               "one first pass of statistics saved in the run")
