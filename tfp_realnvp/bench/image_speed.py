"""Images per second of the image model's training step at CIFAR-10's shape (32x32x3), for
the paper's CIFAR-10 architecture and this package's default one, and what a CIFAR-10 run
needs from that figure (on this machine, and on a GPU at a stated speed-up).

Each figure is the package's own training step (`ImageTrainer`: dequantise, the mean NLL's
gradients, clipped AdamW) on synthetic 8-bit images: one epoch of `steps` steps to trace
and warm up, then one more timed, so it is a measure of steady training, not of tracing.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tfp_realnvp.images.config import ImageConfig, choose

CIFAR_SHAPE = (32, 32, 3)
CIFAR_IMAGES = 50_000
CIFAR_LEVELS = 256
CIFAR_BATCH = 64  # the paper's batch size
# The run a CIFAR-10 estimate counts: the paper states no epoch count, so this is ours.
CIFAR_EPOCHS = 100
# The assumption behind every GPU figure: a V100-class GPU (15.7 TFLOP/s float32) is 125x
# this 2-core CPU's measured 125 GFLOP/s of matmul; we assume it keeps 40% of that on
# these small 3x3 convolutions, a 50x speed-up. No GPU is measured here.
GPU_SPEEDUP = 50.0


def image_speed_configs(shape: tuple[int, int, int] = CIFAR_SHAPE,
                        count: int = CIFAR_IMAGES,
                        levels: int = CIFAR_LEVELS) -> dict[str, ImageConfig]:
    """The two architectures measured at `shape`: `paper` (Dinh et al. 2017, section 4.1,
    CIFAR-10: 8 residual blocks of 64 feature maps, downscaling once: 2 scales) and
    `default` (what `fit` chooses for `count` images of `shape`)."""
    default, _ = choose(shape, count, levels)
    return {"paper": default.replace(num_scales=2, filters=64, num_blocks=8),
            "default": default}


def image_step_speed(config: ImageConfig, batch_size: int = 8, steps: int = 2,
                     seed: int = 0) -> dict[str, Any]:
    """Images/s of the training step of `config`'s flow at `batch_size`: `steps` steps
    traced and run once, then `steps` more timed. Returns the figures of one record."""
    import tensorflow as tf

    from tfp_realnvp.config import TrainConfig
    from tfp_realnvp.images.train import ImageTrainer, prepare_images

    train = TrainConfig(batch_size=batch_size, max_steps_per_epoch=steps, seed=seed,
                        validation_fraction=0.1)
    count = max(10, 2 * batch_size * steps)  # 90% for training: `steps` full batches
    levels = np.random.default_rng(seed).integers(
        0, config.levels, size=(count, *config.shape)).astype(np.float32)
    start = time.perf_counter()
    trainer = ImageTrainer(config, train, prepare_images(levels, train),
                           tf.distribute.get_strategy())
    iterator = trainer.dataset_iterator(0)
    loss, _ = trainer.train_epoch(iterator)
    warm_up = time.perf_counter() - start
    tick = time.perf_counter()
    loss, _ = trainer.train_epoch(iterator)
    float(loss)  # waits for the steps
    seconds = time.perf_counter() - tick
    images = trainer.global_batch * trainer.steps_per_epoch
    return {"shape": list(config.shape), "num_scales": config.num_scales,
            "filters": config.filters, "num_blocks": config.num_blocks,
            "parameters": int(sum(np.prod(v.shape) for v in trainer.variables)),
            "batch_size": trainer.global_batch, "timed_steps": trainer.steps_per_epoch,
            "images_per_s": images / seconds, "step_s": seconds / trainer.steps_per_epoch,
            "warm_up_s": warm_up, "loss_finite": bool(np.isfinite(float(loss)))}


def cifar_estimate(images_per_s: float, epochs: int = CIFAR_EPOCHS,
                   speedup: float = GPU_SPEEDUP) -> dict[str, Any]:
    """What `epochs` epochs of CIFAR-10 (50,000 images, batches of 64) take at
    `images_per_s` here, and on a GPU `speedup` times faster."""
    steps = epochs * CIFAR_IMAGES // CIFAR_BATCH
    cpu_hours = epochs * CIFAR_IMAGES / images_per_s / 3600
    return {"epochs": epochs, "steps": steps, "batch_size": CIFAR_BATCH,
            "cpu_hours": cpu_hours, "gpu_speedup_assumed": speedup,
            "gpu_hours": cpu_hours / speedup}


def run_image_speed(configs: dict[str, ImageConfig] | None = None, batch_size: int = 8,
                    steps: int = 2) -> list[dict[str, Any]]:
    """One record per architecture (default: `image_speed_configs()`): its step's
    images/s here and the CIFAR-10 estimate it gives."""
    records = []
    for name, config in (configs or image_speed_configs()).items():
        record = {"name": name, **image_step_speed(config, batch_size, steps)}
        record["cifar10"] = cifar_estimate(record["images_per_s"])
        records.append(record)
    return records


def format_image_speed(records: list[dict[str, Any]]) -> list[str]:
    """The report's lines for `run_image_speed`'s records (a Markdown table)."""
    if not records:
        return []
    estimate = records[0]["cifar10"]
    lines = ["", f"Image model training step at {'x'.join(map(str, records[0]['shape']))} "
             f"(CIFAR-10 run: {estimate['epochs']} epochs = {estimate['steps']:,} steps of "
             f"{estimate['batch_size']}; GPU hours assume a {estimate['gpu_speedup_assumed']:g}x"
             " speed-up over this CPU, not measured):", "",
             "| architecture | scales | filters x blocks | parameters | batch | images/s | "
             "warm-up s | CIFAR-10 CPU h | CIFAR-10 GPU h |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in records:
        lines.append(f"| {r['name']} | {r['num_scales']} | {r['filters']} x {r['num_blocks']} "
                     f"| {r['parameters']:,} | {r['batch_size']} | {r['images_per_s']:.1f} | "
                     f"{r['warm_up_s']:.1f} | {r['cifar10']['cpu_hours']:,.0f} | "
                     f"{r['cifar10']['gpu_hours']:,.1f} |")
    return lines
