"""`CategoricalMass`: the categorical model's exact log-mass with TensorFlow ops only (for
in-graph serving).

```none
key(c)       = sum_k c_k * prod_{j>k} (L_j + 1)        (or the text "c_1,...,c_K")
n(c)         = StaticHashTable[key(c)]   (default 0)
log Q(c)     = sum_k log_q_k[c_k]                       (constants)
log P(c)     = logaddexp(log n(c), log a + log Q(c)) - log(N + a)
```
equal to `CategoricalModel.log_mass` on complete rows; codes beyond a column's seen levels
are its unseen level. Missing cells (-1) are refused: marginalise them outside.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tfp_realnvp.mixed.categorical import CategoricalModel


class CategoricalMass(tf.Module):
    """`log P(c)` of a fitted `CategoricalModel` as a `tf.Module` (tracked lookup table,
    constants only), so a SavedModel can carry it.

    Example:
      >>> mass = CategoricalMass(model)
      >>> mass(tf.constant(codes))        # float64 [N]
    """

    def __init__(self, model: CategoricalModel, name: str = "categorical_mass") -> None:
        super().__init__(name=name)
        self.index_keys = model.index_keys
        keys = model.keys.astype(np.int64) if self.index_keys else \
            np.asarray(model.keys, dtype=str).astype(bytes)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys), tf.constant(model.counts.astype(np.float64))),
            default_value=tf.constant(0.0, tf.float64))
        self.levels = tf.constant(model.levels, tf.int64)
        self.strides = tf.constant(model.strides, tf.int64)
        offsets = np.concatenate([[0], np.cumsum(model.sizes)[:-1]]).astype(np.int64)
        self.offsets = tf.constant(offsets)
        self.flat_log_q = tf.constant(np.concatenate(model.log_q), tf.float64)
        self.log_strength = tf.constant(math.log(model.strength), tf.float64)
        self.log_normaliser = tf.constant(math.log(model.num_rows + model.strength),
                                          tf.float64)

    def keys(self, codes: tf.Tensor) -> tf.Tensor:
        """Each row's key (int64 index, or string); codes already clipped."""
        if self.index_keys:
            return tf.reduce_sum(codes * self.strides, axis=-1)
        return tf.strings.reduce_join(tf.strings.as_string(codes), axis=-1, separator=",")

    def __call__(self, codes: tf.Tensor) -> tf.Tensor:
        """`log P(c)` for int codes `[N, K]` (>= 0), float64 `[N]`."""
        codes = tf.cast(codes, tf.int64)
        checks = [tf.debugging.assert_non_negative(
            codes, message="codes must be >= 0 (missing cells: marginalise them first)")]
        with tf.control_dependencies(checks):
            codes = tf.minimum(codes, self.levels)
        counts = self.table.lookup(self.keys(codes))
        log_q = tf.reduce_sum(tf.gather(self.flat_log_q, codes + self.offsets), axis=-1)
        terms = tf.stack([tf.math.log(counts), self.log_strength + log_q], axis=0)
        return tf.reduce_logsumexp(terms, axis=0) - self.log_normaliser


def log_mass_tf(model: CategoricalModel, codes: tf.Tensor) -> tf.Tensor:
    """One-off `CategoricalMass(model)(codes)` (build the module once to call it often)."""
    return CategoricalMass(model)(codes)
