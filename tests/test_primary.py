"""Primary analysis end to end against lme4/lmerTest/pbkrtest.

Reference: tests/fixtures/primary/reference.json, made by
tests/fixtures/r/make_primary_fixture.R (seed 6112026) from the committed
practices.csv/patients.csv beside it: a 14-practice trial with cluster-size CV about 0.9,
missing follow-up, baseline and covariate values and a categorical covariate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trialstats.analysis.primary import analyse_outcome
from trialstats.cli import main
from trialstats.config import load_config
from trialstats.contract import COLUMNS
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "primary"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("primary") / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"practices": str(FIXTURE / "practices.csv"),
                 "patients": str(FIXTURE / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": [12]},
        "outcomes": [{"name": "score", "mcid": {"scale": "raw", "value": 3.0}}],
        "analysis": {"covariates": ["age", "condition"],
                     "df_method": ["kenward-roger", "satterthwaite", "between-within",
                                   "residual"]},
    }))
    return {"path": path, "config": load_config(path)}


@pytest.fixture(scope="module")
def results(config) -> pd.DataFrame:
    cfg = config["config"]
    patients = load_trial(cfg).patients
    return analyse_outcome(
        patients, cfg["outcomes"][0], 12, cluster="practice_id", baseline_month=0,
        covariates=["age", "condition"], df_methods=cfg["analysis"]["df_method"],
    ).set_index("method")


def test_counts_and_columns(results):
    assert sorted(results.reset_index().columns) == sorted(COLUMNS)
    assert (results["n_patients"] == REFERENCE["n_patients"]).all()
    assert (results["n_clusters"] == REFERENCE["n_clusters"]).all()
    excluded, randomised = REFERENCE["n_randomised"] - REFERENCE["n_patients"], REFERENCE[
        "n_randomised"]
    assert f"excluded {excluded} of {randomised} patients" in results["notes"].iloc[0]


def test_estimates_match_lme4(results):
    for method, row in results.iterrows():
        assert row["estimate"] == pytest.approx(REFERENCE["estimate"], rel=1e-6), method
        assert row["var_cluster"] == pytest.approx(REFERENCE["var_cluster"], rel=1e-5)
        assert row["var_residual"] == pytest.approx(REFERENCE["var_residual"], rel=1e-5)
    assert results.loc["satterthwaite", "se"] == pytest.approx(REFERENCE["se_model"], rel=1e-6)
    assert results.loc["residual", "se"] == pytest.approx(REFERENCE["se_model"], rel=1e-6)


def test_small_sample_inference_matches_lmertest_and_pbkrtest(results):
    sat, kr = results.loc["satterthwaite"], results.loc["kenward-roger"]
    assert sat["df"] == pytest.approx(REFERENCE["df_satterthwaite"], rel=1e-3)
    assert sat["p_value"] == pytest.approx(REFERENCE["p_satterthwaite"], rel=1e-3)
    assert kr["se"] == pytest.approx(REFERENCE["se_kenward_roger"], rel=1e-3)
    assert kr["df"] == pytest.approx(REFERENCE["df_kenward_roger"], rel=1e-3)
    assert kr["p_value"] == pytest.approx(REFERENCE["p_kenward_roger"], rel=1e-3)


def test_between_within_and_residual_df(results):
    # arm is the only cluster-level column besides the intercept: J - 2
    assert results.loc["between-within", "df"] == REFERENCE["n_clusters"] - 2
    # N - p with p = intercept, treated, baseline, age, 2 condition dummies
    assert results.loc["residual", "df"] == REFERENCE["n_patients"] - 6


def test_effect_size_interval_and_verdict(results):
    row = results.loc["kenward-roger"]
    sd0 = REFERENCE["sd_baseline"]
    assert row["sd_baseline"] == pytest.approx(sd0, rel=1e-12)
    assert row["effect_size"] == pytest.approx(row["estimate"] / sd0)
    assert row["es_ci_low"] == pytest.approx(row["ci_low"] / sd0)
    half = row["ci_high"] - row["estimate"]
    from scipy import stats

    assert half == pytest.approx(stats.t.ppf(0.975, row["df"]) * row["se"])
    assert row["mcid"] == 3.0
    expected = "inconclusive" if row["ci_low"] < 3.0 else "important benefit shown"
    assert row["mcid_verdict"] == expected
    assert 0 < row["icc_ci_low"] < row["icc"] < row["icc_ci_high"] < 1


def test_degenerate_outcome_is_reported_not_raised(config):
    cfg = config["config"]
    patients = load_trial(cfg).patients.copy()
    patients.loc[patients["treated"] == 1, "score_m12"] = np.nan
    rows = analyse_outcome(patients, cfg["outcomes"][0], 12, cluster="practice_id",
                           baseline_month=0, covariates=[], df_methods=["kenward-roger"])
    assert not rows["converged"].iloc[0]
    assert "fewer than two clusters" in rows["notes"].iloc[0]
    assert np.isnan(rows["estimate"].iloc[0])


def test_boundary_fit_gives_icc_zero_and_a_note(config):
    cfg = config["config"]
    rng = np.random.default_rng(3)
    patients = load_trial(cfg).patients.copy()
    # noise centred within each practice: practice means are all equal, so the REML
    # estimate of the practice variance is on the boundary
    patients["score_m12"] = rng.normal(0, 1, len(patients))
    patients["score_m12"] -= patients.groupby("practice_id")["score_m12"].transform("mean")
    rows = analyse_outcome(patients, cfg["outcomes"][0], 12, cluster="practice_id",
                           baseline_month=0, covariates=[], df_methods=["satterthwaite"])
    assert rows["var_cluster"].iloc[0] == 0
    assert rows["icc"].iloc[0] == 0
    assert "boundary" in rows["notes"].iloc[0]


def test_cli_writes_primary_csv(config, tmp_path, capsys):
    status = main(["analyse", "--config", str(config["path"]), "--out",
                   str(tmp_path / "primary.csv")])
    assert status == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "primary.csv")
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 4
    assert "score month 12" in capsys.readouterr().out
