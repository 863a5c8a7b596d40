"""`import_tensorflow()`: TensorFlow imported without its start-up lines (the examples' helper).

TensorFlow 2.21 writes start-up lines (oneDNN, cudart, cuInit) to the process's stderr before
its logging reads TF_CPP_MIN_LOG_LEVEL: so import it, and start its devices, with that file
descriptor on /dev/null. Python errors still show: stderr is back before they print. Call it
before anything imports TensorFlow (do the same in your own scripts, or run them with
2>/dev/null).
"""

import os
import sys


def import_tensorflow():
    """Imports TensorFlow with stderr silenced, starts its devices, returns the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_logical_devices()  # the cuInit line comes when the devices start
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
