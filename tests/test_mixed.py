"""Mixed tables: the categorical mass, the encoding, the mixed model and its baselines."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfp_realnvp import FlowConfig, TrainConfig, build_flow
from tfp_realnvp.errors import DataError, RunExistsError
from tfp_realnvp.mixed import categorical as categorical_lib
from tfp_realnvp.mixed import encoding
from tfp_realnvp.mixed.categorical import CategoricalModel
from tfp_realnvp.mixed.mass_tf import CategoricalMass
from tfp_realnvp.mixed.model import MixedTableModel, fit_mixed, load_mixed

TINY_FLOW = FlowConfig(num_couplings=2, hidden_units=8, num_hidden_layers=1)
TINY_TRAIN = TrainConfig(epochs=5, batch_size=64, patience=5, jit_compile=False)


def dependent_codes(rows=300, seed=0):
    """Three columns (3, 2 and 1 levels) with column 2 depending on column 1."""
    rng = np.random.default_rng(seed)
    first = rng.choice(3, rows, p=[0.6, 0.3, 0.1])
    second = np.where(first == 0, rng.random(rows) < 0.9, rng.random(rows) < 0.2)
    return np.stack([first, second.astype(int), np.zeros(rows, int)], axis=1)


def random_flow(levels, dim=2, seed=0):
    """A conditional flow with random (not identity) couplings, context one-hot."""
    flow = build_flow(TINY_FLOW.replace(event_dim=dim, context_dim=sum(levels)))
    rng = np.random.default_rng(seed)
    for variable in flow.trainable_variables:
        variable.assign(0.4 * rng.standard_normal(variable.shape).astype(np.float32))
    return flow


# -- the categorical mass ------------------------------------------------------------------

@pytest.mark.parametrize("codes", [
    dependent_codes(),
    dependent_codes(7, seed=3),
    np.zeros((20, 1), int),  # a single one-level column
    np.array([[0, 1], [1, 0], [1, 1], [1, 1]]),
])
def test_masses_over_every_cell_sum_to_one(codes):
    model = CategoricalModel.fit(codes)
    cells = model.all_cells()
    assert len(cells) == np.prod([level + 1 for level in model.levels])  # unseen included
    assert np.exp(model.log_mass(cells)).sum() == pytest.approx(1.0, abs=1e-9)
    grid = categorical_lib.DEFAULT_STRENGTHS
    assert np.isfinite(model.strength) and grid[0] <= model.strength <= grid[-1]


def test_the_strength_is_the_best_cross_validated_grid_value():
    rng = np.random.default_rng(1)
    independent = rng.integers(0, 4, (400, 3))  # no dependence: shrink hard to Q
    model = CategoricalModel.fit(independent)
    assert model.scores[model.strength] == max(model.scores.values())
    assert model.strength > CategoricalModel.fit(dependent_codes(400)).strength


def test_sampling_frequencies_match_the_masses():
    model = CategoricalModel.fit(dependent_codes(60))
    draws = model.sample(200_000, np.random.default_rng(0))
    cells = model.all_cells()
    frequencies = np.bincount(model.cell_keys(draws), minlength=len(cells)) / len(draws)
    masses = np.exp(model.log_mass(cells))  # all_cells is in key order
    assert 0.5 * np.abs(frequencies - masses).sum() < 0.01


def test_missing_and_unseen_cells_get_their_exact_mass():
    model = CategoricalModel.fit(dependent_codes())
    cells = model.all_cells()
    masses = np.exp(model.log_mass(cells))
    marginal = np.exp(model.log_mass([[1, -1, -1]]))[0]
    assert marginal == pytest.approx(masses[cells[:, 0] == 1].sum(), rel=1e-12)
    assert model.log_mass([[-1, -1, -1]])[0] == pytest.approx(0.0, abs=1e-12)
    unseen = model.log_mass([[7, 0, 0], [3, 0, 0]])  # any code >= L_k is the unseen level
    assert np.isfinite(unseen).all() and unseen[0] == unseen[1]


def test_json_round_trip_and_bad_codes():
    model = CategoricalModel.fit(dependent_codes())
    again = CategoricalModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(again.log_mass(model.all_cells()),
                                  model.log_mass(model.all_cells()))
    with pytest.raises(DataError, match="row 2, column 1 holds -1; -1 .missing. is not"):
        CategoricalModel.fit([[0, 1], [-1, 0]])
    with pytest.raises(DataError, match="expected integer codes"):
        CategoricalModel.fit([[0.5, 1.0]])
    with pytest.raises(DataError, match="2 categorical column.s.; the model has 3"):
        model.log_mass([[0, 1]])


@pytest.mark.parametrize("text_keys", [False, True])
def test_tensorflow_mass_equals_the_numpy_mass(monkeypatch, text_keys):
    if text_keys:  # force the text keys that very large cell spaces use
        monkeypatch.setattr(categorical_lib, "MAX_INDEX", 1)
    model = CategoricalModel.fit(dependent_codes())
    assert model.index_keys is not text_keys
    codes = np.concatenate([model.all_cells(), [[9, 0, 0], [2, 5, 1]]])
    mass = CategoricalMass(model)
    np.testing.assert_allclose(mass(tf.constant(codes)).numpy(), model.log_mass(codes),
                               rtol=1e-12, atol=1e-12)


# -- encoding ------------------------------------------------------------------------------

def test_vocabularies_codes_and_missing_cells():
    table = {"size": [10, 2, 2, None, 10], "flag": [True, False, True, True, np.nan],
             "colour": ["red", "blue", "", "red", "green"]}
    vocabularies = encoding.fit_vocabularies(table)
    assert [v.labels for v in vocabularies] == [("2", "10"), ("False", "True"),
                                               ("blue", "green", "red")]
    codes = encoding.encode(table, vocabularies)
    np.testing.assert_array_equal(codes, [[1, 1, 2], [0, 0, 0], [0, 1, -1], [-1, 1, 2],
                                          [1, -1, 1]])
    report = encoding.find_missing(codes, vocabularies)
    assert report.total == 3 and report.first_rows["colour"] == [3]
    assert "size: 1 (rows 4)" in str(report)
    fresh = encoding.encode({"size": [3], "flag": [False], "colour": ["red"]}, vocabularies)
    np.testing.assert_array_equal(fresh, [[2, 0, 2]])  # 3 is unseen: code L = 2
    labels = encoding.decode(fresh, vocabularies)
    assert labels.tolist() == [[encoding.UNSEEN_LABEL, "False", "red"]]
    hot = encoding.one_hot(fresh, [2, 2, 3], unseen_rows=[np.array([0.4, 0.6]), None, None])
    np.testing.assert_allclose(hot, [[0.4, 0.6, 1, 0, 0, 0, 1]])
    with pytest.raises(DataError, match="row 3, column 3 is missing"):
        encoding.one_hot(codes, [2, 2, 3])
    with pytest.raises(DataError, match="column 'empty': every cell is missing"):
        encoding.fit_vocabularies({"empty": [None, ""]})


# -- the mixed model -----------------------------------------------------------------------

def test_log_prob_is_the_sum_of_its_parts_and_the_marginal_is_the_logsumexp():
    codes = dependent_codes(50)
    categorical = CategoricalModel.fit(codes)
    model = MixedTableModel(categorical, random_flow(categorical.levels))
    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    rows = np.array([[0, 1, 0], [2, 0, 0], [5, 0, 0], [-1, 1, 0], [1, -1, -1], [-1, -1, 0]])
    mass, density = model.log_prob_parts(x, rows)
    total = model.log_prob(x, rows)
    np.testing.assert_allclose(mass + density, total, rtol=1e-12)
    np.testing.assert_allclose(mass[:3], categorical.log_mass(rows[:3]))
    for row in range(3, 6):
        missing = np.flatnonzero(rows[row] < 0)
        cells = categorical.all_cells()
        cells = cells[np.all((cells == rows[row]) | (rows[row] < 0), axis=1)]
        terms = categorical.log_mass(cells) + model.log_density(
            np.repeat(x[row:row + 1], len(cells), 0), cells)
        assert len(terms) == np.prod([categorical.sizes[k] for k in missing])
        assert total[row] == pytest.approx(np.logaddexp.reduce(terms), abs=1e-5)  # float32 flow


def test_the_numeric_density_integrates_to_one_in_every_cell():
    categorical = CategoricalModel.fit(np.array([[0, 0], [1, 1], [1, 0], [0, 1], [1, 1]]))
    model = MixedTableModel(categorical, random_flow(categorical.levels, seed=2))
    edges = np.linspace(-9.0, 9.0, 361)
    centres = (edges[:-1] + edges[1:]) / 2
    grid = np.stack(np.meshgrid(centres, centres), -1).reshape(-1, 2).astype(np.float32)
    area = (edges[1] - edges[0]) ** 2
    for cell in categorical.all_cells():  # unseen levels included
        density = np.exp(model.log_density(grid, np.repeat(cell[None], len(grid), 0)))
        assert density.sum() * area == pytest.approx(1.0, abs=5e-3), cell


def test_fit_mixed_sample_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    codes = dependent_codes(240)
    numeric = rng.normal(size=(240, 3)) + 2.0 * codes[:, :1]
    model = fit_mixed(numeric, codes, tmp_path / "run", TINY_FLOW, TINY_TRAIN)
    scores = model.log_prob(numeric[:20], codes[:20])
    assert np.isfinite(scores).all()
    again = load_mixed(tmp_path / "run")
    np.testing.assert_allclose(again.log_prob(numeric[:20], codes[:20]), scores, rtol=1e-6)
    x, c = again.sample(50, seed=3)
    assert x.shape == (50, 3) and c.shape == (50, 3) and np.isfinite(x).all()
    x2, c2 = model.sample(50, seed=3)
    np.testing.assert_array_equal(c, c2)
    np.testing.assert_allclose(x, x2, rtol=1e-5)
    with pytest.raises(DataError, match="numeric: 5 rows; codes has 20"):
        model.log_prob(numeric[:5], codes[:20])
    with pytest.raises(RunExistsError):
        fit_mixed(None, codes, tmp_path / "run")


def test_an_all_categorical_table_is_the_categorical_model(tmp_path):
    codes = dependent_codes(100)
    model = fit_mixed(None, codes, tmp_path / "cats")
    np.testing.assert_allclose(model.log_prob(None, codes), model.categorical.log_mass(codes))
    _, sampled = load_mixed(tmp_path / "cats").sample(10, seed=0)
    assert sampled.shape == (10, 3)
    with pytest.raises(DataError, match="this model has no numeric columns"):
        model.log_prob(np.ones((100, 2)), codes)


# -- the baselines -------------------------------------------------------------------------

def test_baselines_score_finite_numbers_on_every_table():
    from tfp_realnvp.bench import mixed_tables as bench

    records = bench.run_mixed_quality(methods=("independent", "location"))
    assert len(records) == 2 * len(bench.MIXED_TABLES)
    assert all(np.isfinite([r["nll"], r["categorical"], r["numeric"]]).all() for r in records)
    assert "| synthetic (1600, 3, 2) |" in bench.format_mixed_table(records)


def test_the_location_model_with_one_cell_is_the_independent_gaussian():
    from tfp_realnvp.bench.mixed_tables import IndependentModel, fit_location

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 3))
    codes = np.zeros((200, 1), int)
    location = fit_location(x, codes, [1])
    independent = IndependentModel.fit(x, codes, [1])
    np.testing.assert_allclose(location.log_density(x[:20], codes[:20]),
                               independent.log_density(x[:20], codes[:20]), rtol=1e-10)


def test_the_location_model_masses_sum_to_one_over_cells():
    from tfp_realnvp.bench.mixed_tables import LocationModel

    codes = dependent_codes(80)
    x = np.random.default_rng(1).normal(size=(80, 2))
    model = LocationModel.fit(x, codes, [3, 2, 1], alpha=0.3, shrinkage=2.0)
    cells = CategoricalModel.fit(codes).all_cells()
    assert len(cells) == model.num_cells
    assert np.exp(model.log_mass(cells)).sum() == pytest.approx(1.0, abs=1e-9)
    assert np.isfinite(model.log_density(x[:5], np.array([[3, 0, 0]] * 5))).all()
