"""Writing a SavedModel of our serving modules: signatures and variables, nothing else.

`tf.saved_model.save` meets the tf-keras conditioners inside every flow and, by default,
traces each layer's `call` (and its loss and update functions) so that Keras could revive
the layers from the SavedModel alone. Nothing of ours reads those traces: TF Serving and
`tf.saved_model.load` call the signatures, and `tfp_realnvp.load` rebuilds the flow from
its config and restores the variables by their object paths, which stay the same without
the traces. Tracing them costs more than the signatures themselves on convolutional
networks (a 4x4x2 image export: 12-14 s with them, 5-9 s without), so we switch them off
with tf-keras' own switch (the one behind `Model.save(save_traces=False)`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf


@contextlib.contextmanager
def _quiet_tf_logger() -> Iterator[None]:
    """Hides TensorFlow's Python deprecation chatter (LinearOperator.graph_parents) on save."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _without_keras_traces() -> contextlib.AbstractContextManager:
    """tf-keras' `save_traces=False` scope for a plain `tf.saved_model.save` (a no-op where
    a tf-keras release moves it: the export is then only slower, never different)."""
    try:
        from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope
    except ImportError:  # pragma: no cover - depends on the installed tf-keras
        return contextlib.nullcontext()
    return keras_option_scope(save_traces=False, in_tf_saved_model_scope=True)


def save(module: tf.Module, path: str | Path, signatures: dict[str, Any]) -> None:
    """`tf.saved_model.save(module, path, signatures)` without Keras layer traces or
    TensorFlow's deprecation chatter."""
    with _quiet_tf_logger(), _without_keras_traces():
        tf.saved_model.save(module, str(path), signatures=signatures)
