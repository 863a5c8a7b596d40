"""The Trainer: the flow, its optimizer, the compiled step, validation and the kept best."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfp_realnvp import base as base_lib
from tfp_realnvp import blend_fit
from tfp_realnvp import schedule as schedule_lib
from tfp_realnvp.base_fit import Mixture
from tfp_realnvp.bijectors.ensemble import FoldAffine, stacked_flow
from tfp_realnvp.blend import MixtureBlend
from tfp_realnvp.blend_fit import BlendMixtures
from tfp_realnvp.config import FlowConfig, TrainConfig
from tfp_realnvp.flow import build_flow, context_kwargs
from tfp_realnvp.prepare import PreparedData
from tfp_realnvp.rundir import RunDir
from tfp_realnvp.training.distribute import Workers
from tfp_realnvp.training.pipeline import Batch, training_batches, validation_layout
from tfp_realnvp.training.stream_pipeline import streamed_batches

tfd = tfp.distributions


def _negative_log_prob(flow: tfd.TransformedDistribution, x: tf.Tensor,
                       context: tf.Tensor | None = None, per_member: bool = False) -> tf.Tensor:
    return -flow.log_prob(x, **context_kwargs(flow, context, per_member))


class TrainingState(tf.Module):
    """Variables that make training resumable: epoch, and per member its best weights,
    best validation NLL and the epoch that reached it."""

    def __init__(self, variables: list[tf.Variable], num_members: int) -> None:
        super().__init__(name="training_state")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_epoch = tf.Variable(tf.zeros([num_members], tf.int64), trainable=False,
                                      name="best_epoch")
        self.best_validation_nll = tf.Variable(tf.fill([num_members], np.inf),
                                               trainable=False, name="best_validation_nll")
        self.initial_validation_nll = tf.Variable(tf.fill([num_members], np.inf),
                                                  trainable=False, name="initial_validation_nll")
        self.best_weights = [tf.Variable(v, trainable=False, name=f"best_{i}")
                             for i, v in enumerate(variables)]


class Trainer:
    """Owns the flow (one, or an ensemble's stacked members), optimizer, compiled steps and
    checkpoint of one run.

    Member m trains on `prepared.members[m]`'s training rows and is early-stopped on its
    validation rows. An ensemble's members are one stacked flow, so one compiled step
    updates every member: the batch is `[B, M, D]` (member m's rows in slice m), the loss
    the sum of the members' mean NLLs. A conditional flow's batches carry each row's
    context `[B, (M,) C]` beside its events; dequantisation touches the events only.
    """

    def __init__(self, flow_config: FlowConfig, train_config: TrainConfig,
                 prepared: PreparedData, strategy: tf.distribute.Strategy) -> None:
        self.flow_config = flow_config
        self.train_config = train_config
        self.strategy = strategy
        self.workers = Workers(strategy)
        self.prepared = prepared
        self.num_members = len(prepared.members)
        self._blend_mixtures: BlendMixtures | None = None
        smallest = min(prepared.train_sizes)
        self.global_batch = min(train_config.batch_size, smallest)
        self.steps_per_epoch = max(1, smallest // self.global_batch)
        if train_config.max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, train_config.max_steps_per_epoch)
        tf_keras.utils.set_random_seed(train_config.seed)
        with strategy.scope():
            self.schedule = (None if train_config.schedule == "constant" else
                             schedule_lib.SegmentedCosine(train_config.learning_rate,
                                                          self.steps_per_epoch))
            self.flow = self.make_flow()
            self.stacked = stacked_flow(self.flow)
            self.variables = list(self.stacked.trainable_variables)
            self.optimizer = tf_keras.optimizers.AdamW(
                self.schedule or train_config.learning_rate,
                weight_decay=train_config.weight_decay,
                global_clipnorm=train_config.clip_norm,
            )
            self.optimizer.build(self.variables)
            self.state = TrainingState(self.variables, self.num_members)
        schedule_state = {} if self.schedule is None else {
            "schedule_segment": self.schedule.segment}
        self.checkpoint = tf.train.Checkpoint(
            flow=self.flow, optimizer=self.optimizer, state=self.state, **schedule_state)
        self._set_validation_rows()
        self._loss_and_grads = tf.function(
            self._loss_and_grads_fn, jit_compile=train_config.jit_compile)
        self.train_epoch = tf.function(self._train_epoch_fn)
        self.validation_nll = tf.function(self._validation_nll_fn)
        self.keep_best = tf.function(self._keep_best_fn)
        # Once per fit: eager (a tf.function here was traced anew by every trainer, and
        # TensorFlow warned of retracing from the sixth fit in one process on).
        self.restore_best = self._restore_best_fn

    def make_flow(self) -> tfd.Distribution:
        """The flow this trainer trains (built inside the strategy's scope)."""
        return build_flow(self.flow_config)

    def _set_validation_rows(self) -> None:
        members = self.prepared.members
        events, weights = validation_layout([m.validation_events for m in members])
        self._validation_events = tf.constant(events)
        self._validation_weights = tf.constant(weights)
        self._validation_context = None if not self.prepared.conditional else tf.constant(
            validation_layout([m.validation_context for m in members])[0])

    def set_fold_maps(self) -> None:
        """Starts each ensemble member at the Gaussian of its own training rows (in the
        shared data map's standardised space), so epoch 0 has not seen its held-out fold;
        its full covariance only if the flow whitens (`FlowConfig.whiten`)."""
        fold_maps = [b for b in self.stacked.bijector.bijectors if isinstance(b, FoldAffine)]
        if not fold_maps:
            return
        shared = self.stacked.bijector.bijectors[0]  # the data map, outermost in the chain
        for index, member in enumerate(self.prepared.members):
            fold_maps[0].set_from_rows(index, shared.inverse(member.train_events).numpy(),
                                       full=self.flow_config.whiten)

    def set_base_mixtures(self, mixtures: tuple[Mixture, ...] | None) -> None:
        """Sets each member's mixture base (fitted in data units on its own training rows)
        to its image in that member's latent space, so epoch 0 is the mixture itself. Call
        after `set_fold_maps`: the image is taken through the whole fresh flow."""
        if mixtures is None:
            return
        latent = base_lib.latent_mixtures(self.stacked.bijector, mixtures)
        for index, mixture in enumerate(latent):
            base_lib.set_member_mixture(self.stacked.distribution, index, self.num_members,
                                        mixture)

    def set_blend_mixtures(self, mixtures: BlendMixtures | None) -> None:
        """The mixtures of a blended flow (`blend_fit.choose_mixtures`): the one it keeps
        and each member's held-out scores, for `set_blend_weight` after training."""
        self._blend_mixtures = mixtures

    def set_blend_weight(self) -> float | None:
        """Sets a blended flow's mixture and the flow weight with the lowest held-out NLL
        (each member scored on its own validation rows); returns the weight (None: no
        blend)."""
        mixtures = self._blend_mixtures
        if mixtures is None or not isinstance(self.flow, MixtureBlend):
            return None
        flow_log_prob = np.concatenate(self.validation_log_probs())
        weight = blend_fit.choose_weight(flow_log_prob, np.concatenate(mixtures.held_out))
        self.flow.set_blend(mixtures.final, weight)
        return weight

    def validation_log_probs(self) -> list[np.ndarray]:
        """Member m's log-density of each of its own validation rows, per member."""
        rows, context = self._validation_events, self._validation_context
        if self.num_members == 1:
            return [-_negative_log_prob(self.stacked, rows, context).numpy()]
        log_prob = -_negative_log_prob(self.stacked, rows, context, per_member=True).numpy()
        return [log_prob[:len(member.validation_events), m]
                for m, member in enumerate(self.prepared.members)]

    def start_epoch_schedule(self, epochs_remaining: float) -> None:
        """Moves the cosine schedule on by one epoch's segment, spreading what is left of
        the decay over `epochs_remaining` epochs (see `schedule.py`)."""
        if self.schedule is None:
            return
        start = self.schedule.segment_end
        end = schedule_lib.next_segment(start, self.workers.mean(epochs_remaining))
        self.schedule.set_segment(start, end)

    def _dequantize(self, batch: tf.Tensor) -> tf.Tensor:
        """Adds `step * (U(0, 1) - 1/2)` per column, seeded by (seed, step number): the same
        noise on a rerun or a resumed run."""
        steps = self.train_config.dequantize_steps
        if not steps or not any(steps):
            return batch
        seed = tf.stack([tf.constant(self.train_config.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        noise = tf.random.stateless_uniform(tf.shape(batch), seed=seed) - 0.5
        return batch + noise * tf.constant(steps, tf.float32)

    def _stack(self, parts: list[tf.Tensor]) -> tf.Tensor:
        """One tensor per member -> the stacked flow's `[B, M, W]` (one member: `[B, W]`)."""
        return parts[0] if self.num_members == 1 else tf.stack(parts, axis=1)

    def _loss_and_grads_fn(self, *batches: Batch):
        x = self._dequantize(self._stack([batch[0] for batch in batches]))
        context = self._stack([batch[1] for batch in batches]) \
            if self.prepared.conditional else None
        with tf.GradientTape() as tape:
            # [B] or [B, M]; an ensemble's members each see their own rows' contexts.
            nll = _negative_log_prob(self.stacked, x, context,
                                     per_member=self.num_members > 1)
            per_row = nll if self.num_members == 1 else tf.reduce_sum(nll, axis=-1)
            loss = tf.nn.compute_average_loss(per_row, global_batch_size=self.global_batch)
        return loss / self.num_members, tape.gradient(loss, self.variables)

    def _replica_step(self, *batches: Batch) -> tuple[tf.Tensor, tf.Tensor]:
        """One optimizer step; returns this replica's loss and the global norm of the
        gradient summed over replicas (the one the optimizer clips and applies)."""
        loss, grads = self._loss_and_grads(*batches)
        # The optimizer's own all-reduce, done here so the norm is of the summed gradient;
        # the optimizer is then told not to aggregate again: no extra communication.
        pairs = self.optimizer.aggregate_gradients(list(zip(grads, self.variables, strict=True)))
        self.optimizer.apply_gradients(pairs, skip_gradients_aggregation=True)
        return loss, tf.linalg.global_norm([g for g, _ in pairs])

    def _train_epoch_fn(self, iterator) -> tuple[tf.Tensor, tf.Tensor]:
        """Runs one epoch of steps in-graph; returns the mean training NLL (over members)
        and the mean global gradient norm of its steps, both computed in the graph."""
        total = tf.constant(0.0)
        norms = tf.constant(0.0)
        mean = tf.distribute.ReduceOp.MEAN
        for _ in tf.range(self.steps_per_epoch):
            losses, norm = self.strategy.run(self._replica_step, args=next(iterator))
            total += self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
            norms += self.strategy.reduce(mean, norm, axis=None)  # equal on every replica
        return total / self.steps_per_epoch, norms / self.steps_per_epoch

    def learning_rate(self) -> float:
        """The learning rate of the last step taken (the schedule's value then)."""
        if self.schedule is None:
            return float(tf.convert_to_tensor(self.optimizer.learning_rate))
        return float(self.schedule(self.optimizer.iterations - 1))

    def _validation_nll_fn(self) -> tf.Tensor:
        """Each member's mean NLL on its own held-out rows: `[num_members]`."""
        rows, context = self._validation_events, self._validation_context
        if self.num_members == 1:
            return tf.reduce_mean(_negative_log_prob(self.stacked, rows, context))[tf.newaxis]
        # Member m scores only its own rows (slice m of [V, M, D], with their contexts).
        nll = _negative_log_prob(self.stacked, rows, context, per_member=True)
        weights = self._validation_weights
        return tf.reduce_sum(nll * weights, axis=0) / tf.reduce_sum(weights, axis=0)

    def _keep_best_fn(self, epoch: tf.Tensor, nll: tf.Tensor) -> None:
        """Keeps the weights of every member whose validation NLL improved (an ensemble's
        variables carry the member axis first)."""
        improved = nll < self.state.best_validation_nll
        state = self.state
        state.best_epoch.assign(tf.where(improved, epoch, state.best_epoch))
        state.best_validation_nll.assign(tf.where(improved, nll, state.best_validation_nll))
        for live, kept in zip(self.variables, state.best_weights, strict=True):
            if self.num_members == 1:
                mask = improved[0]
            else:
                mask = tf.reshape(improved, [self.num_members] + [1] * (live.shape.rank - 1))
            kept.assign(tf.where(mask, live, kept))

    def _restore_best_fn(self) -> None:
        for best, live in zip(self.state.best_weights, self.variables, strict=True):
            live.assign(best)

    def checkpoint_manager(self, run: RunDir) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(self.checkpoint, run.checkpoint_dir, max_to_keep=2)

    def dataset_iterator(self, start_epoch: int):
        """The distributed iterator over every member's training batches from epoch
        `start_epoch` on (see `pipeline.training_batches`; a streamed table's from its
        files, `stream_pipeline.streamed_batches`)."""
        plan = getattr(self.prepared, "stream", None)
        if plan is not None:
            return streamed_batches(plan, self.train_config.seed, self.global_batch,
                                    self.steps_per_epoch, start_epoch, self.strategy)
        return training_batches(self.prepared, self.train_config.seed, self.global_batch,
                                self.steps_per_epoch, start_epoch, self.strategy)
