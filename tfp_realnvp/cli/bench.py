"""The `bench` group: the quality and speed benchmarks of `tfp_realnvp.bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

import tfp_realnvp
from tfp_realnvp.cli.options import int_list, name_list
from tfp_realnvp.cli.runtime import reported_errors, start_tensorflow
from tfp_realnvp.config import QUALITY_METHOD_CHOICES, QUALITY_METHODS, QUALITY_TABLES, SPEED_MODELS

# the tables of tfp_realnvp.bench.mixed_tables (named here: --help must not import sklearn)
MIXED_TABLES = ("iris", "wine", "breast_cancer", "diabetes", "synthetic")


@click.group()
def bench() -> None:
    """Benchmarks that print figures measured side by side in one run."""


@bench.command("quality")
@click.option("--tables", default=",".join(QUALITY_TABLES), show_default=True,
              callback=name_list(QUALITY_TABLES), help="Comma-separated tables.")
@click.option("--methods", default=",".join(QUALITY_METHODS), show_default=True,
              callback=name_list(QUALITY_METHOD_CHOICES),
              help="Comma-separated methods; flowjax_maf and flowjax_coupling (FlowJAX's "
                   "spline flows) need the bench extra: pip install -e \".[bench]\".")
@click.option("--seeds", default="0", show_default=True, callback=int_list,
              help="Comma-separated seeds (each: its own split and training seed).")
@click.option("--max-epochs", type=click.IntRange(min=1),
              help="Cap the epochs of the flow, the MAF and the FlowJAX flows (a quick run).")
@click.option("--mixed", is_flag=True,
              help="Score mixed tables instead (categorical + numeric columns): the default "
                   "fit of each training DataFrame against the independent and general "
                   "location baselines, nats per held-out row.")
@click.option("--mixed-tables", default=",".join(MIXED_TABLES), show_default=True,
              callback=name_list(MIXED_TABLES), help="With --mixed: comma-separated tables.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True),
              help="With --mixed: seconds of flow training per fit (default: automatic).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def bench_quality(tables: tuple[str, ...], methods: tuple[str, ...], seeds: tuple[int, ...],
                  max_epochs: int | None, mixed: bool, mixed_tables: tuple[str, ...],
                  time_budget: float | None, as_json: bool) -> None:
    """Held-out NLL of the default fit against Gaussian, GMM, KDE, TFP's MAF and, if asked,
    FlowJAX's MAF and coupling flows (with --mixed: of mixed tables against the
    independent and location models)."""
    if mixed:
        _bench_mixed(mixed_tables, seeds, time_budget, as_json)
        return
    quality = tfp_realnvp.bench.quality

    def progress(record: dict[str, Any]) -> None:
        click.echo(f"{record['table']} seed {record['seed']} {record['method']}: "
                   f"{record['nll']:.3f} nats ({record['seconds']:.1f} s)", err=True)

    start_tensorflow()
    with reported_errors():
        records = quality.run_quality(tables, methods, seeds, max_epochs, on_result=progress)
    click.echo(json.dumps(records, indent=2) if as_json else quality.format_table(records))


def _bench_mixed(tables: tuple[str, ...], seeds: tuple[int, ...], time_budget: float | None,
                 as_json: bool) -> None:
    from tfp_realnvp.bench import mixed_tables

    def progress(record: dict[str, Any]) -> None:
        click.echo(f"{record['table']} seed {record['seed']} {record['method']}: "
                   f"{record['nll']:.3f} nats ({record['seconds']:.1f} s)", err=True)

    start_tensorflow()
    with reported_errors():
        records = mixed_tables.run_mixed_quality(tables, seeds, time_budget,
                                                 on_result=progress)
    click.echo(json.dumps(records, indent=2) if as_json else
               mixed_tables.format_mixed_table(records))


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
              callback=name_list(SPEED_MODELS), help="Comma-separated models to compare.")
@click.option("--time-to-quality/--no-time-to-quality", default=True, show_default=True,
              help="Also time the default fit and the notebook model to 0.40/0.35 nats on "
                   "two moons (a few minutes on a CPU).")
@click.option("--scaling/--no-scaling", default=False, show_default=True,
              help="Also measure steps/s over dims and widths.")
@click.option("--scaling-dims", default="2,8,32,64", show_default=True, callback=int_list)
@click.option("--scaling-widths", default="64,128,256,512", show_default=True,
              callback=int_list)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="With --scaling: write the step-cost plot to this PNG.")
@click.option("--images/--no-images", default=False, show_default=True,
              help="Also time the image model's training step at 32x32x3 (the paper's "
                   "CIFAR-10 architecture and the default one; a few minutes on a CPU, "
                   "mostly tracing) and estimate a CIFAR-10 run from it.")
@click.option("--big-table/--no-big-table", default=False, show_default=True,
              help="Also time a big table through load, fit, evaluate and sample.")
@click.option("--big-table-rows", type=click.IntRange(min=100), default=1_000_000,
              show_default=True)
@click.option("--big-table-columns", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--big-table-budget", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds of training for the big table's fit.")
@click.option("--streamed-rows", type=click.IntRange(min=1000), default=1_000_000,
              show_default=True, help="With --big-table: rows of the sharded Parquet table "
              "fit streams and evaluate scores, each in a child process (peak RSS); about a "
              "minute at the default.")
@click.option("--streamed-shards", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--big-table-only", is_flag=True,
              help="With --big-table: measure the big tables alone (no model comparison).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_speed(models: tuple[str, ...], scaling_dims: tuple[int, ...],
                scaling_widths: tuple[int, ...], plot_path: Path | None, big_table: bool,
                big_table_rows: int, big_table_columns: int, big_table_budget: float,
                streamed_rows: int, streamed_shards: int, big_table_only: bool,
                as_json: bool, **options: Any) -> None:
    """Training, log_prob and sample throughput against TFP's RealNVP and the notebook's
    Keras model (side by side in one process), time to quality, scaling, image models'
    images/s, big tables."""
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
        if big_table and big_table_only:
            streamed = tfp_realnvp.bench.streamed.run_streamed_table(
                streamed_rows, big_table_columns, streamed_shards, big_table_budget)
            click.echo(json.dumps(streamed, indent=2) if as_json else "\n".join(
                tfp_realnvp.bench.report.format_streamed(streamed)).strip())
            return
        result = speed.run_speed(settings, names=models, on_result=progress)
        if plot_path is not None:
            speed.plot_scaling(result["scaling"], plot_path, result["device"])
        if big_table:
            result["big_table"] = tfp_realnvp.bench.bigtable.run_big_table(
                big_table_rows, big_table_columns, big_table_budget)
            result["streamed_table"] = tfp_realnvp.bench.streamed.run_streamed_table(
                streamed_rows, big_table_columns, streamed_shards, big_table_budget)
    click.echo(json.dumps(result, indent=2) if as_json else speed.format_report(result))


@bench.command("images")
@click.option("--seeds", default="0", show_default=True, callback=int_list,
              help="Comma-separated seeds (each: bench quality's digits split of that seed).")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True),
              help="Seconds of training per seed (default: the image default's).")
@click.option("--max-epochs", type=click.IntRange(min=1), help="Cap the epochs (a quick run).")
def bench_images(seeds: tuple[int, ...], time_budget: float | None,
                 max_epochs: int | None) -> None:
    """The image model on the 8x8 digits as images: held-out nats per image (the units of
    bench quality's digits rows, pixels + U(0, 1)) and bits/dim of the discrete pixels."""
    start_tensorflow()
    from tfp_realnvp.bench.images import digits_image_nll

    settings = {**({} if time_budget is None else {"time_budget": time_budget}),
                **({} if max_epochs is None else {"epochs": max_epochs})}
    click.echo("seed  nats/image  bits/dim  epochs  seconds")
    for seed in seeds:
        with reported_errors():
            record = digits_image_nll(seed, settings)
        click.echo(f"{seed:>4}  {record['test_nll']:>10.2f}  {record['bits_per_dim']:>8.3f}  "
                   f"{record['epochs']:>6}  {record['seconds']:>7.1f}")
