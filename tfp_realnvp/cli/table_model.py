"""`evaluate` and `sample` through a model's table layout: columns found by name, labels as
text, counts of unseen and missing cells (the library's `mixed.table_io`, as text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tfp_realnvp.errors import DataError
from tfp_realnvp.mixed import frames, table_io

FRAME_SUFFIXES = (".csv", ".parquet")


def check_per_row(per_row_file: Path | None, with_columns: bool, context_arg: str | None) -> None:
    """Usage errors of `evaluate --per-row/--with-columns`, before anything loads."""
    if per_row_file is not None and per_row_file.suffix.lower() not in (*FRAME_SUFFIXES, ".npy"):
        raise click.UsageError(f"--per-row must end in .csv or .npy (or .parquet); got "
                               f"{per_row_file.name!r}.")
    if not with_columns:
        return
    if per_row_file is None:
        raise click.UsageError("--with-columns writes the input's columns into --per-row "
                               "FILE: give --per-row FILE.csv or FILE.parquet.")
    if per_row_file.suffix.lower() not in FRAME_SUFFIXES:
        raise click.UsageError(f"--with-columns needs --per-row FILE.csv or FILE.parquet "
                               f"(a .npy file holds numbers only); got {per_row_file.name!r}.")
    if context_arg is not None:
        raise click.UsageError("--with-columns reads the context from --data's own columns; "
                               "drop --context.")


def uses_frames(found: Any, per_row_file: Path | None, with_columns: bool) -> bool:
    """Whether `evaluate` scores through the layout: a mixed-table model, or a request
    only that path answers (--with-columns, a Parquet --per-row)."""
    parquet = per_row_file is not None and per_row_file.suffix.lower() == ".parquet"
    return with_columns or parquet or table_io.is_table_model(found)


def evaluate_frame(found: Any, data_file: Path, per_row_file: Path | None,
                   with_columns: bool, as_json: bool) -> None:
    """Scores `data_file` with `score_frame`, writes --per-row, prints the report."""
    model = table_io.load_table_model(found)
    scores = table_io.score_frame(model, found.layout, data_file)
    summary = scores.summary()
    if summary["n"] == 0:
        raise DataError(f"{data_file}: no row scored: each of its {summary['rows']} row(s) "
                        "has a missing numeric cell.")
    if per_row_file is not None:
        write_per_row(scores, per_row_file, with_columns)
    click.echo(json.dumps(summary) if as_json else format_summary(summary))


def write_per_row(scores: table_io.FrameScores, path: Path, with_columns: bool) -> None:
    """One line per input row, in order: `.npy` the NLL alone `[N, 1]` (as for numeric
    models), CSV / Parquet the scores (and the input's columns) under a header."""
    if path.suffix.lower() == ".npy":
        from tfp_realnvp.tables import save_array

        save_array(scores.nll[:, None], path)
    else:
        table_io.save_frame(scores.per_row(with_columns), path)


def format_summary(summary: dict[str, Any]) -> str:
    """The text report: the NLL line as for numeric models, the parts, then the counts."""
    lines = [f"NLL {summary['nll']:.4f} nats, {summary['bits_per_dim']:.4f} bits/dim over "
             f"{summary['n']} rows (median {summary['median']:.4f}, p99 {summary['p99']:.4f}, "
             f"max {summary['max']:.4f})"]
    if "categorical_nll" in summary:
        lines.append(f"parts: -log P(c) {summary['categorical_nll']:.4f} + -log p(x | c) "
                     f"{summary['numeric_nll']:.4f} nats")
    unseen = {k: v for k, v in summary["unseen_labels"].items() if v}
    if unseen:
        shown = ", ".join(f"{k}: {v}" for k, v in unseen.items())
        lines.append(f"{sum(unseen.values())} unseen label(s) ({shown}): scored with the "
                     "unseen level's smoothing mass")
    if summary["missing_numeric_rows"]:
        lines.append(f"{summary['missing_numeric_rows']} row(s) with a missing numeric cell: "
                     "not scored (NaN in --per-row), left out of the figures above")
    if summary["marginalised_rows"]:
        lines.append(f"{summary['marginalised_rows']} row(s) with a missing categorical "
                     "cell: summed out exactly over its levels")
    return "\n".join(lines)


def is_table_model(found: Any) -> bool:
    """A mixed-table run or export (no TensorFlow)."""
    return table_io.is_table_model(found)


def numeric_frame(samples: Any, layout: Any) -> Any:
    """A numeric flow's samples as a DataFrame named by its layout (positions if none)."""
    return frames.samples_frame(frames.layout_or_default(layout, samples.shape[1]),
                                samples, None)


def check_sample_output(output: Path | None) -> None:
    """Usage error for an output `sample` cannot write."""
    if output is not None and output.suffix.lower() not in (*FRAME_SUFFIXES, ".npy"):
        raise click.UsageError(f"--output must end in .csv or .npy (or .parquet); got "
                               f"{output.name!r}.")


def sample_frame(found: Any, num_samples: int, seed: int, output: Path | None,
                 context_arg: str | None) -> None:
    """`sample` for a mixed-table model: named columns, categories as labels; CSV with a
    header on stdout, else FILE.csv or FILE.parquet."""
    if context_arg is not None:
        raise click.UsageError("--context: a mixed-table model's context is its categories; "
                               "drop --context.")
    if output is not None and output.suffix.lower() == ".npy":
        raise click.UsageError("--output: a .npy file holds numbers only; write the table's "
                               "labels to FILE.csv or FILE.parquet.")
    model = table_io.load_table_model(found)
    frame = table_io.sample_frame(model, found.layout, num_samples, seed)
    write_samples(frame, output)


def write_samples(frame: Any, output: Path | None) -> None:
    """Sampled rows as CSV with a header on stdout, or to FILE.csv / FILE.parquet."""
    if output is None:
        click.echo(frame.to_csv(index=False, float_format="%.8g"), nl=False)
        return
    table_io.save_frame(frame, output)
    click.echo(f"wrote {len(frame)} samples to {output}", err=True)


def plot_figure(found: Any, data_file: Path | None, data: Any, columns: Any,
                num_samples: int, seed: int) -> Any:
    """A mixed-table model's figure (`mixed.table_plots`): rows from `data` (a table),
    else `data_file`, else a run's recorded training table."""
    from tfp_realnvp.mixed.table_plots import plot_table_model

    table = data if data is not None else data_file
    if table is None:
        if found.kind != "run":
            raise click.UsageError("An export does not hold its data: pass the rows to draw "
                                   "with --data FILE.")
        from tfp_realnvp.rundir import RunDir

        source = RunDir(found.path).read_config().data.get("source")
        if source is None:
            raise DataError("The run records no data source; pass the rows with --data.")
        table = Path(source)
    return plot_table_model(table_io.load_table_model(found), found.layout, table,
                            found.metrics, columns, num_samples, seed,
                            title=f"{found.path}: mixed table model")
