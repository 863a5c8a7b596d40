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


def pass_batches(plan: StreamPlan, seed: int, batch: int,
                 pass_number: int) -> Iterator[np.ndarray]:
    """Pass `pass_number`'s batches `[batch, D + C]` float32 over all training rows
    (`StreamPlan.training_mask`; the last partial batch is dropped).

    The shards are read in an order drawn from (seed, pass), each chunk's training rows go
    into a buffer of up to `SHUFFLE_ROWS` rows, which is shuffled and drawn from while it
    is over half full: a pass's batches are a function of (seed, pass) alone.
    """
    rng = np.random.default_rng([seed, pass_number])
    pool = np.empty((0, len(plan.columns)), np.float32)
    for shard in rng.permutation(len(plan.shards.paths)):
        start = plan.offsets[shard]
        for rows in plan.shards.chunks(int(shard), plan.columns):
            kept = rows[plan.training_mask(rows, start)].astype(np.float32)
            start += len(rows)
            pool = np.concatenate([pool, kept])
            if len(pool) < SHUFFLE_ROWS:
                continue
            pool = pool[rng.permutation(len(pool))]
            while len(pool) >= SHUFFLE_ROWS // 2:
                yield pool[:batch]
                pool = pool[batch:]
    pool = pool[rng.permutation(len(pool))]
    while len(pool) >= batch:
        yield pool[:batch]
        pool = pool[batch:]


def batch_stream(plan: StreamPlan, seed: int, batch: int, steps_per_epoch: int,
                 start_epoch: int) -> Iterator[np.ndarray]:
    """Every batch from epoch `start_epoch` on: passes over the table one after another,
    epoch e the batches e * steps .. (e + 1) * steps - 1 of that sequence. An epoch capped
    below a pass (`max_steps_per_epoch`) so goes on where the last one stopped, and every
    row is seen once per pass; a resumed run reads (without training on) the batches of
    its pass before its first epoch, and sees what the uninterrupted run saw."""
    per_pass = max(1, plan.num_train // batch)
    pass_number, skip = divmod(start_epoch * steps_per_epoch, per_pass)
    for number in itertools.count(pass_number):
        batches = pass_batches(plan, seed, batch, number)
        yield from itertools.islice(batches, skip, None)
        skip = 0


def streamed_batches(plan: StreamPlan, seed: int, global_batch: int, steps_per_epoch: int,
                     start_epoch: int, strategy: tf.distribute.Strategy):
    """The distributed iterator over a streamed run's batches from `start_epoch` on, in
    `pipeline.training_batches`' layout: one member, `(events,)` or `(events, context)`."""
    width, dim = len(plan.columns), plan.event_dim

    def blocks() -> Iterator[np.ndarray]:
        batches = batch_stream(plan, seed, global_batch, steps_per_epoch, start_epoch)
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
