"""Simulation power for binary outcomes analysed by the logistic GLMM (issue 13).

References: the closed-form power of the Wald test of the log odds ratio of two independent
binomial samples (ICC 0: var = 1/(N0 p0 q0) + 1/(N1 p1 q1)), the true log odds ratio of the
generating model, and the nominal level; each compared within Monte Carlo error.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from trialstats.cli import main
from trialstats.power.simulate_glmm import simulate_binary_power


@pytest.fixture(scope="module")
def latent():
    return simulate_binary_power(p0=0.15, p1=0.25, clusters_per_arm=15, cluster_size=40,
                                 icc=0.05, cv=0.5, reps=1000, seed=11)


def test_estimates_centre_on_the_generating_odds_ratio(latent):
    true = np.log(0.25 * 0.85 / (0.75 * 0.15))
    assert latent["odds_ratio"] == pytest.approx(np.exp(true))
    mc_se = latent["empirical_se"] / np.sqrt(latent["reps"] - latent["n_failed"])
    assert abs(latent["mean_log_or"] - true) < 4 * mc_se
    # The model SE is calibrated: mean SE within 10% of the SD of the estimates.
    assert latent["mean_se"] == pytest.approx(latent["empirical_se"], rel=0.1)


def test_type_i_error_is_near_nominal_with_between_within_df(latent):
    assert abs(latent["type_i_error"] - 0.05) < 4 * np.sqrt(0.05 * 0.95 / latent["reps"])


def test_power_at_icc_zero_matches_the_two_binomial_wald_test():
    result = simulate_binary_power(p0=0.2, p1=0.3, clusters_per_arm=10, cluster_size=40,
                                   icc=0.0, reps=2000, seed=3, df_method="z")
    log_or = np.log(0.3 * 0.8 / (0.7 * 0.2))
    ncp = log_or / np.sqrt(1 / (400 * 0.2 * 0.8) + 1 / (400 * 0.3 * 0.7))
    z = stats.norm.isf(0.025)
    expected = stats.norm.cdf(ncp - z) + stats.norm.cdf(-ncp - z)
    # The GLMM estimates the (zero) cluster variance, which can only widen the SE a little.
    assert expected - 4 * result["mc_se"] < result["power"] <= expected + result["mc_se"]


def test_reruns_are_identical_and_the_cli_reports_the_same(capsys):
    kwargs = dict(p0=0.1, p1=0.2, clusters_per_arm=6, cluster_size=25, icc=0.1, reps=50,
                  seed=5)
    first, second = simulate_binary_power(**kwargs), simulate_binary_power(**kwargs)
    assert first == second
    status = main(["power", "simulate", "--p0", "0.1", "--p1", "0.2", "--clusters-per-arm",
                   "6", "--cluster-size", "25", "--icc", "0.1", "--reps", "50", "--seed", "5",
                   "--quiet", "--json"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["power"] == first["power"]
    assert printed["type_i_error"] == first["type_i_error"]


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--p0", "0.1"], "needs both --p0 and --p1"),
    (["--p0", "0.1", "--p1", "0.2", "--df-method", "satterthwaite"], "df method must be one of"),
    (["--p0", "0.1", "--p1", "0.2", "--target-power", "0.8"], "--target-power do not apply"),
    (["--p0", "0.1", "--p1", "1.2"], "p0 and p1 must lie in (0, 1)"),
])
def test_bad_binary_simulation_flags_are_refused(flags, fragment, capsys):
    base = ["power", "simulate", "--clusters-per-arm", "6", "--cluster-size", "25", "--icc",
            "0.1", "--reps", "20", "--quiet"]
    assert main([*base, *flags]) == 2
    assert fragment in capsys.readouterr().err
