"""Subgroup analysis by condition against lme4/lmerTest/pbkrtest.

Reference: tests/fixtures/sensitivity/reference.json (block ``subgroups``), made by
tests/fixtures/r/make_sensitivity_fixtures.R (seed 20260611): ``lmer(score_m12 ~ treated *
condition + score_m0 + age + (1 | practice_id))``, subgroup effects by
``lmerTest::contest1D(..., ddf = "Satterthwaite" | "Kenward-Roger")`` and the interaction by
``lmerTest::contest(fit, L, ddf = "Satterthwaite")``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from trialstats.analysis.subgroups import subgroup_analysis
from trialstats.config import load_config
from trialstats.contract import SENSITIVITY_COLUMNS
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "sensitivity"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())["subgroups"]
INTERACTION = "subgroup interaction: arm x condition (exploratory)"


def _trial(tmp_path_factory, df_method, covariates=("age", "condition")):
    path = tmp_path_factory.mktemp("subgroups") / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"practices": str(FIXTURE / "practices.csv"),
                 "patients": str(FIXTURE / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": [12]},
        "outcomes": [{"name": "score", "mcid": {"scale": "raw", "value": 3.0}}],
        "analysis": {"covariates": list(covariates), "df_method": df_method},
    }))
    config = load_config(path)
    return load_trial(config).patients, config


@pytest.fixture(scope="module")
def satterthwaite(tmp_path_factory):
    patients, config = _trial(tmp_path_factory, "satterthwaite")
    return subgroup_analysis(patients, config).set_index("analysis")


def test_rows_and_labels(satterthwaite):
    assert set(satterthwaite.reset_index().columns) == set(SENSITIVITY_COLUMNS)
    assert list(satterthwaite.index) == [INTERACTION, "subgroup: copd (exploratory)",
                                         "subgroup: diabetes (exploratory)",
                                         "subgroup: ibs (exploratory)"]
    assert satterthwaite["converged"].all()


@pytest.mark.parametrize("level", ["copd", "diabetes", "ibs"])
def test_subgroup_effects_match_lmertest(satterthwaite, level):
    expected = REFERENCE[level]
    row = satterthwaite.loc[f"subgroup: {level} (exploratory)"]
    assert row["estimate"] == pytest.approx(expected["estimate"], rel=1e-6)
    assert row["se"] == pytest.approx(expected["se"], rel=1e-6)
    assert row["df"] == pytest.approx(expected["df_satterthwaite"], rel=1e-4)
    assert row["p_value"] == pytest.approx(expected["p_satterthwaite"], rel=1e-4)
    assert row["n_patients"] == expected["n_patients"]
    assert row["effect_size"] == pytest.approx(row["estimate"] / row["sd_baseline"])


def test_interaction_matches_lmertest_contest(satterthwaite):
    expected = REFERENCE["interaction"]
    row = satterthwaite.loc[INTERACTION]
    assert np.isnan(row["estimate"]) and np.isnan(row["se"])
    assert row["df"] == pytest.approx(expected["den_df"], rel=1e-4)
    assert row["p_value"] == pytest.approx(expected["p_value"], rel=1e-5)
    assert f"Wald F(2, {expected['den_df']:.4g}) = {expected['f']:.4g}" in row["notes"]


def test_kenward_roger_effects_and_variable_added_as_covariate(tmp_path_factory):
    # condition is not among the covariates: the subgroup model adds its main effect
    patients, config = _trial(tmp_path_factory, ["kenward-roger"], covariates=["age"])
    rows = subgroup_analysis(patients, config).set_index("analysis")
    for level in ("copd", "diabetes", "ibs"):
        row = rows.loc[f"subgroup: {level} (exploratory)"]
        assert row["method"] == "kenward-roger"
        assert row["se"] == pytest.approx(REFERENCE[level]["se_kenward_roger"], rel=1e-4)
        assert row["df"] == pytest.approx(REFERENCE[level]["df_kenward_roger"], rel=1e-3)


def test_absent_variable_is_skipped_with_a_note(tmp_path_factory):
    patients, config = _trial(tmp_path_factory, "satterthwaite")
    rows = subgroup_analysis(patients, config, variable="sex")
    assert len(rows) == 1
    assert "'sex' is not a column" in rows["notes"].iloc[0]


def test_level_in_one_arm_is_left_out(tmp_path_factory):
    patients, config = _trial(tmp_path_factory, "satterthwaite")
    patients = patients[~((patients["condition"] == "ibs") & (patients["treated"] == 0))]
    rows = subgroup_analysis(patients, config).set_index("analysis")
    assert "subgroup: ibs (exploratory)" not in rows.index
    assert "level(s) ibs of condition left out" in rows.loc[INTERACTION, "notes"]
