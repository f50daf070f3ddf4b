"""Simulated trials under constrained randomisation: the permutation test's size and power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trialstats.errors import TrialstatsError
from trialstats.simulation.constrained import PERMUTATION_COLUMNS, permutation_validity

CELL = [(12, "continuous", None)]


@pytest.fixture(scope="module")
def validity():
    return permutation_validity(trials=400, seed=3, cells=CELL)


def test_permutation_test_holds_its_size_on_constrained_designs(validity):
    # 12 practices: the best 10% of the C(12, 6) = 924 allocations, 92 accepted; the test is
    # exact, its size the largest multiple of 2/92 (mirror images tie) not above 0.05.
    exact = 4 / 92
    row = validity.iloc[0]
    assert list(validity.columns) == list(PERMUTATION_COLUMNS)
    assert row["trials"] == 400 and row["space"] == "all" and row["cutoff"] == 0.1
    se = math.sqrt(exact * (1 - exact) / 400)
    assert abs(row["type_i_error"] - exact) < 3.5 * se
    assert row["type_i_error_mc_se"] == pytest.approx(
        math.sqrt(row["type_i_error"] * (1 - row["type_i_error"]) / 400))


def test_same_seed_same_table_other_seed_other_draws(validity):
    again = permutation_validity(trials=400, seed=3, cells=CELL)
    assert again.equals(validity)
    other = permutation_validity(trials=60, seed=4, cells=[(14, "binary", 2000)])
    assert other["space"].iloc[0] == "2000"
    assert 0 <= other["type_i_error"].iloc[0] <= 0.2


def test_bad_cells_are_user_errors():
    with pytest.raises(TrialstatsError, match="even number"):
        permutation_validity(trials=10, seed=1, cells=[(7, "continuous", None)])
    with pytest.raises(TrialstatsError, match="at least two"):
        permutation_validity(trials=1, seed=1)
    assert np.isfinite(permutation_validity(trials=2, seed=1, cells=CELL)["type_i_error"]).all()


# --- power with constrained allocation --------------------------------------------------------

import json  # noqa: E402
from dataclasses import replace  # noqa: E402

import pandas as pd  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

from trialstats.analysis.design import ModelData  # noqa: E402
from trialstats.analysis.inference import contrast_test  # noqa: E402
from trialstats.analysis.permutation import permutation_test, practice_residuals  # noqa: E402
from trialstats.analysis.reml import ClusterSums, fit_reml  # noqa: E402
from trialstats.cli import main  # noqa: E402
from trialstats.power.simulate import simulate_power  # noqa: E402
from trialstats.simulation.analyse import fit_mixed_model  # noqa: E402
from trialstats.simulation.constrained import (  # noqa: E402
    Constraint,
    constrained_batches,
    permutation_tests,
)
from trialstats.simulation.draw import SimulationDesign, simulate_patients  # noqa: E402

DESIGN = SimulationDesign(clusters_per_arm=5, cluster_size=12, icc=0.1, effect=0.3, cv=0.5,
                          attrition=0.2, rho_s=0.5, rho_c=0.7)
SHARE = 0.5


def _patients(design, constraint, seed, replicate, batch):
    """The replicate's patients rebuilt from the module's documented construction: a trial of
    the base model on the same stream, rescaled and shifted patient by patient."""
    icc, share = design.icc, constraint.covariate_share
    base = replace(design, effect=0.0, icc=icc * (1 - share) / (1 - icc * share),
                   rho_c=(design.rho_c - share) / (1 - share))
    data = simulate_patients(base, seed, replicate)
    x, arm = batch.covariate[replicate], batch.sums.arm[replicate]
    j = data["cluster"].to_numpy()
    scale, beta = np.sqrt(1 - icc * share), np.sqrt(icc * share)
    return pd.DataFrame({
        "cluster": j, "treated": arm[j], "x": x[j], "y0": scale * data["y0"] + beta * x[j],
        "y1": scale * data["y1"] + beta * x[j] + design.effect * arm[j]})


@pytest.fixture(scope="module")
def batch():
    constraint = Constraint(0.2, SHARE)
    ((_, drawn),) = list(constrained_batches(DESIGN, constraint, 9, 4, batch_size=4))
    return constraint, drawn


def test_constrained_trials_are_the_documented_model_and_allocation(batch):
    constraint, drawn = batch
    for r in range(4):
        patients = _patients(DESIGN, constraint, 9, r, drawn)
        sums = patients.groupby("cluster")[["y0", "y1"]].sum().reindex(range(10), fill_value=0)
        assert np.allclose(drawn.sums.s1[r], sums["y1"]) and np.allclose(drawn.sums.s0[r],
                                                                          sums["y0"])
        # the drawn allocation is one of the accepted, which are 20% of C(10, 5) = 252
        accepted = drawn.accepted[r]
        assert len(accepted) == round(0.2 * 252)
        assert (accepted == (drawn.sums.arm[r] > 0)).all(axis=1).any()
        assert (accepted.sum(axis=1) == 5).all()


def test_adjusted_mixed_model_equals_statsmodels_reml(batch):
    constraint, drawn = batch
    fits = fit_mixed_model(drawn.sums, "ancova", ("between-within",), drawn.covariate)
    test = fits.tests["between-within"]
    for r in range(2):
        patients = _patients(DESIGN, constraint, 9, r, drawn)
        model = smf.mixedlm("y1 ~ treated + y0 + x", patients, groups="cluster").fit(reml=True)
        assert test.estimate[r] == pytest.approx(model.params["treated"], abs=1e-5)
        assert fits.var_cluster[r] == pytest.approx(model.cov_re.iloc[0, 0], rel=1e-3, abs=1e-6)
        # the model-based SE (X' V^-1 X)^-1 at statsmodels' variance components (its own bse
        # uses the observed information of all parameters, 1% away), and exactly the kernel's
        # fit of the patient-level data, which does not use the sums algebra under test
        columns = np.column_stack([np.ones(len(patients)), patients[["treated", "y0", "x"]]])
        information = np.zeros((4, 4))
        for _, rows in patients.groupby("cluster"):
            xj = columns[rows.index]
            v = model.scale * np.eye(len(rows)) + model.cov_re.iloc[0, 0]
            information += xj.T @ np.linalg.solve(v, xj)
        gls_se = np.sqrt(np.linalg.inv(information)[1, 1])
        assert test.se[r] == pytest.approx(gls_se, rel=1e-3)
        columns = np.column_stack([np.ones(len(patients)), patients[["treated", "y0", "x"]]])
        data = ClusterSums.from_data(patients["y1"].to_numpy(), columns,
                                     patients["cluster"].to_numpy(), 10)
        exact = contrast_test(data, fit_reml(data), [0, 1, 0, 0], "between-within")
        assert test.se[r] == pytest.approx(exact.se, rel=1e-8)
        assert test.df[r] == exact.df == 10 - 3  # clusters minus intercept, arm and x


def test_permutation_tests_equal_the_trial_analysis(batch):
    constraint, drawn = batch
    tests = permutation_tests(drawn, "ancova", DESIGN.effect, 0.05)
    for r in range(4):
        patients = _patients(DESIGN, constraint, 9, r, drawn)
        codes = patients["cluster"].to_numpy()
        filled = np.unique(codes)
        data = ModelData(
            y=patients["y1"].to_numpy(),
            X=np.column_stack([np.ones(len(codes)), patients[["treated", "y0", "x"]]]),
            columns=("(Intercept)", "treated", "y0", "x"),
            cluster_codes=np.searchsorted(filled, codes),
            cluster_ids=tuple(map(str, filled)), excluded={}, n_randomised=len(codes))
        residuals, shift, treated = practice_residuals(data, False)
        result = permutation_test(residuals, shift, treated, drawn.accepted[r][:, filled])
        assert tests["p_value"][r] == pytest.approx(result["p_value"])
        assert tests["estimate"][r] == pytest.approx(result["estimate"])


def test_covariate_share_keeps_the_icc_and_explains_its_share():
    design = SimulationDesign(clusters_per_arm=10, cluster_size=400, icc=0.2, effect=0.0,
                              rho_c=0.8)
    means, xs = [], []
    for _, drawn in constrained_batches(design, Constraint(1.0, 0.6), 4, 300,
                                        generator="sums"):
        means.append(drawn.sums.s1 / drawn.sums.n)
        xs.append(drawn.covariate)
    means, xs = np.concatenate(means).ravel(), np.concatenate(xs).ravel()
    # var of a cluster mean = icc + (1 - icc) / m; the covariate explains 0.6 of the icc
    assert means.var() == pytest.approx(0.2 + 0.8 / 400, rel=0.05)
    assert np.cov(means, xs)[0, 1] == pytest.approx(np.sqrt(0.2 * 0.6), rel=0.05)


@pytest.fixture(scope="module")
def power_rows():
    design = SimulationDesign(clusters_per_arm=6, cluster_size=20, icc=0.1, effect=0.4,
                              baseline="none")
    return {(cutoff, analysis): simulate_power(design, reps=600, seed=2,
                                               constraint=Constraint(cutoff, 0.8),
                                               analysis=analysis)
            for cutoff in (1.0, 0.1)
            for analysis in ("mixed-model", "mixed-model-adjusted", "permutation")}


def test_constraining_gains_power_for_the_adjusted_analysis(power_rows):
    free, tight = power_rows[1.0, "mixed-model-adjusted"], power_rows[0.1, "mixed-model-adjusted"]
    assert tight["allocation"] == "constrained" and free["allocation"] == "unconstrained"
    # same trials, only the allocation differs: the constrained estimate is more precise and
    # the power higher by more than its Monte Carlo error
    assert tight["empirical_se"] < free["empirical_se"]
    assert tight["power"] - free["power"] > 2 * tight["mc_se"]


def test_unadjusted_model_is_conservative_after_constraining(power_rows):
    free, tight = power_rows[1.0, "mixed-model"], power_rows[0.1, "mixed-model"]
    se = np.sqrt(0.05 * 0.95 / 600)
    assert abs(free["type_i_error"] - 0.05) < 3 * se
    # the constraint removes covariate imbalance the model SE still allows for
    assert tight["empirical_se"] < 0.8 * free["empirical_se"]
    assert tight["mean_se"] > tight["empirical_se"] * 1.3
    assert tight["type_i_error"] < 0.025


def test_permutation_test_keeps_its_size_with_and_without_constraint(power_rows):
    se = np.sqrt(0.05 * 0.95 / 600)
    for cutoff in (1.0, 0.1):
        row = power_rows[cutoff, "permutation"]
        assert abs(row["type_i_error"] - 0.05) < 3 * se
        assert row["df_method"] == "permutation" and np.isnan(row["mean_se"])


def test_cli_reports_power_with_and_without_constraint(capsys):
    argv = ["power", "simulate", "--clusters-per-arm", "4", "--cluster-size", "10", "--icc",
            "0.1", "--effect", "0.5", "--reps", "40", "--quiet", "--constrain-cutoff", "0.2"]
    assert main([*argv, "--covariate-share", "0.5", "--analysis", "permutation",
                 "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["allocation"] for r in records] == ["unconstrained", "constrained"]
    assert [r["constrain_cutoff"] for r in records] == [1, 0.2]
    assert records[1]["analysis"] == "permutation" and records[1]["reps"] == 40
    assert main([*argv, "--covariate-share", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "Constrained allocation (best 20% of allocations" in printed
    assert "Unconstrained allocation (all allocations" in printed
    assert main(argv) == 2
    assert "--covariate-share" in capsys.readouterr().err
    assert main([*argv, "--covariate-share", "1.5"]) == 2
