"""What every command shares at run time: TensorFlow started quietly, errors, progress."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

import tfp_realnvp
from tfp_realnvp.cli.progress import BudgetSource, ProgressDisplay, WallTime
from tfp_realnvp.errors import TfpRealnvpError, TrainingDivergedError, TrainingInterruptedError

# What the CLI adds to a library error: the flags that fix it.
HINTS: dict[type[Exception], str] = {
    TrainingDivergedError: "Try a lower --learning-rate or --log-scale-bound.",
    TrainingInterruptedError: "Continue with: tfp-realnvp fit --out RUN_DIR --resume",
}


def start_tensorflow(strategy: str | None = None) -> Any:
    """Imports TensorFlow and initialises its devices with the process's stderr (the file
    descriptor, where its C++ code writes) pointed at /dev/null; returns the
    `tf.distribute` strategy named by `strategy` (None: none is made).

    TensorFlow 2.21 prints oneDNN, cudart and cuInit lines before its logging is
    configured, whatever TF_CPP_MIN_LOG_LEVEL says; a CLI user should see our output, not
    those. Python errors are unaffected: an import failure raises after stderr is back.
    Commands call this once their arguments and paths are checked; `--help`, `--version`
    and `info` never do. The strategy is made here, before the devices are initialised,
    because TensorFlow requires a MultiWorkerMirroredStrategy to exist before any other op
    runs in the process.
    """
    if "tensorflow" in sys.modules:
        return None if strategy is None else tfp_realnvp.training.make_strategy(strategy)
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        made = None if strategy is None else tfp_realnvp.training.make_strategy(strategy)
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


@contextlib.contextmanager
def progress(epochs: int | None, quiet: bool, budget: BudgetSource | None = None,
             wall_time: WallTime | None = None) -> Iterator[Callable[[Any], None]]:
    """A progress bar over `epochs` (hidden when `quiet`); yields the `on_epoch` callback
    (`cli/progress.py`'s `ProgressDisplay`) that moves it and shows the epoch's train and
    validation NLL, the elapsed time (resynchronised by `wall_time`) and the time left
    from `budget` and the steady epoch time (not click's per-epoch rate: the first epoch
    compiles), and prints plain lines when stdout is not a terminal. `epochs` None
    (chosen by `fit`): the length comes with the first epoch's record (`planned_epochs`)."""
    display = ProgressDisplay(epochs, budget=budget, quiet=quiet, wall_time=wall_time)
    unsized = None if epochs is not None else (item for item in ())  # no length known yet
    with click.progressbar(unsized, length=epochs, label="training", show_pos=True,
                           show_eta=False, hidden=quiet, item_show_func=lambda m: m,
                           file=display.stream) as bar:
        display.bar = bar
        try:
            yield display
        finally:
            display.close()
