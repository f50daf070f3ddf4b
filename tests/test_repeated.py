"""Repeated-measures model (practice / patient random intercepts) against lme4/lmerTest.

Reference: tests/fixtures/sensitivity/reference.json (block ``repeated``), made by
tests/fixtures/r/make_sensitivity_fixtures.R (seed 20260611): ``lmer(y ~ treated * month +
score_m0 + age + condition + (1 | practice_id/patient_id))`` on the 6- and 12-month scores in
long format, bobyqa run to rhoend = 1e-12, month contrasts by ``lmerTest::contest1D(...,
ddf = "Satterthwaite")``. The closed forms are checked against dense N x N matrices.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import linalg

from trialstats.analysis.nested_reml import (
    NestedSums,
    _evaluate,
    _profile,
    fit_nested_reml,
    nested_satterthwaite_df,
)
from trialstats.analysis.repeated import month_contrasts, repeated_data, repeated_measures_analysis
from trialstats.config import load_config
from trialstats.contract import SENSITIVITY_COLUMNS
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "sensitivity"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())["repeated"]
N_RANDOMISED = json.loads((FIXTURE / "reference.json").read_text())["n_randomised"]


def _config(tmp_path_factory, months):
    path = tmp_path_factory.mktemp("repeated") / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"practices": str(FIXTURE / "practices.csv"),
                 "patients": str(FIXTURE / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": months},
        "outcomes": [{"name": "score", "mcid": {"scale": "raw", "value": 3.0}},
                     {"name": "flat"}],
        "analysis": {"covariates": ["age", "condition"]},
    }))
    return load_config(path)


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    config = _config(tmp_path_factory, [6, 12])
    return load_trial(config).patients, config


@pytest.fixture(scope="module")
def fitted(trial):
    data = repeated_data(trial[0], "score", [6, 12], cluster="practice_id", baseline_month=0,
                         covariates=["age", "condition"])
    sums = NestedSums.from_data(data.y, data.X, data.patient_codes, data.practice_codes)
    return data, sums, fit_nested_reml(sums)


def test_data_counts_match_r(fitted):
    data, _, _ = fitted
    assert data.y.size == REFERENCE["n_observations"]
    assert data.n_patients == REFERENCE["n_patients"]
    assert data.n_clusters == REFERENCE["n_clusters"]
    assert sum(data.excluded.values()) == N_RANDOMISED - REFERENCE["n_patients"]


def test_fit_matches_lme4(fitted):
    _, _, fit = fitted
    assert fit.converged and not fit.boundary.any()
    assert fit.reml_loglik == pytest.approx(REFERENCE["reml_loglik"], rel=1e-10)
    assert fit.var_practice == pytest.approx(REFERENCE["var_practice"], rel=1e-5)
    assert fit.var_patient == pytest.approx(REFERENCE["var_patient"], rel=1e-5)
    assert fit.var_residual == pytest.approx(REFERENCE["var_residual"], rel=1e-5)


def test_month_contrasts_match_lmertest(fitted):
    data, sums, fit = fitted
    L = month_contrasts(data.columns, [6, 12])
    dfs = nested_satterthwaite_df(sums, fit, L)
    for row, month, df in zip(L, [6, 12], dfs, strict=True):
        expected = REFERENCE[f"month_{month}"]
        assert row @ fit.beta == pytest.approx(expected["estimate"], rel=1e-6)
        assert np.sqrt(row @ fit.vcov @ row) == pytest.approx(expected["se"], rel=1e-6)
        assert df == pytest.approx(expected["df"], rel=1e-5)


def _tiny(seed):
    rng = np.random.default_rng(seed)
    practice = np.repeat(np.arange(5), [3, 5, 2, 4, 6])  # patients per practice
    occasions = rng.integers(1, 4, practice.size)  # 1..3 observations per patient
    patient_codes = np.repeat(np.arange(practice.size), occasions)
    practice_codes = practice[patient_codes]
    n = patient_codes.size
    X = np.column_stack([np.ones(n), practice_codes % 2, rng.normal(size=n)])
    y = X @ [1.0, 0.4, 0.7] + rng.normal(size=5)[practice_codes] \
        + rng.normal(size=practice.size)[patient_codes] + rng.normal(size=n)
    return y, X, patient_codes, practice_codes


@pytest.mark.parametrize("seed", [1, 2])
def test_closed_forms_match_dense_matrices(seed):
    y, X, patients, practices = _tiny(seed)
    sums = NestedSums.from_data(y, X, patients, practices)
    gamma_p, gamma_c = 0.8, 0.3
    V = (np.eye(y.size) + gamma_p * (patients[:, None] == patients[None, :])
         + gamma_c * (practices[:, None] == practices[None, :]))
    W = linalg.inv(V)
    A = X.T @ W @ X
    beta = linalg.solve(A, X.T @ W @ y)
    r = y - X @ beta
    terms = _evaluate(sums, gamma_p, gamma_c)
    np.testing.assert_allclose(terms.beta, beta, rtol=1e-10)
    assert terms.rss == pytest.approx(r @ W @ r, rel=1e-10)
    assert terms.logdet_v == pytest.approx(np.linalg.slogdet(V)[1], rel=1e-10)
    assert terms.logdet_a == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-10)
    for k, groups in enumerate([patients, practices]):
        dV = (groups[:, None] == groups[None, :]).astype(float)
        assert terms.d_rss[k] == pytest.approx(-(r @ W @ dV @ W @ r), rel=1e-10)
        assert terms.d_logdet_v[k] == pytest.approx(np.trace(W @ dV), rel=1e-10)
        np.testing.assert_allclose(terms.d_a[k], -X.T @ W @ dV @ W @ X, rtol=1e-10, atol=1e-12)
    gamma = np.array([gamma_p, gamma_c])
    _, grad = _profile(sums, np.sqrt(gamma))
    step = 1e-6
    numeric = [(_profile(sums, np.sqrt(gamma + step * e))[0]
                - _profile(sums, np.sqrt(gamma - step * e))[0]) / (2 * step) for e in np.eye(2)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)


def test_boundary_fit_matches_lme4(trial):
    # outcome 'flat' has no practice effect: lme4 puts the practice variance at 0
    patients, config = trial
    expected = REFERENCE["boundary"]
    assert expected["var_practice"] == 0
    data = repeated_data(patients, "flat", [6, 12], cluster="practice_id", baseline_month=0,
                         covariates=["age", "condition"])
    sums = NestedSums.from_data(data.y, data.X, data.patient_codes, data.practice_codes)
    fit = fit_nested_reml(sums)
    assert fit.converged and list(fit.boundary) == [False, True]
    assert fit.var_practice == 0
    assert fit.var_patient == pytest.approx(expected["var_patient"], rel=1e-5)
    assert fit.var_residual == pytest.approx(expected["var_residual"], rel=1e-5)
    assert fit.reml_loglik == pytest.approx(expected["reml_loglik"], rel=1e-10)
    L = month_contrasts(data.columns, [6, 12])[1]
    assert L @ fit.beta == pytest.approx(expected["month_12"]["estimate"], rel=1e-6)
    assert np.sqrt(L @ fit.vcov @ L) == pytest.approx(expected["month_12"]["se"], rel=1e-6)
    df = nested_satterthwaite_df(sums, fit, L[None, :])[0]
    assert df == pytest.approx(expected["month_12"]["df"], rel=1e-3)

    rows = repeated_measures_analysis(patients, config, outcomes=["flat"])
    assert (rows["icc"] == 0).all()
    assert rows["notes"].str.contains("practice variance estimated at 0").all()


def test_rows(trial):
    patients, config = trial
    rows = repeated_measures_analysis(patients, config, outcomes=["score"])
    assert list(rows.columns) == list(SENSITIVITY_COLUMNS)
    assert list(rows["month"]) == [6, 12]
    assert (rows["analysis"] == "repeated measures").all()
    assert (rows["method"] == "satterthwaite").all()
    row = rows.iloc[1]
    assert row["estimate"] == pytest.approx(REFERENCE["month_12"]["estimate"], rel=1e-6)
    assert row["p_value"] == pytest.approx(REFERENCE["month_12"]["p_value"], rel=1e-4)
    assert row["n_patients"] == REFERENCE["n_patients"]
    assert row["var_residual"] == pytest.approx(
        REFERENCE["var_patient"] + REFERENCE["var_residual"], rel=1e-5)
    assert row["effect_size"] == pytest.approx(row["estimate"] / row["sd_baseline"])
    excluded = N_RANDOMISED - REFERENCE["n_patients"]
    assert f"excluded {excluded} of {N_RANDOMISED} patients" in row["notes"]
    assert f"{REFERENCE['n_observations']} observations" in row["notes"]


def test_one_followup_month_is_reported(tmp_path_factory):
    config = _config(tmp_path_factory, [12])
    rows = repeated_measures_analysis(load_trial(config).patients, config, outcomes=["score"])
    assert len(rows) == 1 and not rows["converged"].iloc[0]
    assert "at least two follow-up months" in rows["notes"].iloc[0]
