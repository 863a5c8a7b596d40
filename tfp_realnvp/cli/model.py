"""Commands on a trained model (a run directory or an export): sample, evaluate, export,
plot, info."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

import tfp_realnvp
from tfp_realnvp import firstpass
from tfp_realnvp.cli import images as images_cli
from tfp_realnvp.cli import table_model
from tfp_realnvp.cli.options import int_list
from tfp_realnvp.cli.runtime import reported_errors, start_tensorflow
from tfp_realnvp.cli.tables import check_data_file
from tfp_realnvp.config import TOY_DATASET_NAMES

PLOT_FILE = "flow.png"  # where `plot RUN` and `fit --plot` draw a run
CONTEXT_HELP = ("A CSV/.npy file of context rows (one per row, or one row for all) or the "
                "values of one row, e.g. 0.3,1.")
MODEL_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def _context_how(layout) -> str:
    """How a CLI user passes a model's context, naming its columns when recorded."""
    names = tfp_realnvp.tables.context_names(layout)
    columns = f" (its columns: {', '.join(names)})" if names else ""
    return f"--context FILE{columns} or --context VALUES (e.g. 0.3,1)"


def _check_model(path: Path) -> None:
    """Refuses, before TensorFlow loads, a path that is neither a run nor an export."""
    with reported_errors():
        tfp_realnvp.rundir.find_model(path)


def export_and_report(source: Path, base_dir: Path, name: str, version: int | None,
                      ensemble: bool = False) -> None:
    """Exports the run at `source` to BASE_DIR/NAME/VERSION and says where and what it
    costs to serve (members, parameters, log_prob rows/s measured while exporting)."""
    start_tensorflow()
    with reported_errors():
        target = tfp_realnvp.export(source, base_dir, name=name, version=version,
                                    ensemble=ensemble)
    click.echo(f"exported SavedModel: {target}")
    price = tfp_realnvp.info.read_price(target)
    if price is not None:
        click.echo(f"price: {tfp_realnvp.info.format_price(price)}")


@click.command()
@click.argument("source", type=MODEL_DIR)
@click.argument("base_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="realnvp", show_default=True, help="Model name (folder).")
@click.option("--version", "version", type=click.IntRange(min=1),
              help="Integer version (default: the next free one); never overwritten.")
@click.option("--ensemble", is_flag=True,
              help="A distilled run: export its ensemble, not its student (one flow).")
def export(source: Path, base_dir: Path, name: str, version: int | None,
           ensemble: bool) -> None:
    """Export a trained run as a TF Serving SavedModel at BASE_DIR/NAME/VERSION (a
    distilled run: its student flow, unless --ensemble)."""
    if images_cli.is_image_model(source):
        images_cli.export(source, base_dir, name, version)
        return
    _check_model(source)
    export_and_report(source, base_dir, name, version, ensemble)


@click.command()
@click.argument("model_dir", type=MODEL_DIR)
@click.option("-n", "--num-samples", type=click.IntRange(min=1), default=1000,
              show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="The same seed gives the same samples.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE.csv, FILE.parquet or FILE.npy (by extension); default: CSV "
              "on stdout (with a header for a table model).")
@click.option("--context", "context_arg", help=CONTEXT_HELP)
@click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Image models: latents drawn from N(0, T^2 I) (T < 1: smoother images).")
def sample(model_dir: Path, num_samples: int, seed: int, output: Path | None,
           context_arg: str | None, temperature: float) -> None:
    """Draw samples (in data units) from a run directory or an export; a table model's
    rows carry its column names and category labels; an image model writes a PNG grid or
    a .npy of images."""
    if images_cli.is_image_model(model_dir):
        images_cli.sample(model_dir, num_samples, seed, output, temperature)
        return
    table_model.check_sample_output(output)
    _check_model(model_dir)
    with reported_errors():
        found = tfp_realnvp.rundir.find_model(model_dir)
        table = table_model.is_table_model(found)
    if table:
        start_tensorflow()
        with reported_errors():
            table_model.sample_frame(found, num_samples, seed, output, context_arg)
        return
    start_tensorflow()
    with reported_errors():
        model = found
        flow = model.load()
        layout = model.layout
        context = None if context_arg is None else tfp_realnvp.tables.parse_context(
            context_arg, layout, model.config.context_dim)
        samples = tfp_realnvp.sampling.sample_flow(flow, num_samples, seed, context,
                                                   how=_context_how(layout))
    if output is None:
        for row in samples:
            click.echo(",".join(f"{v:.8g}" for v in row))
    elif output.suffix.lower() == ".parquet":
        with reported_errors():
            table_model.write_samples(table_model.numeric_frame(samples, layout), output)
    else:
        tfp_realnvp.tables.save_array(samples, output,
                                      header=None if layout is None else layout.event_names)
        click.echo(f"wrote {num_samples} samples to {output}", err=True)


@click.command()
@click.argument("model_dir", type=MODEL_DIR)
@click.option("--data", "data_file", type=click.Path(path_type=Path), required=True,
              help="CSV or .npy table to score (an image model: images, as fit reads them).")
@click.option("--per-row", "per_row_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write each row's NLL (an anomaly score), in the rows' order, to "
              "FILE.csv, FILE.parquet or FILE.npy (a row not scored: NaN).")
@click.option("--with-columns", is_flag=True,
              help="--per-row also carries the input's columns (FILE.csv or FILE.parquet).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--context", "context_arg",
              help="Conditional models: the rows' context, if --data holds only x. "
              + CONTEXT_HELP)
@click.option("--stream", type=click.Choice(("auto", "always", "never")), default="auto",
              show_default=True, help="Score --data (a file, folder or glob of Parquet/CSV "
              "shards) chunk by chunk from its files, --per-row written as it goes (.parquet "
              "or .csv); auto does so above 512 MB as float64. Reports the mean and max.")
def evaluate(model_dir: Path, data_file: Path, per_row_file: Path | None, with_columns: bool,
             as_json: bool, context_arg: str | None, stream: str = "auto") -> None:
    """Negative log-likelihood of a data file: mean (nats, bits/dim), median, p99, max.

    A conditional model scores -log p(x | c): by default the context is taken from the
    columns of --data that were the context in its training table (by header name, else
    by position). A table model (categorical columns) finds its columns by name, counts
    unseen labels, sums out missing categories, and reports -log P(c) and -log p(x | c);
    rows with a missing number are reported apart, never averaged in. An image model scores
    images (--data as `fit` reads them) in nats per image and bits/dim.
    """
    if images_cli.is_image_model(model_dir):
        images_cli.evaluate(model_dir, data_file, as_json)
        return
    table_model.check_per_row(per_row_file, with_columns, context_arg)
    _check_model(model_dir)
    with reported_errors():
        check_data_file(data_file, shards=True)
    with reported_errors():
        found = tfp_realnvp.rundir.find_model(model_dir)
        streamed = context_arg is None and not with_columns and \
            not table_model.is_table_model(found) and \
            firstpass.choose_input(data_file, stream)[0]
        frames = not streamed and table_model.uses_frames(found, per_row_file, with_columns)
    if streamed:
        _evaluate_streamed(found, data_file, per_row_file, as_json)
        return
    if frames:
        start_tensorflow()
        with reported_errors():
            table_model.evaluate_frame(found, data_file, per_row_file, with_columns, as_json)
        return
    start_tensorflow()
    with reported_errors():
        model = tfp_realnvp.rundir.find_model(model_dir)
        flow = model.load()
        data, context = tfp_realnvp.tables.model_inputs(
            data_file, model.config.event_dim, model.config.context_dim, model.layout,
            context_arg)
        nll = tfp_realnvp.scoring.per_row_nll(flow, data, context=context,
                                              how=_context_how(model.layout))
    summary = tfp_realnvp.scoring.summarise(nll, data.shape[1])
    if per_row_file is not None:
        tfp_realnvp.tables.save_array(nll[:, None], per_row_file)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"NLL {summary['nll']:.4f} nats, {summary['bits_per_dim']:.4f} bits/dim "
                   f"over {summary['n']} rows (median {summary['median']:.4f}, p99 "
                   f"{summary['p99']:.4f}, max {summary['max']:.4f})")


def _evaluate_streamed(found: Any, data_file: Path, per_row_file: Path | None,
                       as_json: bool) -> None:
    """`evaluate` of a table in its files (`stream_scoring.score_shards`): bounded memory,
    progress on stderr every million rows, the mean and max NLL."""
    if per_row_file is not None and per_row_file.suffix.lower() not in (".parquet", ".csv"):
        raise click.UsageError("Streamed --per-row writes as it goes: name a .parquet or .csv "
                               "file.")
    start_tensorflow()
    seen = [0]

    def report(rows: int) -> None:
        if not as_json and (seen[0] + rows) // 10**6 > seen[0] // 10**6:
            click.echo(f"scored {seen[0] + rows:,} rows", err=True)
        seen[0] += rows

    with reported_errors():
        from tfp_realnvp.stream_scoring import score_shards

        event_dim = found.config.event_dim
        scored = score_shards(found.load(), data_file, found.layout, event_dim,
                              per_row_file, report)
    bits = scored["mean_nll"] / event_dim / math.log(2)
    if as_json:
        click.echo(json.dumps({"nll": scored["mean_nll"], "bits_per_dim": bits,
                               "n": scored["rows"], "max": scored["max_nll"],
                               "streamed": True}))
        return
    click.echo(f"NLL {scored['mean_nll']:.4f} nats, {bits:.4f} bits/dim over "
               f"{scored['rows']} rows (streamed from {scored['shards']} shard(s) at "
               f"{scored['rows_per_s']:,.0f} rows/s; max {scored['max_nll']:.4f})")


@click.command()
@click.argument("model_dir", type=MODEL_DIR)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The PNG to write (default: RUN_DIR/{PLOT_FILE}; needed for an export).")
@click.option("--columns", callback=lambda ctx, param, value: value and int_list(
    ctx, param, value), help="0-based data columns to draw, e.g. 0,2,3 (default: the first "
    "4; the four panels use the first two).")
@click.option("--data", "data_file", type=click.Path(path_type=Path),
              help="CSV or .npy rows to draw (default for a run: its recorded training data; "
                   "needed for an export).")
@click.option("-n", "--num-samples", type=click.IntRange(min=1), default=2000,
              show_default=True, help="Base draws and model samples.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="Seeds the draws (and which rows are drawn, at most 2000).")
def plot(model_dir: Path, output: Path | None, columns: tuple[int, ...] | None,
         data_file: Path | None, num_samples: int, seed: int) -> None:
    """Draw a run or an export as one PNG.

    Panels: the data; the data mapped to latent space; base samples z ~ N(0, I); those
    mapped to data space (an ensemble: member 0's map); for 2-D models the log-density,
    for more columns the pairwise marginals of data against samples; and the train and
    validation NLL per epoch (from metrics.json, which exports keep too). A mixed-table
    model: its numeric columns' pairwise marginals (data against samples) and the history,
    axes named by column.
    """
    if output is not None and output.suffix.lower() != ".png":
        raise click.UsageError(f"--output must end in .png; got {output.name!r}.")
    if images_cli.is_image_model(model_dir):
        if output is None and not images_cli.runs.is_image_run(model_dir):
            raise click.UsageError("An export is never written into: name the PNG with -o "
                                   "FILE.png.")
        images_cli.plot(model_dir, output or model_dir / PLOT_FILE, data_file, seed)
        return
    _check_model(model_dir)
    with reported_errors():
        check_data_file(data_file)
    start_tensorflow()
    with reported_errors():
        plot_and_report(model_dir, output, columns, data_file, num_samples=num_samples,
                        seed=seed)


def plot_and_report(source: Path, output: Path | None, columns: tuple[int, ...] | None = None,
                    data_file: Path | None = None, data=None, num_samples: int = 2000,
                    seed: int = 0) -> None:
    """Draws the model at `source` into `output` (a run's default: RUN/flow.png)."""
    plots = tfp_realnvp.plots
    model = tfp_realnvp.rundir.find_model(source)
    if output is None and model.kind != "run":
        raise click.UsageError("An export is never written into: name the PNG with -o FILE.png.")
    metrics = model.metrics
    layout = model.layout
    if table_model.is_table_model(model):
        figure = table_model.plot_figure(model, data_file, data, columns, num_samples, seed)
    else:
            figure = plots.plot_model(model.load(), _plot_rows(model, data_file) if data is None
                                  else data, metrics, columns, num_samples, seed,
                                  title=plots.config_title(model.config, str(source)),
                                  names=None if layout is None else layout.event_names)
    output = output or model.path / PLOT_FILE
    plots.save_png(figure, output)
    click.echo(f"figure: {output}")
    if not plots.has_history(metrics):
        click.echo(f"{source} records no training history: the figure has no NLL curves.",
                   err=True)


def _plot_rows(model, data_file: Path | None):
    """The rows to draw: `data_file`, else a run's recorded training data (rows holding
    NaN or inf left out: training refused or dropped them too)."""
    if data_file is None and model.kind != "run":
        raise click.UsageError("An export does not hold its data: pass the rows to draw "
                               "with --data FILE.")
    if data_file is None:
        info = tfp_realnvp.rundir.RunDir(model.path).read_config().data
        if info.get("source") in TOY_DATASET_NAMES or info.get("source") is None:
            return tfp_realnvp.tables.recorded_data(info)
        data_file = Path(info["source"])
    rows = tfp_realnvp.tables.read_table(data_file)
    if rows.ndim == 2:
        rows, _ = tfp_realnvp.tables.drop_nonfinite_rows(rows)
    return tfp_realnvp.tables.validate_array(rows, str(data_file),
                                             expected_width=model.config.event_dim)


@click.command()
@click.argument("path", type=MODEL_DIR)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(path: Path, as_json: bool) -> None:
    """What a run directory or an export holds: configuration, dimension, signatures,
    metrics, and the TensorFlow / TFP versions that wrote it."""
    if images_cli.is_image_model(path):
        images_cli.info(path, as_json)
        return
    library = tfp_realnvp.info
    with reported_errors():
        if library.needs_tensorflow(path):  # an export without an intact signatures.json
            start_tensorflow()
        summary = library.describe(path)
    click.echo(json.dumps(summary, indent=2) if as_json else library.format_summary(summary))
