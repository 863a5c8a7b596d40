"""The `tfp-realnvp` command line: a thin click layer over the library.

The options that build a `FlowConfig` or `TrainConfig` are generated from the dataclass
fields (their `Setting` metadata, `options.py`), and every choice list is the library's own
constant, so the CLI cannot drift from the library. Library errors (`TfpRealnvpError`) are
reported as one line and exit code 1; anything else is a bug and keeps its traceback.
TensorFlow is imported only by a command that needs it, once its arguments and paths are
checked (`runtime.start_tensorflow`): `--help`, `--version` and `info` never load it.

Modules: `fit` (train, resume), `model` (sample, evaluate, export, plot, info), `bench`
(the benchmarks), `options`, `runtime`, `tables` (reading the data files), `images` (the
same commands for image models).
"""

from __future__ import annotations

import os

import click

import tfp_realnvp
from tfp_realnvp.cli.bench import bench
from tfp_realnvp.cli.fit import fit
from tfp_realnvp.cli.model import evaluate, export, info, plot, sample

__all__ = ["cli", "main"]


@click.group()
@click.version_option(tfp_realnvp.__version__, prog_name="tfp-realnvp")
def cli() -> None:
    """RealNVP normalizing flows on TensorFlow Probability: fit, sample, evaluate, export."""


for _command in (fit, export, sample, evaluate, plot, info, bench):
    cli.add_command(_command)


def main() -> None:
    """Console entry point: quiets TensorFlow's C++ start-up logging, then runs the CLI."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli()
