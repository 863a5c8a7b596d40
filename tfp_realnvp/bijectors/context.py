"""`ContextInput`: how a conditional layer's network sees its values and the context.

Shared by the couplings (`coupling.py`) and the autoregressive layers (`autoregressive.py`):
the network input is `[values, (c - context_shift) / context_scale]`, the context given in
raw units, broadcast against the values' batch, the same for every ensemble member
(`context=`) or member m's in slice m (`member_context=`).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfp_realnvp.errors import ConfigError


class ContextInput:
    """Mixin of a bijector whose network reads its values and, if conditional, a context.

    `_init_context` checks and keeps the settings; `_conditioner_input(values, context,
    member_context)` is what the network reads, `[..., width + context_dim]`. The class
    also marks the bijectors a context is routed to (`flow.couplings`).
    """

    _context_dim: int = 0
    _num_members: int = 1
    _context_shift: tuple[float, ...] | None = None
    _context_scale: tuple[float, ...] | None = None

    def _init_context(self, context_dim: int, num_members: int,
                      context_shift: Sequence[float] | None,
                      context_scale: Sequence[float] | None) -> None:
        if context_dim < 0:
            raise ConfigError(f"'context_dim' must be >= 0; got {context_dim}.")
        if num_members < 1:
            raise ConfigError(f"'num_members' must be >= 1; got {num_members}.")
        for label, values in (("context_shift", context_shift),
                              ("context_scale", context_scale)):
            if values is not None and len(values) != context_dim:
                raise ConfigError(f"'{label}' must have context_dim={context_dim} entries; "
                                  f"got {len(values)}.")
        self._context_dim = int(context_dim)
        self._num_members = int(num_members)
        self._context_shift = None if context_shift is None else tuple(map(float,
                                                                          context_shift))
        self._context_scale = None if context_scale is None else tuple(map(float,
                                                                          context_scale))

    @property
    def context_dim(self) -> int:
        return self._context_dim

    def _standardised_context(self, context: tf.Tensor) -> tf.Tensor:
        """`(c - context_shift) / context_scale`: the network sees the context in
        standardised units; callers pass raw values."""
        if self._context_shift is not None:
            context = context - tf.constant(self._context_shift, context.dtype)
        if self._context_scale is not None:
            context = context / tf.constant(self._context_scale, context.dtype)
        return context

    def _conditioner_input(self, values: tf.Tensor, context: tf.Tensor | None,
                           member_context: tf.Tensor | None = None) -> tf.Tensor:
        """`values` alone for an unconditional layer, else `[values, standardised context]`
        broadcast to one batch shape; ValueError naming the layer for a missing, unexpected
        or misshapen context."""
        if context is not None and member_context is not None:
            raise ValueError(f"{self.name}: pass context= or member_context=, not both.")
        per_member = member_context is not None
        context = member_context if per_member else context
        if self._context_dim == 0:
            if context is not None:
                raise ValueError(f"{self.name} was built with context_dim=0; got a context.")
            return values
        if context is None:
            raise ValueError(
                f"{self.name} is conditional: pass context= of shape [..., {self._context_dim}].")
        context = tf.convert_to_tensor(context, dtype=values.dtype, name="context")
        if context.shape[-1] is not None and context.shape[-1] != self._context_dim:
            raise ValueError(
                f"{self.name}: expected context of width {self._context_dim}; "
                f"got shape {context.shape}.")
        context = self._standardised_context(context)
        if self._num_members > 1 and not per_member:
            context = context[..., tf.newaxis, :]  # the same context for every member
        batch_shape = tf.broadcast_dynamic_shape(tf.shape(values)[:-1], tf.shape(context)[:-1])
        width = values.shape[-1] if values.shape[-1] is not None else tf.shape(values)[-1]
        values = tf.broadcast_to(values, tf.concat([batch_shape, [width]], 0))
        context = tf.broadcast_to(context, tf.concat([batch_shape, [self._context_dim]], 0))
        return tf.concat([values, context], axis=-1)
