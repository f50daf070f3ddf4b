"""Missing-data summary: completeness counts and the dropout model against statsmodels' formula
interface (fitted independently of the package's own design building)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from trialstats.analysis.missingness import DROPOUT_COLUMNS, missing_data_summary

PATIENTS = Path(__file__).resolve().parent / "fixtures" / "mice" / "patients.csv"
CONFIG = {
    "design": {"cluster": "practice_id", "arm": "arm", "intervention": "intervention",
               "baseline_month": 0, "followup_months": [6, 12]},
    "outcomes": [{"name": "y"}, {"name": "w"}],
    "analysis": {"covariates": ["condition"], "alpha": 0.05},
}


@pytest.fixture
def patients() -> pd.DataFrame:
    data = pd.read_csv(PATIENTS, dtype={"practice_id": str, "condition": str})
    data["arm"] = np.where(data["treated"] == 1, "intervention", "control")
    return data


def test_completeness_counts(patients):
    table, _ = missing_data_summary(patients, CONFIG)
    row = table.query("outcome == 'y' and month == 12 and arm == 'control'").iloc[0]
    control = patients[patients["arm"] == "control"]
    assert row["n_patients"] == len(control)
    assert row["n_observed"] == control["y_m12"].notna().sum()
    assert row["percent_observed"] == pytest.approx(100 * control["y_m12"].notna().mean())
    assert len(table) == 2 * 3 * 3


@pytest.mark.parametrize("month", [6, 12])
def test_dropout_model_matches_statsmodels_formula(patients, month):
    _, dropout = missing_data_summary(patients, CONFIG)
    ours = dropout[dropout["month"] == month].set_index("term")
    assert list(dropout.columns) == list(DROPOUT_COLUMNS)

    data = patients.assign(
        returned=patients[[f"y_m{month}", f"w_m{month}"]].notna().any(axis=1).astype(float))
    data = data.dropna(subset=["y_m0", "w_m0", "condition"]).copy()
    for column in ("y_m0", "w_m0"):
        data[column] = (data[column] - data[column].mean()) / data[column].std()
    groups = pd.factorize(data["practice_id"])[0]
    fit = smf.glm("returned ~ treated + C(condition) + y_m0 + w_m0", data=data,
                  family=sm.families.Binomial()).fit(cov_type="cluster",
                                                     cov_kwds={"groups": groups})
    names = {"treated": "treated", "condition[diabetes]": "C(condition)[T.diabetes]",
             "condition[ibs]": "C(condition)[T.ibs]", "y_m0": "y_m0", "w_m0": "w_m0"}
    intervals = fit.conf_int()
    for term, theirs in names.items():
        row = ours.loc[term]
        assert row["odds_ratio"] == pytest.approx(np.exp(fit.params[theirs]), rel=1e-7)
        assert row["ci_low"] == pytest.approx(np.exp(intervals.loc[theirs, 0]), rel=1e-7)
        assert row["ci_high"] == pytest.approx(np.exp(intervals.loc[theirs, 1]), rel=1e-7)
        assert row["p_value"] == pytest.approx(fit.pvalues[theirs], rel=1e-6)
    assert (ours["n_patients"] == len(data)).all()
    assert (ours["n_returned"] == data["returned"].sum()).all()
    assert ours.loc["treated", "contrast"] == "intervention vs control"
    assert ours.loc["condition[ibs]", "contrast"] == "ibs vs copd"
    assert ours.loc["y_m0", "contrast"].startswith("per SD (")
    assert ours["converged"].all()
    excluded = len(patients) - len(data)
    assert f"excluded {excluded:,} patients with a missing predictor" in ours["notes"].iloc[0]


def test_no_dropout_is_reported_not_fitted(patients):
    complete = patients.dropna().reset_index(drop=True)
    _, dropout = missing_data_summary(complete, CONFIG)
    assert dropout["odds_ratio"].isna().all()
    assert not dropout["converged"].any()
    assert dropout["notes"].str.contains("every analysed patient returned").all()


def test_binary_baseline_is_a_yes_no_predictor_not_per_sd(patients):
    """A binary outcome's baseline enters the dropout model as 0/1 (odds ratio 1 vs 0),
    checked against statsmodels' formula interface on the unstandardised column."""
    data = patients.assign(b_m0=(patients["w_m0"] > patients["w_m0"].median()).astype(float)
                           .where(patients["w_m0"].notna()),
                           b_m6=patients["w_m6"], b_m12=patients["w_m12"])
    config = {**CONFIG, "outcomes": [{"name": "y"}, {"name": "b", "type": "binary"}]}
    _, dropout = missing_data_summary(data, config)
    ours = dropout[dropout["month"] == 12].set_index("term")
    assert ours.loc["b_m0", "contrast"] == "1 vs 0"
    data = data.assign(returned=data[["y_m12", "b_m12"]].notna().any(axis=1).astype(float))
    data = data.dropna(subset=["y_m0", "b_m0", "condition"]).copy()
    data["y_m0"] = (data["y_m0"] - data["y_m0"].mean()) / data["y_m0"].std()
    fit = smf.glm("returned ~ treated + C(condition) + y_m0 + b_m0", data=data,
                  family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(data["practice_id"])[0]})
    assert ours.loc["b_m0", "odds_ratio"] == pytest.approx(np.exp(fit.params["b_m0"]), rel=1e-7)
