"""Subgroup analysis of binary and count outcomes (arm x condition in the GLMM) against glmer.

Reference: tests/fixtures/r/make_binary_repeated_fixture.R (seed 20261201; blocks
``subgroups_<outcome>_m<month>_agq<k>`` of tests/fixtures/binary_repeated/reference.json):
``glmer(y ~ treated * condition + y0 + age (+ offset(log(months))) + (1 | practice_id),
nAGQ = 15 | 1)``, the effect in each condition ``L %*% fixef`` with its SE from numDeriv's
Hessian of glmer's deviance over (theta, beta), and the Wald statistic of the two interaction
coefficients. Run through ``run_analysis`` on the fixture trial (10 practices of 3 to 90
patients, a binary and a count outcome at 6 and 12 months).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from trialstats.analysis.sensitivity import run_analysis
from trialstats.config import load_config
from trialstats.contract import SENSITIVITY_COLUMNS
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "binary_repeated"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())
INTERACTION = "subgroup interaction: arm x condition (exploratory)"
LEVELS = ["copd", "diabetes", "ibs"]
N_CLUSTERS = 10
MEASURE = {"admitted": "odds ratio", "visits": "rate ratio"}


@pytest.fixture(scope="module")
def trial():
    config = load_config(FIXTURE / "config.yaml")
    return load_trial(config).patients, config


def _rows(trial, n_agq, **analysis):
    patients, config = trial
    config = {**config, "analysis": {**config["analysis"], "quadrature_points": n_agq,
                                     **analysis}}
    return run_analysis("subgroups", patients, config)


@pytest.fixture(scope="module", params=[15, 1])
def rows(request, trial):
    return request.param, _rows(trial, request.param)


@pytest.mark.parametrize("outcome", ["admitted", "visits"])
@pytest.mark.parametrize("month", [6, 12])
def test_subgroup_effects_and_interaction_match_glmer(rows, outcome, month):
    n_agq, table = rows
    ref = REFERENCE[f"subgroups_{outcome}_m{month}_agq{n_agq}"]
    part = table[(table.outcome == outcome) & (table.month == month)].set_index("analysis")
    assert list(part.index) == [INTERACTION, *[f"subgroup: {lv} (exploratory)" for lv in LEVELS]]
    assert (part.effect_measure == MEASURE[outcome]).all()
    assert part.converged.all() and (part.method == "between-within").all()
    assert list(part.var_cluster) == pytest.approx([ref["sigma"] ** 2] * 4, rel=1e-4, abs=1e-6)
    assert "family: negative binomial" not in part.notes.iloc[0]  # glmer reference is Poisson
    for k, level in enumerate(LEVELS):
        row = part.loc[f"subgroup: {level} (exploratory)"]
        assert np.log(row.estimate) == pytest.approx(ref["estimate"][k], rel=1e-5)
        assert row.se == pytest.approx(ref["se"][k], rel=1e-4)
        assert row.df == N_CLUSTERS - 2  # between-within: J - (intercept, arm)
        assert row.n_patients == ref["n_per_level"][k]
        half = stats.t.ppf(0.975, N_CLUSTERS - 2) * ref["se"][k]
        assert [row.ci_low, row.ci_high] == pytest.approx(
            np.exp(ref["estimate"][k] + np.array([-half, half])), rel=1e-4)
    interaction = part.loc[INTERACTION]
    assert interaction.n_patients == ref["n"]
    # the interaction columns vary within practices: N - J - (p - p_b), p = 8, p_b = 2
    assert interaction.df == ref["n"] - N_CLUSTERS - 6
    assert interaction.p_value == pytest.approx(
        stats.f.sf(ref["wald"] / 2, 2, interaction.df), rel=1e-4)
    assert np.isnan(interaction.estimate)
    if outcome == "admitted":
        assert interaction.icc == pytest.approx(ref["sigma"] ** 2
                                                / (ref["sigma"] ** 2 + np.pi**2 / 3), rel=1e-4)


def test_z_method_gives_a_chi_squared_test(trial):
    table = _rows(trial, 15, glmm_df_method=["z"])
    ref = REFERENCE["subgroups_admitted_m12_agq15"]
    row = table[(table.outcome == "admitted") & (table.month == 12)
                & (table.analysis == INTERACTION)].iloc[0]
    assert np.isnan(row.df) and row.method == "z"
    assert row.p_value == pytest.approx(stats.chi2.sf(ref["wald"], 2), rel=1e-4)
    assert "Wald chi-squared(2)" in row.notes


def test_columns_and_degenerate_subgroups_give_rows(trial):
    patients, config = trial
    table = _rows(trial, 1)
    assert list(table.columns) == list(SENSITIVITY_COLUMNS)
    # a level whose analysable patients are all in one arm is left out, with a note
    one_arm = patients.copy()
    one_arm.loc[(one_arm.condition == "ibs") & (one_arm.treated == 1), "condition"] = "copd"
    table = run_analysis("subgroups", one_arm, {**config, "analysis": {
        **config["analysis"], "quadrature_points": 1}})
    first = table.iloc[0]
    assert "level(s) ibs of condition left out" in first.notes
    assert len(table[(table.outcome == "admitted") & (table.month == 6)]) == 3
    # no events at all: not estimable, with the reason
    none = patients.assign(admitted_m6=patients.admitted_m6 * 0)
    table = run_analysis("subgroups", none, config)
    row = table[(table.outcome == "admitted") & (table.month == 6)].iloc[0]
    assert row.notes.startswith("not estimable: every analysed patient has 0 as the outcome")
    assert row.converged is None and np.isnan(row.estimate)
    # the subgroup variable is absent: skipped
    table = run_analysis("subgroups", patients.drop(columns="condition"), config)
    assert table.notes.str.startswith("skipped: the subgroup variable 'condition'").all()
    assert len(table) == 4
