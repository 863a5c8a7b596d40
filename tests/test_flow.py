"""The flow as a distribution: normalisation, sampling, config round trip."""

import json

import pytest

from tfp_realnvp import FlowConfig
from tfp_realnvp.bijectors.mixing import permutation_indices


def test_random_permutations_are_seeded_and_never_identity():
    perms = [permutation_indices("random", 2, 4, layer) for layer in range(6)]
    assert all(list(p) == [1, 0] for p in perms)
    first = [permutation_indices("random", 5, 4, layer).tolist() for layer in range(4)]
    again = [permutation_indices("random", 5, 4, layer).tolist() for layer in range(4)]
    assert first == again and len({tuple(p) for p in first}) > 1
    assert permutation_indices("reverse", 3, 0, 0).tolist() == [2, 1, 0]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"event_dim": 1}, "'event_dim' must be >= 2; got 1."),
        ({"num_couplings": 1}, "'num_couplings' must be >= 2; got 1."),
        ({"mixing": "spiral"}, "'mixing' must be one of"),
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


def test_one_context_rule_for_every_caller():
    """`couplings(flow)` are the bijectors a context goes to and `flow_context_dim` reads
    its width from them: plots ask the same helper; a foreign distribution has none."""
    import tensorflow_probability as tfp

    from tfp_realnvp import bijector_kwargs, build_flow, couplings, plots
    from tfp_realnvp.flow import flow_context_dim

    assert plots.flow_context_dim is flow_context_dim
    normal = tfp.distributions.Normal(0.0, 1.0)
    assert couplings(normal) == [] and flow_context_dim(normal) == 0
    small = {"num_couplings": 2, "hidden_units": 4, "num_hidden_layers": 1}
    plain = build_flow(FlowConfig(event_dim=3, **small))
    assert flow_context_dim(plain) == 0 and bijector_kwargs(plain, None) == {}
    ensemble = build_flow(FlowConfig(event_dim=3, context_dim=2, ensemble_size=2, **small))
    assert flow_context_dim(ensemble) == 2
    routed = bijector_kwargs(ensemble, [[0.0, 1.0]], per_member=True)
    assert sorted(routed) == ["coupling_0", "coupling_1"]
    assert all(set(kwargs) == {"member_context"} for kwargs in routed.values())
