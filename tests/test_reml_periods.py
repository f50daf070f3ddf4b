"""Exact REML for stepped-wedge / crossover trials against lme4, lmerTest and pbkrtest.

Reference fits: tests/fixtures/reml_periods/make_fixtures.R (seeded; each number in
reference.json carries the R call that produced it), and the Hussey & Hughes (2007) closed form
for the variance of the treatment effect.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trialstats.analysis.period_inference import (
    kenward_roger_periods,
    satterthwaite_periods,
    variance_intervals,
)
from trialstats.analysis.reml_periods import PeriodSums, fit_period_reml, period_terms
from trialstats.errors import TrialstatsError
from trialstats.simulation.periods import (
    exposure_time_columns,
    period_design,
    simulate_period_patients,
    simulate_period_power,
    simulate_period_sums,
    stepped_wedge_treatment,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reml_periods"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())["datasets"]
NAMES = sorted(REFERENCE)
CROSSOVER = np.array([[0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)


def _load(name: str) -> tuple[pd.DataFrame, PeriodSums, np.ndarray]:
    ref = REFERENCE[name]
    design = pd.read_csv(FIXTURES / f"{name}_design.csv")
    X = design[ref["coef_names"]].to_numpy(float)
    cluster, _ = pd.factorize(design["cluster"])
    sums = PeriodSums.from_data(design["y"].to_numpy(float), X, cluster, design["period"] - 1)
    return design, sums, np.asarray(ref["contrast"]["value"], dtype=float)


def _value(name: str, key: str):
    return REFERENCE[name][key]["value"]


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    name = request.param
    _, sums, contrast = _load(name)
    return name, sums, fit_period_reml(sums), contrast


def test_fit_matches_lme4(case):
    name, _, fit, _ = case
    assert fit.converged
    np.testing.assert_allclose(fit.beta, _value(name, "fixef"), rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov)), _value(name, "se"), rtol=1e-6)
    for ours, key in (
        (fit.var_cluster, "var_cluster"),
        (fit.var_cluster_period, "var_cluster_period"),
        (fit.var_residual, "var_residual"),
    ):
        np.testing.assert_allclose(ours, _value(name, key), rtol=1e-6, atol=0)
    np.testing.assert_allclose(fit.reml_loglik, _value(name, "reml_loglik"), rtol=0, atol=1e-8)
    # lme4's theta = (cluster:period, cluster); a variance at 0 is exactly 0 in both
    theta = np.asarray(_value(name, "theta"))
    np.testing.assert_array_equal(fit.boundary, theta[::-1] == 0)


def test_small_sample_df_match_lmertest_and_pbkrtest(case):
    name, sums, fit, contrast = case
    satterthwaite = _value(name, "satterthwaite")
    kenward_roger = _value(name, "kenward_roger")
    assert float(contrast @ fit.beta) == pytest.approx(satterthwaite["estimate"], rel=1e-6)
    np.testing.assert_allclose(
        satterthwaite_periods(sums, fit, contrast), satterthwaite["df"], rtol=1e-5
    )
    kr = kenward_roger_periods(sums, fit, contrast)
    np.testing.assert_allclose(kr.df, kenward_roger["df"], rtol=1e-5)
    np.testing.assert_allclose(kr.se, kenward_roger["se"], rtol=1e-6)


def test_icc_and_cac_intervals_match_profile_of_lme4_deviance(case):
    name, sums, fit, _ = case
    ref = _value(name, "profile_ci")
    got = variance_intervals(sums, fit)
    for key in ("icc", "icc_low", "icc_high", "cac", "cac_low", "cac_high"):
        assert float(getattr(got, key)) == pytest.approx(ref[key], abs=1e-6), key


def test_boundary_fits_satisfy_optimality_conditions(case):
    _, sums, fit, _ = case
    terms = period_terms(sums, fit.ratios)
    grad = terms.grad[0]
    scale = np.abs(terms.hess[0]).max()
    at_zero = np.asarray(fit.boundary)
    assert np.all(grad[at_zero] >= 0)
    np.testing.assert_allclose(grad[~at_zero], 0.0, atol=1e-6 * scale)


@pytest.mark.parametrize(
    ("name", "treatment", "exposure_time"),
    [
        ("sw_5x2", stepped_wedge_treatment(5), False),
        ("crossover", CROSSOVER, False),
        ("exposure_time", stepped_wedge_treatment(5), True),
    ],
)
def test_period_design_is_lme4_model_matrix(name, treatment, exposure_time):
    design, _, _ = _load(name)
    rows = period_design(treatment, exposure_time=exposure_time)
    X = rows[design["sequence"] - 1, design["period"] - 1]
    np.testing.assert_array_equal(X, design[REFERENCE[name]["coef_names"]].to_numpy(float))


def test_exposure_time_columns_by_hand():
    treatment = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, np.nan, 1]])
    exposure = np.array([[0, 1, 2, 3], [0, 0, 1, 2], [0, 0, 0, 1]])
    columns = exposure_time_columns(treatment)
    assert columns.shape == (3, 4, 3)
    np.testing.assert_array_equal(columns, exposure[..., None] == np.arange(1, 4))
    pooled = exposure_time_columns(treatment, max_exposure=2)
    np.testing.assert_array_equal(pooled[..., 1], exposure >= 2)
    with pytest.raises(TrialstatsError, match="returns to control"):
        exposure_time_columns(CROSSOVER)
    with pytest.raises(TrialstatsError, match="0, 1 or blank"):
        exposure_time_columns([[0, 2]])


def test_replicates_are_fitted_independently_and_equivariantly():
    design, single, contrast = _load("covariate_unequal")
    X = design[REFERENCE["covariate_unequal"]["coef_names"]].to_numpy(float)
    cluster, _ = pd.factorize(design["cluster"])
    y = design["y"].to_numpy(float)
    treat = design["treat"].to_numpy(float)
    batch = PeriodSums.from_data(
        np.stack([y, y + 1.5 * treat, 2.0 * y]), X, cluster, design["period"] - 1
    )
    fits = fit_period_reml(batch)
    one = fit_period_reml(single)
    np.testing.assert_allclose(fits.beta[0], one.beta, rtol=1e-9)  # X'y by gemm vs gemv
    # shifting y along a column of X moves only that coefficient
    np.testing.assert_allclose(fits.beta[1] - fits.beta[0], 1.5 * contrast, atol=1e-9)
    np.testing.assert_allclose(fits.ratios[1], fits.ratios[0], rtol=1e-7)
    # scaling y scales the variances by the square
    np.testing.assert_allclose(fits.var_residual[2], 4.0 * one.var_residual, rtol=1e-9)
    np.testing.assert_allclose(fits.var_cluster[2], 4.0 * one.var_cluster, rtol=1e-7)
    df = satterthwaite_periods(batch, fits, contrast)
    np.testing.assert_allclose(df[0], satterthwaite_periods(single, one, contrast), rtol=1e-8)


def _hussey_hughes_variance(treatment, clusters, var_mean, tau2):
    """Var(theta-hat), Hussey & Hughes (2007, Contemp. Clin. Trials 28:182), eq. (8)."""
    X = np.repeat(treatment, clusters, axis=0)
    n_cl, n_per = X.shape
    u, w, v = X.sum(), (X.sum(axis=0) ** 2).sum(), (X.sum(axis=1) ** 2).sum()
    return (n_cl * var_mean * (var_mean + n_per * tau2)) / (
        (n_cl * u - w) * var_mean + (u**2 + n_cl * n_per * u - n_per * w - n_cl * v) * tau2
    )


@pytest.mark.parametrize(("icc", "cac", "m"), [(0.05, 0.8, 20), (0.2, 0.3, 7), (0.1, 1.0, 1)])
def test_gls_variance_at_true_components_is_hussey_hughes(icc, cac, m):
    treatment = stepped_wedge_treatment(4)
    sums = simulate_period_sums(
        treatment, 3, m, icc=icc, cac=cac, effect=0.0, seed=1, replicates=[0]
    )
    tau2, gamma2, sigma2 = icc * cac, icc * (1 - cac), 1 - icc
    terms = period_terms(sums, np.array([[tau2 / sigma2, gamma2 / sigma2]]))
    expected = _hussey_hughes_variance(treatment, 3, gamma2 + sigma2 / m, tau2)
    assert sigma2 * terms.base.a_inv[0, 1, 1] == pytest.approx(expected, rel=1e-10)


def test_simulated_trials_have_the_generating_distribution():
    treatment = stepped_wedge_treatment(5)
    icc, cac, effect, reps = 0.05, 0.8, 0.2, 2000
    result = simulate_period_power(
        treatment, 4, 20, icc=icc, cac=cac, effect=effect, reps=reps, seed=7
    )
    target = np.sqrt(
        _hussey_hughes_variance(treatment, 4, icc * (1 - cac) + (1 - icc) / 20, icc * cac)
    )
    assert result["n_failed"] == 0
    assert abs(result["mean_estimate"] - effect) < 4 * target / np.sqrt(reps)
    # SD of the estimates within MC error (relative SE ~ 1/sqrt(2 reps) = 1.6%) of the GLS SD
    assert result["empirical_se"] == pytest.approx(target, rel=0.06)
    assert 0.03 <= result["type_i_error"] <= 0.07
    sums = simulate_period_sums(
        treatment, 4, 20, icc=icc, cac=cac, effect=effect, seed=7, replicates=range(300)
    )
    fit = fit_period_reml(sums)
    assert np.mean(fit.var_residual) == pytest.approx(1 - icc, rel=0.01)


def test_simulation_is_reproducible_and_independent_of_batch_size():
    kwargs = dict(icc=0.1, cac=0.5, effect=0.3, reps=40, seed=3, df_method="kenward-roger")
    first = simulate_period_power(CROSSOVER, 3, 10, batch_size=40, **kwargs)
    assert simulate_period_power(CROSSOVER, 3, 10, batch_size=40, **kwargs) == first
    assert simulate_period_power(CROSSOVER, 3, 10, batch_size=7, **kwargs) == first
    between = simulate_period_power(
        CROSSOVER, 3, 10, **{**kwargs, "df_method": "between-within"}
    )
    assert between["mean_df"] == 6 - 5  # 6 clusters - (intercept, treatment, 3 periods)


def test_refuses_designs_it_cannot_fit():
    rng = np.random.default_rng(1)
    cluster = np.repeat(np.arange(6), 10)
    one_period = np.zeros(60, dtype=int)
    X = np.column_stack([np.ones(60), cluster % 2])
    with pytest.raises(TrialstatsError, match="single period"):
        fit_period_reml(PeriodSums.from_data(rng.normal(size=60), X, cluster, one_period))
    period = np.tile(np.arange(2), 30)
    aliased = np.column_stack([X, 2 * X[:, 1]])
    with pytest.raises(TrialstatsError, match="rank deficient"):
        fit_period_reml(PeriodSums.from_data(rng.normal(size=60), aliased, cluster, period))
    cells = np.arange(60)
    with pytest.raises(TrialstatsError, match="single patient"):
        fit_period_reml(PeriodSums.from_data(rng.normal(size=60), X, cells // 10, cells % 10))
    with pytest.raises(TrialstatsError, match="df method"):
        simulate_period_power(CROSSOVER, 2, 5, icc=0.1, cac=0.5, effect=0, reps=2, seed=0,
                              df_method="z")


def test_patient_level_trials_have_the_sums_layout():
    treatment = stepped_wedge_treatment(3)
    sizes = np.arange(1, 25).reshape(6, 4) % 5  # unequal, some cluster-periods empty
    patients = simulate_period_patients(
        treatment, 2, sizes, icc=0.1, cac=0.5, effect=0.3, rng=np.random.default_rng(5)
    )
    X = period_design(treatment)[patients["sequence"] - 1, patients["period"] - 1]
    from_patients = PeriodSums.from_data(
        patients["y"].to_numpy(), X, patients["cluster"].to_numpy(), patients["period"] - 1
    )
    drawn = simulate_period_sums(
        treatment, 2, sizes, icc=0.1, cac=0.5, effect=0.3, seed=1, replicates=[0]
    )
    np.testing.assert_array_equal(from_patients.n, drawn.n[0])
    np.testing.assert_allclose(from_patients.xsum, drawn.xsum[0], rtol=1e-15)
    np.testing.assert_allclose(from_patients.xtx, drawn.xtx[0], rtol=1e-15)
    np.testing.assert_array_equal(patients["treat"], X[:, 1])


def test_both_variances_at_zero_is_ordinary_least_squares():
    sums = simulate_period_sums(
        CROSSOVER, 3, 4, icc=0.0, cac=0.5, effect=0.0, seed=11, replicates=range(200)
    )
    fit = fit_period_reml(sums)
    both = np.flatnonzero(fit.boundary.all(axis=-1))
    assert both.size > 0 and fit.converged.all()
    for r in both:
        beta = np.linalg.solve(sums.xtx[r], sums.xty[r])
        rss = sums.yty[r] - beta @ sums.xty[r]
        np.testing.assert_allclose(fit.beta[r], beta, rtol=1e-10, atol=1e-12)
        assert fit.var_residual[r] == pytest.approx(rss / (sums.n[r].sum() - 5), rel=1e-12)
        assert fit.icc[r] == 0 and np.isnan(fit.cac[r])


def test_from_data_pads_and_checks_slots():
    y, X = np.arange(8.0), np.ones((8, 1))
    cluster, period = np.repeat([0, 1], 4), np.tile([0, 1], 4)
    padded = PeriodSums.from_data(y, X, cluster, period, n_clusters=3, n_periods=4)
    assert padded.n.shape == (3, 4) and padded.n[2].sum() == 0 and padded.n[:, 2:].sum() == 0
    np.testing.assert_array_equal(padded.ysum[:2, :2], [[2.0, 4.0], [10.0, 12.0]])
    with pytest.raises(TrialstatsError, match="largest code"):
        PeriodSums.from_data(y, X, cluster, period, n_clusters=1)
