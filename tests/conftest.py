"""Shared test set-up: quiet TensorFlow, two logical CPUs for MirroredStrategy, fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initialises its devices: the MirroredStrategy tests need
# two replicas, and a CI machine has one physical CPU device.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


def randomise_weights(flow, seed: int = 0, scale: float = 0.5) -> None:
    """Gives every weight a random value so the flow is far from the identity."""
    rng = np.random.default_rng(seed)
    for variable in flow.trainable_variables:
        variable.assign(scale * rng.standard_normal(variable.shape).astype(np.float32))


@pytest.fixture
def moons() -> np.ndarray:
    from tfp_realnvp.data import make_toy

    return make_toy("moons", 400, 0.05, seed=0)
