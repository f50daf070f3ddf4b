"""Multiple imputation of binary and count outcomes (trialstats.analysis.chained_glmm,
trialstats.analysis.imputation_glmm) and the delta adjustment on the logit scale.

References: ``tests/fixtures/binary_mi/reference.json`` made by
``tests/fixtures/r/make_binary_mi_fixture.R`` (seed in the file) from the trial of
``tests/fixtures/binary_trial``: (a) glmer (nAGQ = 15) in five datasets completed by mice's
``2l.bin`` and their ``pool.scalar``; (b) the complete-case glmer fit; (c) mice ``2l.bin`` with
m = 200, pooled. The R call of every number is stored beside it in the file.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trialstats.analysis.chained_glmm import draw_values
from trialstats.analysis.delta import delta_rows, tipping_points
from trialstats.analysis.imputation import impute_trial
from trialstats.analysis.imputation_glmm import glmm_pooled_rows, redrawn_response
from trialstats.analysis.sensitivity import run_analysis
from trialstats.config import load_config
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "binary_trial"
REFERENCE = json.loads(
    (Path(__file__).parent / "fixtures" / "binary_mi" / "reference.json").read_text())
COMPLETED = Path(__file__).parent / "fixtures" / "binary_mi" / "completed.csv"


def _admitted_only(config, **sensitivity):
    """The fixture configuration with only the binary outcome (the model of the R script)."""
    config = copy.deepcopy(config)
    config["outcomes"] = [o for o in config["outcomes"] if o["name"] == "admitted"]
    config["sensitivity"] = {**config.get("sensitivity", {}), "imputations": 5, "seed": 3,
                             "delta": [0.0], "delta_arm": "intervention",
                             "delta_scale": "raw", **sensitivity}
    return config


@pytest.fixture(scope="module")
def trial():
    config = load_config(FIXTURE / "config.yaml")
    return load_trial(config).patients, _admitted_only(config)


def _pooled(rows, measure="odds ratio"):
    return next(r for r in rows if r["effect_measure"] == measure)


def test_completed_data_glmm_and_pooling_match_glmer_and_pool_scalar(trial):
    """R's five completed datasets analysed by ours: the pooled log OR within 1e-5 (absolute;
    it is -0.149, 3e-5 of its SE) and the SE within 1e-5 relative of glmer (nAGQ = 15) +
    mice::pool.scalar. Our per-imputation log ORs differ from glmer's by 2e-7 to 3e-6, and by
    1.8e-5 in imputation 4, where glmer's bobyqa stopped with sigma 3.6e-5 relative away; the
    between-imputation variance (0.0125) carries that into df, FMI and r, so those are held
    to 2e-3 relative."""
    patients, config = trial
    imputed = impute_trial(patients, config, imputations=5, seed=1, iterations=1)
    k = imputed.score_columns.index("admitted_m12")
    r_values = pd.read_csv(COMPLETED).to_numpy(dtype=float).T  # (5, n), file order
    draws = list(imputed.draws)
    draws[k] = r_values[:, imputed.missing[:, k]]
    observed = imputed.completed("admitted_m12")[:, ~imputed.missing[:, k]]
    assert np.array_equal(r_values[:, ~imputed.missing[:, k]], observed)  # same rows
    row = _pooled(glmm_pooled_rows(replace(imputed, draws=draws), config,
                                   config["outcomes"][0], 12))
    ref = REFERENCE["pooled"]
    assert np.log(row["estimate"]) == pytest.approx(ref["qbar"], abs=1e-5)
    assert row["se"] == pytest.approx(np.sqrt(ref["t"]), rel=1e-5)
    assert row["df"] == pytest.approx(ref["df"], rel=2e-3)
    assert row["fmi"] == pytest.approx(ref["fmi"], rel=2e-3)
    assert row["riv"] == pytest.approx(ref["r"], rel=2e-3)


def test_pooled_log_odds_ratio_agrees_with_mice_2l_bin_and_complete_cases(trial):
    """Our two-level logistic imputation (M = 100) against mice 2l.bin (m = 200): the pooled
    log OR within 4 Monte Carlo SEs (sqrt(B/M) of each side), the pooled SE within 10%; and,
    as the imputation model is the analysis model and only the outcome is missing, both near
    the complete-case glmer fit (within 4 MC SEs plus 0.1 of its SE)."""
    patients, config = trial
    imputed = impute_trial(patients, config, imputations=100, seed=7, iterations=1)
    row = _pooled(glmm_pooled_rows(imputed, config, config["outcomes"][0], 12))
    ours, ours_se = np.log(row["estimate"]), row["se"]
    between = (ours_se**2) * row["riv"] / (1 + row["riv"]) / (1 + 1 / 100)
    mice = REFERENCE["mice_2l_bin"]
    mc = np.sqrt(between / 100 + mice["b"] / mice["m"])
    assert abs(ours - mice["qbar"]) < 4 * mc
    assert ours_se == pytest.approx(np.sqrt(mice["t"]), rel=0.10)
    cc = REFERENCE["complete_case"]
    assert abs(ours - cc["estimate"]) < 4 * np.sqrt(between / 100) + 0.1 * cc["se"]


def test_imputation_is_reproducible_and_per_imputation_streams(trial):
    """Same seed, same draws; imputation m does not depend on how many are made."""
    patients, config = trial
    a = impute_trial(patients, config, imputations=3, seed=5, iterations=2)
    b = impute_trial(patients, config, imputations=5, seed=5, iterations=2)
    k = a.score_columns.index("admitted_m12")
    assert np.array_equal(a.draws[k], b.draws[k][:3])
    assert set(np.unique(b.draws[k])) <= {0.0, 1.0}
    eta, uniforms = b.latent[k]
    assert np.array_equal(draw_values(eta, uniforms, "binomial"), b.draws[k])


def test_delta_zero_equals_mar_and_delta_moves_the_odds_ratio(trial):
    """delta = 0 rows equal the multiple-imputation rows number for number; a negative delta
    in the intervention arm (fewer admissions among its missing) lowers the OR and the risk
    difference, a positive one raises them; only imputed intervention values change."""
    patients, config = trial
    mar = run_analysis("multiple-imputation", patients, config)
    delta = run_analysis("delta-adjustment", patients,
                         {**config, "sensitivity": {**config["sensitivity"],
                                                    "delta": [0.0, -2.0, 2.0]}})
    columns = ["estimate", "se", "df", "ci_low", "ci_high", "p_value", "effect_measure"]
    at_zero = delta[delta["delta"] == 0.0].reset_index(drop=True)
    pd.testing.assert_frame_equal(at_zero[columns], mar[columns])
    for measure in ("odds ratio", "risk difference"):
        est = delta[delta["effect_measure"] == measure].set_index("delta")["estimate"]
        assert est[-2.0] < est[0.0] < est[2.0]
    assert "log-odds scale (odds ratio 0.1353)" in delta.loc[3, "notes"]
    imputed = impute_trial(patients, config, imputations=5, seed=3)
    cells = np.zeros(len(imputed.values), bool)
    cells[imputed.treated == 1.0] = True
    down = redrawn_response(imputed, "admitted_m12", -2.0, cells, "binomial")
    same = imputed.completed("admitted_m12")
    assert np.all(down <= same)
    changed = np.any(down != same, axis=0)
    k = imputed.score_columns.index("admitted_m12")
    assert not np.any(changed & ~(imputed.missing[:, k] & cells))


def test_practice_without_outcomes_and_few_clusters(trial):
    """A practice whose follow-ups are all missing is imputed from its baseline and arm (its
    patients stay in the analysis); an arm left with one practice with observed follow-ups
    is not estimable, said in every row."""
    patients, config = trial
    emptied = patients.copy()
    gone = emptied["practice_id"] == emptied["practice_id"].iloc[0]
    emptied.loc[gone, "admitted_m12"] = np.nan
    rows = run_analysis("multiple-imputation", emptied, config)
    assert list(rows["effect_measure"]) == ["odds ratio", "risk difference", "risk ratio"]
    assert (rows["n_clusters"] == 14).all() and (rows["n_patients"] == len(patients)).all()
    assert rows["estimate"].notna().all() and rows["converged"].all()
    control = emptied.loc[emptied["treated"] == 0.0, "practice_id"].unique()
    emptied.loc[emptied["practice_id"].isin(control[1:]), "admitted_m12"] = np.nan
    rows = run_analysis("multiple-imputation", emptied, config)
    assert rows["estimate"].isna().all()
    assert rows["notes"].str.contains("fewer than two clusters").all()


def test_count_outcome_gets_pooled_rate_ratio(trial):
    """A count without exposure: a pooled rate ratio from the Poisson imputation and analysis;
    with an exposure column the offset is used (tests/test_count_imputation.py)."""
    patients, _ = trial
    config = load_config(FIXTURE / "config.yaml")
    config = _admitted_only(config)
    visits = next(o for o in load_config(FIXTURE / "config.yaml")["outcomes"]
                  if o["name"] == "visits")
    config["outcomes"] = [{k: v for k, v in visits.items() if k != "exposure"}]
    rows = run_analysis("multiple-imputation", patients, config)
    assert list(rows["effect_measure"]) == ["rate ratio"]
    assert 0.3 < rows["estimate"].iloc[0] < 3 and rows["se"].iloc[0] > 0
    assert "two-level Poisson" in rows["notes"].iloc[0]
    config["outcomes"] = [visits]
    rows = run_analysis("multiple-imputation", patients, config)
    assert rows["notes"].str.contains("imputed and analysed with offset log(months)",
                                      regex=False).all()
    deltas = delta_rows(impute_trial(patients, {**config, "outcomes": [
        {k: v for k, v in visits.items() if k != "exposure"}]}, imputations=3, seed=2,
        iterations=2), {**config, "outcomes": [
            {k: v for k, v in visits.items() if k != "exposure"}]}, [0.0, 0.5])
    assert deltas["estimate"].iloc[0] < deltas["estimate"].iloc[1]
    assert "log-rate scale" in deltas["notes"].iloc[1]


def _simulated_trial(seed: int) -> tuple[pd.DataFrame, dict]:
    """A CRT of 20 practices x 30 with a binary outcome, true log OR 0.9, 40% of month-12
    values missing at random, and its configuration."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(20), 30)
    treated = (codes % 2).astype(float)
    b = rng.normal(0.0, 0.5, 20)[codes]
    y0 = (rng.random(codes.size) < 0.4).astype(float)
    eta = -1.0 + 0.9 * treated + 0.8 * y0 + b
    y12 = (rng.random(codes.size) < 1 / (1 + np.exp(-eta))).astype(float)
    y12[rng.random(codes.size) < 0.4] = np.nan
    patients = pd.DataFrame({"practice_id": [f"P{j:02d}" for j in codes],
                             "treated": treated, "y_m0": y0, "y_m12": y12})
    config = {
        "design": {"cluster": "practice_id", "baseline_month": 0, "primary_month": 12,
                   "followup_months": [12]},
        "outcomes": [{"name": "y", "type": "binary", "primary": True,
                      "higher_is_better": True, "mcid": {"scale": "odds-ratio", "value": 1.5}}],
        "analysis": {"covariates": [], "df_method": ["satterthwaite"], "alpha": 0.05,
                     "glmm_df_method": ["between-within"], "quadrature_points": 15},
    }
    return patients, config


def test_tipping_point_on_the_log_odds_scale():
    """The tipping search of a binary primary outcome, delta in log-odds on the intervention
    arm's imputed values: just inside the tipping delta the conclusion is the MAR one, just
    beyond it the other (checked with fresh delta-adjusted rows, not the search's own); the
    verdict is judged on the odds-ratio row of the odds-ratio MCID."""
    patients, config = _simulated_trial(4)
    imputed = impute_trial(patients, config, imputations=5, seed=3, iterations=1)
    tipping = tipping_points(imputed, config, limit=6.0, step=0.5).set_index("criterion")
    assert list(tipping.index) == ["significance", "mcid verdict"]
    sig = tipping.loc["significance"]
    assert sig["conclusion_mar"] == "significant" and "log-odds" in sig["notes"]
    assert sig["conclusion_tipped"] == "not significant" and sig["delta"] < 0
    inside, beyond = sig["delta"] * (1 - 1e-3), sig["delta"] * (1 + 1e-3)
    rows = delta_rows(imputed, config, [0.0, inside, beyond])
    p = rows[rows["effect_measure"] == "odds ratio"]["p_value"].to_numpy()
    assert p[0] < 0.05 and p[1] < 0.05 <= p[2]
    verdict = tipping.loc["mcid verdict"]
    odds = rows[rows["effect_measure"] == "odds ratio"]
    assert verdict["conclusion_mar"] == odds["mcid_verdict"].iloc[0]
    assert np.isfinite(odds["mcid"].iloc[0])


def test_tipping_figure_and_sentence_of_a_binary_outcome():
    """The report draws a binary outcome's tipping analysis as one odds-ratio curve on a log
    axis (null line at 1), delta in log-odds units, not the OR, RD and RR rows as one curve."""
    from trialstats.report.tipping import tipping_figure, tipping_sentences

    patients, config = _simulated_trial(4)
    config["outcomes"][0]["label"] = "On target"
    config["sensitivity"] = {"delta_arm": "intervention", "delta_scale": "raw"}
    imputed = impute_trial(patients, config, imputations=5, seed=3, iterations=1)
    tipping = tipping_points(imputed, config, limit=6.0, step=0.5)
    rows = delta_rows(imputed, config, [0.0, -1.0, -2.0]).assign(analysis="delta-adjustment")
    ax = tipping_figure(rows, tipping, "y", config).axes[0]
    assert ax.get_yscale() == "log" and "Odds ratio" in ax.get_ylabel()
    assert "log-odds units" in ax.get_xlabel()
    odds = rows[rows["effect_measure"] == "odds ratio"]
    points = ax.lines[[len(line.get_xdata()) for line in ax.lines].index(len(odds))]
    np.testing.assert_allclose(points.get_ydata(), odds["estimate"])  # the grid: OR rows only
    assert [line.get_ydata()[0] for line in ax.lines
            if line.get_linestyle() == "-" and len(line.get_xdata()) == 2
            and line.get_ydata()[0] == line.get_ydata()[1]] == [1]  # null line at 1
    sentence = tipping_sentences(tipping, config)["y"]
    assert "log-odds units" in sentence and "missing values" in sentence
