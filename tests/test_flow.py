"""The flow as a distribution: normalisation, sampling, config round trip."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import randomise_weights

from tfp_realnvp import FlowConfig, build_flow
from tfp_realnvp.flow import permutation_indices


def test_two_d_density_integrates_to_one():
    config = FlowConfig(event_dim=2, num_couplings=4, hidden_units=16,
                        data_shift=[0.5, -0.2], data_scale=[0.8, 0.6])
    flow = build_flow(config)
    randomise_weights(flow, seed=11, scale=0.4)
    lo, hi, n = -7.0, 7.0, 701
    axis = np.linspace(lo, hi, n, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    density = np.exp(flow.log_prob(grid).numpy().astype(np.float64))
    cell = ((hi - lo) / (n - 1)) ** 2
    assert abs(density.sum() * cell - 1.0) < 0.01
    # Not the standardised Gaussian any more: the weights moved the mass.
    reference = build_flow(config).log_prob(grid).numpy()
    assert np.max(np.abs(np.log(density + 1e-30) - reference)) > 0.5


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_sample_shapes_and_seeds(dim):
    flow = build_flow(FlowConfig(event_dim=dim, num_couplings=2, hidden_units=8))
    randomise_weights(flow, seed=dim)
    a = flow.sample(7, seed=tf.constant([1, 2]))
    b = flow.sample(7, seed=tf.constant([1, 2]))
    c = flow.sample(7, seed=tf.constant([1, 3]))
    assert a.shape == [7, dim] and a.dtype == tf.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert flow.sample([2, 3], seed=[0, 1]).shape == [2, 3, dim]


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_config_json_round_trip_rebuilds_the_same_log_prob(dim):
    config = FlowConfig(event_dim=dim, num_couplings=3, hidden_units=8, permutation="random",
                        permutation_seed=5, data_shift=[0.1] * dim, data_scale=[1.5] * dim)
    restored = FlowConfig.from_json(config.to_json())
    assert restored == config
    first, second = build_flow(config), build_flow(restored)
    randomise_weights(first, seed=1)
    pairs = zip(first.trainable_variables, second.trainable_variables, strict=True)
    for source, target in pairs:
        target.assign(source)
    x = tf.random.stateless_normal([9, dim], seed=[5, 5])
    np.testing.assert_array_equal(first.log_prob(x), second.log_prob(x))


def test_random_permutations_are_seeded_and_never_identity():
    config = FlowConfig(event_dim=2, permutation="random", permutation_seed=4)
    perms = [permutation_indices(config, layer) for layer in range(6)]
    assert all(list(p) == [1, 0] for p in perms)
    config5 = FlowConfig(event_dim=5, permutation="random", permutation_seed=4)
    first = [permutation_indices(config5, layer).tolist() for layer in range(4)]
    again = [permutation_indices(config5, layer).tolist() for layer in range(4)]
    assert first == again and len({tuple(p) for p in first}) > 1
    assert permutation_indices(FlowConfig(event_dim=3), 0).tolist() == [2, 1, 0]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"event_dim": 1}, "'event_dim' must be >= 2; got 1."),
        ({"num_couplings": 1}, "'num_couplings' must be >= 2; got 1."),
        ({"permutation": "spiral"}, "'permutation' must be one of"),
        ({"data_shift": [0.0]}, "'data_shift' must have event_dim=2 entries; got 1."),
        ({"data_scale": [1.0, 0.0]}, "'data_scale' entries must be > 0"),
    ],
)
def test_bad_config_is_refused(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FlowConfig(**changes)


def test_unknown_config_field_is_refused():
    payload = json.loads(FlowConfig().to_json())
    payload["hiden_units"] = 3
    with pytest.raises(ValueError, match="Unknown FlowConfig fields \\['hiden_units'\\]"):
        FlowConfig.from_dict(payload)
