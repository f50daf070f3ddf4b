"""Binary and count outcomes of period designs: the GLMM with cluster and cluster-period
intercepts (trialstats.analysis.period_glmm), its sensitivity rows and its report.

References: tests/fixtures/r/make_period_glmm_fixture.R (lme4 1.1.31, seed 20261130), whose
output tests/fixtures/period_glmm/reference.json keeps each R call next to its numbers:

- ``binary``, ``count``, ``binary_age``: ``glmer(y ~ treat + factor(period) [+ age] [+
  offset(log(months))] + (1 | cluster) + (1 | cluster:period), nAGQ = 1)``, estimates polished
  by Newton on glmer's deviance function; SEs from ``vcov()`` (lme4's finite-difference
  Hessian over (theta, beta)). The script's numDeriv Hessian of the same deviance agrees with
  ``vcov()`` and with ours to 1e-6 for the binary fit but differs from both by up to 2% for
  the Poisson fit (whose SEs agree with ``vcov()`` to 2e-5), so ``vcov()`` is the reference;
- ``binary_exact``, ``count_exact``: the maximum of the exact likelihood (cluster-period
  totals, 60 x 60 non-adaptive Gauss-Hermite nodes) and the likelihood there by nested
  integrate(), the reference of the adaptive-quadrature fits. The two agree to 1e-12 for the
  binary outcome; for the count the Gauss-Hermite value is 6.6e-5 off (its peaked integrand),
  so its optimum is only near the maximum, and the integrate() value is the check;
- ``binary_marginal``: the marginal risks, RD and RR of the binary fit and their delta-method
  SEs, by integrate() and numDeriv;
- ``boundary``: an 8-cluster trial whose glmer fit puts the cluster-period variance at 0, and
  the fit with the cluster intercept only.

The trial: 12 clusters in 4 sequences, 5 periods, 637 participants, 5% of each outcome missing.
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
import yaml
from scipy import stats

from trialstats.analysis.glmm import fit_glmm
from trialstats.analysis.glmm_likelihood import glmm_data
from trialstats.analysis.glmm_nested import fit_nested_glmm
from trialstats.analysis.glmm_nested_likelihood import nested_data
from trialstats.analysis.period_analysis import period_data
from trialstats.analysis.primary import analyse_trial
from trialstats.analysis.sensitivity import run_analysis
from trialstats.cli import main
from trialstats.config import load_config
from trialstats.contract import COLUMNS, SENSITIVITY_COLUMNS
from trialstats.data.validate import load_trial
from trialstats.errors import TrialstatsError
from trialstats.report.periods import _methods, consort_sw_counts, results_table

FIXTURE = Path(__file__).parent / "fixtures" / "period_glmm"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())
N_CLUSTERS, N_PERIODS = 12, 5
# between-within df: clusters minus intercept, treatment and 4 period columns
BETWEEN_WITHIN = N_CLUSTERS - (1 + 1 + N_PERIODS - 1)


@pytest.fixture(scope="module")
def trial():
    config = load_config(FIXTURE / "config.yaml")
    return load_trial(config).patients, config


@pytest.fixture(scope="module")
def laplace(trial):
    patients, config = trial
    config = {**config, "analysis": {**config["analysis"], "quadrature_points": 1,
                                     "glmm_df_method": ["between-within", "z", "residual"]}}
    return analyse_trial(patients, config)


def _nested_fit(patients, config, outcome, n_agq):
    """The fit the rows come from, through the public API (for every coefficient)."""
    entry = next(o for o in config["outcomes"] if o["name"] == outcome)
    data = period_data(patients, outcome, config, entry.get("exposure"))
    cell = data.cluster_codes * N_PERIODS + data.period_codes
    family = "binomial" if entry["type"] == "binary" else "poisson"
    return fit_nested_glmm(nested_data(data.y, data.X, data.cluster_codes, cell, family,
                                       offset=data.offset), n_agq), data


@pytest.mark.parametrize(("block", "outcome", "measure"), [
    ("binary", "admitted", "odds ratio"), ("count", "visits", "rate ratio")])
def test_laplace_rows_match_glmer(laplace, block, outcome, measure):
    ref = REFERENCE[block]
    part = laplace[(laplace.outcome == outcome) & (laplace.effect_measure == measure)]
    assert list(laplace.columns) == list(COLUMNS)
    assert list(part.method) == ["between-within", "z", "residual"]
    treat = ref["beta_names"].index("treat")
    for row in part.itertuples():
        assert row.n_patients == ref["n"] and row.n_clusters == N_CLUSTERS and row.converged
        assert np.log(row.estimate) == pytest.approx(ref["beta"][treat], rel=1e-5)
        assert row.se == pytest.approx(ref["se_vcov"][treat], rel=1e-4)
        assert row.var_cluster == pytest.approx(
            ref["sigma_cluster"] ** 2 + ref["sigma_cluster_period"] ** 2, rel=1e-4)
    bw, z, residual = (part.iloc[k] for k in range(3))
    assert bw.df == BETWEEN_WITHIN and np.isnan(z.df)
    assert residual.df == ref["n"] - (1 + 1 + N_PERIODS - 1)
    beta, se = ref["beta"][treat], ref["se_vcov"][treat]
    assert bw.p_value == pytest.approx(2 * stats.t.sf(abs(beta / se), BETWEEN_WITHIN), rel=1e-3)
    assert [z.ci_low, z.ci_high] == pytest.approx(
        np.exp(beta + np.array([-1, 1]) * stats.norm.ppf(0.975) * se), rel=1e-4)
    assert np.isnan(bw.sd_baseline) and np.isnan(bw.effect_size)
    assert bw.mcid_verdict == "inconclusive"  # MCID on the measure's own scale
    tau2, gamma2 = ref["sigma_cluster"] ** 2, ref["sigma_cluster_period"] ** 2
    assert f"cluster {tau2:.4g}, cluster-period {gamma2:.4g}, CAC " \
           f"{tau2 / (tau2 + gamma2):.3f}" in bw.notes
    assert "Laplace approximation (nAGQ = 1)" in bw.notes
    if block == "binary":
        assert bw.var_residual == pytest.approx(np.pi**2 / 3)
        assert bw.icc == pytest.approx((tau2 + gamma2) / (tau2 + gamma2 + np.pi**2 / 3),
                                       rel=1e-4)
    else:
        assert np.isnan(bw.var_residual) and np.isnan(bw.icc)
        assert "offset(log(months))" in bw.notes and "family: Poisson" in bw.notes


@pytest.mark.parametrize(("block", "outcome"), [("binary", "admitted"), ("count", "visits")])
def test_every_coefficient_and_variance_matches_glmer(trial, block, outcome):
    patients, config = trial
    ref = REFERENCE[block]
    fit, data = _nested_fit(patients, config, outcome, 1)
    names = ["(Intercept)", "treat", *(f"factor(period){t}" for t in range(2, N_PERIODS + 1))]
    assert ref["beta_names"] == names and len(data.columns) == len(names)
    assert fit.beta == pytest.approx(ref["beta"], rel=1e-5, abs=1e-6)
    assert fit.se == pytest.approx(ref["se_vcov"], rel=1e-4)
    if block == "binary":  # numDeriv's Hessian is smooth enough here (module notes)
        assert fit.se == pytest.approx(ref["se"], rel=1e-5)
    assert fit.sigma_practice == pytest.approx(ref["sigma_cluster"], rel=1e-6)
    assert fit.sigma_patient == pytest.approx(ref["sigma_cluster_period"], rel=1e-6)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-8)


def test_covariate_model_matches_glmer(tmp_path):
    ref = REFERENCE["binary_age"]
    config = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    config["analysis"]["covariates"] = ["age"]
    for name in ("practices.csv", "patients.csv"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    config = load_config(tmp_path / "config.yaml")
    fit, data = _nested_fit(load_trial(config).patients, config, "admitted", 1)
    assert data.columns[-1] == "age" and ref["beta_names"][-1] == "age"
    assert fit.beta == pytest.approx(ref["beta"], rel=1e-5, abs=1e-6)
    assert fit.se == pytest.approx(ref["se_vcov"], rel=1e-4)
    assert fit.sigma_practice == pytest.approx(ref["sigma_cluster"], rel=1e-4)
    assert fit.sigma_patient == pytest.approx(ref["sigma_cluster_period"], rel=1e-4)


def test_adaptive_quadrature_reaches_the_exact_maximum(trial):
    """Binary, 15 x 15 nodes: the maximum of the exact likelihood (where Laplace, glmer's
    only choice, is 3e-3 off in the coefficients and 4% in the cluster-period SD)."""
    patients, config = trial
    exact, laplace = REFERENCE["binary_exact"], REFERENCE["binary"]
    assert exact["loglik"] == pytest.approx(exact["loglik_integrate"], abs=1e-9)
    fit, _ = _nested_fit(patients, config, "admitted", 15)
    assert fit.beta == pytest.approx(exact["beta"], abs=1e-7)
    assert fit.se == pytest.approx(exact["se"], rel=1e-5)
    assert [fit.sigma_practice, fit.sigma_patient] == pytest.approx(
        [exact["sigma_cluster"], exact["sigma_cluster_period"]], rel=1e-6)
    assert fit.loglik == pytest.approx(exact["loglik"], abs=1e-8)
    assert np.max(np.abs(np.subtract(laplace["beta"], exact["beta"]))) > 1e-3


def test_adaptive_quadrature_count_is_at_the_maximum(trial):
    """Count, 15 x 15 nodes: our maximised likelihood is the exact (integrate()) likelihood
    at the reference's near-optimum or higher, by less than 1e-6, and the estimates are
    within its accuracy (see the module notes)."""
    patients, config = trial
    exact = REFERENCE["count_exact"]
    fit, _ = _nested_fit(patients, config, "visits", 15)
    assert 0 <= fit.loglik - exact["loglik_integrate"] < 1e-6
    assert fit.beta == pytest.approx(exact["beta"], abs=5e-5)
    assert [fit.sigma_practice, fit.sigma_patient] == pytest.approx(
        [exact["sigma_cluster"], exact["sigma_cluster_period"]], rel=1e-4)
    assert fit.se == pytest.approx(exact["se"], rel=5e-3)


def test_marginal_risks_match_r(laplace):
    """RD and RR standardised over the participants with u + v ~ N(0, tau^2 + gamma^2), and
    their delta-method SEs over (beta, tau, gamma), against the same computed in R from
    glmer's fit (integrate() and numDeriv)."""
    ref = REFERENCE["binary_marginal"]
    rows = laplace[(laplace.outcome == "admitted") & (laplace.method == "between-within")]
    rows = rows.set_index("effect_measure")
    assert rows.loc["risk difference", "estimate"] == pytest.approx(ref["rd"], rel=1e-6)
    assert rows.loc["risk ratio", "estimate"] == pytest.approx(ref["rr"], rel=1e-6)
    assert rows.loc["risk difference", "se"] == pytest.approx(ref["se_rd"], rel=1e-5)
    assert rows.loc["risk ratio", "se"] == pytest.approx(ref["se_log_rr"], rel=1e-5)
    assert rows.loc["risk difference", "ci_low"] == pytest.approx(
        ref["rd"] - stats.t.ppf(0.975, BETWEEN_WITHIN) * ref["se_rd"], rel=1e-4)
    assert (rows.df == BETWEEN_WITHIN).all()


def _boundary_config(tmp_path):
    for name in ("practices", "patients"):
        shutil.copy(FIXTURE / f"boundary_{name}.csv", tmp_path / f"{name}.csv")
    config = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    config["outcomes"] = config["outcomes"][:1]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return load_config(tmp_path / "config.yaml")


def test_boundary_fit_is_the_cluster_intercept_model(tmp_path):
    """glmer puts the cluster-period variance at 0: the fit is reported as a boundary fit and
    is glmer's model with the cluster intercept only (and our one-intercept GLMM). Our
    maximum is 9e-7 higher than glmer's there (whose SD is 1.7e-5 lower), so its ``vcov()``
    SEs are compared to 1e-3."""
    config = _boundary_config(tmp_path)
    ref = REFERENCE["boundary"]
    assert ref["sigma_cluster_period"] == 0
    patients = load_trial(config).patients
    rows = analyse_trial(patients, config)
    bw = rows[(rows.method == "between-within") & (rows.effect_measure == "odds ratio")].iloc[0]
    assert "cluster-period variance estimated at 0 (boundary fit)" in bw.notes
    assert "CAC 1.000" in bw.notes and bw.converged
    assert bw.df == 8 - (1 + 1 + N_PERIODS - 1)
    only = ref["cluster_only"]
    treat = ref["beta_names"].index("treat")
    assert np.log(bw.estimate) == pytest.approx(only["beta"][treat], rel=1e-4)
    assert bw.se == pytest.approx(only["se_vcov"][treat], rel=1e-3)
    assert bw.var_cluster == pytest.approx(only["sigma_cluster"] ** 2, rel=1e-4)
    fit, data = _nested_fit(patients, config, "admitted", 1)
    assert fit.boundary == (False, True)
    assert fit.beta == pytest.approx(only["beta"], rel=1e-3, abs=1e-4)
    assert fit.se == pytest.approx(only["se_vcov"], rel=1e-3)
    assert 0 <= fit.loglik - only["loglik"] < 1e-5
    single = fit_glmm(glmm_data(data.y, data.X, data.cluster_codes, "binomial"), 1)
    assert fit.beta == pytest.approx(single.beta, abs=1e-8)
    assert fit.se == pytest.approx(single.se, rel=1e-5)
    assert np.isfinite(rows.estimate).all() and len(rows) == 6


def test_no_between_within_df_left_is_said(tmp_path):
    """8 clusters and 9 columns of intercept, 4 exposure times and 4 periods: no
    between-within df, so those rows say why; the z rows are estimated."""
    config = _boundary_config(tmp_path)
    config["analysis"]["time_on_treatment"] = True
    rows = analyse_trial(load_trial(config).patients, config)
    bw, z = rows[rows.method == "between-within"], rows[rows.method == "z"]
    assert bw.estimate.isna().all() and bw.converged.isna().all()
    assert bw.notes.str.startswith("not estimable: between-within df -1 (clusters").all()
    assert np.isfinite(z.estimate.iloc[0]) and z.converged.iloc[0]


def test_time_on_treatment_gives_the_mean_exposure_effect(trial):
    patients, config = trial
    config = {**config, "analysis": {**config["analysis"], "quadrature_points": 1,
                                     "time_on_treatment": True}}
    rows = analyse_trial(patients, config, ["admitted"])
    fit, data = _nested_fit(patients, config, "admitted", 1)
    exposure = [k for k, c in enumerate(data.columns) if c.startswith("exposure[")]
    assert len(exposure) == N_PERIODS - 1
    odds = rows[rows.effect_measure == "odds ratio"].iloc[0]
    assert np.log(odds.estimate) == pytest.approx(np.mean(fit.beta[exposure]), rel=1e-9)
    assert odds.df == N_CLUSTERS - (1 + (N_PERIODS - 1) + N_PERIODS - 1)
    marginal = rows[rows.effect_measure != "odds ratio"]
    assert marginal.estimate.isna().all() and marginal.converged.isna().all()
    assert marginal.notes.str.startswith("not estimable: no marginal risk difference").all()


def test_sensitivity_rows_say_why_not(trial):
    patients, config = trial
    for name in ("cluster-level", "cr2", "gee"):
        rows = run_analysis(name, patients, config)
        assert list(rows.columns) == list(SENSITIVITY_COLUMNS)
        assert list(rows.effect_measure) == ["odds ratio", "rate ratio"]
        assert rows.estimate.isna().all() and rows.converged.isna().all()
        assert rows.notes.str.startswith("not estimable: ").all()


def test_count_exposure_is_validated_in_period_tables(tmp_path):
    for name in ("practices", "patients"):
        shutil.copy(FIXTURE / f"{name}.csv", tmp_path / f"{name}.csv")
    table = pd.read_csv(tmp_path / "patients.csv")
    first = table.index[table.visits.notna()][0]
    table.loc[first, "months"] = 0
    table = table.rename(columns={"months": "exposure"})
    table.to_csv(tmp_path / "patients.csv", index=False)
    config = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    config["outcomes"][1]["exposure"] = "exposure"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(TrialstatsError, match=rf"patients.csv, column 'exposure': exposure of "
                       rf"outcome 'visits' must be a positive number .* row {first + 2}\b"):
        load_trial(load_config(tmp_path / "config.yaml"))
    table.loc[first, "exposure"] = 2.5
    table.to_csv(tmp_path / "patients.csv", index=False)
    patients = load_trial(load_config(tmp_path / "config.yaml")).patients
    # the count's own exposure column, not the exposure time of the design
    assert patients.loc[first, "exposure"] == 2.5


def test_report_shows_ratios_and_names_the_glmm(trial, laplace):
    patients, config = trial
    table = results_table(laplace, None, config)
    assert table.columns[1] == "Effect (95% CI)"
    cells = [row[1] for row in table.rows]
    bw = laplace[laplace.method == "between-within"].set_index(["outcome", "effect_measure"])
    odds = bw.loc[("admitted", "odds ratio")]
    assert f"OR {odds.estimate:.2f} ({odds.ci_low:.2f} to {odds.ci_high:.2f})" in cells
    rd = bw.loc[("admitted", "risk difference")]
    assert f"RD {rd.estimate:.3f} ({rd.ci_low:.3f} to {rd.ci_high:.3f})".replace(
        "-", "\u2212") in cells
    rate = bw.loc[("visits", "rate ratio")]
    assert f"rate ratio {rate.estimate:.2f} ({rate.ci_low:.2f} to {rate.ci_high:.2f})" in cells
    iccs = [row[4] for row in table.rows]
    assert f"{odds.icc:.3f}" in iccs  # latent-scale ICC, no interval
    assert "family = binomial" in table.notes and "offset(log(months))" in table.notes
    assert "Difference intervention" not in table.notes  # no continuous outcome here
    practices = load_trial(config).practices
    text = _methods(config, consort_sw_counts(practices, patients, config))
    assert "Binary and count outcomes were analysed with a generalized linear mixed model" in text
    assert "linear mixed model lmer" not in text and "Laplace approximation" in text


def test_cli_analyse_writes_the_rows(tmp_path, capsys):
    """Through the command line from another folder (paths relative to the config)."""
    folder = tmp_path / "other"
    folder.mkdir()
    for name in ("practices.csv", "patients.csv", "config.yaml"):
        shutil.copy(FIXTURE / name, folder / name)
    status = main(["analyse", "--config", str(folder / "config.yaml"), "--outcome", "visits",
                   "--out", str(tmp_path / "primary.csv")])
    assert status == 0, capsys.readouterr().err
    rows = pd.read_csv(tmp_path / "primary.csv")
    assert list(rows.effect_measure) == ["rate ratio", "rate ratio"]
    assert np.log(rows.estimate[0]) == pytest.approx(
        REFERENCE["count"]["beta"][1], rel=1e-5)


def test_run_from_another_directory(tmp_path):
    """`trialstats run --config other/config.yaml` on this trial (15 x 15 nodes, the
    default): the binary rows are the exact-likelihood maximum, the report shows them."""
    folder = tmp_path / "other"
    (folder / "data").mkdir(parents=True)
    for name in ("practices.csv", "patients.csv"):
        shutil.copy(FIXTURE / name, folder / "data" / name)
    config = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    config["data"] |= {"practices": "data/practices.csv", "patients": "data/patients.csv"}
    del config["analysis"]["quadrature_points"]
    config.setdefault("report", {})["title"] = "A stepped-wedge trial of our own"
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "trialstats", "run", "--config",
                           "other/config.yaml", "--cores", "2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    primary = pd.read_csv(folder / "results" / "primary.csv")
    odds = primary[primary.effect_measure == "odds ratio"].iloc[0]
    assert np.log(odds.estimate) == pytest.approx(REFERENCE["binary_exact"]["beta"][1],
                                                  abs=1e-7)
    assert "15 x 15 nodes" in odds.notes
    sensitivity = pd.read_csv(folder / "results" / "sensitivity.csv")
    assert sensitivity.notes.str.startswith("not estimable: ").all()
    report = (folder / "reports" / "report.md").read_text()
    assert report.startswith("# A stepped-wedge trial of our own\n")
    assert f"OR {odds.estimate:.2f} ({odds.ci_low:.2f} to {odds.ci_high:.2f})" in report
    assert "generalized linear mixed model" in report
    counts = pd.read_csv(folder / "reports" / "tables" / "consort_counts.csv")
    analysed = counts[counts.stage == "analysed"]
    assert analysed.participants.sum() == odds.n_patients == REFERENCE["binary"]["n"]
