"""The rows a step sees: each member's shuffled training batches, and the validation layout."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfp_realnvp.prepare import MemberData, PreparedData

Batch = tuple[tf.Tensor, ...]  # one member's (events,) or (events, context)


def training_batches(prepared: PreparedData, seed: int, global_batch: int,
                     steps_per_epoch: int, start_epoch: int,
                     strategy: tf.distribute.Strategy):
    """Per member: its training rows in a fresh order every epoch, in batches; zipped and
    distributed over replicas. One element: a tuple with one batch per member, each
    `(events [B, D],)` or, for a conditional flow, `(events [B, D], context [B, C])`.

    Epoch e's order is a function of (seed, member, e) alone, so a run resumed after
    epoch e sees exactly the batches the uninterrupted run saw.
    """
    datasets = tuple(_member_epochs(member, m, seed, global_batch, steps_per_epoch,
                                    start_epoch) for m, member in enumerate(prepared.members))
    dataset = tf.data.Dataset.zip(datasets).prefetch(tf.data.AUTOTUNE)
    # Several workers: each global batch is split over the replicas of all workers (the
    # rows are in memory, so there are no files to shard by).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    dataset = dataset.with_options(options)
    return iter(strategy.experimental_distribute_dataset(dataset))


def _member_epochs(member: MemberData, index: int, seed: int, global_batch: int,
                   steps_per_epoch: int, start_epoch: int) -> tf.data.Dataset:
    """Member `index`'s batches, epoch after epoch from `start_epoch` on."""
    tables = tuple(tf.constant(part) for part in (member.train_events, member.train_context)
                   if part is not None)
    num_rows = len(member.train_events)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_rows, dtype=tf.int64),
            seed=tf.stack([tf.constant(seed * 1000 + index, tf.int64), epoch]))
        return (tf.data.Dataset.from_tensor_slices(order)
                .batch(global_batch, drop_remainder=True)
                .take(steps_per_epoch)
                .map(lambda rows: tuple(tf.gather(table, rows) for table in tables)))

    return tf.data.Dataset.range(start_epoch, 2**62).flat_map(one_epoch)


def validation_layout(folds: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows of each member in the stacked flow's layout: one member, its rows
    `[V, W]` and weights `[V]` of 1; an ensemble, `[V, M, W]` with member m's rows in slice
    m (V the largest fold; a shorter fold is filled up by repeating its rows) and weights
    `[V, M]`, 1 on a member's own rows and 0 on the fill, so each member scores only its
    own fold, not every member's. W is the events' width, or the context's."""
    if len(folds) == 1:
        return folds[0], np.ones(len(folds[0]), np.float32)
    longest = max(len(fold) for fold in folds)
    rows = np.stack([np.resize(fold, (longest, fold.shape[1])) for fold in folds], axis=1)
    weights = np.stack([np.arange(longest) < len(fold) for fold in folds], axis=1)
    return rows, weights.astype(np.float32)
