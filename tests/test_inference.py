"""Small-sample inference against lmerTest and pbkrtest (tests/fixtures/r/make_reml_fixtures.R)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from reml_fixtures import NAMES, REFERENCE, load, value
from trialstats.analysis.inference import (
    between_within_df,
    contrast_test,
    kenward_roger,
    satterthwaite_df,
)
from trialstats.analysis.reml import ClusterSums, fit_reml
from trialstats.errors import TrialstatsError


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[ClusterSums, object]]:
    out = {}
    for name in NAMES:
        sums = ClusterSums.from_data(*load(name))
        out[name] = (sums, fit_reml(sums))
    return out


def unit(p: int, k: int) -> np.ndarray:
    return np.eye(p)[k]


@pytest.mark.parametrize("name", NAMES)
def test_satterthwaite_df_matches_lmertest(fitted, name):
    sums, fit = fitted[name]
    p = sums.n_params
    ours = [satterthwaite_df(sums, fit, unit(p, k)) for k in range(p)]
    np.testing.assert_allclose(ours, value(name, "satterthwaite_df"), rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_kenward_roger_matches_pbkrtest(fitted, name):
    sums, fit = fitted[name]
    p = sums.n_params
    results = [kenward_roger(sums, fit, unit(p, k)) for k in range(p)]
    np.testing.assert_allclose([r.df for r in results], value(name, "kr_df"), rtol=1e-5)
    np.testing.assert_allclose([r.se for r in results], value(name, "kr_se"), rtol=1e-6)
    np.testing.assert_allclose(
        results[0].vcov_adjusted.ravel(), value(name, "kr_vcov_adjusted"), rtol=1e-5
    )


def test_arm_contrast_tests_match_lmertest_tables(fitted):
    # the arm coefficient, as lmerTest::contest1D reports it
    for name in NAMES:
        sums, fit = fitted[name]
        arm = unit(sums.n_params, REFERENCE[name]["coef_names"].index("arm"))
        k = REFERENCE[name]["coef_names"].index("arm")
        sat = contrast_test(sums, fit, arm, "satterthwaite")
        assert sat.se == pytest.approx(value(name, "satterthwaite_se")[k], rel=1e-6)
        assert sat.df == pytest.approx(value(name, "satterthwaite_df")[k], rel=1e-5)
        kr = contrast_test(sums, fit, arm, "kenward-roger")
        assert kr.se == pytest.approx(value(name, "kr_se")[k], rel=1e-6)
        assert kr.se_model == pytest.approx(sat.se, rel=1e-12)
        assert kr.df == pytest.approx(value(name, "kr_df")[k], rel=1e-5)
        assert kr.t == pytest.approx(kr.estimate / kr.se)
        assert kr.p_value == pytest.approx(2 * stats.t.sf(abs(kr.t), kr.df))


def test_boundary_satterthwaite_is_residual_df(fitted):
    sums, fit = fitted["boundary"]
    assert bool(fit.boundary)
    n, p = REFERENCE["boundary"]["n_obs"], sums.n_params
    for k in range(p):
        assert satterthwaite_df(sums, fit, unit(p, k)) == pytest.approx(n - p, rel=1e-12)


def test_residual_and_between_within_df(fitted):
    sums, fit = fitted["covariates"]
    names = REFERENCE["covariates"]["coef_names"]
    n, J, p = REFERENCE["covariates"]["n_obs"], REFERENCE["covariates"]["n_clusters"], len(names)
    # cluster-level: intercept, arm, list_size, imd (p_b = 4); within: baseline, 2 condition dummies
    between, within = J - 4, n - J - (p - 4)
    expected = {"(Intercept)": between, "arm": between, "list_size": between, "imd": between,
                "baseline": within, "conditiondiabetes": within, "conditionIBS": within}
    for k, name in enumerate(names):
        test = contrast_test(sums, fit, unit(p, k), "between-within")
        assert test.df == expected[name], name
        assert contrast_test(sums, fit, unit(p, k), "residual").df == n - p
    mixed = unit(p, names.index("arm")) + unit(p, names.index("baseline"))
    assert between_within_df(sums, mixed) == between


def test_model_data_input_equals_cluster_sums(fitted):
    sums, fit = fitted["unequal"]
    y, X, codes = load("unequal")
    data = SimpleNamespace(y=y, X=X, cluster_codes=codes, n_clusters=int(codes.max()) + 1)
    arm = unit(3, 1)
    for method in ("residual", "between-within", "satterthwaite", "kenward-roger"):
        a, b = contrast_test(data, fit, arm, method), contrast_test(sums, fit, arm, method)
        assert a.df == pytest.approx(b.df, rel=1e-12) and a.se == pytest.approx(b.se, rel=1e-12)


def test_batched_satterthwaite_and_kenward_roger_equal_single_fits():
    rng = np.random.default_rng(8)
    codes = np.repeat(np.arange(12), rng.integers(4, 30, 12))
    arm = (np.arange(12) % 2)[codes]
    X = np.column_stack([np.ones(codes.size), arm, rng.normal(0, 1, codes.size)])
    y = arm + X[:, 2] + rng.normal(0, 0.5, (6, 12))[:, codes] + rng.normal(0, 1, (6, codes.size))
    sums = ClusterSums.from_data(y.reshape(2, 3, -1), X, codes)
    fit = fit_reml(sums)
    contrast = unit(3, 1)
    sat = satterthwaite_df(sums, fit, contrast)
    kr = kenward_roger(sums, fit, contrast)
    test = contrast_test(sums, fit, contrast, "satterthwaite")
    assert sat.shape == kr.df.shape == test.p_value.shape == (2, 3)
    for r in range(6):
        one = ClusterSums.from_data(y[r], X, codes)
        one_fit = fit_reml(one)
        i, j = divmod(r, 3)
        assert sat[i, j] == pytest.approx(satterthwaite_df(one, one_fit, contrast), rel=1e-9)
        assert kr.df[i, j] == pytest.approx(kenward_roger(one, one_fit, contrast).df, rel=1e-9)


def test_bad_requests_raise(fitted):
    sums, fit = fitted["balanced"]
    with pytest.raises(TrialstatsError, match="Unknown df method"):
        contrast_test(sums, fit, unit(3, 1), "wald")
    with pytest.raises(TrialstatsError, match="entries"):
        contrast_test(sums, fit, [0.0, 1.0], "residual")
    with pytest.raises(TrialstatsError, match="all zeros"):
        contrast_test(sums, fit, np.zeros(3), "residual")
    other, _ = fitted["covariates"]
    with pytest.raises(TrialstatsError, match="does not belong"):
        satterthwaite_df(other, fit, unit(3, 1))


def test_empty_cluster_slot_changes_nothing():
    y, X, codes = load("few_clusters")
    sums = ClusterSums.from_data(y, X, codes)
    padded = ClusterSums.from_data(y, X, codes, n_clusters=int(codes.max()) + 3)
    fit, fit_padded = fit_reml(sums), fit_reml(padded)
    arm = unit(3, 1)
    for method in ("residual", "between-within", "satterthwaite", "kenward-roger"):
        a, b = contrast_test(sums, fit, arm, method), contrast_test(padded, fit_padded, arm, method)
        assert a.df == pytest.approx(b.df, rel=1e-9), method
        assert a.se == pytest.approx(b.se, rel=1e-9), method
