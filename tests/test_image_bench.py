"""`bench images`: the image model on bench quality's digits rows, in that table's units."""

import numpy as np
import pytest
from click.testing import CliRunner

from tfp_realnvp.cli import cli as main


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
