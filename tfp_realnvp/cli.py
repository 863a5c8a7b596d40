"""The `tfp-realnvp` command line: a thin click layer over the library."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import datetime  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import click  # noqa: E402

from tfp_realnvp import __version__  # noqa: E402

TOY_NAMES = ("moons", "circles", "blobs", "swissroll")
DEFAULT_TEST_POINTS = 20000
TEST_SEED_OFFSET = 1_000_003


def _user_errors():
    """The exceptions that mean bad input, reported as one line and exit code 1."""
    from tfp_realnvp.data import DataError

    return (DataError, FileNotFoundError, FileExistsError, NotADirectoryError, ValueError,
            FloatingPointError)


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


@click.group()
@click.version_option(__version__, prog_name="tfp-realnvp")
def main() -> None:
    """RealNVP normalizing flows on TensorFlow Probability: fit, sample, evaluate, export."""


def _default_run_dir(source: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{source}-{stamp}"


@main.command()
@click.option("--dataset", type=click.Choice(TOY_NAMES), default="moons", show_default=True,
              help="Built-in toy set to train on (ignored with --data).")
@click.option("--num-points", type=click.IntRange(min=10), default=3000, show_default=True,
              help="Points drawn from the toy set.")
@click.option("--noise", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Noise of the toy set.")
@click.option("--data", "data_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Train on this CSV or .npy table (rows = samples, >= 2 numeric columns).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default: runs/<data>-<timestamp>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs.")
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True))
@click.option("--schedule", type=click.Choice(["cosine", "constant"]))
@click.option("--patience", type=click.IntRange(min=1), help="Early-stopping patience (epochs).")
@click.option("--validation-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--num-couplings", type=click.IntRange(min=2))
@click.option("--hidden-units", type=click.IntRange(min=1))
@click.option("--num-hidden-layers", type=click.IntRange(min=1))
@click.option("--activation", type=click.Choice(["relu", "tanh", "gelu", "silu", "elu"]))
@click.option("--log-scale-bound", type=click.FloatRange(min=0, min_open=True))
@click.option("--permutation", type=click.Choice(["reverse", "random"]))
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--jit-compile", is_flag=True, help="Compile the loss and gradients with XLA.")
@click.option("--strategy", type=click.Choice(["default", "mirrored"]), default="default",
              show_default=True, help="tf.distribute strategy for training.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--export", "export_base", type=click.Path(file_okay=False, path_type=Path),
              help="After training, export a SavedModel to EXPORT/realnvp/<next version>.")
def fit(data_file: Path | None, run_dir: Path | None, resume: bool, dataset: str,
        num_points: int, noise: float, seed: int, strategy: str, quiet: bool,
        export_base: Path | None, **options: Any) -> None:
    """Train a flow. With no arguments: two moons (3000 points, noise 0.05)."""
    from tfp_realnvp import data as data_lib
    from tfp_realnvp import train as train_lib
    from tfp_realnvp.flow import FlowConfig

    if resume and run_dir is None:
        raise click.UsageError("--resume needs --out RUN_DIR naming the run to continue.")
    try:
        if data_file is not None:
            data = data_lib.load_array(data_file)
            data_info = {"source": str(data_file), "num_rows": len(data)}
        else:
            data = data_lib.make_toy(dataset, num_points, noise, seed)
            data_info = {"source": dataset, "num_points": num_points, "noise": noise,
                         "seed": seed}
        flow_config, train_config = _configs(FlowConfig, train_lib.TrainConfig, seed, options)
        run_dir = run_dir or _default_run_dir(Path(data_info["source"]).stem)
        result = _train_with_progress(
            train_lib, data, run_dir, flow_config, train_config, data_info, strategy, resume,
            quiet)
    except _user_errors() as error:
        raise _fail(error) from None
    metrics = result.metrics
    if data_file is None:
        test = data_lib.make_toy(dataset, DEFAULT_TEST_POINTS, noise, seed + TEST_SEED_OFFSET)
        test_nll = train_lib.mean_nll(result.flow, test)
        metrics = train_lib.record_test_metrics(run_dir, {"nll": test_nll, "num_points": len(test)})
    _report_fit(run_dir, metrics)
    if export_base is not None:
        _export_and_report(run_dir, export_base, "realnvp", None)


def _configs(flow_cls, train_cls, seed: int, options: dict[str, Any]):
    flow_fields = {"num_couplings", "hidden_units", "num_hidden_layers", "activation",
                   "log_scale_bound", "permutation"}
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    flow_config = flow_cls(permutation_seed=seed,
                           **{k: v for k, v in given.items() if k in flow_fields})
    train_config = train_cls(seed=seed,
                             **{k: v for k, v in given.items() if k not in flow_fields})
    return flow_config, train_config


def _train_with_progress(train_lib, data, run_dir, flow_config, train_config, data_info,
                         strategy_name, resume, quiet):
    strategy = train_lib.make_strategy(strategy_name)
    epochs = train_lib.read_run_config(run_dir)["train"].epochs if resume else train_config.epochs
    with click.progressbar(length=epochs, label="training", show_pos=True, hidden=quiet,
                           item_show_func=lambda m: m) as bar:
        def on_epoch(record) -> None:
            bar.update(record.epoch - bar.pos, f"nll {record.train_nll:.3f} "
                                               f"val {record.validation_nll:.3f}")

        return train_lib.fit(data, run_dir, flow_config, train_config, data_info,
                             strategy=strategy, resume=resume, on_epoch=on_epoch)


def _report_fit(run_dir: Path, metrics: dict[str, Any]) -> None:
    click.echo(f"run directory: {run_dir}")
    click.echo(f"epochs: {metrics['epochs_run']} (best {metrics['best_epoch']}"
               f"{', stopped early' if metrics['stopped_early'] else ''}), "
               f"wall time {metrics['wall_time_s']:.1f} s")
    click.echo(f"best validation NLL: {metrics['best_validation_nll']:.4f} nats")
    if "test_nll" in metrics:
        click.echo(f"held-out test NLL: {metrics['test_nll']:.4f} nats "
                   f"({metrics['test_num_points']} fresh points)")


def _load_flow(path: Path):
    from tfp_realnvp.serving import load

    return load(path)


def _export_and_report(source: Path, base_dir: Path, name: str, version: int | None) -> None:
    from tfp_realnvp.serving import export as export_flow

    try:
        target = export_flow(source, base_dir, name=name, version=version)
    except _user_errors() as error:
        raise _fail(error) from None
    click.echo(f"exported SavedModel: {target}")


@main.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("base_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="realnvp", show_default=True, help="Model name (folder).")
@click.option("--version", "version", type=click.IntRange(min=1),
              help="Integer version (default: the next free one); never overwritten.")
def export(source: Path, base_dir: Path, name: str, version: int | None) -> None:
    """Export a trained run as a TF Serving SavedModel at BASE_DIR/NAME/VERSION."""
    _export_and_report(source, base_dir, name, version)


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-n", "--num-samples", type=click.IntRange(min=1), required=True)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="The same seed gives the same samples.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE.csv or FILE.npy (by extension); default: CSV on stdout.")
def sample(model_dir: Path, num_samples: int, seed: int, output: Path | None) -> None:
    """Draw samples (in data units) from a run directory or an export."""
    from tfp_realnvp import data as data_lib
    from tfp_realnvp.sampling import sample_flow

    if output is not None and output.suffix.lower() not in (".csv", ".npy"):
        raise click.UsageError(f"--output must end in .csv or .npy; got {output.name!r}.")
    try:
        samples = sample_flow(_load_flow(model_dir), num_samples, seed)
    except _user_errors() as error:
        raise _fail(error) from None
    if output is None:
        for row in samples:
            click.echo(",".join(f"{v:.8g}" for v in row))
    else:
        data_lib.save_array(samples, output)
        click.echo(f"wrote {num_samples} samples to {output}", err=True)


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", "data_file", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="CSV or .npy table to score.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(model_dir: Path, data_file: Path, as_json: bool) -> None:
    """Mean negative log-likelihood of a data file, in nats and bits per dimension."""
    from tfp_realnvp import data as data_lib
    from tfp_realnvp import train as train_lib

    try:
        flow = _load_flow(model_dir)
        data = data_lib.validate_array(data_lib.load_array(data_file), str(data_file),
                                       expected_width=int(flow.event_shape[-1]))
        nll = train_lib.mean_nll(flow, data)
    except _user_errors() as error:
        raise _fail(error) from None
    result = {"nll": nll, "bits_per_dim": nll / (data.shape[1] * 0.6931471805599453),
              "n": len(data)}
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"NLL {result['nll']:.4f} nats, {result['bits_per_dim']:.4f} bits/dim "
                   f"over {result['n']} rows")
