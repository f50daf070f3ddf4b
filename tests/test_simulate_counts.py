"""Simulation power for count outcomes analysed by the Poisson or negative binomial GLMM
(issue 13, `trialstats power simulate --rate0 --rate-ratio`).

References: Hayes & Bennett's (1999) analytic power (trialstats.power.rates, itself checked
against clusterPower's cpa.count in test_power_binary_cli.py) where it is accurate; the nominal
level and the generating rate ratio, within Monte Carlo error; lme4's glmer on one trial
(tests/fixtures/count_power/, made by tests/fixtures/r/make_count_power_fixture.R, seed 13132);
clusterPower's cps.count on its documented example (tests/fixtures/clusterpower/cps_count.json,
made by tests/fixtures/r/make_cps_count_fixture.R, seed 123); and the non-batched patient-level
fit of every replicate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trialstats.analysis.glmm import fit_glmm
from trialstats.analysis.glmm_likelihood import glmm_data
from trialstats.cli import main
from trialstats.power.rates import power_rates
from trialstats.power.simulate_glmm import fit_count_replicates, simulate_count_power
from trialstats.simulation.draw import draw_count_trials

FIXTURES = Path(__file__).parent / "fixtures"


def _mc(p: float, reps: int) -> float:
    return math.sqrt(p * (1 - p) / reps)


@pytest.fixture(scope="module")
def poisson_run():
    # Where Hayes & Bennett's formula is accurate for the GLMM's test of the log rate ratio:
    # many clusters (its t allowance, k - 1, is then small), a rate ratio near 1 (where its
    # rate-difference scale and the log-ratio scale agree) and little between-cluster
    # variation. With fewer clusters and larger effects the formula is conservative (e.g. 30
    # clusters per arm, rate ratio 0.85: 0.699 against a simulated 0.735 +- 0.010).
    return simulate_count_power(rate0=1.0, rate_ratio=0.9, clusters_per_arm=40, cluster_size=50,
                                cv_between=0.1, reps=2000, seed=7)


def test_power_agrees_with_hayes_bennett(poisson_run):
    analytic = power_rates(rate0=1.0, rate_ratio=0.9, person_time=50, cv_between=0.1,
                           clusters_per_arm=40)["power"]
    assert abs(poisson_run["power"] - analytic) < 3 * poisson_run["mc_se"]
    assert poisson_run["n_failed"] == 0


def test_estimates_centre_on_the_rate_ratio_and_ses_are_calibrated(poisson_run):
    ok = poisson_run["reps"] - poisson_run["n_failed"]
    assert abs(poisson_run["mean_log_rr"] - math.log(0.9)) < 4 * poisson_run["empirical_se"] / (
        math.sqrt(ok))
    assert poisson_run["mean_se"] == pytest.approx(poisson_run["empirical_se"], rel=0.1)


def test_type_i_error_near_alpha_from_the_same_fits(poisson_run):
    assert abs(poisson_run["type_i_error"] - 0.05) < 3 * _mc(0.05, poisson_run["reps"])
    assert poisson_run["n_negative_binomial"] == poisson_run["n_negative_binomial_null"] == 0


def test_negative_binomial_counts_keep_the_level_and_use_the_nb_model():
    # Strong over-dispersion (Var = mu + 0.5 mu^2, mu about 2): the primary analysis's rule
    # picks the negative binomial nearly always.
    result = simulate_count_power(rate0=2.0, rate_ratio=0.7, clusters_per_arm=10,
                                  cluster_size=20, cv_between=0.2, dispersion=0.5, reps=400,
                                  seed=21)
    assert result["n_negative_binomial"] > 0.9 * result["reps"]
    assert abs(result["type_i_error"] - 0.05) < 3 * _mc(0.05, result["reps"])
    ok = result["reps"] - result["n_failed"]
    assert abs(result["mean_log_rr"] - math.log(0.7)) < 4 * result["empirical_se"] / math.sqrt(ok)


def test_clusterpower_documented_example():
    # cps.count help page: 10 clusters per arm of 20, rates 20 and 30 (a typical cluster's),
    # sigma_b_sq 0.1: "about 0.8". Its GLMM is glmer (Laplace) with a Wald z test; the same
    # words here are rate0 = 20 exp(0.05) (the mean rate) and CV sqrt(exp(0.1) - 1).
    reference = json.loads((FIXTURES / "clusterpower" / "cps_count.json").read_text())
    ours = simulate_count_power(rate0=20 * math.exp(0.05), rate_ratio=1.5, clusters_per_arm=10,
                                cluster_size=20, cv_between=math.sqrt(math.expm1(0.1)),
                                reps=1000, seed=123, df_method="z", n_agq=1)
    combined = math.hypot(ours["mc_se"], _mc(reference["power"], reference["nsim"]))
    assert abs(ours["power"] - reference["power"]) < 3 * combined


def _patient_fit(y, sizes, arm, family):
    clusters = np.repeat(np.arange(arm.size), sizes)
    X = np.column_stack([np.ones(arm.size), arm])[clusters]
    return fit_glmm(glmm_data(y, X, clusters, family), 15)


def test_batched_poisson_fits_equal_single_fits_and_the_patient_level_fit():
    arm = np.repeat([0.0, 1.0], 6)
    sizes, (alternative, null) = draw_count_trials(
        5, 4, arm, 15, 0.6, 2, log_rate=math.log(0.4), log_rate_ratio=-0.3, sigma=0.5)
    totals, both = np.concatenate([alternative, null]), np.concatenate([sizes, sizes])
    poisson, negbin, use = fit_count_replicates(totals, both, arm, 15)
    assert negbin is None and not use.any()
    X = np.column_stack([np.ones(arm.size), arm])
    rng = np.random.default_rng(0)
    for r in range(totals.shape[0]):
        single = fit_glmm(glmm_data(totals[r], X, np.arange(arm.size), "poisson",
                                    offset=np.log(both[r])), 15)
        np.testing.assert_allclose(poisson.beta[r], single.beta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(poisson.se[r], single.se, rtol=1e-7)
        assert poisson.sigma[r] == pytest.approx(float(single.sigma), rel=1e-7, abs=1e-12)
        # Any split of the totals among the patients gives the same fit: the totals are exact.
        y = np.concatenate([rng.multinomial(int(t), np.full(m, 1 / m))
                            for t, m in zip(totals[r], both[r], strict=True)])
        patients = _patient_fit(y, both[r], arm, "poisson")
        np.testing.assert_allclose(poisson.beta[r], patients.beta, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(poisson.se[r], patients.se, rtol=1e-5)
        assert poisson.sigma[r] == pytest.approx(float(patients.sigma), rel=1e-5, abs=1e-9)


def test_batched_negative_binomial_fits_equal_single_fits():
    arm = np.repeat([0.0, 1.0], 4)
    # unequal sizes: every replicate is a design of its own, fitted in its own group
    sizes, (alternative, null) = draw_count_trials(
        9, 3, arm, 12, 0.5, 2, log_rate=math.log(1.5), log_rate_ratio=-0.4, sigma=0.3,
        dispersion=0.8)
    both = np.concatenate([sizes, sizes])
    poisson, negbin, use = fit_count_replicates(alternative + null, both, arm, 15)
    for r, y in enumerate(alternative + null):
        single = _patient_fit(y, both[r], arm, "negative-binomial")
        np.testing.assert_allclose(negbin.beta[r], single.beta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(negbin.se[r], single.se, rtol=1e-7)
        assert negbin.theta[r] == pytest.approx(float(single.theta), rel=1e-7)
        # the Poisson fit from the totals has the patient rows' log-likelihood once the
        # multinomial constant is added back: the rule's likelihood-ratio test is the primary
        # analysis's
        rows = _patient_fit(y, both[r], arm, "poisson")
        totals = np.add.reduceat(y, np.cumsum(both[r]) - both[r])
        constant = (np.sum([math.lgamma(t + 1) for t in totals])
                    - np.sum([math.lgamma(v + 1) for v in y]) - np.sum(totals * np.log(both[r])))
        assert poisson.loglik[r] + constant == pytest.approx(float(rows.loglik), abs=1e-7)
        lr = 2 * (float(single.loglik) - float(rows.loglik))
        assert use[r] == (bool(single.converged) and lr > 2.705543454095404)  # chi2_1 0.90


def test_fit_of_one_trial_matches_glmer():
    reference = json.loads((FIXTURES / "count_power" / "reference.json").read_text())
    d = pd.read_csv(FIXTURES / "count_power" / "poisson_trial.csv")
    by_cluster = d.groupby("cluster", sort=True)
    sizes = by_cluster.size().to_numpy()[None, :]
    totals = by_cluster["y"].sum().to_numpy(dtype=float)[None, :]
    arm = by_cluster["arm"].first().to_numpy(dtype=float)
    poisson, _, _ = fit_count_replicates(totals, sizes, arm, 15)
    np.testing.assert_allclose(poisson.beta[0], reference["beta"], rtol=1e-5)
    np.testing.assert_allclose(poisson.se[0], reference["se"], rtol=1e-4)
    assert poisson.sigma[0] == pytest.approx(reference["sigma"], rel=1e-4)


BASE = ["power", "simulate", "--clusters-per-arm", "6", "--cluster-size", "15", "--reps", "30",
        "--quiet"]


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--rate0", "0", "--rate-ratio", "0.8"], "the control rate (--rate0) must be > 0"),
    (["--rate0", "-1", "--rate-ratio", "0.8"], "the control rate (--rate0) must be > 0"),
    (["--rate0", "0.5", "--rate-ratio", "0"], "the rate ratio (--rate-ratio) must be > 0"),
    (["--rate0", "0.5", "--rate-ratio", "0.8", "--dispersion", "-0.1"],
     "the dispersion (--dispersion) must be >= 0"),
    (["--rate0", "0.5", "--rate-ratio", "0.8", "--cv-between", "-1"],
     "the between-cluster CV (--cv-between) must be >= 0"),
    (["--rate0", "0.5"], "needs both --rate0 and --rate-ratio"),
    (["--rate0", "0.5", "--rate-ratio", "0.8", "--icc", "0.05"], "--icc do not apply"),
    (["--rate0", "0.5", "--rate-ratio", "0.8", "--p0", "0.1"], "--p0 do not apply"),
    (["--rate0", "0.5", "--rate-ratio", "0.8", "--df-method", "kenward-roger"],
     "df method must be one of"),
])
def test_bad_count_simulation_flags_exit_2_with_a_message(flags, fragment, capsys):
    assert main([*BASE, *flags]) == 2
    captured = capsys.readouterr()
    assert fragment in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("dispersion", ["0", "0.5"])
def test_reruns_with_the_same_seed_are_byte_identical(dispersion, tmp_path, capsys):
    flags = [*BASE, "--rate0", "1.2", "--rate-ratio", "0.7", "--cv-between", "0.3", "--cv",
             "0.4", "--dispersion", dispersion, "--seed", "17"]
    for name in ("a.csv", "b.csv"):
        assert main([*flags, "--out", str(tmp_path / name), "--json"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first == second
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    printed = json.loads(first)
    direct = simulate_count_power(rate0=1.2, rate_ratio=0.7, clusters_per_arm=6,
                                  cluster_size=15, cv_between=0.3, cv=0.4,
                                  dispersion=float(dispersion), reps=30, seed=17)
    assert printed["power"] == direct["power"]
    assert printed["type_i_error"] == direct["type_i_error"]
    assert main([*flags[:-1], "18", "--json"]) == 0  # another seed, other trials
    assert json.loads(capsys.readouterr().out)["mean_log_rr"] != printed["mean_log_rr"]
