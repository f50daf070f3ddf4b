"""Two-stage cluster-level analysis against closed forms and base R.

Reference: tests/fixtures/sensitivity/reference.json (block ``cluster_level``), made by
tests/fixtures/r/make_sensitivity_fixtures.R (seed 20260611) from the committed
practices.csv/patients.csv beside it: 14 very unequal practices, months 0/6/12, missing
scores and covariates; ``lm`` for stage 1 and ``t.test(var.equal = TRUE)`` for stage 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from trialstats.analysis.cluster_level import ADJUSTED, UNADJUSTED, cluster_level_analysis
from trialstats.config import load_config
from trialstats.contract import SENSITIVITY_COLUMNS
from trialstats.data.validate import load_trial
from trialstats.errors import TrialstatsError

FIXTURE = Path(__file__).parent / "fixtures" / "sensitivity"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    path = tmp_path_factory.mktemp("cluster_level") / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"practices": str(FIXTURE / "practices.csv"),
                 "patients": str(FIXTURE / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": [6, 12]},
        "outcomes": [{"name": "score", "mcid": {"scale": "raw", "value": 3.0}}],
        "analysis": {"covariates": ["age", "condition"]},
    }))
    config = load_config(path)
    return load_trial(config).patients, config


@pytest.fixture(scope="module")
def results(trial) -> pd.DataFrame:
    patients, config = trial
    return cluster_level_analysis(patients, config)


def test_shape_and_labels(results):
    assert list(results.columns) == list(SENSITIVITY_COLUMNS)
    assert len(results) == 4
    assert list(results["analysis"]) == [ADJUSTED, UNADJUSTED] * 2
    assert (results["method"] == "J-2").all()
    assert results[["var_cluster", "var_residual", "icc"]].isna().all().all()


@pytest.mark.parametrize(("label", "key"), [(ADJUSTED, "adjusted"), (UNADJUSTED, "unadjusted")])
def test_month_12_matches_r(results, label, key):
    expected = REFERENCE["cluster_level"][key]
    row = results[(results["month"] == 12) & (results["analysis"] == label)].iloc[0]
    for column in ("estimate", "se", "ci_low", "ci_high", "p_value"):
        assert row[column] == pytest.approx(expected[column], rel=1e-10), column
    assert row["df"] == expected["df"] == REFERENCE["n_clusters"] - 2
    assert row["n_patients"] == REFERENCE["n_patients_m12"]
    excluded = REFERENCE["n_randomised"] - REFERENCE["n_patients_m12"]
    assert f"excluded {excluded} of {REFERENCE['n_randomised']} patients" in row["notes"]
    assert row["effect_size"] == pytest.approx(row["estimate"] / REFERENCE["sd_baseline"])
    assert row["mcid"] == 3.0


def test_month_6_matches_scipy_on_practice_means(trial, results):
    patients, _ = trial
    used = patients.dropna(subset=["score_m6", "score_m0", "age", "condition"])
    means = used.groupby("practice_id").agg(y=("score_m6", "mean"), treated=("treated", "first"))
    test = stats.ttest_ind(means.y[means.treated == 1], means.y[means.treated == 0])
    row = results[(results["month"] == 6) & (results["analysis"] == UNADJUSTED)].iloc[0]
    assert row["estimate"] / row["se"] == pytest.approx(test.statistic, rel=1e-12)
    assert row["p_value"] == pytest.approx(test.pvalue, rel=1e-10)
    assert row["estimate"] == pytest.approx(
        means.y[means.treated == 1].mean() - means.y[means.treated == 0].mean(), rel=1e-12)

    # stage 1 by hand: residuals of the arm-free regression, averaged by practice
    design = pd.get_dummies(used[["score_m0", "age", "condition"]], drop_first=True,
                            dtype=float).assign(one=1.0)
    coef, *_ = np.linalg.lstsq(design.to_numpy(), used["score_m6"].to_numpy(), rcond=None)
    residual = used["score_m6"] - design.to_numpy() @ coef
    by_practice = residual.groupby(used["practice_id"]).mean()
    test = stats.ttest_ind(by_practice[means.treated == 1], by_practice[means.treated == 0])
    row = results[(results["month"] == 6) & (results["analysis"] == ADJUSTED)].iloc[0]
    assert row["estimate"] / row["se"] == pytest.approx(test.statistic, rel=1e-10)


def test_too_few_practices_is_a_row_not_an_error(trial):
    patients, config = trial
    patients = patients.copy()
    keep = patients["practice_id"].isin(
        patients.loc[patients["treated"] == 1, "practice_id"].unique()[:1])
    patients.loc[(patients["treated"] == 1) & ~keep, "score_m12"] = np.nan
    rows = cluster_level_analysis(patients, config)
    month_12 = rows[rows["month"] == 12]
    assert not month_12["converged"].any()
    assert month_12["estimate"].isna().all()
    assert month_12["notes"].str.contains("fewer than two clusters").all()


def test_unknown_outcome_is_an_error(trial):
    patients, config = trial
    with pytest.raises(TrialstatsError, match="unknown outcome"):
        cluster_level_analysis(patients, config, outcomes=["nope"])
