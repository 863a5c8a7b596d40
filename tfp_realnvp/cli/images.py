"""The CLI's image models: `fit --data` of images (and `--resume`), and `sample`, `evaluate`,
`plot`, `export`, `info` of an image run or export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from tfp_realnvp.cli.progress import recorded_budget, recorded_wall_time
from tfp_realnvp.cli.runtime import progress, reported_errors, start_tensorflow
from tfp_realnvp.errors import DataError
from tfp_realnvp.images import data as data_lib
from tfp_realnvp.images import runs
from tfp_realnvp.images.config import bits_per_dim

SAMPLE_SUFFIXES = (".png", ".npy")
EVALUATE_SEED = 0  # the dequantisation noise of `evaluate`: the same score on every call


def is_image_data(data_file: Path | None) -> bool:
    """Whether `fit --data` names images (a folder, a rank-4 .npy, or `digits-images`)."""
    return data_file is not None and data_lib.is_image_source(data_file)


def is_image_model(path: Path) -> bool:
    """Whether `path` is an image run or an image export."""
    return runs.is_image_model(path)


def check_strategy(strategy: str) -> None:
    """Image runs train under `default` or `mirrored`; `multiworker` is refused (usage)."""
    if strategy == "multiworker":
        raise click.UsageError("--strategy multiworker trains tables only; train an image "
                               "model with --strategy default or mirrored (every local GPU "
                               "or CPU).")


def fit_images(data_file: Path, run_dir: Path | None, levels: int | None, quiet: bool,
               settings: dict[str, Any], default_run_dir,
               export_base: Path | None = None, plot_file: str | None = None,
               strategy: str = "default") -> None:
    """`fit --data IMAGES`: reads them, trains the default image flow (options given win)
    under `strategy`, reports nats per image and bits/dim of the validation images (then
    draws the run into RUN_DIR/`plot_file` with `--plot`, exports it to
    EXPORT/realnvp/<next version> with `--export`)."""
    check_strategy(strategy)
    with reported_errors():
        images, count, data_info = data_lib.read_images(data_file, levels)
        distribution = start_tensorflow(strategy)
        from tfp_realnvp.images.train import fit_images as fit

        run_dir = run_dir or default_run_dir(Path(str(data_file)).stem)
        with progress(settings.get("epochs"), quiet, recorded_budget(run_dir),
                      recorded_wall_time(run_dir)) as on_epoch:
            result = fit(images, count, run_dir, data_info=data_info, on_epoch=on_epoch,
                         settings=settings, strategy=distribution)
    metrics = result.metrics
    dims = int(np.prod(images.shape[1:]))
    click.echo(f"run directory: {result.run_dir}")
    click.echo(f"image model: {len(images)} images of {list(images.shape[1:])}, {count} "
               f"levels; epochs: {metrics['epochs_run']} (best {metrics['best_epoch']}, "
               f"stopped by {metrics['stop_reason']}), wall time {metrics['wall_time_s']:.1f} s")
    nll = metrics["best_validation_nll"]
    click.echo(f"best validation NLL: {nll:.4f} nats per image, "
               f"{bits_per_dim(nll, dims):.4f} bits/dim")
    if plot_file is not None:
        plot(result.run_dir, result.run_dir / plot_file, None, 0)
    if export_base is not None:
        export(result.run_dir, export_base, "realnvp", None)


def plot(model_dir: Path, output: Path, data_file: Path | None, seed: int) -> None:
    """`plot` of an image model: data, samples, each scale's latents, the NLL history."""
    from tfp_realnvp.rundir import RunDir

    with reported_errors():
        config = runs.read_image_config(model_dir)
        if data_file is None and not runs.is_image_run(model_dir):
            raise click.UsageError("An export does not hold its images: pass them with "
                                   "--data.")
        if data_file is None:
            data_file = Path(RunDir(model_dir).read_config().data["source"])
        images, _, _ = data_lib.read_images(data_file, config.levels)
        flow, _ = _load(model_dir)
        from tfp_realnvp.images.plots import plot_image_model
        from tfp_realnvp.plots import save_png

        metrics = RunDir(model_dir).read_metrics() if runs.is_image_run(model_dir) else None
        save_png(plot_image_model(flow, config, images, metrics, seed, title=str(model_dir)),
                 output)
    click.echo(f"figure: {output}")


def resume(run_dir: Path, data_file: Path | None, quiet: bool,
           changes: dict[str, Any], strategy: str = "default") -> None:
    """`fit --resume` of an image run: its own images (recorded source, or --data), under
    `strategy`."""
    check_strategy(strategy)
    with reported_errors():
        from tfp_realnvp.rundir import RunDir

        config = runs.read_image_config(run_dir)
        source = data_file or RunDir(run_dir).read_config().data.get("source")
        if source is None:
            raise DataError(f"{run_dir} records no image source; pass its images with --data.")
        images, _, _ = data_lib.read_images(source, config.levels)
        distribution = start_tensorflow(strategy)
        from tfp_realnvp.images.train import resume_images

        with progress(changes.get("epochs"), quiet, recorded_budget(run_dir),
                      recorded_wall_time(run_dir)) as on_epoch:
            result = resume_images(run_dir, images, on_epoch=on_epoch, strategy=distribution,
                                   **changes)
    metrics = result.metrics
    click.echo(f"run directory: {result.run_dir}")
    click.echo(f"epochs: {metrics['epochs_run']} (best {metrics['best_epoch']}, stopped by "
               f"{metrics['stop_reason']}); best validation NLL: "
               f"{metrics['best_validation_nll']:.4f} nats per image, "
               f"{bits_per_dim(metrics['best_validation_nll'], config.dims):.4f} bits/dim")


def export(source: Path, base_dir: Path, name: str, version: int | None) -> None:
    """`export` of an image run: the SavedModel with its image signatures."""
    with reported_errors():
        start_tensorflow()
        from tfp_realnvp.images.serving import export_images

        target = export_images(source, base_dir, name=name, version=version)
    click.echo(f"exported SavedModel: {target}")


def _load(model_dir: Path):
    """(flow, config) of an image run or export."""
    start_tensorflow()
    from tfp_realnvp.loading import load

    return load(model_dir), runs.read_image_config(model_dir)


def sample(model_dir: Path, num_samples: int, seed: int, output: Path | None,
           temperature: float) -> None:
    """`sample` of an image model: a PNG grid or a .npy of images in level units."""
    if output is None or output.suffix.lower() not in SAMPLE_SUFFIXES:
        raise click.UsageError("An image model writes its samples to -o FILE.png (a grid) or "
                               "-o FILE.npy ([N, H, W, C], level units).")
    with reported_errors():
        flow, config = _load(model_dir)
        import tensorflow as tf

        from tfp_realnvp.images.model import sample_images

        images = sample_images(flow, num_samples, tf.constant([seed, 0], tf.int32),
                               temperature).numpy()
    if output.suffix.lower() == ".npy":
        np.save(output, images)
    else:
        data_lib.write_png_grid(images, config.levels, output, zoom=max(1, 32 // config.width))
    click.echo(f"wrote {num_samples} images (temperature {temperature:g}) to {output}",
               err=True)


def evaluate(model_dir: Path, data_file: Path, as_json: bool) -> None:
    """`evaluate` of an image model: nats per image and bits/dim of the discrete images,
    dequantised once with seeded U(0, 1) noise."""
    with reported_errors():
        config = runs.read_image_config(model_dir)
        images, count, _ = data_lib.read_images(data_file, config.levels)
        if tuple(images.shape[1:]) != config.shape or count != config.levels:
            raise DataError(f"{data_file}: images of {list(images.shape[1:])} with {count} "
                            f"levels; the model expects [N, {', '.join(map(str, config.shape))}]"
                            f" with {config.levels} levels.")
        flow, _ = _load(model_dir)
        from tfp_realnvp.images.train import dequantized
        from tfp_realnvp.scoring import summarise

        values = dequantized(images, EVALUATE_SEED)
        nll = np.concatenate([-flow.log_prob(values[i:i + 256]).numpy()
                              for i in range(0, len(values), 256)])
    summary = summarise(nll, config.dims)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"NLL {summary['nll']:.4f} nats per image, {summary['bits_per_dim']:.4f} "
                   f"bits/dim over {summary['n']} images (median {summary['median']:.4f}, "
                   f"max {summary['max']:.4f})")


def info(path: Path, as_json: bool) -> None:
    """`info` of an image run or export: the model's kind, image shape, levels,
    architecture, metrics (no TensorFlow)."""
    from tfp_realnvp.info import METRIC_KEYS
    from tfp_realnvp.rundir import ASSETS_EXTRA, METRICS_FILE, RunDir

    with reported_errors():
        config = runs.read_image_config(path)
        summary = {"kind": "run", "model": "image", "path": str(path),
                   "image_shape": list(config.shape), "levels": config.levels,
                   "image": config.to_dict()}
        if runs.is_image_run(path):
            run = RunDir(path)
            stored = run.read_config()
            metrics = run.read_metrics()
            summary.update(train=stored.train.to_dict(), data=stored.data, auto=stored.auto)
        else:
            version_dir = runs.image_export_dir(path)
            file = version_dir / ASSETS_EXTRA / METRICS_FILE
            metrics = json.loads(file.read_text()) if file.is_file() else {}
            export_info = json.loads((version_dir / ASSETS_EXTRA / "export_info.json")
                                     .read_text())
            summary.update(kind="export", path=str(version_dir),
                           signatures=export_info.get("signatures"))
        summary["metrics"] = {k: metrics[k] for k in METRIC_KEYS if k in metrics} or None
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    best = summary["metrics"] and summary["metrics"].get("best_validation_nll")
    click.echo(f"image model (RealNVP multi-scale) {summary['kind']}: {summary['path']}")
    click.echo(f"images: {config.height}x{config.width}x{config.channels}, {config.levels} "
               f"levels; {config.num_scales} scales, {config.filters} filters, "
               f"{config.num_blocks} residual block(s)")
    if "signatures" in summary:
        click.echo(f"signatures: {', '.join(summary['signatures'] or [])}")
    if best is not None:
        click.echo(f"best validation NLL: {best:.4f} nats per image, "
                   f"{bits_per_dim(best, config.dims):.4f} bits/dim")
