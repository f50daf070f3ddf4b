"""Simulation engine: the generator, exactness of each replicate's fit, agreement with the
analytic formulas, type I error, reproducibility and the scenario grid."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trialstats.errors import TrialstatsError
from trialstats.power.analytic import power_continuous
from trialstats.power.grid import chunk_scenarios, expand_grid, gather, run_scenarios
from trialstats.power.plan import inputs_from_analysis
from trialstats.power.simulate import analyse_replicates, simulate_power
from trialstats.report.files import save_figure
from trialstats.report.power_curves import power_curve_figure
from trialstats.simulation.draw import (
    SimulationDesign,
    draw_cluster_sizes,
    replicate_rng,
    simulate_patients,
    simulate_sums,
)

# A small trial with unequal sizes, attrition and boundary fits among its replicates.
SMALL = SimulationDesign(
    clusters_per_arm=6, cluster_size=15, icc=0.1, effect=0.3, cv=0.6, attrition=0.27,
    rho_s=0.5, rho_c=0.8,
)


def _assert_close(actual, expected, rtol=1e-6, atol=1e-10):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float),
                               rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- generator


def test_generator_moments_match_the_model():
    design = SimulationDesign(clusters_per_arm=150, cluster_size=40, icc=0.2, effect=0.0,
                              rho_s=0.5, rho_c=0.8, min_cluster_size=1)
    data = simulate_patients(design, seed=2, replicate=0)
    assert data["y0"].var() == pytest.approx(1.0, abs=0.03)
    assert data["y1"].var() == pytest.approx(1.0, abs=0.03)
    assert np.corrcoef(data["y0"], data["y1"])[0, 1] == pytest.approx(
        0.2 * 0.8 + 0.8 * 0.5, abs=0.02)
    means = data.groupby("cluster")[["y0", "y1"]].mean()
    # between-cluster covariance of the means: rho [[1, rc], [rc, 1]] + (1 - rho) S_s / 40
    cov = means.cov().to_numpy()
    assert cov[0, 0] == pytest.approx(0.2 + 0.8 / 40, abs=0.04)
    assert cov[0, 1] == pytest.approx(0.2 * 0.8 + 0.8 * 0.5 / 40, abs=0.04)


def test_cluster_sizes_have_the_requested_mean_and_cv_and_floor():
    sizes = draw_cluster_sizes(np.random.default_rng(1), 200_000, mean=50, cv=0.6, min_size=2)
    assert sizes.min() >= 2
    assert sizes.mean() == pytest.approx(50, rel=0.01)
    assert sizes.std() / sizes.mean() == pytest.approx(0.6, rel=0.01)
    fixed = draw_cluster_sizes(np.random.default_rng(1), 5, mean=12.4, cv=0.0)
    assert fixed.tolist() == [12] * 5


def test_attrition_is_binomial_and_dumped_patients_are_the_analysed_sums():
    sums = simulate_sums(SMALL, seed=4, replicates=range(400))
    assert sums.n.sum() / sums.recruited.sum() == pytest.approx(0.73, abs=0.01)
    data = simulate_patients(SMALL, seed=4, replicate=17)
    by = data.groupby("cluster")
    n = by.size().reindex(range(SMALL.n_clusters), fill_value=0).to_numpy()
    _assert_close(n, sums.n[17])
    _assert_close(by["y0"].sum().reindex(range(12), fill_value=0), sums.s0[17])
    _assert_close((data["y0"] * data["y1"]).groupby(data["cluster"]).sum()
                  .reindex(range(12), fill_value=0), sums.s01[17])


def test_exact_sums_generator_matches_patient_generation_in_distribution():
    # tiny clusters exercise n_j = 0, 1 (no scatter) and 2 (rank-one Wishart)
    design = SimulationDesign(clusters_per_arm=3, cluster_size=3, icc=0.3, effect=0.5, cv=0.8,
                              attrition=0.4, rho_s=0.6, rho_c=0.7, min_cluster_size=1)
    reps = 20_000
    by_patient = simulate_sums(design, seed=7, replicates=range(reps))
    direct = simulate_sums(design, seed=7, replicates=range(reps), generator="sums")
    for field in ("s0", "s1", "s00", "s01", "s11"):
        a, b = getattr(by_patient, field), getattr(direct, field)
        se = np.sqrt((a.var(axis=0) + b.var(axis=0)) / reps)
        assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) < 4.5 * se), field
        assert np.allclose(a.std(axis=0), b.std(axis=0), rtol=0.05), field
    assert np.array_equal(by_patient.n, direct.n)  # the same cluster-level draws come first


def test_design_validation():
    with pytest.raises(TrialstatsError, match="two clusters per arm"):
        SimulationDesign(clusters_per_arm=1, cluster_size=10, icc=0.05, effect=0.2)
    with pytest.raises(TrialstatsError, match="ICC"):
        SimulationDesign(clusters_per_arm=5, cluster_size=10, icc=1.0, effect=0.2)
    with pytest.raises(TrialstatsError, match="baseline analysis"):
        SimulationDesign(clusters_per_arm=5, cluster_size=10, icc=0.05, effect=0.2,
                         baseline="diff")


# --------------------------------------------------------------------------- exactness


def _dense_reml_se(data: pd.DataFrame, var_b: float, var_e: float) -> float:
    """SE of the arm effect from the dense GLS formula (X' V^-1 X)^-1 at given components."""
    X = np.column_stack([np.ones(len(data)), data["arm"], data["y0"]])
    same = data["cluster"].to_numpy()[:, None] == data["cluster"].to_numpy()[None, :]
    V = var_e * np.eye(len(data)) + var_b * same
    return float(np.sqrt(np.linalg.inv(X.T @ np.linalg.solve(V, X))[1, 1]))


def test_replicates_equal_statsmodels_mixedlm_reml():
    import statsmodels.formula.api as smf

    fits = analyse_replicates(SMALL, seed=5, replicates=range(6))
    for row in fits.itertuples():
        data = simulate_patients(SMALL, seed=5, replicate=row.replicate)
        model = smf.mixedlm("y1 ~ arm + y0", data, groups=data["cluster"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = model.fit(reml=True)
            # polish statsmodels' optimum so that the comparison is at 1e-6, not at its tolerance
            sm = model.fit(reml=True, start_params=first.params, method="bfgs", gtol=1e-10,
                           maxiter=2000)
        # statsmodels cannot beat the exact optimum; at a boundary it stops just inside it
        assert row.reml_loglik >= sm.llf - 1e-8
        _assert_close(row.estimate, sm.fe_params["arm"])
        _assert_close(row.var_residual, sm.scale)
        _assert_close(row.var_cluster, float(sm.cov_re.iloc[0, 0]), atol=1e-7)
        # statsmodels' bse comes from the Hessian of all parameters; lme4 and we report the
        # model-based (X' V^-1 X)^-1, computed here densely at statsmodels' components
        _assert_close(row.se, _dense_reml_se(data, float(sm.cov_re.iloc[0, 0]), sm.scale))
    assert fits["boundary"].any() and not fits["boundary"].all()


LME4_SCRIPT = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
args <- commandArgs(trailingOnly = TRUE)
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(rhobeg = 0.05, rhoend = 1e-12, maxfun = 100000),
                    check.conv.singular = "ignore")
d <- read.csv(args[1])
out <- lapply(split(d, d$replicate), function(x) {
  f <- lmer(y1 ~ arm + y0 + (1 | cluster), data = x, REML = TRUE, control = ctrl)
  vc <- as.data.frame(VarCorr(f))
  kr <- summary(f, ddf = "Kenward-Roger")$coefficients["arm", ]
  list(replicate = x$replicate[1], estimate = unname(fixef(f)["arm"]),
       se = sqrt(vcov(f)["arm", "arm"]), var_cluster = vc$vcov[1], var_residual = vc$vcov[2],
       loglik = as.numeric(logLik(f)),
       df_satterthwaite = summary(f)$coefficients["arm", "df"],
       se_kenward_roger = kr[["Std. Error"]], df_kenward_roger = kr[["df"]])
})
writeLines(jsonlite::toJSON(unname(out), auto_unbox = TRUE, digits = NA), args[2])
"""


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed")
def test_replicates_equal_lme4_reml(tmp_path: Path):
    fits = analyse_replicates(SMALL, seed=5, replicates=range(8))
    data = pd.concat([simulate_patients(SMALL, seed=5, replicate=r).assign(replicate=r)
                      for r in range(8)])
    data.to_csv(tmp_path / "reps.csv", index=False, float_format="%.17g")
    (tmp_path / "fit.R").write_text(LME4_SCRIPT)
    subprocess.run(["Rscript", str(tmp_path / "fit.R"), str(tmp_path / "reps.csv"),
                    str(tmp_path / "out.json")], check=True, capture_output=True)
    lme4 = pd.DataFrame(json.loads((tmp_path / "out.json").read_text()))
    for column, atol in (("estimate", 1e-10), ("se", 1e-10), ("var_residual", 1e-10),
                         ("var_cluster", 1e-8)):
        _assert_close(fits[column], lme4[column], atol=atol)
    _assert_close(fits["reml_loglik"], lme4["loglik"], rtol=1e-9)
    # the small-sample df reach the replicates unchanged (lmerTest's numerical derivatives
    # agree with the analytic ones to about 1e-5 relative)
    satterthwaite = analyse_replicates(SMALL, seed=5, replicates=range(8),
                                       df_method="satterthwaite")
    interior = ~fits["boundary"].to_numpy()
    _assert_close(satterthwaite["df"][interior], lme4["df_satterthwaite"][interior], rtol=1e-4)
    kenward_roger = analyse_replicates(SMALL, seed=5, replicates=range(8),
                                       df_method="kenward-roger")
    _assert_close(kenward_roger["se"], lme4["se_kenward_roger"], rtol=1e-6)
    _assert_close(kenward_roger["df"], lme4["df_kenward_roger"], rtol=1e-4)


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("design", [
    # balanced: equal sizes, equal allocation, rho_c = rho_s (ANCOVA model exactly right)
    SimulationDesign(clusters_per_arm=20, cluster_size=20, icc=0.05, effect=0.22,
                     rho_s=0.6, rho_c=0.6),
    # unbalanced: 20 v 30 clusters, CV 0.5, 20% attrition
    SimulationDesign(clusters_per_arm=20, k_intervention=30, cluster_size=20, icc=0.03,
                     effect=0.22, cv=0.5, attrition=0.2, rho_s=0.5, rho_c=0.5),
], ids=["balanced", "unbalanced"])
@pytest.mark.parametrize("generator", ["patients", "sums"])
def test_simulated_power_agrees_with_analytic_t_power(design, generator):
    sim = simulate_power(design, reps=2000, seed=2024, df_method="between-within",
                         generator=generator)
    analytic = power_continuous(
        cluster_size=design.cluster_size, icc=design.icc,
        clusters_per_arm=design.clusters_per_arm, k_intervention=design.n_intervention,
        effect=design.effect, cv=design.cv, attrition=design.attrition, baseline="ancova",
        rho_c=design.rho_c, rho_s=design.rho_s, distribution="t",
    )["power"].iloc[0]
    assert 0.6 < analytic < 0.95
    assert abs(sim["power"] - analytic) < 3 * sim["mc_se"]
    assert design.n_clusters - 2.1 < sim["mean_df"] <= design.n_clusters - 2  # empty clusters


@pytest.mark.parametrize("design", [
    SimulationDesign(clusters_per_arm=5, cluster_size=20, icc=0.1, effect=0.0,
                     rho_s=0.5, rho_c=0.5),
    SimulationDesign(clusters_per_arm=10, cluster_size=20, icc=0.05, effect=0.0, cv=0.6,
                     attrition=0.27, rho_s=0.5, rho_c=0.8),
], ids=["10 clusters", "20 clusters, unequal sizes"])
def test_type_i_error_with_between_within_df_is_nominal(design):
    sim = simulate_power(design, reps=4000, seed=99, df_method="between-within")
    assert sim["power"] == sim["type_i_error"]
    assert abs(sim["type_i_error"] - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 4000)


def test_type_i_error_comes_from_the_same_trials_shifted_by_the_effect():
    null = simulate_power(replace(SMALL, effect=0.0), reps=300, seed=8)
    alternative = simulate_power(SMALL, reps=300, seed=8)
    assert alternative["type_i_error"] == null["power"]


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_results_any_batch_size():
    a = simulate_power(SMALL, reps=250, seed=3)
    b = simulate_power(SMALL, reps=250, seed=3, batch_size=7)
    assert a == b
    c = simulate_power(SMALL, reps=250, seed=4)
    assert c["mean_estimate"] != a["mean_estimate"]


def test_replicate_streams_are_keyed_by_scenario_and_replicate():
    first = replicate_rng(1, 0, 5).standard_normal(4)
    assert np.array_equal(first, replicate_rng(1, 0, 5).standard_normal(4))
    child = np.random.SeedSequence(1).spawn(1)[0].spawn(6)[5]
    assert np.array_equal(first, np.random.default_rng(child).standard_normal(4))
    assert not np.array_equal(first, replicate_rng(1, 1, 5).standard_normal(4))
    part = analyse_replicates(SMALL, seed=3, replicates=range(10, 20))
    whole = analyse_replicates(SMALL, seed=3, replicates=range(0, 20))
    pd.testing.assert_frame_equal(part.reset_index(drop=True),
                                  whole.iloc[10:].reset_index(drop=True))


# --------------------------------------------------------------------------- grid


def _spec(**overrides):
    spec = {
        "methods": ["analytic", "simulation"], "reps": 200, "seed": 7, "alpha": 0.05,
        "df_method": "between-within", "distribution": "t", "baseline": "ancova",
        "min_cluster_size": 2, "generator": "patients",
        "grid": {"clusters_per_arm": [4, 8], "allocation_ratio": [1], "cluster_size": [10],
                 "cv": [0.5], "icc": [0.05], "effect": [0.3, 0.5], "attrition": [0.2],
                 "rho_s": [0.5], "rho_c": [0.8]},
    }
    spec.update(overrides)
    return spec


def test_grid_chunks_gather_to_the_single_run_table():
    spec = _spec()
    scenarios = expand_grid(spec)
    assert len(scenarios) == 4 and scenarios["scenario"].tolist() == [0, 1, 2, 3]
    whole = run_scenarios(scenarios, spec)
    chunks = [run_scenarios(chunk_scenarios(scenarios, c, 3), spec) for c in range(3)]
    pd.testing.assert_frame_equal(gather(chunks[::-1]), gather([whole]))
    sim = whole[whole["method"] == "simulation"]
    analytic = whole[whole["method"] == "analytic"]
    assert sim["power"].between(0, 1).all() and analytic["mc_se"].isna().all()
    with pytest.raises(TrialstatsError, match="missing"):
        gather(chunks[1:])
    with pytest.raises(TrialstatsError, match="more than one chunk"):
        gather([whole, chunks[0]])


def test_identical_scenarios_in_a_grid_get_independent_streams():
    spec = _spec(methods=["simulation"])
    spec["grid"] = {**spec["grid"], "clusters_per_arm": [6], "effect": [0.3, 0.3]}
    table = run_scenarios(expand_grid(spec), spec)
    assert table["mean_estimate"].iloc[0] != table["mean_estimate"].iloc[1]


def test_power_curve_figure_is_byte_reproducible(tmp_path: Path):
    spec = _spec()
    table = run_scenarios(expand_grid(spec), spec)
    for suffix in (".svg", ".png"):
        first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
        save_figure(power_curve_figure(table), first)
        save_figure(power_curve_figure(table), second)
        assert first.read_bytes() == second.read_bytes()
    assert b"<svg" in (tmp_path / "a.svg").read_bytes()


def test_inputs_from_analysis_takes_icc_sd_and_autocorrelations():
    design = SimulationDesign(clusters_per_arm=100, cluster_size=60, icc=0.2, effect=0.0,
                              rho_s=0.4, rho_c=0.7)
    data = simulate_patients(design, seed=1, replicate=0)
    patients = pd.DataFrame({"practice_id": data["cluster"], "sdm_m0": data["y0"] * 10,
                             "sdm_m12": data["y1"] * 10})
    primary = pd.DataFrame({
        "outcome": ["sdm", "sdm", "sdm"], "month": [6, 12, 12],
        "method": ["kenward-roger", "kenward-roger", "satterthwaite"],
        "icc": [0.3, 0.07, 0.07], "sd_baseline": [10.0, 10.0, 10.0], "mcid": [2.0, 2.0, 2.0],
    })
    taken = inputs_from_analysis(primary, patients, outcome="sdm")
    assert taken["icc"] == 0.07 and taken["sd"] == 10.0
    assert taken["mcid_effect"] == pytest.approx(0.2)
    assert taken["rho_s"] == pytest.approx(0.4, abs=0.03)
    assert taken["rho_c"] == pytest.approx(0.7, abs=0.1)
    assert inputs_from_analysis(primary, None, outcome="sdm", month=6)["icc"] == 0.3
    with pytest.raises(TrialstatsError, match="no row for outcome"):
        inputs_from_analysis(primary, None, outcome="eq5d")
