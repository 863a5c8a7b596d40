"""The learning-rate schedule: Keras' cosine decay when every epoch runs, and a decay that
ends when a binding time budget ends (a fake clock makes the budget deterministic)."""

import json
import math

import numpy as np
import pytest
import tf_keras

from tfp_realnvp import FlowConfig, TrainConfig
from tfp_realnvp import schedule as schedule_lib
from tfp_realnvp import training as train_lib
from tfp_realnvp.tables import make_toy
from tfp_realnvp.training import loop as loop_lib

PEAK = 5e-3


def run_segments(epochs: int, steps: int, epochs_left_at) -> list[float]:
    """Learning rates of every step when the loop asks `epochs_left_at(epoch)`."""
    schedule = schedule_lib.SegmentedCosine(PEAK, steps)
    rates, step = [], 0
    for epoch in range(1, epochs + 1):
        start = schedule.segment_end
        schedule.set_segment(start, schedule_lib.next_segment(start, epochs_left_at(epoch)))
        for _ in range(steps):
            rates.append(float(schedule(step)))
            step += 1
    return rates


def test_without_a_binding_budget_it_is_keras_cosine_decay():
    epochs, steps = 12, 7
    keras = tf_keras.optimizers.schedules.CosineDecay(
        PEAK, decay_steps=epochs * steps, alpha=schedule_lib.FINAL_FRACTION)
    rates = run_segments(epochs, steps, lambda e: schedule_lib.epochs_left(e, epochs))
    expected = [float(keras(step)) for step in range(epochs * steps)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)  # Keras computes in float32


def test_a_binding_budget_spreads_the_rest_of_the_decay_over_the_epochs_it_holds():
    # 1 s per epoch, 10 s of budget, 100 epochs asked for: 10 epochs run.
    rates = run_segments(10, 4, lambda e: schedule_lib.epochs_left(
        e, 100, elapsed=e - 1.0, budget=10.0, epoch_seconds=1.0))
    assert rates[0] == pytest.approx(PEAK)
    assert np.all(np.diff(rates) < 0)
    assert rates[-1] == pytest.approx(schedule_lib.cosine(PEAK, 1.0 - 1 / 40), rel=1e-6)
    # A plain cosine over 100 epochs would still be at 97.6% of its peak after 10.
    assert schedule_lib.cosine(PEAK, 10 / 100) > 0.97 * PEAK


def test_epochs_left_takes_the_smaller_of_the_count_and_the_budget():
    assert schedule_lib.epochs_left(1, 300) == 300
    assert schedule_lib.epochs_left(11, 300, 5.0, 35.0, None) == 290  # nothing measured yet
    assert schedule_lib.epochs_left(11, 300, 5.0, 35.0, 0.5) == pytest.approx(60.0)
    assert schedule_lib.epochs_left(11, 300, 40.0, 35.0, 0.5) == 0.0
    assert schedule_lib.next_segment(0.5, 0.0) == 1.0  # out of time: the bottom of the curve


class FakeClock:
    """`time.perf_counter` advancing by a fixed tick per call: epochs of fixed length."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now

    def __getattr__(self, name):  # anything else: the real time module
        import time
        return getattr(time, name)


def test_fit_under_a_binding_budget_ends_at_the_bottom_of_the_decay(tmp_path, monkeypatch):
    monkeypatch.setattr(loop_lib, "time", FakeClock(0.01))
    data = make_toy("moons", 400, 0.05, seed=0)
    config = TrainConfig(epochs=1000, batch_size=100, learning_rate=PEAK,
                         patience=1000, time_budget=2.0, checkpoint_every=1000)
    result = train_lib.fit(data, tmp_path / "run",
                           FlowConfig(num_couplings=2, hidden_units=8, num_hidden_layers=1),
                           config)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert result.metrics["stop_reason"] == "time_budget"
    assert 20 < len(history) < 200, len(history)  # the budget, not the 1,000 epochs, ended it
    rates = [h["learning_rate"] for h in history]
    assert np.all(np.diff(rates) <= 1e-9)
    assert rates[0] > 0.95 * PEAK
    # Within one epoch of the end of the curve: a plain cosine over 1,000 epochs would be
    # above 90% of its peak here.
    assert rates[-1] < 0.1 * PEAK, rates[-5:]
    assert schedule_lib.cosine(PEAK, len(history) / 1000) > 0.9 * PEAK


def test_segment_is_checkpointed(tmp_path):
    data = make_toy("moons", 300, 0.05, seed=0)
    config = TrainConfig(epochs=4, batch_size=100, checkpoint_every=1)
    train_lib.fit(data, tmp_path / "run",
                  FlowConfig(num_couplings=2, hidden_units=8, num_hidden_layers=1), config)
    import tensorflow as tf
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "checkpoints"))
    segment = reader.get_tensor("schedule_segment/.ATTRIBUTES/VARIABLE_VALUE")
    np.testing.assert_allclose(segment, [0.75, 1.0])
    assert math.isclose(schedule_lib.cosine(1.0, 1.0), schedule_lib.FINAL_FRACTION)
