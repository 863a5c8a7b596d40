"""A streamed table's training batches: its shards read chunk by chunk into `tf.data`,
shuffled through a bounded buffer, prefetched; the table is never held whole."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from tfp_realnvp.firstpass import StreamPlan

SHUFFLE_ROWS = 1 << 18  # rows mixed at a time (about 10 MB for 10 float32 columns)
BLOCK_BATCHES = 16  # batches handed from Python to tf.data at once


def epoch_batches(plan: StreamPlan, seed: int, batch: int, steps: int,
                  epoch: int) -> Iterator[np.ndarray]:
    """Epoch `epoch`'s `steps` batches `[batch, D + C]` float32 of training rows.

    The shards are read in an order drawn from (seed, epoch), each chunk's training rows
    (`StreamPlan.training_mask`) go into a buffer of up to `SHUFFLE_ROWS` rows, which is
    shuffled and drawn from while it is over half full; so an epoch's batches are a
    function of (seed, epoch) alone and a resumed run sees what the uninterrupted one saw.
    """
    rng = np.random.default_rng([seed, epoch])
    pool = np.empty((0, len(plan.columns)), np.float32)
    made = 0
    for shard in rng.permutation(len(plan.shards.paths)):
        start = plan.offsets[shard]
        for rows in plan.shards.chunks(int(shard), plan.columns):
            kept = rows[plan.training_mask(rows, start)].astype(np.float32)
            start += len(rows)
            pool = np.concatenate([pool, kept])
            if len(pool) < SHUFFLE_ROWS:
                continue
            pool = pool[rng.permutation(len(pool))]
            while len(pool) >= SHUFFLE_ROWS // 2 and made < steps:
                yield pool[:batch]
                pool, made = pool[batch:], made + 1
            if made == steps:
                return
    pool = pool[rng.permutation(len(pool))]
    while len(pool) >= batch and made < steps:
        yield pool[:batch]
        pool, made = pool[batch:], made + 1


def streamed_batches(plan: StreamPlan, seed: int, global_batch: int, steps_per_epoch: int,
                     start_epoch: int, strategy: tf.distribute.Strategy):
    """The distributed iterator over a streamed run's batches from `start_epoch` on, in
    `pipeline.training_batches`' layout: one member, `(events,)` or `(events, context)`."""
    width, dim = len(plan.columns), plan.event_dim

    def blocks() -> Iterator[np.ndarray]:
        for epoch in itertools.count(start_epoch):
            batches = epoch_batches(plan, seed, global_batch, steps_per_epoch, epoch)
            while block := list(itertools.islice(batches, BLOCK_BATCHES)):
                yield np.stack(block)

    dataset = tf.data.Dataset.from_generator(
        blocks, output_signature=tf.TensorSpec([None, global_batch, width], tf.float32))
    split = (lambda b: ((b[:, :dim],),)) if width == dim else \
        (lambda b: ((b[:, :dim], b[:, dim:]),))
    dataset = dataset.unbatch().map(split).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF)
    return iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))
