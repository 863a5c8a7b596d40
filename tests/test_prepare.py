"""prepare.py: one value per run (splits with their contexts, statistics, hashes), no TF."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfp_realnvp import FlowConfig, TrainConfig
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.errors import DataError


def table(rows=200, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((rows, 3)).astype(np.float32)
    context = np.round(rng.uniform(0, 4, (rows, 2))).astype(np.float32)
    return data, context


def test_prepare_imports_no_tensorflow():
    code = ("import json, sys; import tfp_realnvp.prepare; "
            "print(json.dumps('tensorflow' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) is False


@pytest.mark.parametrize("ensemble_size", [1, 3])
def test_contexts_go_with_their_rows_into_the_same_splits_as_the_old_concatenated_rows(
        ensemble_size):
    data, context = table()
    flow, train = FlowConfig(ensemble_size=ensemble_size), TrainConfig(seed=5)
    prepared = prepare_lib.prepare(data, context, flow, train)
    rows = np.concatenate([data, context], axis=1)
    old = ([prepare_lib.train_validation_split(rows, 0.1, 5)] if ensemble_size == 1
           else prepare_lib.kfold_splits(rows, ensemble_size, 5))
    assert len(prepared.members) == ensemble_size
    for member, (train_rows, validation_rows) in zip(prepared.members, old, strict=True):
        np.testing.assert_array_equal(member.train_events, train_rows[:, :3])
        np.testing.assert_array_equal(member.train_context, train_rows[:, 3:])
        np.testing.assert_array_equal(member.validation_events, validation_rows[:, :3])
        np.testing.assert_array_equal(member.validation_context, validation_rows[:, 3:])
    # The same rows and configs: the same value, so a resumed run trains on the same splits.
    again = prepare_lib.prepare(data, context, flow, train)
    for a, b in zip(prepared.members, again.members, strict=True):
        np.testing.assert_array_equal(a.train_events, b.train_events)
        np.testing.assert_array_equal(a.validation_context, b.validation_context)


def test_statistics_and_hashes_are_those_of_the_fitted_rows():
    data, context = table()
    prepared = prepare_lib.prepare(data, context, FlowConfig(), TrainConfig(seed=1))
    fitted = prepared.members[0]
    assert prepared.num_train == 180 and prepared.num_validation == 20
    np.testing.assert_allclose(prepared.data_map["data_shift"], fitted.train_events.mean(0),
                               rtol=1e-5, atol=1e-6)
    assert np.asarray(prepared.data_map["data_tril"]).shape == (3, 3)
    np.testing.assert_allclose(prepared.context_map["context_scale"],
                               fitted.train_context.std(0), rtol=1e-5)
    assert prepared.hashes == {"sha256": prepare_lib.content_hash(data),
                               "context_sha256": prepare_lib.content_hash(context)}
    assert prepared.conditional and prepared.dequantize_steps is None  # dequantize='none'
    plain = prepare_lib.prepare(data, None, FlowConfig(), TrainConfig(seed=1))
    assert not plain.conditional and plain.members[0].train_context is None
    assert plain.context_map == {"context_shift": None, "context_scale": None}
    assert set(plain.hashes) == {"sha256"}


def test_grid_steps_come_from_the_events_only():
    data, context = table()
    data[:, 1] = np.round(data[:, 1] * 4) / 4  # a grid of step 0.25
    prepared = prepare_lib.prepare(data, context, FlowConfig(), TrainConfig(dequantize="auto"))
    assert prepared.dequantize_steps == [0.0, 0.25, 0.0]  # not the context's grid of 1


def test_too_few_rows_for_the_folds_is_refused():
    data, _ = table(rows=12)
    with pytest.raises(DataError, match="5 ensemble members hold out one of 5 folds each and "
                                        "need at least 10 rows; got 9"):
        prepare_lib.prepare(data[:9], None, FlowConfig(ensemble_size=5), TrainConfig())
