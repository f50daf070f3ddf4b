"""Multiple imputation and the delta adjustment of a count outcome with an exposure column
(offset log(exposure) in the imputation and the analysis model;
trialstats.analysis.chained_glmm, trialstats.analysis.imputation_glmm).

References, in ``tests/fixtures/count_mi/`` (the R call of every number is stored beside it):

* ``reference.json``, from ``tests/fixtures/r/make_count_mi_fixture.R`` (seed in the file):
  the trial (16 practices, 619 patients, counts over 2 to 12 months of follow-up, 294 counts
  missing at random given the follow-up time and the arm, 102 of them without the follow-up
  time) and glmer (nAGQ = 15) with offset(log(months)) on the complete data before deletion
  and on the complete cases;
* ``pool_reference.json``, from ``tests/fixtures/r/make_count_mi_pool_fixture.R``: glmer with
  the offset in each of the five datasets in ``completed.csv`` (written by our imputation:
  ``tests/fixtures/count_mi/write_completed.py``) and ``mice::pool`` of them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trialstats.analysis.chained_glmm import draw_values
from trialstats.analysis.delta import shifted_cells
from trialstats.analysis.glmm import fit_glmm
from trialstats.analysis.glmm_likelihood import glmm_data
from trialstats.analysis.imputation import impute_trial
from trialstats.analysis.imputation_glmm import glmm_pooled_rows, redrawn_response
from trialstats.analysis.sensitivity import run_analysis
from trialstats.cli import main
from trialstats.config import load_config
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "count_mi"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())
POOL = json.loads((FIXTURE / "pool_reference.json").read_text())
BINARY_TRIAL = Path(__file__).parent / "fixtures" / "binary_trial"


@pytest.fixture(scope="module")
def trial():
    config = load_config(FIXTURE / "config.yaml")
    return load_trial(config).patients, config


def _engine_completed(patients, config):
    """The imputation of completed.csv with the file's values put back as the draws."""
    imputed = impute_trial(patients, config, imputations=5, seed=1)
    k = imputed.score_columns.index("visits_m12")
    values = pd.read_csv(FIXTURE / "completed.csv").drop(columns="patient_id")
    values = values.to_numpy(dtype=float).T  # (5, n), file order = analysed order
    draws = list(imputed.draws)
    draws[k] = values[:, imputed.missing[:, k]]
    return replace(imputed, draws=draws), values


def test_completed_data_fits_match_glmer_with_offset(trial):
    """Each dataset written by our imputation, fitted by our GLMM with offset log(months) on
    the patients with months: the log rate ratio, its SE and the practice SD of glmer (nAGQ =
    15) within 2e-5 relative (the differencing floor of the SEs is 1e-6); the offset matters:
    without it the estimate moves by more than 0.05."""
    patients, config = trial
    imputed, values = _engine_completed(patients, config)
    months = patients["months"].to_numpy(dtype=float)
    kept = np.isfinite(months)
    X = np.column_stack([np.ones(kept.sum()), imputed.treated[kept],
                         patients["visits_m0"].to_numpy(dtype=float)[kept],
                         patients["age"].to_numpy(dtype=float)[kept]])
    codes = imputed.frame.cluster_codes[kept]
    ref = POOL["per_imputation"]
    for m in range(5):
        fit = fit_glmm(glmm_data(values[m, kept], X, codes, "poisson",
                                 offset=np.log(months[kept])), 15)
        assert fit.beta[1] == pytest.approx(ref["estimate"][m], rel=2e-5)
        assert fit.se[1] == pytest.approx(ref["se"][m], rel=2e-5)
        assert fit.sigma == pytest.approx(ref["sigma"][m], rel=2e-5, abs=1e-6)
        plain = fit_glmm(glmm_data(values[m, kept], X, codes, "poisson"), 15)
        assert abs(plain.beta[1] - ref["estimate"][m]) > 0.05


def test_pooled_rate_ratio_matches_mice_pool(trial):
    """Our pooled row of those five datasets against mice::pool of the glmer fits: log rate
    ratio and SE within 2e-5 relative, Barnard-Rubin df, RIV and FMI within 2e-4 relative;
    the analysed patients are the 517 with months, in 16 practices."""
    patients, config = trial
    imputed, _ = _engine_completed(patients, config)
    row = glmm_pooled_rows(imputed, config, config["outcomes"][0], 12)[0]
    ref = POOL["pooled"]
    assert row["effect_measure"] == "rate ratio"
    assert np.log(row["estimate"]) == pytest.approx(ref["qbar"], rel=2e-5)
    assert row["se"] == pytest.approx(np.sqrt(ref["t"]), rel=2e-5)
    assert row["df"] == pytest.approx(ref["df"], rel=2e-4)
    assert row["riv"] == pytest.approx(ref["riv"], rel=2e-4)
    assert row["fmi"] == pytest.approx(ref["fmi"], rel=2e-4)
    assert (row["n_patients"], row["n_clusters"]) == (POOL["n_analysed"], POOL["n_clusters"])
    assert "102 of the 619 imputed patients have no positive months" in row["notes"]
    assert "offset log(months)" in row["notes"]


def test_imputation_with_offset_recovers_the_rate_ratio(trial):
    """The statistical check. Counts are missing at random given the follow-up time (shorter
    follow-up, more often missing; more so in the intervention arm, which also has shorter
    follow-up). The imputation model is the analysis model, so the pooled log rate ratio
    (M = 100) should equal the complete-case glmer fit up to Monte Carlo error: within 4
    Monte Carlo SEs sqrt(B/M) plus 5% of its SE (measured: 0.2 MC SEs); and the complete-data
    fit before deletion within 2 sqrt(B(1 + 1/M)) (measured 0.75). Imputing the same counts
    without the offset (the same rows analysed with it) misses the complete-case fit by
    about 19 MC SEs, so the check can fail."""
    patients, config = trial
    imputed = impute_trial(patients, config, imputations=100, seed=7, iterations=1)

    def pooled(imputation):
        row = glmm_pooled_rows(imputation, config, config["outcomes"][0], 12)[0]
        between = row["se"] ** 2 * row["riv"] / (1 + row["riv"]) / (1 + 1 / 100)
        return np.log(row["estimate"]), between

    estimate, between = pooled(imputed)
    cc, full = REFERENCE["complete_case"], REFERENCE["complete_data"]
    mc = np.sqrt(between / 100)
    assert abs(estimate - cc["estimate"]) < 4 * mc + 0.05 * cc["se"]
    assert abs(estimate - full["estimate"]) < 2 * np.sqrt(between * (1 + 1 / 100))
    no_offset = copy.deepcopy(config)
    del no_offset["outcomes"][0]["exposure"]
    plain = impute_trial(patients, no_offset, imputations=100, seed=7, iterations=1)
    wrong, _ = pooled(replace(plain, log_exposure=imputed.log_exposure))
    assert abs(wrong - cc["estimate"]) > 10 * mc + 0.05 * cc["se"]


def test_patients_without_exposure_are_left_out_and_counted(trial):
    """A missing count with a missing or zero exposure has no person-time: the patient is
    imputed (a predictor of other columns, at the geometric-mean exposure) but not analysed,
    and the notes count them; with every exposure recorded all patients are analysed."""
    patients, config = trial
    zero = patients.copy()
    gone = zero["visits_m12"].isna() & zero["months"].notna()
    zero.loc[gone[gone].index[:5], "months"] = 0.0
    rows = run_analysis("multiple-imputation", zero, config)
    assert rows["n_patients"].iloc[0] == 517 - 5
    assert "107 of the 619 imputed patients have no positive months" in rows["notes"].iloc[0]
    geometric = np.exp(np.log(zero["months"][zero["months"] > 0]).mean())
    assert f"geometric-mean months {geometric:.4g}" in rows["notes"].iloc[0]
    filled = patients.assign(months=patients["months"].fillna(6.0))
    rows = run_analysis("multiple-imputation", filled, config)
    assert rows["n_patients"].iloc[0] == len(patients)
    assert "no positive months" not in rows["notes"].iloc[0]
    assert np.isfinite(rows["estimate"].iloc[0])


def test_delta_zero_equals_mar_and_delta_shifts_the_log_rate(trial):
    """delta = 0 rows equal the multiple-imputation rows number for number; delta on the
    log-rate scale of the intervention arm's imputed counts moves the rate ratio the same way;
    only imputed counts of analysed intervention patients change, each to the Poisson
    quantile of its uniform at exp(eta + delta), eta including the offset."""
    patients, config = trial
    mar = run_analysis("multiple-imputation", patients, config)
    delta = run_analysis("delta-adjustment", patients,
                         {**config, "sensitivity": {**config["sensitivity"],
                                                    "delta": [0.0, -0.5, 0.5]}})
    columns = ["estimate", "se", "df", "ci_low", "ci_high", "p_value", "n_patients",
               "effect_measure"]
    pd.testing.assert_frame_equal(delta[delta["delta"] == 0.0].reset_index(drop=True)[columns],
                                  mar[columns])
    estimate = delta.set_index("delta")["estimate"]
    assert estimate[-0.5] < estimate[0.0] < estimate[0.5]
    imputed = impute_trial(patients, config, imputations=5, seed=1)
    cells = shifted_cells(imputed, "visits", 12, "intervention") > 0
    k = imputed.score_columns.index("visits_m12")
    missing = imputed.missing[:, k]
    analysed = np.isfinite(imputed.log_exposure["visits"])
    assert np.array_equal(cells, missing & analysed & (imputed.treated == 1.0))
    assert f"the {int(cells.sum())} imputed month-12 values" in delta["notes"].iloc[1]
    up = redrawn_response(imputed, "visits_m12", 0.5, cells, "poisson")
    same = imputed.completed("visits_m12")
    assert np.all(up >= same) and np.any(up > same)
    assert not np.any(np.any(up != same, axis=0) & ~cells)
    eta, uniforms = imputed.latent[k]
    chosen = cells[missing]
    np.testing.assert_array_equal(up[:, missing][:, chosen],
                                  draw_values(eta[:, chosen] + 0.5, uniforms[:, chosen],
                                              "poisson"))


def test_offset_enters_the_drawn_linear_predictor(trial):
    """Two missing counts of the same practice with the same predictors and follow-up times
    t1, t2 get linear predictors that differ by exactly log(t1 / t2) in every imputation."""
    patients, config = trial
    twin = patients.copy()
    first = twin.index[twin["visits_m12"].isna() & twin["months"].notna()][0]
    copy_ = twin.loc[[first]].assign(patient_id="TWIN", months=twin.loc[first, "months"] * 3)
    twin = pd.concat([twin, copy_], ignore_index=True)
    imputed = impute_trial(twin, config, imputations=3, seed=4, iterations=2)
    k = imputed.score_columns.index("visits_m12")
    rows = np.flatnonzero(imputed.missing[:, k])
    eta = imputed.latent[k][0]
    a, b = np.searchsorted(rows, [first, len(twin) - 1])
    np.testing.assert_allclose(eta[:, b] - eta[:, a], np.log(3.0), rtol=1e-12)


@pytest.fixture
def own_trial(tmp_path):
    """A small trial of its own folder: 8 practices of the binary_trial fixture (4 per arm),
    one of them with every follow-up missing, months missing for half its patients."""
    folder = tmp_path / "trial"
    folder.mkdir()
    practices = pd.read_csv(BINARY_TRIAL / "practices.csv")
    practices = practices.groupby("arm").head(4)
    patients = pd.read_csv(BINARY_TRIAL / "patients.csv")
    patients = patients[patients["practice_id"].isin(practices["practice_id"])].copy()
    empty = practices["practice_id"].iloc[0]
    rows = patients["practice_id"] == empty
    patients.loc[rows, ["admitted_m12", "visits_m12", "qol_m12"]] = np.nan
    patients.loc[rows[rows].index[::2], "months"] = np.nan
    practices.to_csv(folder / "practices.csv", index=False)
    patients.to_csv(folder / "patients.csv", index=False)
    config = yaml.safe_load((BINARY_TRIAL / "config.yaml").read_text())
    for outcome in config["outcomes"]:
        outcome["primary"] = outcome["name"] == "visits"
    config["sensitivity"] = {"imputations": 5, "seed": 2, "delta": [0.0, 0.7]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return patients, int(patients["months"].isna().sum())


def test_cli_run_of_an_own_trial_with_exposure(own_trial, tmp_path, monkeypatch):
    """`trialstats sensitivity --config trial/config.yaml` from another folder: the count gets
    a pooled rate ratio from all 8 practices (the empty practice's patients with months are
    imputed and analysed, those without are counted out), the delta rows at 0 equal the MAR
    rows and a tipping point is searched in log-rate units."""
    patients, no_months = own_trial
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status = main(["sensitivity", "--config", "../trial/config.yaml",
                   "--analysis", "multiple-imputation", "--analysis", "delta-adjustment",
                   "--out", "rows.csv", "--tipping-out", "tipping.csv"])
    assert status == 0
    rows = pd.read_csv("rows.csv")
    visits = rows[rows["outcome"] == "visits"]
    mar = visits[visits["analysis"].str.startswith("multiple imputation")].iloc[0]
    assert mar["effect_measure"] == "rate ratio" and 0.2 < mar["estimate"] < 5
    assert mar["n_clusters"] == 8 and mar["n_patients"] == len(patients) - no_months
    assert f"{no_months} of the {len(patients)} imputed patients" in mar["notes"]
    at_zero = visits[visits["delta"] == 0.0].iloc[0]
    for column in ("estimate", "se", "df", "p_value"):
        assert at_zero[column] == mar[column]
    assert visits[visits["delta"] == 0.7]["estimate"].iloc[0] != mar["estimate"]
    tipping = pd.read_csv("tipping.csv")
    assert list(tipping["outcome"]) == ["visits", "visits"]
    assert tipping["notes"].str.contains("log-rate units").all()
