"""The toy sets' exact densities (`bench.truth`) and the `exact` column of `bench quality`."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from tfp_realnvp.bench import quality
from tfp_realnvp.bench.truth import exact_log_prob
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.tables import make_toy


@pytest.mark.parametrize("name", ["moons", "circles"])
def test_the_density_integrates_to_one(name):
    xs = np.linspace(-1.6, 2.6, 106)
    ys = np.linspace(-1.6, 1.6, 81)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    mass = np.exp(exact_log_prob(name, grid, 0.1)).sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_swissroll_matches_the_generators_law_summed_directly():
    """Against the definition written out independently: the mean of the noise's Gaussian
    over a million evenly spaced `t` of the roll (`t ~ U(3 pi/2, 9 pi/2)`, all over 5)."""
    x = make_toy("swissroll", 4, 0.05, seed=3).astype(np.float64)
    t = np.linspace(1.5 * np.pi, 4.5 * np.pi, 1_000_001)
    roll = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5
    scale = 0.05 / 5
    direct = [np.log(np.mean(np.exp(-((row - roll) ** 2).sum(1) / (2 * scale**2)))
                     / (2 * np.pi * scale**2)) for row in x]
    np.testing.assert_allclose(exact_log_prob("swissroll", x, 0.05), direct, atol=1e-6)


@pytest.mark.parametrize("name", ["moons", "circles", "swissroll"])
def test_no_fitted_model_beats_the_truth_on_fresh_points(name):
    train = make_toy(name, 1000, 0.05, seed=0).astype(np.float64)
    test = make_toy(name, 1000, 0.05, seed=1).astype(np.float64)
    gmm = GaussianMixture(8, random_state=0).fit(train)
    exact = -exact_log_prob(name, test, 0.05)
    assert np.all(np.isfinite(exact))
    assert exact.mean() < -gmm.score_samples(test).mean()
    # The truth scores its own rows better than rows drawn with more noise.
    wider = make_toy(name, 1000, 0.08, seed=1)
    assert exact.mean() < -exact_log_prob(name, wider, 0.05).mean()


def test_unknown_toys_and_no_noise_are_refused():
    with pytest.raises(ConfigError, match="No exact density for 'blobs'"):
        exact_log_prob("blobs", np.zeros((1, 2)), 0.05)
    with pytest.raises(ConfigError, match="'noise' must be > 0"):
        exact_log_prob("moons", np.zeros((1, 2)), 0.0)


def test_bench_quality_shows_the_floor_on_toys_only(monkeypatch):
    monkeypatch.setattr(quality, "TOY_TEST", 1000)
    records = quality.run_quality(tables=("circles", "iris"), methods=("exact", "gaussian"))
    by_key = {(r["table"], r["method"]): r for r in records}
    assert ("iris", "exact") not in by_key  # a real table's density is unknown
    assert by_key[("circles", "exact")]["nll"] < by_key[("circles", "gaussian")]["nll"]
    table = quality.format_table(records)
    assert "| exact | gaussian |" in table
    assert "exact: the toy generator's own density" in table
