"""Primary analysis rows of binary and count outcomes (issue 13) against lme4.

Reference: tests/fixtures/r/make_binary_trial_fixture.R (lme4 glmer at nAGQ = 15 with tight
optimiser settings, marginal risks by integrate() and numDeriv, seed 20261130), whose trial
(14 practices of 3 to 100 patients, a binary outcome with a binary baseline and labels no/yes, a
count with an exposure offset) is tests/fixtures/binary_trial/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trialstats.analysis.glmm import fit_glmm
from trialstats.analysis.glmm_likelihood import glmm_data
from trialstats.analysis.primary import analyse_trial
from trialstats.config import load_config
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "binary_trial"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())


@pytest.fixture(scope="module")
def trial():
    config = load_config(FIXTURE / "config.yaml")
    return load_trial(config), config


@pytest.fixture(scope="module")
def rows(trial):
    trial, config = trial
    config = {**config, "analysis": {**config["analysis"],
                                     "glmm_df_method": ["between-within", "z"]}}
    return analyse_trial(trial.patients, config)


def _row(rows, outcome, measure, method="between-within"):
    chosen = rows[(rows.outcome == outcome) & (rows.effect_measure == measure)
                  & (rows.method == method)]
    assert len(chosen) == 1
    return chosen.iloc[0]


@pytest.mark.parametrize(("outcome", "measure"), [("admitted", "odds ratio"),
                                                  ("visits", "rate ratio")])
def test_ratio_rows_match_glmer(rows, outcome, measure):
    ref = REFERENCE[outcome]
    row = _row(rows, outcome, measure)
    arm = ref["coef_names"].index("treated")
    assert row.n_patients == ref["n"] and row.n_clusters == ref["n_clusters"]
    assert np.log(row.estimate) == pytest.approx(ref["beta"][arm], rel=1e-5)
    assert row.se == pytest.approx(ref["se"][arm], rel=1e-4)
    assert row.var_cluster == pytest.approx(ref["sigma"] ** 2, rel=1e-4)
    assert row.df == ref["df_between_within"]
    assert [row.ci_low, row.ci_high] == pytest.approx(ref["ci_between_within"], rel=1e-4)
    assert row.p_value == pytest.approx(ref["p_between_within"], rel=1e-4)
    z = _row(rows, outcome, measure, "z")
    assert np.isnan(z.df)
    assert [z.ci_low, z.ci_high] == pytest.approx(ref["ci_z"], rel=1e-4)


def test_latent_icc_and_profile_interval_match_lme4(rows):
    ref = REFERENCE["admitted"]
    row = _row(rows, "admitted", "odds ratio")
    assert row.var_residual == pytest.approx(np.pi**2 / 3)
    assert row.icc == pytest.approx(ref["icc"], rel=1e-4)
    assert row.icc_ci_low == ref["icc_ci"][0] == 0
    assert row.icc_ci_high == pytest.approx(ref["icc_ci"][1], rel=1e-4)


def test_marginal_risk_difference_and_ratio_match_r(rows):
    ref = REFERENCE["admitted"]["marginal"]
    rd, rr = _row(rows, "admitted", "risk difference"), _row(rows, "admitted", "risk ratio")
    assert rd.estimate == pytest.approx(ref["rd"], rel=1e-5)
    assert rd.se == pytest.approx(ref["rd_se"], rel=1e-4)
    assert [rd.ci_low, rd.ci_high] == pytest.approx(ref["rd_ci"], rel=1e-4)
    assert rr.estimate == pytest.approx(ref["rr"], rel=1e-5)
    assert rr.se == pytest.approx(ref["log_rr_se"], rel=1e-4)
    assert [rr.ci_low, rr.ci_high] == pytest.approx(ref["rr_ci"], rel=1e-4)


def test_verdicts_are_given_on_the_mcid_scale_only(rows):
    admitted = rows[(rows.outcome == "admitted") & (rows.method == "between-within")]
    by_measure = dict(zip(admitted.effect_measure, admitted.mcid_verdict, strict=True))
    # RD CI (-0.152, 0.098) crosses -0.05 and +0.05: inconclusive; the other rows get none.
    assert by_measure == {"odds ratio": "", "risk difference": "inconclusive", "risk ratio": ""}
    visits = _row(rows, "visits", "rate ratio")
    # Fewer visits are better; the RR CI (0.52, 0.76) lies wholly below 1/1.2.
    assert visits.mcid == 1.2 and visits.mcid_verdict == "important benefit shown"


def test_binary_and_count_rows_say_what_they_are(rows):
    glmm = rows[rows.outcome != "qol"]
    assert glmm.sd_baseline.isna().all() and glmm.effect_size.isna().all()
    qol = rows[rows.outcome == "qol"]
    assert qol.effect_measure.tolist() == ["mean difference"]  # satterthwaite only
    assert qol.effect_size.notna().all()
    admitted = _row(rows, "admitted", "odds ratio").notes
    assert "observed intervention 43/180 (23.9%), control 54/204 (26.5%)" in admitted
    assert "no standardised effect size for a binary outcome" in admitted
    visits = _row(rows, "visits", "rate ratio").notes
    assert "family: Poisson (likelihood-ratio test of over-dispersion p = " in visits
    assert np.isnan(_row(rows, "visits", "rate ratio").icc)


def test_an_odds_ratio_mcid_judges_the_odds_ratio_row(trial):
    trial, config = trial
    outcome = {**config["outcomes"][0], "mcid": {"scale": "odds-ratio", "value": 0.5}}
    rows = analyse_trial(trial.patients, {**config, "outcomes": [outcome]})
    verdicts = dict(zip(rows.effect_measure, rows.mcid_verdict, strict=True))
    # OR CI (0.37, 1.90) against the band (0.5, 2): crosses 0.5, so inconclusive.
    assert verdicts == {"odds ratio": "inconclusive", "risk difference": "", "risk ratio": ""}
    assert rows.mcid.tolist()[0] == pytest.approx(2.0)


def test_over_dispersed_counts_get_the_negative_binomial(trial):
    trial, config = trial
    patients = trial.patients.copy()
    rng = np.random.default_rng(7)
    observed = patients["visits_m12"].notna()
    mean = patients.loc[observed, "visits_m12"].to_numpy() + 0.5
    patients.loc[observed, "visits_m12"] = rng.negative_binomial(1.5, 1.5 / (1.5 + mean))
    rows = analyse_trial(patients, config, outcomes=["visits"])
    row = rows.iloc[0]
    assert "family: negative binomial (theta = " in row.notes
    analysed = patients[observed]
    X = np.column_stack([np.ones(len(analysed)), analysed.treated, analysed.visits_m0,
                         analysed.age])
    fit = fit_glmm(glmm_data(analysed.visits_m12, X, analysed.practice_id,
                             "negative-binomial", offset=np.log(analysed.months)))
    assert np.log(row.estimate) == pytest.approx(fit.beta[1], rel=1e-10)


def test_an_outcome_that_never_happens_is_not_estimable(trial):
    trial, config = trial
    patients = trial.patients.assign(admitted_m12=trial.patients.admitted_m12 * 0)
    rows = analyse_trial(patients, config, outcomes=["admitted"])
    assert len(rows) == 3 and not rows.converged.any()
    assert rows.notes.str.startswith("not estimable: every analysed patient has 0").all()


def test_labelled_long_format_gives_the_same_rows(trial, tmp_path):
    wide, config = trial
    raw = pd.read_csv(FIXTURE / "patients.csv", keep_default_na=False, na_values=[""])
    long = pd.concat([
        raw[["patient_id", "practice_id", "age", "months"]].assign(
            month=m, admitted=raw[f"admitted_m{m}"], visits=raw[f"visits_m{m}"],
            qol=raw[f"qol_m{m}"])
        for m in (0, 12)
    ])
    long.to_csv(tmp_path / "long.csv", index=False)
    config = {**config, "data": {**config["data"], "patients": str(tmp_path / "long.csv"),
                                 "format": "long", "month_column": "month"}}
    trial_long = load_trial(config)
    pd.testing.assert_frame_equal(analyse_trial(trial_long.patients, config),
                                  analyse_trial(wide.patients, config))


def test_default_workflow_runs_a_binary_and_count_trial(tmp_path):
    """`trialstats run` on the fixture trial: the whole workflow, the report in the outcomes'
    own terms (events n (%), OR with RD and RR, rate ratio; no SD-standardised effects for
    them, while the continuous score keeps its mean (SD), standardised effect and forest)."""
    trial = tmp_path / "trial"
    shutil.copytree(FIXTURE, trial)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [sys.executable, "-m", "trialstats", "run", "--config", str(trial / "config.yaml"),
         "--cores", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    primary = pd.read_csv(trial / "results" / "primary.csv")
    row = _row(primary, "admitted", "odds ratio")
    assert np.log(row.estimate) == pytest.approx(REFERENCE["admitted"]["beta"][1], rel=1e-5)
    sensitivity = pd.read_csv(trial / "results" / "sensitivity.csv")
    glmm = sensitivity[sensitivity.outcome != "qol"]
    handled = glmm.analysis.str.startswith(("cluster-level", "CR2", "GEE"))
    # repeated measures and subgroups handle them too, but this trial has one follow-up month
    # and no condition column
    own = glmm.analysis.str.startswith(("repeated measures", "subgroup"))
    assert glmm[own].notes.str.startswith((
        "not estimable: repeated measures need at least two follow-up months",
        "skipped: the subgroup variable 'condition'")).all()
    assert glmm[own].analysis.str.startswith("repeated measures").sum() == 2
    imputed = glmm.analysis.str.startswith("multiple imputation")
    assert not (~handled & ~own & ~imputed).any()  # no analysis is for continuous outcomes only
    mi = glmm[imputed].set_index(["outcome", "effect_measure"])
    assert list(mi.index) == [("admitted", "odds ratio"), ("admitted", "risk difference"),
                              ("admitted", "risk ratio"), ("visits", "rate ratio")]
    assert mi.loc[("admitted", "odds ratio"), "estimate"] == pytest.approx(0.84, abs=0.15)
    # the count with its exposure: imputed and analysed with the offset, near the primary
    # rate ratio (10% of its follow-ups missing)
    visits = mi.loc[("visits", "rate ratio")]
    assert "offset log(months)" in visits["notes"]
    primary_rate = _row(primary, "visits", "rate ratio").estimate
    assert abs(np.log(visits["estimate"] / primary_rate)) < 0.05
    # per outcome: 2 cluster-level, 3 GEE (MD, KC, FG), CR2; not estimable: the adjusted
    # cluster-level ratio of admitted (a practice without events) and CR2 of the count
    assert glmm[handled].estimate.notna().sum() == 10
    qol = sensitivity[sensitivity.outcome == "qol"]
    assert (qol.effect_measure == "mean difference").all()
    assert qol[qol.analysis.str.startswith(("GEE", "CR2", "cluster"))].estimate.notna().all()
    plan = pd.read_csv(trial / "results" / "power" / "plan.csv")
    planned = plan.set_index("outcome")
    assert planned.loc["admitted", "notes"].startswith("not planned")
    assert "power simulate --p0 P0 --p1 P1" in planned.loc["admitted", "notes"]
    assert planned.loc["visits", "notes"].startswith("not planned")
    assert planned.loc["qol", "clusters_per_arm"] >= 2
    report = (trial / "reports" / "report.md").read_text()
    # Table 1: the "no"/"yes" outcome at baseline is one row, n (%) of "yes" by arm
    raw = pd.read_csv(FIXTURE / "patients.csv").merge(pd.read_csv(FIXTURE / "practices.csv"))
    cells = [f"{(g.admitted_m0 == 'yes').sum()} ({100 * (g.admitted_m0 == 'yes').mean():.1f})"
             for _, g in sorted(raw.groupby("arm"), key=lambda kv: kv[0] != "intervention")]
    assert f"| \u2003Admitted to hospital, n (%) | {cells[0]} | {cells[1]} |" in report
    outcomes = report[report.index("Table 2."):report.index("Table 4.")]  # Tables 2 and 3
    assert "| 43 (23.9%) |" in outcomes and "| 54 (26.5%) |" in outcomes
    # OR, RD and RR side by side in the row of the outcome at 12 months
    assert ("| OR 0.84 (0.37 to 1.90) | 0.648 | −0.027 (−0.152 to 0.098) | 0.90 (0.54 to 1.49) |"
            in outcomes)
    assert "rate ratio 0.63 (0.52 to 0.76)" in outcomes
    assert "mean (SD)" not in outcomes[:outcomes.index("*n and summary")]
    assert "12 months | 169 | 51.5 (10.0) | 202 | 46.9 (10.3) |" in outcomes  # mean (SD)
    assert "Admitted to hospital risk difference 0.05; GP consultations rate ratio 1.2" in report
    assert "Binary and count outcomes were analysed with generalised linear mixed" in report
    assert "For binary outcomes the model is logistic" in report
    assert "Li P, Redden DT" in report
    forest = report[report.index("Figure 2."):]
    assert forest.startswith("Figure 2. Standardised effects at 12 months")
    for name in ("report.html", "report.docx", "report.tex"):
        assert (trial / "reports" / name).stat().st_size > 0


def test_separated_data_are_flagged_without_numerical_warnings(trial, recwarn):
    trial, config = trial
    patients = trial.patients.copy()
    treated = patients.treated == 1
    patients.loc[treated, "admitted_m12"] = patients.loc[treated, "admitted_m12"] * 0
    rows = analyse_trial(patients, config, outcomes=["admitted"])
    assert not rows.converged.any()
    assert rows.notes.str.contains("GLMM fit did not converge").all()
    assert [w for w in recwarn if issubclass(w.category, RuntimeWarning)] == []
