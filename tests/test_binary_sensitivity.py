"""Sensitivity analyses of binary and count outcomes (issue 13) against R.

Reference: tests/fixtures/r/make_binary_sensitivity_fixture.R (glm + t.test for the
Hayes & Moulton cluster-level analyses, clubSandwich 0.5 coef_test for CR2) on the trial of
tests/fixtures/binary_trial/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trialstats.analysis.sensitivity import run_analysis
from trialstats.config import load_config
from trialstats.contract import ADJUSTED, CR2, SENSITIVITY_COLUMNS, UNADJUSTED
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "binary_trial"
REFERENCE = json.loads((FIXTURE / "sensitivity_reference.json").read_text())


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


def test_analyses_for_continuous_outcomes_say_so(trial):
    patients, config = trial
    table = run_analysis("gee", patients, config, ["admitted", "visits"])
    assert table.notes.tolist() == ["not estimable: gee is for continuous outcomes"] * 2
    assert table.effect_measure.tolist() == ["odds ratio", "rate ratio"]
