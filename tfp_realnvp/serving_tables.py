"""Named-column serving graph of a table model: one input per column, vocabularies in graph.

```none
inputs      one per column: float32 [B] (numeric), string [B] (categorical labels)
codes       c_k = StaticHashTable_k[strip(label)]    (a label outside the vocabulary: L_k)
context     [one_hot_k(c_k) for k] + user context     (unseen: the column's frequencies)
log_prob    log P(c) + log p(x | context)             (CategoricalMass + the flow)
sample      u < N/(N+a): a training cell by its count, else c_k ~ q_k; x ~ p(x | c)
```
A missing categorical cell (an empty label, or "nan", "None", ...) is refused in the graph
with an InvalidArgument error naming the column: the served model does not sum missing
cells out (`MixedTableModel.log_prob` does). A NaN numeric cell gives that row a NaN score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp.flow import context_kwargs
from tfp_realnvp.mixed.categorical import CategoricalModel
from tfp_realnvp.mixed.encoding import UNSEEN_LABEL
from tfp_realnvp.mixed.mass_tf import CategoricalMass
from tfp_realnvp.serving_columns import MISSING_LABELS, ServedColumns
from tfp_realnvp.serving_flow import checked_sample_request


class _Vocabularies(tf.Module):
    """Label -> code tables and the sampler's constants of a `CategoricalModel`."""

    def __init__(self, model: CategoricalModel, levels: tuple[tuple[str, ...], ...]) -> None:
        super().__init__(name="vocabularies")
        self.tables = [tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(labels)),
                                                tf.range(len(labels), dtype=tf.int64)),
            default_value=tf.constant(len(labels), tf.int64)) for labels in levels]
        self.labels = [tf.constant([*labels, UNSEEN_LABEL]) for labels in levels]
        frequencies = [n[:-1] / model.num_rows for n in model.column_counts]
        self.one_hot = [tf.constant(np.concatenate([np.eye(len(f)), f[None]]), tf.float32)
                        for f in frequencies]
        self.cells = tf.constant(model.cells, tf.int64)
        self.log_cell_weights = tf.constant(np.log(model.counts / model.num_rows)[None],
                                            tf.float32)
        self.log_q = [tf.constant(q[None], tf.float32) for q in model.log_q]
        self.empirical = tf.constant(model.num_rows / (model.num_rows + model.strength),
                                     tf.float32)

    def context(self, codes: tf.Tensor) -> tf.Tensor:
        """one_hot(codes) `[B, sum_k L_k]` as `MixedTableModel.context`."""
        return tf.concat([tf.gather(block, codes[:, k]) for k, block in
                          enumerate(self.one_hot)], axis=1)

    def draw(self, num: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
        """`num` codes `[num, K]` with the categorical model's exact sampler; `seeds` [K+2, 2]."""
        empirical = tf.random.stateless_uniform([num], seeds[0]) < self.empirical
        picks = tf.random.stateless_categorical(self.log_cell_weights, num, seeds[1])[0]
        independent = tf.stack([
            tf.random.stateless_categorical(log_q, num, seeds[2 + k])[0]
            for k, log_q in enumerate(self.log_q)], axis=1)
        return tf.where(empirical[:, None], tf.gather(self.cells, picks), independent)


class TableServingModule(tf.Module):
    """`log_prob` and `sample` over named columns of a mixed (or numeric-only) table model.

    Args:
      flow: the (conditional) flow over the numeric columns; it is tracked as `flow`, so
        the SavedModel's variables restore into a flow built from the same config.
      columns: the served columns (`ServedColumns.from_layout`).
      categorical: the categorical model (None: a numeric-only table).
    """

    def __init__(self, flow: Any, columns: ServedColumns,
                 categorical: CategoricalModel | None = None) -> None:
        super().__init__(name="table_serving")
        self.flow = flow
        self.columns = columns
        self.mass = None if categorical is None else CategoricalMass(categorical)
        self.vocabularies = None if categorical is None else \
            _Vocabularies(categorical, columns.levels)
        names = columns.inputs
        specs = {names[c]: tf.TensorSpec([None], tf.float32, name=names[c])
                 for c in (*columns.numeric, *columns.context)}
        specs.update({names[c]: tf.TensorSpec([None], tf.string, name=names[c])
                      for c in columns.categorical})
        self._specs = dict(sorted(specs.items()))
        self.log_prob = tf.function(self._log_prob).get_concrete_function(**self._specs)
        self.sample = self.sample_from_seeds = None
        if not columns.context:
            self.sample = tf.function(self._sample).get_concrete_function(
                num_samples=tf.TensorSpec([], tf.int32, name="num_samples"),
                seed=tf.TensorSpec([2], tf.int32, name="seed"))
            self.sample_from_seeds = tf.function(self._sample_from_seeds).get_concrete_function(
                seed=tf.TensorSpec([None, 2], tf.int32, name="seed"))

    # -- inputs --------------------------------------------------------------------------

    def _column(self, inputs: dict[str, tf.Tensor], column: str) -> tf.Tensor:
        name = self.columns.inputs[column]
        return tf.ensure_shape(inputs[name], [None], name=f"check_{name}_is_a_batch")

    def _codes(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        codes = []
        for k, column in enumerate(self.columns.categorical):
            labels = tf.strings.strip(self._column(inputs, column))
            missing = tf.reduce_any(tf.equal(labels[:, None], tf.constant(MISSING_LABELS)),
                                    axis=1)
            check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(missing)), [
                f"column {column} (input {self.columns.inputs[column]}): a missing label "
                "(empty, nan, None, ...) in row", tf.where(missing)[:1, 0] + 1,
                "; this export does not sum missing cells out: send a label, or score the "
                "row with tfp_realnvp (MixedTableModel.log_prob sums it out)."], summarize=1)
            with tf.control_dependencies([check]):
                codes.append(self.vocabularies.tables[k].lookup(labels))
        return tf.stack(codes, axis=1)

    def _numeric(self, inputs: dict[str, tf.Tensor], columns: tuple[str, ...]) -> tf.Tensor:
        return tf.stack([self._column(inputs, c) for c in columns], axis=1)

    def _context(self, codes: tf.Tensor | None, user: tf.Tensor | None) -> tf.Tensor | None:
        parts = [p for p in (None if codes is None else self.vocabularies.context(codes), user)
                 if p is not None]
        return tf.concat(parts, axis=1) if parts else None

    # -- signatures ----------------------------------------------------------------------

    def _log_prob(self, **inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        """`log P(c) + log p(x | one_hot(c), user context)` per row, float32 `[B]`."""
        x = self._numeric(inputs, self.columns.numeric)
        user = self._numeric(inputs, self.columns.context) if self.columns.context else None
        codes = self._codes(inputs) if self.mass is not None else None
        density = self.flow.log_prob(x, **context_kwargs(self.flow, self._context(codes, user)))
        if codes is None:
            return {"log_prob": density}
        total = self.mass(codes) + tf.cast(density, tf.float64)
        return {"log_prob": tf.cast(total, tf.float32)}

    def _draw(self, num: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """`num` rows as named columns (labels as text) from one `[2]` seed."""
        width = 0 if self.vocabularies is None else len(self.columns.categorical)
        seeds = tf.random.experimental.stateless_split(seed, width + 3)
        out: dict[str, tf.Tensor] = {}
        context = None
        if self.vocabularies is not None:
            codes = self.vocabularies.draw(num, seeds[1:])
            context = self._context(codes, None)
            for k, column in enumerate(self.columns.categorical):
                out[self.columns.inputs[column]] = tf.gather(
                    self.vocabularies.labels[k], codes[:, k])
        x = self.flow.sample(num, seed=seeds[0], **context_kwargs(self.flow, context))
        for j, column in enumerate(self.columns.numeric):
            out[self.columns.inputs[column]] = x[:, j]
        return out

    def _sample(self, num_samples: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        num_samples, seed, checks = checked_sample_request(num_samples, seed)
        with tf.control_dependencies(checks):
            return self._draw(num_samples, seed)

    def _sample_from_seeds(self, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """Row i = `sample(num_samples=1, seed=seed[i])`: batchable sampling."""
        seed = tf.ensure_shape(seed, [None, 2], name="check_seed_is_batch_by_2")
        kinds = {self.columns.inputs[c]: tf.float32 for c in self.columns.numeric}
        kinds.update({self.columns.inputs[c]: tf.string for c in self.columns.categorical})
        return tf.map_fn(lambda row: {k: v[0] for k, v in self._draw(1, row).items()}, seed,
                         fn_output_signature={k: tf.TensorSpec([], d) for k, d in kinds.items()})

    def signatures(self, suffix: str = "") -> dict[str, Any]:
        """`{name: concrete function}`: `log_prob`, `sample`, `sample_from_seeds` (the last
        two only without user context columns), each name followed by `suffix`."""
        found = {"log_prob": self.log_prob, "sample": self.sample,
                 "sample_from_seeds": self.sample_from_seeds}
        return {f"{name}{suffix}": fn for name, fn in found.items() if fn is not None}

    def warmup_inputs(self, shift: np.ndarray | None) -> dict[str, np.ndarray]:
        """Two valid rows for `log_prob`: the numeric cells at `shift` (the data mean), each
        categorical column's first label and then a label it never saw (the unseen level)."""
        inputs: dict[str, np.ndarray] = {}
        numeric = np.zeros(len(self.columns.numeric)) if shift is None else np.asarray(shift)
        for j, column in enumerate(self.columns.numeric):
            inputs[self.columns.inputs[column]] = np.full(2, numeric[j], np.float32)
        for column in self.columns.context:
            inputs[self.columns.inputs[column]] = np.zeros(2, np.float32)
        for column, labels in zip(self.columns.categorical, self.columns.levels, strict=True):
            inputs[self.columns.inputs[column]] = np.array(
                [labels[0].encode(), b"never seen in training"], dtype=object)
        return inputs
