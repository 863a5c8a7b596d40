"""A cosine learning-rate decay that ends when training ends: after `epochs`, or when the
time budget runs out first.

A plain cosine schedule over `epochs` assumes every epoch runs. Under a time budget that
binds (a slow or busy machine, a big table) training stops with the learning rate still
high, and the weights kept are those of a noisy, unannealed optimiser: measured on the
swiss roll, the default fit ended at 0.07-0.35 nats when stopped by its 35 s budget and at
-0.12 when allowed all 300 epochs. Here the schedule's *progress* `p` in [0, 1] moves on
by segments, one per epoch: at the start of an epoch with an estimated `R` epochs left
(this one included)

```none
segment:        [a, b]  with  a = the previous segment's end,  b = a + (1 - a) / max(R, 1)
R = min(epochs - e + 1,  (budget - elapsed) / mean epoch time)     (epoch e, 1-based)
step k of S:    p = a + (b - a) k / S
learning rate:  lr(p) = peak (alpha + (1 - alpha) (1 + cos(pi p)) / 2)
```

When the budget never binds, `R = epochs - e + 1` and `b = e / epochs`: exactly Keras'
`CosineDecay` over `epochs * S` steps. When it binds, the remaining decay is spread over the
epochs that the budget still has room for, so the last epoch trains at the bottom of the
curve. The first epoch's time (tracing and compiling) is left out of the mean epoch time;
the segment is part of the checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras

FINAL_FRACTION = 0.02  # the learning rate ends at 2% of its peak


def cosine(peak: float, progress: float, alpha: float = FINAL_FRACTION) -> float:
    """`peak * (alpha + (1 - alpha) * (1 + cos(pi * progress)) / 2)`, progress clipped to
    [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return peak * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress)))


def epochs_left(epoch: int, epochs: int, elapsed: float | None = None,
                budget: float | None = None, epoch_seconds: float | None = None) -> float:
    """Epochs left to train, epoch `epoch` (1-based) included: the epoch count's, or fewer
    when `budget - elapsed` seconds hold fewer epochs of `epoch_seconds` each."""
    left = float(epochs - epoch + 1)
    if budget is not None and elapsed is not None and epoch_seconds:
        left = min(left, max(budget - elapsed, 0.0) / epoch_seconds)
    return left


def next_segment(start: float, epochs_remaining: float) -> float:
    """The end of the next epoch's progress segment from its start `a`:
    `a + (1 - a) / max(R, 1)`."""
    return start + (1.0 - start) / max(epochs_remaining, 1.0)


class SegmentedCosine(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay over a progress that the training loop moves on by one segment per
    epoch (`set_segment`); within an epoch it advances linearly with the optimizer's step.

    Args:
      peak: learning rate at progress 0.
      steps_per_epoch: optimizer steps in one epoch.
      alpha: the final learning rate as a fraction of `peak`.
    """

    def __init__(self, peak: float, steps_per_epoch: int, alpha: float = FINAL_FRACTION):
        self.peak = float(peak)
        self.steps_per_epoch = int(steps_per_epoch)
        self.alpha = float(alpha)
        # [start, end] of the current epoch's segment; checkpointed with the run. Every
        # epoch runs `steps_per_epoch` steps, so step k of an epoch is `step mod S`.
        self.segment = tf.Variable([0.0, 0.0], dtype=tf.float64, trainable=False,
                                   name="schedule_segment")

    def set_segment(self, start: float, end: float) -> None:
        """The next epoch runs progress `start` -> `end`."""
        self.segment.assign([start, end])

    @property
    def segment_end(self) -> float:
        return float(self.segment[1].numpy())

    def __call__(self, step):
        done = tf.math.floormod(tf.cast(step, tf.int64), self.steps_per_epoch)
        fraction = tf.cast(done, tf.float64) / self.steps_per_epoch
        start, end = self.segment[0], self.segment[1]
        progress = tf.clip_by_value(start + (end - start) * fraction, 0.0, 1.0)
        decayed = self.alpha + (1 - self.alpha) * 0.5 * (1 + tf.cos(math.pi * progress))
        return tf.cast(self.peak * decayed, tf.float32)

    def get_config(self):
        return {"peak": self.peak, "steps_per_epoch": self.steps_per_epoch,
                "alpha": self.alpha}
