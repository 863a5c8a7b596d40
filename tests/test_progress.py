"""The `fit` progress display and summary: time left within 2x of the truth on a fake
clock, plain lines when stdout is not a terminal, the real stop reason, `auto.given`."""

import io
import json
import types

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_FIT

from tfp_realnvp.cli import cli
from tfp_realnvp.cli.progress import ProgressDisplay, clock_text
from tfp_realnvp.cli.runtime import progress


class FakeClock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(epoch: int, seconds: float, planned: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(epoch=epoch, train_nll=1.5, validation_nll=1.6,
                                 seconds=seconds, planned_epochs=planned)


def simulate(planned, budget, first, steady, jitter=0.3, seed=0, interval=5.0):
    """Drives a display as the epoch loop does (its stop rules): each epoch takes `first`
    (compiling) then `steady` x U(1 +- jitter) seconds on a fake clock. Returns
    (elapsed, estimate, upper bound) after each epoch, the run's total time and the
    display's output."""
    rng = np.random.default_rng(seed)
    clock, out = FakeClock(), io.StringIO()
    display = ProgressDisplay(None, budget=lambda first_epoch: (budget, 0.0), stream=out,
                              tty=False, clock=clock, interval=interval)
    elapsed, rows = 0.0, []
    for epoch in range(1, planned + 1):
        seconds = first if epoch == 1 else steady * rng.uniform(1 - jitter, 1 + jitter)
        clock.now += seconds
        elapsed += seconds
        display(record(epoch, seconds, planned))
        rows.append((elapsed, display.estimate.remaining(), display.estimate.upper_bound()))
        if budget is not None and elapsed > budget:
            break
    display.close()
    return rows, elapsed, out.getvalue()


@pytest.mark.parametrize("planned, budget, first, steady", [
    (300, 35.0, 8.0, 0.2),     # moons: the budget ends it at epoch ~135
    (300, 35.0, 8.0, 0.05),    # all 300 epochs inside the budget
    (400, 45.0, 2.0, 1.5),     # a table: the budget ends it at epoch ~30
    (50, None, 3.0, 1.0),      # no budget
    (2000, 60.0, 20.0, 0.01),  # compiling takes a third of the run
])
def test_time_left_is_within_twice_the_truth_after_a_tenth_of_the_run(planned, budget,
                                                                      first, steady):
    rows, total, _ = simulate(planned, budget, first, steady)
    for index, (elapsed, estimate, bound) in enumerate(rows):
        truth = total - elapsed
        if bound is not None:  # an upper bound, but for the last epoch's overrun
            assert truth <= bound + steady * 1.31
        if elapsed < total / 10:
            continue
        if estimate is None:  # only after the compiling epoch; the budget bounds it
            assert index == 0
            continue
        if truth == 0:
            assert estimate == 0
        else:
            assert truth / 2 <= estimate <= 2 * truth, (index, elapsed, estimate, truth)


def test_the_old_per_item_rate_was_far_off_and_this_one_is_not():
    # click's bar: elapsed / items done x items left; after epoch 1 of the moons run
    # (8 s compiling, 300 epochs) it said 299 x 8 s = 40 minutes for a run of 35 s.
    rows, total, _ = simulate(300, 35.0, 8.0, 0.2)
    assert 60 * (total - rows[0][0]) < 299 * 8.0  # more than 60 times the truth
    elapsed, estimate, bound = rows[1]
    assert estimate == pytest.approx(total - elapsed, rel=0.5)


def test_plain_output_prints_a_line_every_few_seconds_and_the_last_epoch():
    rows, total, output = simulate(300, 35.0, 8.0, 0.2, interval=5.0)
    lines = output.splitlines()
    assert lines[0].startswith("epoch 1/300  nll 1.500  val 1.600  0:08 elapsed, at most")
    assert lines[-1].startswith(f"epoch {len(rows)}/300 ") and lines[-1].endswith("~0:00 left")
    assert total / 5.0 - 2 <= len(lines) <= total / 5.0 + 2  # one per 5 s, not per epoch
    assert "\r" not in output


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_moves_one_bar_and_prints_no_plain_lines():
    clock, out = FakeClock(), Terminal()
    display = ProgressDisplay(None, stream=out, clock=clock)
    with click.progressbar(None, length=1, label="training", show_pos=True, show_eta=False,
                           item_show_func=lambda m: m, file=out) as bar:
        display.bar = bar
        for epoch in (1, 2, 3):
            clock.now += 1.0
            display(record(epoch, 1.0, 10))
        display.close()
    text = out.getvalue()
    assert bar.length == 10 and bar.pos == 3  # the length came with the first record
    assert "3/10" in text and "nll 1.500  val 1.600  0:03 elapsed, ~0:07 left" in text
    assert "epoch " not in text  # no plain lines on a terminal


def test_quiet_prints_nothing(capsys):
    with progress(10, quiet=True) as on_epoch:
        on_epoch(record(1, 1.0, 10))
    assert capsys.readouterr().out == ""


def test_plain_lines_when_stdout_is_not_a_terminal(capsys):
    with progress(None, quiet=False, budget=lambda first: (30.0, 0.0)) as on_epoch:
        on_epoch(record(1, 2.0, 10))
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["training", "epoch 1/10  nll 1.500  val 1.600  0:02 elapsed, at most "
                                 "0:28 left"]


def test_clock_text():
    assert (clock_text(75.4), clock_text(3725), clock_text(0)) == ("1:15", "1:02:05", "0:00")


def test_fit_shows_progress_names_the_stop_and_records_only_what_was_given(tmp_path):
    budget = TINY_FIT.index("--time-budget")  # left to auto here: its reason is recorded
    args = [a for a in TINY_FIT[:budget] + TINY_FIT[budget + 2:] if a != "--quiet"]
    result = CliRunner().invoke(cli, ["fit", "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "training"
    assert lines[1].startswith("epoch 1/3  nll ")
    assert any(line.startswith("epoch 3/3  nll ") and line.endswith("~0:00 left")
               for line in lines)
    assert "epochs: 3 (best " in result.output and "all 3 epochs done" in result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["auto"]["given"] == ["batch_size", "coupling", "ensemble_size", "epochs",
                                       "hidden_units", "jit_compile", "num_couplings"]
    assert "coupling" not in config["auto"]["reasons"]  # given: auto's reason is not why
    assert "time_budget" in config["auto"]["reasons"]


@pytest.mark.parametrize("reason, expected", [
    ("time_budget", "stopped by the time budget (35 s)"),
    ("patience", "stopped early: no better validation NLL for 100 epochs (patience)"),
    ("epochs", "all 300 epochs done"),
    ("signal", "interrupted"),
    ("diverged", "diverged"),
])
def test_the_summary_names_the_stop_reason(reason, expected):
    from tfp_realnvp.cli.fit import stop_text

    train = {"time_budget": 35.0, "patience": 100, "epochs": 300}
    metrics = {"stop_reason": reason, "stopped_early": reason in ("patience", "time_budget")}
    assert stop_text(metrics, train) == expected


def test_a_run_older_than_stop_reason_keeps_its_summary():
    from tfp_realnvp.cli.fit import stop_text

    assert stop_text({"stopped_early": True}, {}) == "stopped early"
    assert stop_text({"stopped_early": False}, {}) == ""


def test_the_loops_recorded_wall_time_resynchronises_elapsed():
    # The loop validated the fresh flow for 3 s before epoch 1; its metrics.json after
    # epoch 2 says 3 + 5 + 1 = 9 s: from epoch 3 on the display counts from there.
    clock, recorded = FakeClock(), {"value": None}
    display = ProgressDisplay(None, budget=lambda first: (20.0, 0.0), stream=io.StringIO(),
                              tty=False, clock=clock, wall_time=lambda: recorded["value"])
    for epoch, seconds in ((1, 5.0), (2, 1.0), (3, 1.0)):
        clock.now += seconds
        display(record(epoch, seconds, 100))
        if epoch == 2:
            assert display.estimate.elapsed == pytest.approx(6.0)
            recorded["value"] = (2, 9.0)
    assert display.estimate.elapsed == pytest.approx(10.0)
    assert display.estimate.remaining() == pytest.approx(10.0)  # 20 s budget: 10 epochs


def test_recorded_wall_time_reads_metrics_json(tmp_path):
    from tfp_realnvp.cli.progress import recorded_budget, recorded_wall_time

    read = recorded_wall_time(tmp_path)
    assert read() is None
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"epochs_run": 25, "wall_time_s": 12.5, "history": [
            {"epoch": e, "seconds": 0.5} for e in range(1, 26)]}))
    assert read() == (25, 12.5)
    (tmp_path / "config.json").write_text(json.dumps({"train": {"time_budget": 35.0}}))
    assert recorded_budget(tmp_path)(11) == (35.0, 5.0)  # a resumed run: 10 epochs spent
