"""GEE with small-sample corrected sandwich variances, and CR2, against R and direct formulas.

References: tests/fixtures/sensitivity/reference.json (blocks ``gee`` and ``cr2``), made by
tests/fixtures/r/make_sensitivity_fixtures.R (seed 20260611): ``geepack::geeglm(...,
corstr = "exchangeable")`` with its robust ``Std.err``; Mancl-DeRouen and Kauermann-Carroll
variances written out as n_j x n_j matrix formulas in R at geepack's estimates;
``clubSandwich::coef_test(fit, vcov = vcovCR(fit, cluster, type = "CR2"),
test = "Satterthwaite")`` for the OLS fit. Tiny simulated data check the p x p closed forms
against the textbook n_j x n_j formulas in numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import linalg

from trialstats.analysis.design import model_data
from trialstats.analysis.robust import (
    CR2,
    KAUERMANN_CARROLL,
    MANCL_DEROUEN,
    cr2_analysis,
    cr2_test,
    gee_analysis,
    gee_exchangeable,
)
from trialstats.config import load_config
from trialstats.contract import FAY_GRAUBARD, SENSITIVITY_COLUMNS
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "sensitivity"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())
FAY_GRAUBARD_REFERENCE = json.loads(
    (FIXTURE.parent / "fay_graubard" / "reference.json").read_text())
MONTHS = [6, 12]


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    path = tmp_path_factory.mktemp("robust") / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"practices": str(FIXTURE / "practices.csv"),
                 "patients": str(FIXTURE / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": MONTHS},
        "outcomes": [{"name": "score", "mcid": {"scale": "raw", "value": 3.0}}],
        "analysis": {"covariates": ["age", "condition"]},
    }))
    config = load_config(path)
    return load_trial(config).patients, config


def _data(patients, month):
    return model_data(patients, "score", month, cluster="practice_id", baseline_month=0,
                      covariates=["age", "condition"])


@pytest.mark.parametrize("month", MONTHS)
def test_gee_matches_geepack(trial, month):
    expected = REFERENCE["gee"][f"month_{month}"]
    data = _data(trial[0], month)
    fit = gee_exchangeable(data.y, data.X, data.cluster_codes)
    assert fit.converged
    assert fit.beta[1] == pytest.approx(expected["estimate"], rel=1e-8)
    assert fit.alpha == pytest.approx(expected["alpha"], rel=1e-8)
    assert fit.scale == pytest.approx(expected["scale"], rel=1e-8)
    assert np.sqrt(fit.vcov_robust[1, 1]) == pytest.approx(expected["se_robust"], rel=1e-8)
    assert np.sqrt(fit.vcov_mancl_derouen[1, 1]) == pytest.approx(
        expected["se_mancl_derouen"], rel=1e-8)
    assert np.sqrt(fit.vcov_kauermann_carroll[1, 1]) == pytest.approx(
        expected["se_kauermann_carroll"], rel=1e-8)


@pytest.mark.parametrize("month", MONTHS)
def test_fay_graubard_matches_saws(trial, month):
    expected = FAY_GRAUBARD_REFERENCE[f"score_m{month}"]
    data = _data(trial[0], month)
    fit = gee_exchangeable(data.y, data.X, data.cluster_codes)
    assert fit.beta == pytest.approx(expected["beta"], rel=1e-8)
    # every coefficient: the bias correction H_j acts coordinate by coordinate
    assert np.sqrt(np.diag(fit.vcov_fay_graubard)) == pytest.approx(
        expected["se_fay_graubard_all"], rel=1e-8)
    assert fit.fay_graubard_df(np.eye(len(fit.beta))[1]) == pytest.approx(
        expected["df_fay_graubard"], rel=1e-8)


@pytest.mark.parametrize("month", MONTHS)
def test_cr2_matches_clubsandwich(trial, month):
    expected = REFERENCE["cr2"][f"month_{month}"]
    data = _data(trial[0], month)
    contrast = np.eye(data.X.shape[1])[1]
    test = cr2_test(data.y, data.X, data.cluster_codes, contrast)
    assert test.estimate == pytest.approx(expected["estimate"], rel=1e-8)
    assert test.se == pytest.approx(expected["se"], rel=1e-8)
    assert test.df == pytest.approx(expected["df"], rel=1e-8)
    assert not test.singular


def _tiny(seed, sizes=(2, 5, 3, 7, 4, 6)):
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    n = codes.size
    X = np.column_stack([np.ones(n), np.arange(len(sizes))[codes] % 2, rng.normal(size=n),
                         rng.integers(0, 2, n)])
    y = X @ [1.0, 0.5, 0.3, -0.2] + rng.normal(size=len(sizes))[codes] + rng.normal(size=n)
    return y, X, codes


def _blocks(codes):
    return [np.flatnonzero(codes == j) for j in range(codes.max() + 1)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gee_corrections_match_direct_matrix_formulas(seed):
    y, X, codes = _tiny(seed)
    fit = gee_exchangeable(y, X, codes)
    blocks = _blocks(codes)
    r = y - X @ fit.beta
    # the estimating equations and the moment estimators hold at the solution
    a = fit.alpha
    working = [linalg.inv((1 - a) * np.eye(len(i)) + a * np.ones((len(i), len(i))))
               for i in blocks]
    score = sum(X[i].T @ w @ r[i] for i, w in zip(blocks, working, strict=True))
    assert np.max(np.abs(score)) < 1e-10
    assert fit.scale == pytest.approx(np.mean(r**2), rel=1e-12)
    pairs = sum((r[i].sum() ** 2 - (r[i] ** 2).sum()) / 2 for i in blocks)
    n_pairs = sum(len(i) * (len(i) - 1) / 2 for i in blocks)
    assert a == pytest.approx(pairs / fit.scale / n_pairs, rel=1e-10)

    bread_inv = linalg.inv(sum(X[i].T @ w @ X[i] for i, w in zip(blocks, working, strict=True)))

    def sandwich(correction):
        meat = 0
        for i, w in zip(blocks, working, strict=True):
            hat = X[i] @ bread_inv @ X[i].T @ w
            u = X[i].T @ w @ correction(np.eye(len(i)) - hat) @ r[i]
            meat = meat + np.outer(u, u)
        return bread_inv @ meat @ bread_inv

    def principal_inv_sqrt(matrix):
        values, vectors = linalg.eig(matrix)
        return np.real(vectors @ np.diag(values ** -0.5) @ linalg.inv(vectors))

    np.testing.assert_allclose(fit.vcov_robust, sandwich(lambda m: np.eye(len(m))), rtol=1e-10)
    np.testing.assert_allclose(fit.vcov_mancl_derouen, sandwich(linalg.inv), rtol=1e-10)
    np.testing.assert_allclose(fit.vcov_kauermann_carroll, sandwich(principal_inv_sqrt),
                               rtol=1e-10)
    assert fit.vcov_robust[1, 1] < fit.vcov_kauermann_carroll[1, 1] < fit.vcov_mancl_derouen[1, 1]

    # Fay-Graubard: U_j scaled by diag(1 - min(0.75, diag(Omega_j B^-1)))^-1/2, and the df
    # d~_H from saws' dfCalc written out with its pK x pK matrices
    omega = [X[i].T @ w @ X[i] for i, w in zip(blocks, working, strict=True)]
    u = [X[i].T @ w @ r[i] for i, w in zip(blocks, working, strict=True)]
    h = [np.diag((1 - np.minimum(0.75, np.diag(o @ bread_inv))) ** -0.5) for o in omega]
    hu = np.array([hj @ uj for hj, uj in zip(h, u, strict=True)])
    np.testing.assert_allclose(fit.vcov_fay_graubard, bread_inv @ hu.T @ hu @ bread_inv,
                               rtol=1e-10)
    c, p, k = np.eye(4)[1], 4, len(blocks)
    G = np.zeros((p * k, p * k))
    M = np.zeros((p * k, p * k))
    psi = np.zeros((p * k, p * k))
    bread = linalg.inv(bread_inv)
    for j in range(k):
        rows_j = slice(j * p, (j + 1) * p)
        G[rows_j] = -np.tile(omega[j] @ bread_inv, k)
        G[rows_j, rows_j] += np.eye(p)
        a = h[j] @ bread_inv @ c
        M[rows_j, rows_j] = np.outer(a, a)
        weight = c @ (linalg.inv(bread - omega[j]) - bread_inv) @ c
        psi[rows_j, rows_j] = weight * hu.T @ hu
    product = psi @ G.T @ M @ G
    direct = np.trace(product) ** 2 / np.sum(product * product.T)
    assert fit.fay_graubard_df(c) == pytest.approx(direct, rel=1e-10)


@pytest.mark.parametrize("seed", [1, 2])
def test_cr2_matches_direct_matrix_formulas(seed):
    y, X, codes = _tiny(seed)
    blocks = _blocks(codes)
    c = np.array([0.0, 1.0, 0.0, 0.0])
    test = cr2_test(y, X, codes, c)
    bread_inv = linalg.inv(X.T @ X)
    residual = y - X @ bread_inv @ X.T @ y
    hat = X @ bread_inv @ X.T
    adjust = [linalg.inv(linalg.sqrtm(np.eye(len(i)) - hat[np.ix_(i, i)])).real for i in blocks]
    meat = sum(np.outer(X[i].T @ a @ residual[i], X[i].T @ a @ residual[i])
               for i, a in zip(blocks, adjust, strict=True))
    vcov = bread_inv @ meat @ bread_inv
    np.testing.assert_allclose(test.vcov, vcov, rtol=1e-10)
    # Bell-McCaffrey: c'Vc = sum_j (g_j'y)^2 with g_j = (I - H)' E_j A_j X_j B^-1 c
    g = []
    for i, a in zip(blocks, adjust, strict=True):
        embedded = np.zeros(len(y))
        embedded[i] = a @ X[i] @ bread_inv @ c
        g.append((np.eye(len(y)) - hat) @ embedded)
    gram = np.array(g) @ np.array(g).T
    assert test.df == pytest.approx(np.trace(gram) ** 2 / np.sum(gram**2), rel=1e-10)
    assert test.se ** 2 == pytest.approx(sum((gj @ y) ** 2 for gj in g), rel=1e-10)


def test_leverage_one_uses_pseudo_inverse_root_and_says_so():
    y, X, codes = _tiny(4)
    only_in_first = (codes == 0).astype(float) * np.arange(1.0, 1.0 + len(y))
    X = np.column_stack([X, only_in_first])
    test = cr2_test(y, X, codes, np.eye(X.shape[1])[1])
    fit = gee_exchangeable(y, X, codes)
    assert test.singular and fit.singular
    assert np.isfinite(test.se) and np.isfinite(fit.vcov_mancl_derouen[1, 1])


def test_non_positive_definite_working_correlation_falls_back_to_independence():
    # five clusters of 3 whose values sum to (nearly) zero, and one of 12: the moment estimate
    # of alpha is about -0.4, below the positive-definite bound -1/11 of the largest cluster
    codes = np.repeat(np.arange(6), [3, 3, 3, 3, 3, 12])
    y = np.concatenate([np.tile([-1.0, 0.0, 1.0], 5), np.tile([-1.0, 1.0], 6)])
    y = y + codes * 1e-2  # small cluster shifts keep the robust SE positive
    fit = gee_exchangeable(y, np.ones((len(y), 1)), codes)
    assert fit.alpha_moment < -1.0 / 11.0
    assert fit.alpha == 0.0
    # independence working correlation: the estimate is the OLS (here: overall) mean
    assert fit.beta[0] == pytest.approx(y.mean(), rel=1e-12)
    totals = np.bincount(codes, weights=y - y.mean())
    assert fit.vcov_robust[0, 0] == pytest.approx(np.sum(totals**2) / len(y) ** 2, rel=1e-10)


@pytest.fixture(scope="module")
def rows(trial) -> pd.DataFrame:
    patients, config = trial
    return pd.concat([gee_analysis(patients, config), cr2_analysis(patients, config)],
                     ignore_index=True)


def test_rows(rows):
    assert list(rows.columns) == list(SENSITIVITY_COLUMNS)
    assert list(rows["analysis"]) == [MANCL_DEROUEN, KAUERMANN_CARROLL, FAY_GRAUBARD] * 2 + [
        CR2] * 2
    gee = rows[rows["analysis"].isin([MANCL_DEROUEN, KAUERMANN_CARROLL])]
    assert (gee["df"] == REFERENCE["n_clusters"] - 2).all()
    assert (gee["method"] == "J-2").all()
    for month in MONTHS:
        fg = rows[(rows["analysis"] == FAY_GRAUBARD) & (rows["month"] == month)].iloc[0]
        expected = FAY_GRAUBARD_REFERENCE[f"score_m{month}"]
        assert fg["method"] == "fay-graubard"
        assert fg["se"] == pytest.approx(expected["se_fay_graubard"], rel=1e-8)
        assert fg["df"] == pytest.approx(expected["df_fay_graubard"], rel=1e-8)
        assert fg["p_value"] == pytest.approx(expected["p_value"][0][0], rel=1e-7)
        assert "Fay-Graubard bias-corrected SE (bound 0.75)" in fg["notes"]
    assert rows[["icc", "var_cluster", "var_residual"]].isna().all().all()
    assert rows["converged"].all()
    md12 = rows[(rows["analysis"] == MANCL_DEROUEN) & (rows["month"] == 12)].iloc[0]
    assert md12["se"] == pytest.approx(REFERENCE["gee"]["month_12"]["se_mancl_derouen"],
                                       rel=1e-8)
    assert "exchangeable working correlation" in md12["notes"]
    assert md12["n_patients"] == REFERENCE["n_patients_m12"]
    cr2_12 = rows[(rows["analysis"] == CR2) & (rows["month"] == 12)].iloc[0]
    assert cr2_12["p_value"] == pytest.approx(REFERENCE["cr2"]["month_12"]["p_value"], rel=1e-6)
    assert cr2_12["effect_size"] == pytest.approx(cr2_12["estimate"] / REFERENCE["sd_baseline"])
    assert cr2_12["method"] == "bell-mccaffrey"
