"""The `tfp-realnvp` command line: a thin click layer over the library.

The options that build a `FlowConfig` or `TrainConfig` are generated from the dataclass
fields (their `Setting` metadata), and every choice list is the library's own constant, so
the CLI cannot drift from the library. Library errors (`TfpRealnvpError`) are reported as
one line and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

import tfp_realnvp
from tfp_realnvp.config import (
    QUALITY_METHODS,
    QUALITY_TABLES,
    SPEED_MODELS,
    STRATEGIES,
    TOY_DATASET_NAMES,
    FlowConfig,
    Setting,
    TrainConfig,
    settings,
)
from tfp_realnvp.errors import (
    DataError,
    TfpRealnvpError,
    TrainingDivergedError,
    TrainingInterruptedError,
)

# What the CLI adds to a library error: the flags that fix it.
HINTS: dict[type[Exception], str] = {
    TrainingDivergedError: "Try a lower --learning-rate or --log-scale-bound.",
    TrainingInterruptedError: "Continue with: tfp-realnvp fit --out RUN_DIR --resume",
}
PLOT_FILE = "flow.png"  # where `plot RUN` and `fit --plot` draw a run


def main() -> None:
    """Console entry point: quiets TensorFlow's C++ start-up logging, then runs the CLI."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli()


def start_tensorflow(strategy: str | None = None) -> Any:
    """Imports TensorFlow and initialises its devices with the process's stderr (the file
    descriptor, where its C++ code writes) pointed at /dev/null; returns the
    `tf.distribute` strategy named by `strategy` (None: none is made).

    TensorFlow 2.21 prints oneDNN, cudart and cuInit lines before its logging is
    configured, whatever TF_CPP_MIN_LOG_LEVEL says; a CLI user should see our output, not
    those. Python errors are unaffected: an import failure raises after stderr is back.
    Commands that need TensorFlow call this first; `--help` never does. The strategy is made
    here, before the devices are initialised, because TensorFlow requires a
    MultiWorkerMirroredStrategy to exist before any other op runs in the process.
    """
    if "tensorflow" in sys.modules:
        return None if strategy is None else tfp_realnvp.train.make_strategy(strategy)
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        made = None if strategy is None else tfp_realnvp.train.make_strategy(strategy)
        tf.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return made


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turns library errors into one-line click errors (exit 1), with the CLI's hint."""
    try:
        yield
    except TfpRealnvpError as error:
        hint = next((h for kind, h in HINTS.items() if isinstance(error, kind)), "")
        failure = click.ClickException(f"{error} {hint}".strip())
        if isinstance(error, TrainingInterruptedError):
            failure.exit_code = 128 + error.signal_number  # the shell's convention
        raise failure from None


def _click_type(python_type: type, rule: Setting) -> Any:
    if rule.choices is not None:
        return click.Choice(rule.choices)
    bounds = dict(min=rule.low, min_open=rule.low_open, max=rule.high, max_open=rule.high_open)
    if python_type is int:
        return click.IntRange(**bounds)
    if python_type is float:
        return click.FloatRange(**bounds)
    return python_type


def config_options(*classes: type) -> Callable[[Callable], Callable]:
    """Adds one `--option` per CLI-visible config field of `classes`, default None (unset).

    Unset options leave the dataclass default (shown in the help); a given one overrides it.
    Booleans become `--name/--no-name` switches.
    """
    def decorate(command: Callable) -> Callable:
        for cls in reversed(classes):
            hints = typing.get_type_hints(cls)
            for field, rule in reversed(list(settings(cls))):
                if not rule.cli:
                    continue
                flag = field.name.replace("_", "-")
                help_text = f"{rule.help} [default: {field.default}]"
                python_type = _plain_type(hints[field.name])
                if python_type is bool:
                    option = click.option(f"--{flag}/--no-{flag}", field.name, default=None,
                                          help=help_text)
                else:
                    option = click.option(f"--{flag}", field.name, default=None,
                                          type=_click_type(python_type, rule), help=help_text)
                command = option(command)
        return command

    return decorate


def _plain_type(hint: Any) -> type:
    """`int | None` -> `int`."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _fields_of(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The given (not None) options that are fields of `cls`."""
    names = {field.name for field, _ in settings(cls)}
    return {k: v for k, v in values.items() if k in names and v is not None}


def _read_config_file(path: Path) -> dict[str, Any]:
    """A TOML or JSON file's top-level table; click errors name the file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            values = json.loads(path.read_text())
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                raise click.BadParameter(f"{path}: reading TOML needs Python >= 3.11; write "
                                         "the same keys as JSON instead.") from None
            values = tomllib.loads(path.read_text())
        else:
            raise click.BadParameter(f"{path}: must end in .toml or .json.")
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, TOMLDecodeError
        raise click.BadParameter(f"{path} is not valid {suffix[1:].upper()}: {error}") from None
    if not isinstance(values, dict):
        raise click.BadParameter(f"{path}: expected a table of option = value; got "
                                 f"{type(values).__name__}.")
    return values


def _config_file_defaults(ctx: click.Context, param: click.Parameter,
                          path: Path | None) -> Path | None:
    """`--config FILE`: the file's values become the command's defaults (`default_map`), so
    every option given on the command line wins. Keys are the long option names, with `-`
    or `_` (`hidden-units`, `hidden_units`, `out`, `data`); each value is checked by the
    option's own type; an unknown key is refused with the list of known ones."""
    if path is None:
        return None
    options = {}
    for other in ctx.command.params:
        if isinstance(other, click.Option) and other.name != param.name:
            for flag in other.opts:
                options[flag.lstrip("-").replace("-", "_")] = other
    values, unknown = {}, []
    for key, value in _read_config_file(path).items():
        option = options.get(str(key).replace("-", "_"))
        if option is None:
            unknown.append(key)
            continue
        try:
            converted = option.type_cast_value(ctx, value)
        except click.BadParameter as error:
            raise click.BadParameter(f"{path}: {key} = {value!r}: {error.message}") from None
        if (option.is_flag or option.is_bool_flag) and not isinstance(value, bool):
            raise click.BadParameter(f"{path}: {key} = {value!r}: expected true or false.")
        values[option.name] = converted
    if unknown:
        known = sorted({o.opts[0].lstrip("-") for o in options.values()})
        raise click.BadParameter(f"{path}: unknown key(s) {', '.join(map(str, unknown))}; "
                                 f"known: {', '.join(known)}.")
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path


@click.group()
@click.version_option(tfp_realnvp.__version__, prog_name="tfp-realnvp")
def cli() -> None:
    """RealNVP normalizing flows on TensorFlow Probability: fit, sample, evaluate, export."""


@cli.command()
@click.option("--config", "config_file", is_eager=True, expose_value=False,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              callback=_config_file_defaults,
              help="Read options from FILE.toml or FILE.json (keys: the option names, e.g. "
                   "hidden-units = 64); options on the command line win.")
@click.option("--dataset", type=click.Choice(TOY_DATASET_NAMES), default="moons",
              show_default=True, help="Built-in toy set to train on (ignored with --data).")
@click.option("--num-points", type=click.IntRange(min=10), default=3000, show_default=True,
              help="Points drawn from the toy set.")
@click.option("--noise", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Noise of the toy set.")
@click.option("--data", "data_file", type=click.Path(path_type=Path),
              help="Train on this CSV or .npy table (rows = samples, >= 2 numeric columns).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default: runs/<data>-<timestamp>).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its checkpoint, on its own data.")
@click.option("--drop-nonfinite", is_flag=True,
              help="Drop rows of --data holding NaN or inf (says how many) instead of refusing.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the toy data, the split, the shuffle and the weights.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="default",
              show_default=True,
              help="tf.distribute strategy: mirrored = every local GPU (or CPU); multiworker "
                   "= one process per machine, the cluster given by TF_CONFIG.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--export", "export_base", type=click.Path(file_okay=False, path_type=Path),
              help="After training, export a SavedModel to EXPORT/realnvp/<next version>.")
@click.option("--plot", is_flag=True,
              help=f"After training, draw the run into RUN_DIR/{PLOT_FILE} (as `plot` does).")
@click.option("--tensorboard", is_flag=True,
              help="Write TensorBoard summaries per epoch into RUN_DIR/tensorboard (a resumed "
                   "run that has them continues them without the flag).")
@click.option("--context-columns", "context_spec",
              help="Train p(x | c): the columns of --data that are the context c, comma-"
              "separated, by header name or 0-based position (0 is the first column); the "
              "other columns are x.")
@config_options(FlowConfig, TrainConfig)
@click.pass_context
def fit(ctx: click.Context, data_file: Path | None, run_dir: Path | None, resume: bool,
        drop_nonfinite: bool, dataset: str, num_points: int, noise: float, seed: int,
        strategy: str, quiet: bool, export_base: Path | None, plot: bool, tensorboard: bool,
        context_spec: str | None,
        **options: Any) -> None:
    """Train a flow. With no arguments: two moons (3000 points, noise 0.05).

    Settings not given are chosen from the table's shape (see `tfp_realnvp.auto`) and
    recorded in the run's config.json; every option given wins.
    """
    if resume and run_dir is None:
        raise click.UsageError("--resume needs --out RUN_DIR naming the run to continue.")
    if resume and strategy == "multiworker":
        raise click.UsageError("--resume runs in one process; resume a multi-worker run on "
                               "the chief with --strategy default or mirrored.")
    if context_spec is not None and (resume or data_file is None):
        raise click.UsageError(
            "--context-columns needs --data FILE (a new run; a resumed run uses the columns "
            "it recorded).")
    with reported_errors():
        distribution = start_tensorflow(strategy)
        if resume:
            seed_given = ctx.get_parameter_source("seed") != click.core.ParameterSource.DEFAULT
            changes = {k: v for k, v in options.items() if v is not None}
            if seed_given:
                changes.update(seed=seed, mixing_seed=seed)
            result = _resume(run_dir, data_file, drop_nonfinite, distribution, quiet, changes,
                             tensorboard or None)
            data = None  # the plot reads the run's recorded data
        else:
            context, layout = None, None
            if context_spec is not None:
                data, context, layout = _read_conditional(data_file, drop_nonfinite,
                                                          context_spec)
                names = layout.names
                data_info = {"source": str(data_file), "num_rows": len(data),
                             "context_columns": [names[i] if names else i
                                                 for i in layout.context]}
            elif data_file is not None:
                data, layout = _read_data(data_file, drop_nonfinite)
                data_info = {"source": str(data_file), "num_rows": len(data)}
            else:
                data = tfp_realnvp.tables.make_toy(dataset, num_points, noise, seed)
                data_info = {"source": dataset, "num_points": num_points, "noise": noise,
                             "seed": seed}
            given = {k: v for k, v in options.items() if v is not None}
            run_dir = run_dir or _default_run_dir(Path(data_info["source"]).stem)
            epochs = given.get("epochs") or tfp_realnvp.auto.choose(*data.shape).train.epochs
            with _progress(epochs, quiet) as on_epoch:
                result = tfp_realnvp.fit(data, run_dir, data_info=data_info,
                                         strategy=distribution, on_epoch=on_epoch,
                                         context=context, tensorboard=tensorboard,
                                         layout=layout, settings={**given, "seed": seed,
                                                                  "mixing_seed": seed})
        if not result.chief:
            _report_worker(result)
            return
        metrics = _score_toy_run(result)
    _report_fit(result.run_dir, metrics)
    if (result.run_dir / tfp_realnvp.summaries.TENSORBOARD_DIR).is_dir():
        click.echo(f"tensorboard: tensorboard --logdir "
                   f"{result.run_dir / tfp_realnvp.summaries.TENSORBOARD_DIR}")
    if plot:
        with reported_errors():
            _plot_and_report(result.run_dir, None, data=data)
    if export_base is not None:
        _export_and_report(result.run_dir, export_base, "realnvp", None)


CONTEXT_HELP = ("A CSV/.npy file of context rows (one per row, or one row for all) or the "
                "values of one row, e.g. 0.3,1.")


def _context_how(layout) -> str:
    """How a CLI user passes a model's context, naming its columns when recorded."""
    names = tfp_realnvp.tables.context_names(layout)
    columns = f" (its columns: {', '.join(names)})" if names else ""
    return f"--context FILE{columns} or --context VALUES (e.g. 0.3,1)"


def _default_run_dir(source: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{source}-{stamp}"


def _read_data(path: Path, drop_nonfinite: bool):
    """A data file's rows and layout; with `drop_nonfinite`, without the rows holding NaN
    or inf."""
    data, _, layout, dropped = tfp_realnvp.tables.read_training_table(
        path, drop_nonfinite=drop_nonfinite)
    _report_dropped(path, drop_nonfinite, dropped)
    return data, layout


def _report_dropped(path: Path, drop_nonfinite: bool, dropped: int) -> None:
    if drop_nonfinite:
        click.echo(f"{path}: dropped {dropped} row(s) holding NaN or inf", err=True)


def _read_table(path: Path, drop_nonfinite: bool):
    table = tfp_realnvp.tables.read_table(path)
    if drop_nonfinite and table.ndim == 2:
        table, dropped = tfp_realnvp.tables.drop_nonfinite_rows(table)
        _report_dropped(path, drop_nonfinite, dropped)
    return table


def _read_conditional(path: Path, drop_nonfinite: bool, spec: str):
    """(events, context, TableLayout) of a table whose `spec` columns (header names or
    0-based positions) are the context."""
    events, context, layout, dropped = tfp_realnvp.tables.read_training_table(
        path, spec, drop_nonfinite, option="--context-columns")
    _report_dropped(path, drop_nonfinite, dropped)
    return events, context, layout


def _model_inputs(model, data_file: Path, context_arg: str | None):
    """The events of `data_file` and their context for a loaded model: a conditional
    model's context from --context, else from the data file's recorded context columns."""
    return tfp_realnvp.tables.model_inputs(data_file, model.config.event_dim,
                                           model.config.context_dim, model.layout, context_arg)


def _resume(run_dir: Path, data_file: Path | None, drop_nonfinite: bool, strategy: Any,
            quiet: bool, changes: dict[str, Any], tensorboard: bool | None = None):
    stored = tfp_realnvp.rundir.RunDir(run_dir).read_config()
    context = None
    if stored.flow.context_dim:
        path = data_file if data_file is not None else stored.data.get("source")
        if path is None:
            raise DataError("The run records no data source; pass the training data with "
                            "--data.")
        table = _read_table(Path(path), drop_nonfinite)
        data, context = tfp_realnvp.tables.split_like_training(
            table, tfp_realnvp.tables.read_header(path), stored.layout, str(path))
    else:
        data = _recorded_data(stored.data) if data_file is None else \
            _read_data(data_file, drop_nonfinite)[0]
    with _progress(changes.get("epochs", stored.train.epochs), quiet) as on_epoch:
        return tfp_realnvp.resume(run_dir, data, strategy=strategy, on_epoch=on_epoch,
                                  context=context, tensorboard=tensorboard, **changes)


def _recorded_data(info: dict[str, Any]):
    """The data a run was trained on, from what its config.json recorded."""
    return tfp_realnvp.tables.recorded_data(info)


@contextlib.contextmanager
def _progress(epochs: int, quiet: bool):
    with click.progressbar(length=epochs, label="training", show_pos=True, hidden=quiet,
                           item_show_func=lambda m: m) as bar:
        def on_epoch(record) -> None:
            bar.update(record.epoch - bar.pos, f"nll {record.train_nll:.3f} "
                                               f"val {record.validation_nll:.3f}")

        yield on_epoch


def _score_toy_run(result) -> dict[str, Any]:
    """For a run on a built-in toy set: score fresh points and record them as test_*."""
    run = tfp_realnvp.rundir.RunDir(result.run_dir)
    info = run.read_config().data
    if info.get("source") not in TOY_DATASET_NAMES or "num_points" not in info:
        return result.metrics
    scores = tfp_realnvp.scoring.score_fresh_toy(result.flow, info["source"], info["noise"],
                                                 info["seed"])
    test = {f"test_{k}": v for k, v in scores.items() if k != "n"}
    return run.update_metrics({**test, "test_num_points": scores["n"]})


def _report_fit(run_dir: Path, metrics: dict[str, Any]) -> None:
    click.echo(f"run directory: {run_dir}")
    click.echo(f"epochs: {metrics['epochs_run']} (best {metrics['best_epoch']}"
               f"{', stopped early' if metrics['stopped_early'] else ''}), "
               f"wall time {metrics['wall_time_s']:.1f} s")
    click.echo(f"best validation NLL: {metrics['best_validation_nll']:.4f} nats")
    if "test_nll" in metrics:
        click.echo(f"held-out test NLL: {metrics['test_nll']:.4f} nats "
                   f"({metrics['test_num_points']} fresh points; median "
                   f"{metrics['test_median']:.4f}, max {metrics['test_max']:.2f})")
    if metrics.get("num_workers", 1) > 1:
        click.echo(f"chief of {metrics['num_workers']} workers; weights sha256: "
                   f"{metrics['weights_sha256']}")


def _report_worker(result) -> None:
    """What a non-chief worker of a multi-worker run says: the chief writes the run."""
    metrics = result.metrics
    click.echo(f"worker of {metrics['num_workers']}: trained {metrics['epochs_run']} epochs "
               f"(best validation NLL {metrics['best_validation_nll']:.4f} nats); the chief "
               f"writes the run directory {result.run_dir}")
    click.echo(f"weights sha256: {metrics['weights_sha256']}")


def _export_and_report(source: Path, base_dir: Path, name: str, version: int | None) -> None:
    start_tensorflow()
    with reported_errors():
        target = tfp_realnvp.export(source, base_dir, name=name, version=version)
    click.echo(f"exported SavedModel: {target}")


@cli.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("base_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="realnvp", show_default=True, help="Model name (folder).")
@click.option("--version", "version", type=click.IntRange(min=1),
              help="Integer version (default: the next free one); never overwritten.")
def export(source: Path, base_dir: Path, name: str, version: int | None) -> None:
    """Export a trained run as a TF Serving SavedModel at BASE_DIR/NAME/VERSION."""
    _export_and_report(source, base_dir, name, version)


@cli.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-n", "--num-samples", type=click.IntRange(min=1), required=True)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="The same seed gives the same samples.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE.csv or FILE.npy (by extension); default: CSV on stdout.")
@click.option("--context", "context_arg", help=CONTEXT_HELP)
def sample(model_dir: Path, num_samples: int, seed: int, output: Path | None,
           context_arg: str | None) -> None:
    """Draw samples (in data units) from a run directory or an export."""
    if output is not None and output.suffix.lower() not in (".csv", ".npy"):
        raise click.UsageError(f"--output must end in .csv or .npy; got {output.name!r}.")
    start_tensorflow()
    with reported_errors():
        model = tfp_realnvp.rundir.find_model(model_dir)
        flow = model.load()
        layout = model.layout
        context = None if context_arg is None else tfp_realnvp.tables.parse_context(
            context_arg, layout, model.config.context_dim)
        samples = tfp_realnvp.sampling.sample_flow(flow, num_samples, seed, context,
                                                   how=_context_how(layout))
    if output is None:
        for row in samples:
            click.echo(",".join(f"{v:.8g}" for v in row))
    else:
        tfp_realnvp.tables.save_array(samples, output,
                                      header=None if layout is None else layout.event_names)
        click.echo(f"wrote {num_samples} samples to {output}", err=True)


@cli.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", "data_file", type=click.Path(path_type=Path), required=True,
              help="CSV or .npy table to score.")
@click.option("--per-row", "per_row_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write each row's NLL (an anomaly score) to FILE.csv or FILE.npy.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--context", "context_arg",
              help="Conditional models: the rows' context, if --data holds only x. "
              + CONTEXT_HELP)
def evaluate(model_dir: Path, data_file: Path, per_row_file: Path | None,
             as_json: bool, context_arg: str | None) -> None:
    """Negative log-likelihood of a data file: mean (nats, bits/dim), median, p99, max.

    A conditional model scores -log p(x | c): by default the context is taken from the
    columns of --data that were the context in its training table (by header name, else
    by position).
    """
    if per_row_file is not None and per_row_file.suffix.lower() not in (".csv", ".npy"):
        raise click.UsageError(f"--per-row must end in .csv or .npy; got {per_row_file.name!r}.")
    start_tensorflow()
    with reported_errors():
        model = tfp_realnvp.rundir.find_model(model_dir)
        flow = model.load()
        data, context = _model_inputs(model, data_file, context_arg)
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


@cli.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The PNG to write (default: RUN_DIR/{PLOT_FILE}; needed for an export).")
@click.option("--columns", callback=lambda ctx, param, value: value and _int_list(
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
    validation NLL per epoch (from metrics.json, which exports keep too).
    """
    if output is not None and output.suffix.lower() != ".png":
        raise click.UsageError(f"--output must end in .png; got {output.name!r}.")
    start_tensorflow()
    with reported_errors():
        _plot_and_report(model_dir, output, columns, data_file, num_samples=num_samples,
                         seed=seed)


def _plot_and_report(source: Path, output: Path | None, columns: tuple[int, ...] | None = None,
                     data_file: Path | None = None, data=None, num_samples: int = 2000,
                     seed: int = 0) -> None:
    """Draws the model at `source` into `output` (a run's default: RUN/flow.png)."""
    plots = tfp_realnvp.plots
    model = tfp_realnvp.rundir.find_model(source)
    if output is None and model.kind != "run":
        raise click.UsageError("An export is never written into: name the PNG with -o FILE.png.")
    if data is None:
        data = _plot_rows(model, data_file)
    metrics = model.metrics
    layout = model.layout
    figure = plots.plot_model(model.load(), data, metrics, columns, num_samples, seed,
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
            return _recorded_data(info)
        data_file = Path(info["source"])
    rows = tfp_realnvp.tables.read_table(data_file)
    if rows.ndim == 2:
        rows, _ = tfp_realnvp.tables.drop_nonfinite_rows(rows)
    return tfp_realnvp.tables.validate_array(rows, str(data_file),
                                             expected_width=model.config.event_dim)


@cli.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(path: Path, as_json: bool) -> None:
    """What a run directory or an export holds: configuration, dimension, signatures,
    metrics, and the TensorFlow / TFP versions that wrote it."""
    start_tensorflow()
    with reported_errors():
        summary = tfp_realnvp.info.describe(path)
    click.echo(json.dumps(summary, indent=2) if as_json else
               tfp_realnvp.info.format_summary(summary))


@cli.group()
def bench() -> None:
    """Benchmarks that print figures measured side by side in one run."""


def _name_list(allowed: tuple[str, ...]) -> Callable[[click.Context, click.Parameter, str],
                                                     tuple[str, ...]]:
    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(v.strip() for v in value.split(",") if v.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise click.BadParameter(f"{unknown or value!r}: choose from {', '.join(allowed)}.")
        return names

    return parse


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected integers separated by commas.") from None


@bench.command("quality")
@click.option("--tables", default=",".join(QUALITY_TABLES), show_default=True,
              callback=_name_list(QUALITY_TABLES), help="Comma-separated tables.")
@click.option("--methods", default=",".join(QUALITY_METHODS), show_default=True,
              callback=_name_list(QUALITY_METHODS), help="Comma-separated methods.")
@click.option("--seeds", default="0", show_default=True, callback=_int_list,
              help="Comma-separated seeds (each: its own split and training seed).")
@click.option("--max-epochs", type=click.IntRange(min=1),
              help="Cap the epochs of the flow and the MAF (a quick run).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def bench_quality(tables: tuple[str, ...], methods: tuple[str, ...], seeds: tuple[int, ...],
                  max_epochs: int | None, as_json: bool) -> None:
    """Held-out NLL of the default fit against Gaussian, GMM, KDE and TFP's MAF."""
    quality = tfp_realnvp.bench.quality

    def progress(record: dict[str, Any]) -> None:
        click.echo(f"{record['table']} seed {record['seed']} {record['method']}: "
                   f"{record['nll']:.3f} nats ({record['seconds']:.1f} s)", err=True)

    start_tensorflow()
    with reported_errors():
        records = quality.run_quality(tables, methods, seeds, max_epochs, on_result=progress)
    click.echo(json.dumps(records, indent=2) if as_json else quality.format_table(records))


@bench.command("speed")
@click.option("--dim", type=click.IntRange(min=2), default=2, show_default=True,
              help="Columns of the events.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--hidden-units", type=click.IntRange(min=1), default=256, show_default=True,
              help="Conditioner width at the compared architecture.")
@click.option("--num-hidden-layers", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--num-couplings", type=click.IntRange(min=2), default=6, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=50, show_default=True,
              help="Training steps per timed run.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed runs per figure (the best is kept).")
@click.option("--eval-points", type=click.IntRange(min=1), default=16384, show_default=True,
              help="Points per log_prob / sample call.")
@click.option("--models", default=",".join(SPEED_MODELS), show_default=True,
              callback=_name_list(SPEED_MODELS), help="Comma-separated models to compare.")
@click.option("--time-to-quality/--no-time-to-quality", default=True, show_default=True,
              help="Also time the default fit and the notebook model to 0.40/0.35 nats on "
                   "two moons (a few minutes on a CPU).")
@click.option("--scaling/--no-scaling", default=False, show_default=True,
              help="Also measure steps/s over dims and widths.")
@click.option("--scaling-dims", default="2,8,32,64", show_default=True, callback=_int_list)
@click.option("--scaling-widths", default="64,128,256,512", show_default=True,
              callback=_int_list)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="With --scaling: write the step-cost plot to this PNG.")
@click.option("--big-table/--no-big-table", default=False, show_default=True,
              help="Also time a big table through load, fit, evaluate and sample.")
@click.option("--big-table-rows", type=click.IntRange(min=100), default=1_000_000,
              show_default=True)
@click.option("--big-table-columns", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--big-table-budget", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds of training for the big table's fit.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_speed(models: tuple[str, ...], scaling_dims: tuple[int, ...],
                scaling_widths: tuple[int, ...], plot_path: Path | None, big_table: bool,
                big_table_rows: int, big_table_columns: int, big_table_budget: float,
                as_json: bool, **options: Any) -> None:
    """Training, log_prob and sample throughput against TFP's RealNVP and the notebook's
    Keras model (side by side in one process), time to quality, scaling, big tables."""
    if plot_path is not None and not options["scaling"]:
        raise click.UsageError("--plot draws the scaling figures: add --scaling.")
    start_tensorflow()
    speed = tfp_realnvp.bench.speed

    def progress(section: str, record: dict[str, Any]) -> None:
        name = record.get("name", section)
        click.echo(f"{section}: {name} done", err=True)

    with reported_errors():
        settings = speed.SpeedOptions(scaling_dims=scaling_dims, scaling_widths=scaling_widths,
                                      **options)
        result = speed.run_speed(settings, names=models, on_result=progress)
        if plot_path is not None:
            speed.plot_scaling(result["scaling"], plot_path, result["device"])
        if big_table:
            result["big_table"] = tfp_realnvp.bench.bigtable.run_big_table(
                big_table_rows, big_table_columns, big_table_budget)
    click.echo(json.dumps(result, indent=2) if as_json else speed.format_report(result))
