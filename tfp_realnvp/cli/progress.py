"""The `fit` progress display: remaining time from the time budget and the steady epoch time."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click

Clock = Callable[[], float]
# first epoch of this session -> (time budget in seconds or None, seconds already spent)
BudgetSource = Callable[[int], "tuple[float | None, float]"]
# -> (epochs run, the loop's seconds after them) from the last metrics.json, or None
WallTime = Callable[[], "tuple[int, float] | None"]
PLAIN_LINE_SECONDS = 5.0  # a plain (not a terminal) display prints at most this often


@dataclasses.dataclass
class Estimate:
    """What is known of a run's time after each epoch, and the time it has left.

    With `d_1` this session's first epoch (it traces and compiles the step: left out),
    `s = mean(d_2, ..., d_k)` the steady epoch time, `E` the epochs planned and `B` the
    time budget (on the training loop's clock: `spent` before this session plus every
    epoch since), the loop ends at the first epoch end past `B` or after epoch `E`:

        remaining = s * min(E - k, ceil(max(B - elapsed, 0) / s))

    i.e. min(time left in the budget, epochs left x s), the budget rounded up to the
    whole epoch it ends in. Before `s` is known (one epoch seen) only the bound
    `B - elapsed` is known (`upper_bound`). An early stop on patience ends sooner. The
    loop's clock also counts its validation of the fresh flow before epoch 1 (a few
    seconds, unseen by the epochs): `resync` sets `elapsed` to the loop's own figure
    whenever the run's metrics.json gives one.
    """

    budget: float | None = None
    spent: float = 0.0
    planned: int | None = None
    epoch: int = 0
    durations: list[float] = dataclasses.field(default_factory=list)

    def add(self, epoch: int, seconds: float, planned: int | None) -> None:
        self.epoch, self.planned = epoch, planned or self.planned
        self.durations.append(max(seconds, 0.0))

    @property
    def elapsed(self) -> float:
        """Seconds on the budget's clock (the loop's own; the display's time not counted)."""
        return self.spent + sum(self.durations)

    def resync(self, elapsed: float) -> None:
        """Takes `elapsed` (the loop's clock, now) as the truth: `spent` absorbs the gap."""
        self.spent += elapsed - self.elapsed

    @property
    def steady(self) -> float | None:
        """The mean epoch time after this session's first (compiling) epoch."""
        steady = self.durations[1:]
        return sum(steady) / len(steady) if steady else None

    def upper_bound(self) -> float | None:
        """The time left in the budget (None: no budget)."""
        return None if self.budget is None else max(self.budget - self.elapsed, 0.0)

    def remaining(self) -> float | None:
        """The estimate of the docstring; None before the steady epoch time is known."""
        steady = self.steady
        if steady is None:
            return None
        epochs = math.inf if self.planned is None else max(self.planned - self.epoch, 0)
        if self.budget is not None:
            left = max(self.budget - self.elapsed, 0.0)
            epochs = min(epochs, math.ceil(left / steady) if steady > 0 else 0)
        return None if math.isinf(epochs) else epochs * steady


def clock_text(seconds: float) -> str:
    """`75.4` -> `1:15`; `3725` -> `1:02:05`."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressDisplay:
    """The `on_epoch` callback of `fit`. It moves `bar` (a click progress bar: on a
    terminal, one line rewritten each epoch, hidden with --quiet) and, when `stream` is
    not a terminal (CI logs, notebooks, CliRunner), prints one plain line at the first
    epoch, then at most every `interval` seconds, and the last epoch's at `close()`.
    Each shows the epoch, train and validation NLL, elapsed and the time left
    (`Estimate`), measured on `clock` and resynchronised by `wall_time` (the loop's
    figure after an epoch, where the run records one)."""

    def __init__(self, epochs: int | None = None, *, budget: BudgetSource | None = None,
                 stream: TextIO | None = None, tty: bool | None = None, quiet: bool = False,
                 clock: Clock = time.monotonic, interval: float = PLAIN_LINE_SECONDS,
                 bar: Any = None, wall_time: WallTime | None = None) -> None:
        self.stream = stream if stream is not None else click.get_text_stream("stdout")
        self.plain = not quiet and not (_isatty(self.stream) if tty is None else tty)
        self.clock, self.interval, self.budget, self.bar = clock, interval, budget, bar
        self.wall_time = wall_time
        self.estimate = Estimate(planned=epochs)
        self._last_exit: float | None = None  # clock when the previous call returned
        self._printed_at: float | None = None
        self._line, self._line_printed = "", False

    def __call__(self, record: Any) -> None:
        now = self.clock()
        if self._last_exit is None:  # the first epoch: the loop measured it
            seconds = record.seconds
            if self.budget is not None:
                self.estimate.budget, self.estimate.spent = self.budget(record.epoch)
        else:
            seconds = now - self._last_exit
        self.estimate.add(record.epoch, seconds, record.planned_epochs)
        recorded = self.wall_time() if self.wall_time is not None else None
        if recorded is not None and recorded[0] == record.epoch - 1:
            self.estimate.resync(recorded[1] + record.seconds)
        info = self.info(record)
        if self.bar is not None:
            self.bar.length = self.estimate.planned or self.bar.length
            self.bar.update(record.epoch - self.bar.pos, info)
        planned = f"/{self.estimate.planned}" if self.estimate.planned else ""
        self._line, self._line_printed = f"epoch {record.epoch}{planned}  {info}", False
        if self.plain and (self._printed_at is None or now - self._printed_at >= self.interval):
            self._emit(now)
        self._last_exit = self.clock()

    def info(self, record: Any) -> str:
        """`nll 1.234  val 1.301  0:04 elapsed, ~0:09 left`."""
        return (f"nll {record.train_nll:.3f}  val {record.validation_nll:.3f}  "
                f"{clock_text(self.estimate.elapsed)} elapsed, {self.left_text()} left")

    def left_text(self) -> str:
        """`~0:09`; before the steady epoch time is known `at most 0:27` (the budget's
        time left) or `?` (no budget)."""
        remaining, bound = self.estimate.remaining(), self.estimate.upper_bound()
        if remaining is not None:
            return f"~{clock_text(remaining)}"
        return "?" if bound is None else f"at most {clock_text(bound)}"

    def _emit(self, now: float) -> None:
        click.echo(self._line, file=self.stream)
        self._printed_at, self._line_printed = now, True

    def close(self) -> None:
        """Prints the last epoch's plain line if it was not printed."""
        if self.plain and self._line and not self._line_printed:
            self._emit(self.clock())


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def recorded_budget(run_dir: Path) -> BudgetSource:
    """A `BudgetSource` reading the run's config.json (its `time_budget`, written before
    the first epoch) and metrics.json (the seconds of the epochs before `first`, for a
    resumed run); (None, 0.0) where they cannot be read (a non-chief worker)."""
    def read(first: int) -> tuple[float | None, float]:
        try:
            budget = json.loads((run_dir / "config.json").read_text())["train"]["time_budget"]
        except (OSError, ValueError, KeyError, TypeError):
            return None, 0.0
        try:
            history = json.loads((run_dir / "metrics.json").read_text()).get("history", [])
            spent = sum(h["seconds"] for h in history if h["epoch"] < first)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            spent = 0.0
        return (None if budget is None else float(budget)), float(spent)

    return read



def recorded_wall_time(run_dir: Path) -> WallTime:
    """A `WallTime` reading the run's metrics.json (written at each checkpoint: epochs run
    and `wall_time_s` on the loop's clock); parsed again only when the file changed."""
    path = run_dir / "metrics.json"
    seen: dict[str, Any] = {"stamp": None, "value": None}

    def read() -> tuple[int, float] | None:
        try:
            stat = path.stat()
            if (stat.st_mtime_ns, stat.st_size) != seen["stamp"]:
                metrics = json.loads(path.read_text())
                seen["stamp"] = (stat.st_mtime_ns, stat.st_size)
                seen["value"] = (int(metrics["epochs_run"]), float(metrics["wall_time_s"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return seen["value"]

    return read
