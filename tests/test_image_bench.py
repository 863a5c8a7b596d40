"""`bench images` (the image model on bench quality's digits rows, in that table's units) and
the image step of `bench speed --images`."""

import numpy as np
import pytest
from click.testing import CliRunner

from tfp_realnvp.bench.image_speed import GPU_SPEEDUP, image_speed_configs, run_image_speed
from tfp_realnvp.bench.report import format_report
from tfp_realnvp.cli import cli as main
from tfp_realnvp.images.config import ImageConfig


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_bench_images_scores_the_digits_test_rows():
    result = invoke("bench", "images", "--max-epochs", 1)
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()[-2:]
    assert header.split() == ["seed", "nats/image", "bits/dim", "epochs", "seconds"]
    seed, nats, bits, epochs, _ = row.split()
    assert (seed, epochs) == ("0", "1")
    # one epoch (22 steps) learns: the fresh flow scores about 172, a trained one about 90
    assert 80 < float(nats) < 165
    assert float(bits) == pytest.approx(float(nats) / (64 * np.log(2)), abs=2e-3)


def test_bench_speed_images_figures_are_measured_and_positive_on_a_tiny_config():
    """`bench speed --images`' measure (the CLI runs it at 32x32x3, minutes on a CPU: too
    long for a test) on a one-coupling 4x4 model: images/s, the CIFAR-10 estimate, the
    report's table."""
    tiny = ImageConfig(height=4, width=4, channels=1, num_scales=1, last_checkerboard=1,
                       filters=2, num_blocks=0, actnorm=False)
    records = run_image_speed({"tiny": tiny}, batch_size=2, steps=1)
    [record] = records
    assert record["name"] == "tiny" and record["loss_finite"]
    assert (record["batch_size"], record["timed_steps"]) == (2, 1)
    for key in ("images_per_s", "step_s", "warm_up_s", "parameters"):
        assert record[key] > 0, key
    assert record["images_per_s"] == pytest.approx(2 / record["step_s"])
    estimate = record["cifar10"]
    assert (estimate["epochs"], estimate["steps"]) == (100, 100 * 50_000 // 64)
    assert estimate["cpu_hours"] == pytest.approx(100 * 50_000 / record["images_per_s"] / 3600)
    assert estimate["gpu_hours"] == pytest.approx(estimate["cpu_hours"] / GPU_SPEEDUP)
    report = format_report({"device": "cpu", "tensorflow": "2.x", "options": {},
                            "machine_matmul_gflops": 125.0, "images": records})
    assert "GPU hours assume a 50x speed-up over this CPU, not measured" in report
    assert "| tiny | 1 | 2 x 0 |" in report
    configs = image_speed_configs()
    assert [c.shape for c in configs.values()] == [(32, 32, 3)] * 2
    paper, default = configs["paper"], configs["default"]
    assert (paper.num_scales, paper.filters, paper.num_blocks) == (2, 64, 8)
    assert (default.num_scales, default.filters, default.num_blocks) == (4, 64, 2)
    assert "--images / --no-images" in invoke("bench", "speed", "--help").output
