"""Sensitivity analyses of binary and count outcomes (issue 13) against R.

Reference: tests/fixtures/r/make_binary_sensitivity_fixture.R (glm + t.test for the
Hayes & Moulton cluster-level analyses, clubSandwich 0.5 coef_test for CR2) and
make_binary_gee_fixture.R (geepack geeglm; Mancl-DeRouen and Kauermann-Carroll SEs from their
formulas with dense per-practice matrices in R) on the trial of tests/fixtures/binary_trial/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from trialstats.analysis.gee_glm import gee_glm
from trialstats.analysis.rows import primary_population
from trialstats.analysis.sensitivity import run_analysis
from trialstats.config import load_config
from trialstats.contract import (
    ADJUSTED,
    CR2,
    FAY_GRAUBARD,
    KAUERMANN_CARROLL,
    MANCL_DEROUEN,
    SENSITIVITY_COLUMNS,
    UNADJUSTED,
)
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "binary_trial"
REFERENCE = json.loads((FIXTURE / "sensitivity_reference.json").read_text())
GEE = json.loads((FIXTURE / "gee_reference.json").read_text())
FAY_GRAUBARD_REFERENCE = json.loads(
    (FIXTURE.parent / "fay_graubard" / "reference.json").read_text())


@pytest.fixture(scope="module")
def trial():
    config = load_config(FIXTURE / "config.yaml")
    return load_trial(config).patients, config


def _one(table, outcome, analysis):
    rows = table[(table.outcome == outcome) & (table.analysis == analysis)]
    assert len(rows) == 1
    return rows.iloc[0]


def _matches(row, ref, measure):
    assert row.effect_measure == measure
    assert row.estimate == pytest.approx(ref["estimate"], rel=1e-8)
    assert row.se == pytest.approx(ref["se"], rel=1e-8)
    assert row.df == pytest.approx(ref["df"], rel=1e-8)
    assert row.p_value == pytest.approx(ref["p_value"], rel=1e-7)
    if "ci" in ref:
        assert [row.ci_low, row.ci_high] == pytest.approx(ref["ci"], rel=1e-8)


def test_cluster_level_rows_match_r(trial):
    patients, config = trial
    table = run_analysis("cluster-level", patients, config)
    assert list(table.columns) == list(SENSITIVITY_COLUMNS)
    _matches(_one(table, "admitted", UNADJUSTED), REFERENCE["admitted_unadjusted"],
             "risk difference")
    _matches(_one(table, "visits", ADJUSTED), REFERENCE["visits_adjusted"], "rate ratio")
    _matches(_one(table, "visits", UNADJUSTED), REFERENCE["visits_unadjusted"], "rate ratio")
    adjusted = _one(table, "admitted", ADJUSTED)
    assert adjusted.notes.startswith("not estimable: a practice has no events")
    assert REFERENCE["admitted_zero_event_practices"] == "GP12"


def test_adjusted_risk_ratio_matches_r_without_the_eventless_practice(trial):
    patients, config = trial
    kept = patients[patients.practice_id != REFERENCE["admitted_zero_event_practices"]]
    table = run_analysis("cluster-level", kept, config, ["admitted"])
    _matches(_one(table, "admitted", ADJUSTED),
             REFERENCE["admitted_adjusted_practices_with_events"], "risk ratio")


def test_cr2_risk_difference_matches_clubsandwich(trial):
    patients, config = trial
    table = run_analysis("cr2", patients, config)
    _matches(_one(table, "admitted", CR2), REFERENCE["admitted_cr2"], "risk difference")
    row = _one(table, "admitted", CR2)
    assert row.mcid == 0.05 and row.mcid_verdict == "inconclusive"
    assert np.isnan(row.effect_size)
    assert _one(table, "visits", CR2).notes.startswith("not estimable: CR2 (linear probability")


@pytest.mark.parametrize(("outcome", "family"), [("admitted", "binomial"),
                                               ("visits", "poisson")])
def test_gee_matches_geepack_and_the_corrections_their_formulas(trial, outcome, family):
    patients, config = trial
    entry = next(o for o in config["outcomes"] if o["name"] == outcome)
    data = primary_population(patients, entry, 12, config).data
    fit = gee_glm(data.y, data.X, data.cluster_codes, family, data.offset)
    ref = GEE[outcome]
    assert fit.converged
    assert fit.beta == pytest.approx(ref["beta"], rel=1e-8)
    assert fit.alpha == pytest.approx(ref["alpha"], rel=1e-7)
    assert fit.scale == pytest.approx(ref["scale"], rel=1e-8)
    assert np.sqrt(np.diag(fit.vcov_robust)) == pytest.approx(ref["se_robust"], rel=1e-8)
    assert np.sqrt(fit.vcov_mancl_derouen[1, 1]) == pytest.approx(ref["se_mancl_derouen"],
                                                                  rel=1e-8)
    assert np.sqrt(fit.vcov_kauermann_carroll[1, 1]) == pytest.approx(
        ref["se_kauermann_carroll"], rel=1e-8)
    table = run_analysis("gee", patients, config, [outcome])
    for label, key in ((MANCL_DEROUEN, "se_mancl_derouen"),
                       (KAUERMANN_CARROLL, "se_kauermann_carroll")):
        row = _one(table, outcome, label)
        assert np.log(row.estimate) == pytest.approx(ref["beta"][1], rel=1e-8)
        assert row.se == pytest.approx(ref[key], rel=1e-8) and row.df == 12
    # Fay-Graubard (bound 0.75) and its df d~_H: saws(method = "d5")
    fg = FAY_GRAUBARD_REFERENCE[outcome]
    assert fg["beta"] == pytest.approx(ref["beta"], rel=1e-10)
    assert np.sqrt(np.diag(fit.vcov_fay_graubard)) == pytest.approx(fg["se_fay_graubard_all"],
                                                                    rel=1e-8)
    row = _one(table, outcome, FAY_GRAUBARD)
    assert row.method == "fay-graubard"
    assert row.se == pytest.approx(fg["se_fay_graubard"], rel=1e-8)
    assert row.df == pytest.approx(fg["df_fay_graubard"], rel=1e-8)
    assert row.p_value == pytest.approx(fg["p_value"][0][0], rel=1e-7)


def test_analyses_that_cannot_estimate_say_why(trial):
    patients, config = trial
    # repeated measures handle them (tests/test_glmm_repeated.py), but this trial has one
    # follow-up month
    table = run_analysis("repeated-measures", patients, config, ["admitted", "visits"])
    assert table.notes.tolist() == ["not estimable: repeated measures need at least two "
                                    "follow-up months"] * 2


def test_gee_falls_back_to_independence_below_the_positive_definite_bound():
    # practices of 4 with 2 events each and one of 12 with 6: the Pearson residuals within a
    # practice sum to 0, so the moment estimate of alpha is -16/96, below -1/11
    sizes, events = [4, 4, 4, 4, 4, 12], [2, 2, 2, 2, 2, 6]
    codes = np.repeat(np.arange(6), sizes)
    y = np.concatenate([np.r_[np.ones(e), np.zeros(n - e)] for e, n in zip(events, sizes,
                                                                           strict=True)])
    age = np.linspace(-1, 1, codes.size)
    X = np.column_stack([np.ones(codes.size), codes % 2, age])
    fit = gee_glm(y, X, codes, "binomial")
    assert fit.converged and fit.alpha == 0.0 and fit.alpha_moment < -1 / 11
    # independence working correlation: the estimates of the ordinary logistic regression
    glm = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-14)
    assert fit.beta == pytest.approx(glm.params, abs=1e-9)
