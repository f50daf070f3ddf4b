"""ICC and its profile-likelihood interval (R reference: tests/fixtures/r/make_reml_fixtures.R)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reml_fixtures import NAMES, REFERENCE, load
from trialstats.analysis.icc import icc_interval
from trialstats.analysis.reml import ClusterSums, fit_reml, profile_terms
from trialstats.errors import TrialstatsError
from trialstats.simulation.validity import simulate_icc_coverage


def sums_of(name: str) -> ClusterSums:
    return ClusterSums.from_data(*load(name))


@pytest.mark.parametrize("name", NAMES)
def test_interval_matches_uniroot_on_lme4_deviance(name):
    result = icc_interval(sums_of(name))
    ref = REFERENCE[name]["icc_profile_ci"]["value"]
    assert result.estimate == pytest.approx(ref["icc"], rel=1e-6, abs=1e-12)
    assert result.low == pytest.approx(ref["low"], rel=1e-6, abs=1e-12)
    assert result.high == pytest.approx(ref["high"], rel=1e-6)
    assert result.level == 0.95


@pytest.mark.parametrize("name", ["few_clusters", "sms_like", "boundary"])
def test_end_points_sit_on_the_likelihood_ratio_cut_off(name):
    sums = sums_of(name)
    fit = fit_reml(sums)
    result = icc_interval(sums, fit, level=0.9)
    cut = stats.chi2.ppf(0.9, 1)

    def lr(gamma):
        return 2 * (fit.reml_loglik - profile_terms(sums, gamma).reml_loglik())

    assert lr(result.gamma_high) == pytest.approx(cut, rel=1e-9)
    if result.gamma_low > 0:
        assert lr(result.gamma_low) == pytest.approx(cut, rel=1e-9)
    else:
        assert lr(0.0) <= cut
    assert result.high == pytest.approx(result.gamma_high / (1 + result.gamma_high), rel=1e-14)


def test_boundary_fit_has_zero_estimate_and_lower_limit():
    result = icc_interval(sums_of("boundary"))
    assert result.estimate == 0 and result.low == 0 and 0 < result.high < 0.2


def test_wider_level_gives_a_wider_interval():
    sums = sums_of("unequal")
    narrow, wide = icc_interval(sums, level=0.8), icc_interval(sums, level=0.99)
    assert wide.low < narrow.low < narrow.estimate < narrow.high < wide.high


def test_batched_interval_equals_single_ones():
    rng = np.random.default_rng(4)
    codes = np.repeat(np.arange(10), 12)
    X = np.column_stack([np.ones(120), (np.arange(10) % 2)[codes]])
    y = rng.normal(0, 0.4, (6, 10))[:, codes] + rng.normal(0, 1, (6, 120))
    batch = icc_interval(ClusterSums.from_data(y, X, codes))
    assert batch.low.shape == (6,)
    assert (batch.low == 0).any() and (batch.low > 0).any()  # both kinds of lower limit
    for r in range(6):
        one = icc_interval(ClusterSums.from_data(y[r], X, codes))
        assert batch.low[r] == pytest.approx(one.low, rel=1e-9, abs=1e-15)
        assert batch.high[r] == pytest.approx(one.high, rel=1e-9)


def test_unbounded_upper_limit_is_icc_one():
    # two clusters, one per arm: the arm absorbs all between-cluster information, the profile
    # is flat as gamma grows and never reaches the cut-off
    rng = np.random.default_rng(1)
    codes = np.repeat(np.arange(2), 30)
    X = np.column_stack([np.ones(60), codes])
    y = np.array([0.0, 3.0])[codes] + rng.normal(0, 1, 60)
    result = icc_interval(ClusterSums.from_data(y, X, codes))
    assert result.high == 1 and np.isinf(result.gamma_high)


def test_quick_coverage_is_near_nominal():
    # 400 trials of 20 clusters of 20 at ICC 0.05: Monte Carlo SE about 0.011
    out = simulate_icc_coverage(n_clusters=20, cluster_size=20, icc=0.05, n_reps=400, seed=2024)
    assert 0.91 <= out["coverage"] <= 0.985
    assert out["n_reps"] == 400 and out["mean_width"] > 0
    assert out["below"] + out["above"] == pytest.approx(1 - out["coverage"])
    again = simulate_icc_coverage(n_clusters=20, cluster_size=20, icc=0.05, n_reps=400,
                                  seed=2024)
    assert again == out


def test_bad_arguments_raise():
    sums = sums_of("balanced")
    with pytest.raises(TrialstatsError, match="level"):
        icc_interval(sums, level=95)
    with pytest.raises(TrialstatsError, match="at least 4 clusters"):
        simulate_icc_coverage(n_clusters=2, cluster_size=10, icc=0.1, n_reps=10, seed=1)
