"""The `fit` command: train a new run or resume one, then report, plot and export it."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import click

import tfp_realnvp
from tfp_realnvp import auto as auto_lib
from tfp_realnvp.cli import images as images_cli
from tfp_realnvp.cli.model import PLOT_FILE, export_and_report, plot_and_report
from tfp_realnvp.cli.options import config_file_defaults, config_options
from tfp_realnvp.cli.progress import recorded_budget, recorded_wall_time
from tfp_realnvp.cli.runtime import progress, reported_errors, start_tensorflow
from tfp_realnvp.cli.tables import (
    check_data_file,
    explain_streamed,
    read_data,
    read_table,
    read_training_rows,
)
from tfp_realnvp.config import STRATEGIES, TOY_DATASET_NAMES, FlowConfig, TrainConfig
from tfp_realnvp.errors import DataError
from tfp_realnvp.firstpass import STREAM_MODES


@click.command()
@click.option("--config", "config_file", is_eager=True, expose_value=False,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              callback=config_file_defaults,
              help="Read options from FILE.toml or FILE.json (keys: the option names, e.g. "
                   "hidden-units = 64); options on the command line win.")
@click.option("--dataset", type=click.Choice(TOY_DATASET_NAMES), default="moons",
              show_default=True, help="Built-in toy set to train on (ignored with --data).")
@click.option("--num-points", type=click.IntRange(min=10), default=3000, show_default=True,
              help="Points drawn from the toy set.")
@click.option("--noise", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Noise of the toy set.")
@click.option("--data", "data_file", type=click.Path(path_type=Path),
              help="Train on this CSV, Parquet or .npy table (rows = samples, >= 2 numeric "
                   "columns), a folder or quoted glob of Parquet/CSV shards of one table "
                   "(streamed from the files when large: see --stream), or on images: a "
                   ".npy of [N, H, W, C], a folder of PNG/JPEG files of one "
                   "size, or digits-images (scikit-learn's 8x8 digits).")
@click.option("--levels", type=click.IntRange(min=2),
              help="Images: the number of levels of float images (uint8 ones have 256).")
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
@click.option("--quiet", is_flag=True, help="No progress display (bar or plain lines).")
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
@click.option("--categorical", help="Columns of --data to model as categories (comma-"
              "separated names or 0-based positions), whatever their cells look like.")
@click.option("--numeric", help="Columns of --data to model as numbers (each cell must be one).")
@click.option("--ignore", help="Columns of --data to leave out.")
@click.option("--missing", type=click.Choice(("drop", "error")), default="drop",
              show_default=True, help="Rows of --data with a blank cell in a modelled column: "
              "leave them out (says how many), or refuse the file naming the first.")
@click.option("--stream", type=click.Choice(STREAM_MODES), default="auto", show_default=True,
              help="Stream --data from its files (one flow, numeric columns, one first pass "
                   "of statistics) instead of reading it into memory: auto does so above "
                   "512 MB as float64; recorded in the run.")
@click.option("--explain", is_flag=True,
              help="Print the settings the automatic choice makes for this data (--data or "
                   "the toy set) and why, then exit: nothing is trained or written.")
@config_options(FlowConfig, TrainConfig, auto=auto_lib.RULES)
@click.pass_context
def fit(ctx: click.Context, data_file: Path | None, run_dir: Path | None, resume: bool,
        drop_nonfinite: bool, dataset: str, num_points: int, noise: float, seed: int,
        strategy: str, quiet: bool, export_base: Path | None, plot: bool, tensorboard: bool,
        context_spec: str | None, categorical: str | None, numeric: str | None,
        ignore: str | None, missing: str, stream: str, explain: bool, levels: int | None,
        **options: Any) -> None:
    """Train a flow. With no arguments: two moons (3000 points, noise 0.05).

    Settings not given are chosen from the table's shape (options marked `auto` below;
    `--explain` shows the choice for your data) and recorded in the run's config.json;
    every option given wins. A --data table's column kinds are found from its cells
    (numbers, categories, IDs and blank or constant columns left out); with categorical
    columns the run models log P(categories) + log p(numbers | categories).
    """
    _check_arguments(resume, run_dir, strategy, context_spec, data_file)
    if not resume and not explain and images_cli.is_image_data(data_file):
        given = {k: v for k, v in options.items() if v is not None}
        images_cli.fit_images(data_file, run_dir, levels, quiet,
                              {**given, **({"seed": seed} if _seed_given(ctx) else {})},
                              _default_run_dir, export_base, PLOT_FILE if plot else None,
                              strategy)
        return
    if resume and run_dir is not None and images_cli.is_image_model(run_dir):
        images_cli.resume(run_dir, data_file, quiet,
                          {k: v for k, v in options.items() if v is not None}, strategy)
        return
    kinds_given = [f"--{k}" for k, v in (("categorical", categorical), ("numeric", numeric),
                                         ("ignore", ignore)) if v is not None]
    if kinds_given and (resume or data_file is None):
        raise click.UsageError(f"{kinds_given[0]} needs --data FILE (a new run; a resumed run "
                               "uses the kinds it recorded).")
    if explain:
        if resume:
            raise click.UsageError("--explain describes a new run; a resumed run keeps the "
                                   "settings in its config.json.")
        with reported_errors():
            _explain(data_file, drop_nonfinite, context_spec, dataset, num_points, noise,
                     seed, {"categorical": categorical, "numeric": numeric, "ignore": ignore,
                            "missing": missing},
                     {k: v for k, v in options.items() if v is not None}, stream)
        return
    with reported_errors():
        check_data_file(data_file, shards=True)
        distribution = start_tensorflow(strategy)
        if resume:
            changes = {k: v for k, v in options.items() if v is not None}
            if _seed_given(ctx):
                changes.update(seed=seed, mixing_seed=seed)
            result = _resume(run_dir, data_file, drop_nonfinite, distribution, quiet, changes,
                             tensorboard or None)
            data = None  # the plot reads the run's recorded data
        else:
            data, data_info, context, layout = _new_data(
                data_file, drop_nonfinite, context_spec, dataset, num_points, noise, seed,
                {"categorical": categorical, "numeric": numeric, "ignore": ignore,
                 "missing": missing}, stream)
            given = {k: v for k, v in options.items() if v is not None}
            seeds = {"seed": seed, "mixing_seed": seed} if _seed_given(ctx) else {}
            run_dir = run_dir or _default_run_dir(_source_name(data_info["source"]))
            with progress(given.get("epochs"), quiet, recorded_budget(run_dir),
                          recorded_wall_time(run_dir)) as on_epoch:
                result = tfp_realnvp.fit(data, run_dir, data_info=data_info,
                                         strategy=distribution, on_epoch=on_epoch,
                                         context=context, tensorboard=tensorboard,
                                         layout=layout, settings={**given, **seeds},
                                         given=sorted([*given, *(["seed"] if seeds else [])]),
                                         **_stream_options(data, context_spec, stream,
                                                           drop_nonfinite, categorical,
                                                           ignore, missing))
                data = _streamed_rows(result, data)
        if not result.chief:
            _report_worker(result)
            return
        if result.flow is None:
            _report_categorical(result)
            return
        metrics = tfp_realnvp.scoring.score_toy_run(result.run_dir, result.flow, result.metrics)
    _report_fit(result.run_dir, metrics)
    if result.model is not None:
        click.echo(f"categories: {_categories(result.model)}; held-out mass "
                   f"{result.metrics.get('categorical_cv_nll') or float('nan'):.4f} nats/row")
    if (result.run_dir / tfp_realnvp.summaries.TENSORBOARD_DIR).is_dir():
        click.echo(f"tensorboard: tensorboard --logdir "
                   f"{result.run_dir / tfp_realnvp.summaries.TENSORBOARD_DIR}")
    if plot:
        with reported_errors():
            plot_and_report(result.run_dir, None, data=data)
    if export_base is not None:
        export_and_report(result.run_dir, export_base, "realnvp", None)


def _check_arguments(resume: bool, run_dir: Path | None, strategy: str,
                     context_spec: str | None, data_file: Path | None) -> None:
    """The combinations of flags `fit` refuses (usage errors, exit 2)."""
    if resume and run_dir is None:
        raise click.UsageError("--resume needs --out RUN_DIR naming the run to continue.")
    if resume and strategy == "multiworker":
        raise click.UsageError("--resume runs in one process; resume a multi-worker run on "
                               "the chief with --strategy default or mirrored.")
    if context_spec is not None and (resume or data_file is None):
        raise click.UsageError(
            "--context-columns needs --data FILE (a new run; a resumed run uses the columns "
            "it recorded).")


def _explain(data_file: Path | None, drop_nonfinite: bool, context_spec: str | None,
             dataset: str, num_points: int, noise: float, seed: int, kinds: dict[str, Any],
             given: dict[str, Any], stream: str = "auto") -> None:
    """`fit --explain`: the table's shape and `auto.explain`'s lines, and whether it would
    be streamed; no TensorFlow, no files written."""
    check_data_file(data_file, shards=True)
    conditional = False
    streamed, why = (False, "") if data_file is None else \
        tfp_realnvp.firstpass.choose_input(data_file, stream)
    if streamed:
        explain_streamed(data_file, why, context_spec, kinds, given)
        return
    if data_file is None:
        rows = tfp_realnvp.tables.make_toy(dataset, num_points, noise, seed)
        source = f"{dataset} ({num_points} points, noise {noise:g})"
    else:
        table = read_training_rows(data_file, drop_nonfinite, context_spec, **kinds)
        rows, source = table.numeric, str(data_file)
        conditional = table.context is not None or table.codes.size > 0
    num_rows, dim = rows.shape
    if not dim:
        click.echo(f"{source}: all columns categorical; fit models their mass alone (no "
                   "flow, nothing to choose).")
        return
    click.echo(f"{source}: {num_rows} rows x {dim} numeric columns; fit would run "
               "(nothing is trained or written):")
    for line in auto_lib.explain(num_rows, dim, given, conditional=conditional):
        click.echo(f"  {line}")
    if why:
        click.echo(f"  input: {why}")


def _seed_given(ctx: click.Context) -> bool:
    """Whether the user gave --seed (on the command line or in --config's file)."""
    return ctx.get_parameter_source("seed") != click.core.ParameterSource.DEFAULT


def _new_data(data_file: Path | None, drop_nonfinite: bool, context_spec: str | None,
              dataset: str, num_points: int, noise: float, seed: int,
              kinds: dict[str, Any] | None = None, stream: str = "auto"):
    """A new run's (rows, data_info for config.json, context rows, TableLayout): --data
    read as a table (`tables.TableRows`: its kinds, context and blanks; the layout goes
    with it), or a toy set."""
    context, layout = None, None
    if data_file is not None:
        streamed, why = tfp_realnvp.firstpass.choose_input(data_file, stream)
        data_info = {"source": str(data_file), "input": "memory", "input_reason": why}
        if streamed:  # fit streams it from the files
            return str(data_file), {"source": str(data_file)}, None, None
        data = read_training_rows(data_file, drop_nonfinite, context_spec, **(kinds or {}))
    else:
        data = tfp_realnvp.tables.make_toy(dataset, num_points, noise, seed)
        data_info = {"source": dataset, "num_points": num_points, "noise": noise,
                     "seed": seed}
    return data, data_info, context, layout


def _source_name(source: str) -> str:
    """A run's default name from its data: a file's stem, a folder's or a glob's folder's
    name."""
    path = Path(source)
    if tfp_realnvp.tables.shards.is_shard_source(source):
        return path.name if path.is_dir() else path.parent.name or "shards"
    return path.stem


def _stream_options(data: Any, context_spec: str | None, stream: str, drop_nonfinite: bool,
                    categorical: str | None, ignore: str | None,
                    missing: str) -> dict[str, Any]:
    """`fit`'s table options for a table it streams (given as its path), else none."""
    if not isinstance(data, str):
        return {}
    return {"stream": stream, "context_columns": context_spec, "categorical": categorical,
            "ignore": ignore, "missing": missing, "drop_nonfinite": drop_nonfinite}


def _streamed_rows(result: Any, data: Any) -> Any:
    """The rows `--plot` draws beside the flow: a streamed run's saved sample of training
    rows (the table stays in its files), else `data`."""
    sample = Path(result.run_dir) / tfp_realnvp.firstpass.STREAM_DIR / "sample.npy"
    if not isinstance(data, str) or not sample.is_file():
        return data
    import numpy as np

    return np.load(sample)[:, :len(tfp_realnvp.rundir.RunDir(result.run_dir).read_config()
                                   .layout.events)]


def _default_run_dir(source: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{source}-{stamp}"


def _resume(run_dir: Path, data_file: Path | None, drop_nonfinite: bool, strategy: Any,
            quiet: bool, changes: dict[str, Any], tensorboard: bool | None = None):
    stored = tfp_realnvp.rundir.RunDir(run_dir).read_config()
    context = None
    if stored.data.get("input") == "stream":  # its saved first pass; the shards it names
        data = None if data_file is None else str(data_file)
    elif stored.flow is None or _has_categories(stored.layout):
        path = data_file if data_file is not None else stored.data.get("source")
        if path is None:
            raise DataError("The run records no data source; pass its table with --data.")
        data = tfp_realnvp.training.table_fit.resume_inputs(
            tfp_realnvp.rundir.RunDir(run_dir), stored, Path(path), drop_nonfinite)
        data, context = data
    elif stored.flow.context_dim:
        path = data_file if data_file is not None else stored.data.get("source")
        if path is None:
            raise DataError("The run records no data source; pass the training data with "
                            "--data.")
        table = read_table(Path(path), drop_nonfinite)
        data, context = tfp_realnvp.tables.split_like_training(
            table, tfp_realnvp.tables.read_header(path), stored.layout, str(path))
    else:
        data = tfp_realnvp.tables.recorded_data(stored.data) if data_file is None else \
            read_data(data_file, drop_nonfinite)[0]
    with progress(changes.get("epochs", stored.train.epochs), quiet,
                  recorded_budget(run_dir), recorded_wall_time(run_dir)) as on_epoch:
        return tfp_realnvp.resume(run_dir, data, strategy=strategy, on_epoch=on_epoch,
                                  context=context, tensorboard=tensorboard, **changes)


def _has_categories(layout: Any) -> bool:
    return layout is not None and any(c.kind == "categorical" for c in layout.columns)


def _report_fit(run_dir: Path, metrics: dict[str, Any]) -> None:
    click.echo(f"run directory: {run_dir}")
    stop = stop_text(metrics, _recorded_train(run_dir))
    click.echo(f"epochs: {metrics['epochs_run']} (best {metrics['best_epoch']}"
               f"{', ' + stop if stop else ''}), wall time {metrics['wall_time_s']:.1f} s")
    click.echo(f"best validation NLL: {metrics['best_validation_nll']:.4f} nats")
    if "test_nll" in metrics:
        click.echo(f"held-out test NLL: {metrics['test_nll']:.4f} nats "
                   f"({metrics['test_num_points']} fresh points; median "
                   f"{metrics['test_median']:.4f}, max {metrics['test_max']:.2f})")
    distilled = metrics.get("distilled")
    if distilled:
        click.echo(f"distilled: one student flow on {distilled['num_draws']:,} draws of the "
                   f"{distilled['members']} members in {distilled['wall_time_s']:.1f} s (NLL "
                   f"on the real rows {distilled['student_nll_real_rows']:.4f}, ensemble "
                   f"{distilled['ensemble_nll_real_rows']:.4f}); load and export serve it, "
                   "export --ensemble the ensemble")
    if metrics.get("num_workers", 1) > 1:
        click.echo(f"chief of {metrics['num_workers']} workers; weights sha256: "
                   f"{metrics['weights_sha256']}")


def stop_text(metrics: dict[str, Any], train: dict[str, Any]) -> str:
    """Why training stopped, from metrics.json's `stop_reason` (and the run's `train`
    settings for the numbers); a run older than `stop_reason`: its `stopped_early`."""
    reason = metrics.get("stop_reason")
    budget, patience = train.get("time_budget"), train.get("patience")
    texts = {
        "time_budget": "stopped by the time budget" + (f" ({budget:g} s)" if budget else ""),
        "patience": "stopped early: no better validation NLL for "
                    + (f"{patience} epochs (patience)" if patience else "--patience epochs"),
        "epochs": f"all {train.get('epochs', metrics.get('epochs_run'))} epochs done",
        "signal": "interrupted",
        "diverged": "diverged",
    }
    if reason is None:
        return "stopped early" if metrics.get("stopped_early") else ""
    return texts.get(reason, f"stopped: {reason}")


def _recorded_train(run_dir: Path) -> dict[str, Any]:
    """The run's `train` settings as config.json records them ({} if unreadable)."""
    try:
        return json.loads((run_dir / tfp_realnvp.rundir.CONFIG_FILE).read_text())["train"]
    except (OSError, ValueError, KeyError):
        return {}


def _categories(model: Any) -> str:
    vocabularies = model.vocabularies or []
    return ", ".join(f"{v.name} ({v.size} level{'s' if v.size != 1 else ''})"
                     for v in vocabularies)


def _report_categorical(result) -> None:
    """What `fit` says of an all-categorical table: its mass alone, no flow."""
    click.echo(f"run directory: {result.run_dir}")
    click.echo(f"all-categorical table: {_categories(result.model)}; modelled by its "
               "categories' mass alone (no flow)")
    score = result.metrics.get("categorical_cv_nll")
    if score is not None:
        click.echo(f"held-out mass: {score:.4f} nats/row (5-fold)")


def _report_worker(result) -> None:
    """What a non-chief worker of a multi-worker run says: the chief writes the run."""
    metrics = result.metrics
    click.echo(f"worker of {metrics['num_workers']}: trained {metrics['epochs_run']} epochs "
               f"(best validation NLL {metrics['best_validation_nll']:.4f} nats); the chief "
               f"writes the run directory {result.run_dir}")
    click.echo(f"weights sha256: {metrics['weights_sha256']}")
