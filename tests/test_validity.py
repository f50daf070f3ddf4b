"""The validity study (``trialstats methods-check``): what it simulates, analyses and writes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from trialstats.analysis.primary import analyse_outcome
from trialstats.cli import main
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError
from trialstats.power.grid import save_figure
from trialstats.power.simulate import SimulationDesign, simulate_patients, simulate_sums
from trialstats.validity import (
    COLUMNS,
    MIXED_MODEL,
    MIXED_MODEL_METHODS,
    StudySettings,
    cluster_level,
    cr2,
    gee,
    mixed_model,
    study_designs,
    validity_figure,
    validity_study,
)

DESIGN = SimulationDesign(clusters_per_arm=4, cluster_size=12, icc=0.05, effect=0.0, cv=0.8,
                          attrition=0.2, rho_s=0.5, rho_c=0.7)


ROWS = [(MIXED_MODEL, m) for m in MIXED_MODEL_METHODS] + [
    ("cluster-level (Hayes & Moulton)", "J-2"), ("GEE (Mancl-DeRouen)", "J-2"),
    ("GEE (Kauermann-Carroll)", "J-2"), ("CR2 (Bell-McCaffrey)", "bell-mccaffrey")]


def study(**kwargs) -> pd.DataFrame:
    return validity_study(reps=300, patient_reps=40, seed=5, clusters=(6, 10), iccs=(0.05,),
                          cvs=(0.0, 0.8), **kwargs)


@pytest.fixture(scope="module")
def small_study() -> pd.DataFrame:
    return study()


def test_table_has_one_row_per_cell_and_method(small_study):
    assert list(small_study.columns) == list(COLUMNS)
    assert len(small_study) == 2 * 2 * len(ROWS)
    assert sorted(set(zip(small_study["analysis"], small_study["method"], strict=True))) == \
        sorted(ROWS)
    patient_level = small_study["generator"] == "patients"
    assert (small_study.loc[patient_level, "reps"] == 40).all()
    assert (small_study.loc[~patient_level, "n_analysed"] == 300).all()
    assert (small_study.loc[patient_level, "n_analysed"] > 30).all()
    for rate in ("type_i_error", "coverage", "power"):
        assert small_study[rate].between(0, 1).all()
    p, n = small_study["type_i_error"], small_study["n_analysed"]
    np.testing.assert_allclose(small_study["type_i_error_mc_se"], np.sqrt(p * (1 - p) / n))
    batch = small_study[~patient_level]
    for rate in ("coverage", "power"):
        p = batch[rate]
        np.testing.assert_allclose(batch[f"{rate}_mc_se"], np.sqrt(p * (1 - p) / 300))
    band = small_study["type_i_error"].between(0.04, 0.06)
    assert (small_study["within_band"] == band).all()


def test_wald_z_rejects_at_least_as_often_as_the_t_tests(small_study):
    # the same estimate and model SE with infinite df: z rejects whenever residual-df t does
    mixed = small_study[small_study["analysis"] == MIXED_MODEL]
    for _, cell in mixed.groupby(["n_clusters", "cv"]):
        rates = cell.set_index("method")["type_i_error"]
        assert rates["z"] >= rates["residual"] >= rates["between-within"]


def test_same_seed_same_table(small_study):
    pd.testing.assert_frame_equal(study(), small_study)


def test_mixed_model_is_the_primary_analysis():
    """One simulated trial through the study's batch analysis and through analyse_outcome."""
    replicate = 3
    batch = mixed_model(simulate_sums(DESIGN, 11, range(replicate, replicate + 1)), DESIGN)
    trial = simulate_patients(DESIGN, 11, replicate)
    patients = pd.DataFrame({
        "practice_id": trial["cluster"].map("P{:02d}".format),
        TREATED: trial["arm"], "score_m0": trial["y0"], "score_m12": trial["y1"],
    })
    rows = analyse_outcome(
        patients, {"name": "score", "higher_is_better": True}, 12, cluster="practice_id",
        baseline_month=0, covariates=[], df_methods=list(MIXED_MODEL_METHODS[:-1]),
    ).set_index("method")
    for method in MIXED_MODEL_METHODS[:-1]:
        tests = batch[MIXED_MODEL, method]
        for column in ("estimate", "se", "df"):
            assert getattr(tests, column)[0] == pytest.approx(rows.loc[method, column],
                                                              rel=1e-8), (method, column)
    z = batch[MIXED_MODEL, "z"]
    assert np.isinf(z.df[0])
    assert z.se[0] == pytest.approx(rows.loc["satterthwaite", "se"], rel=1e-12)


def test_cluster_level_is_the_sensitivity_analysis():
    """One simulated trial through the study's cluster-level analysis and the library's."""
    from trialstats.analysis.cluster_level import cluster_level_analysis

    batch = cluster_level(simulate_sums(DESIGN, 11, range(3, 4)), DESIGN)
    trial = simulate_patients(DESIGN, 11, 3)
    patients = pd.DataFrame({
        "practice_id": trial["cluster"].map("P{:02d}".format),
        TREATED: trial["arm"], "score_m0": trial["y0"], "score_m12": trial["y1"],
    })
    config = {
        "design": {"cluster": "practice_id", "baseline_month": 0, "followup_months": [12]},
        "outcomes": [{"name": "score", "higher_is_better": True}],
        "analysis": {"covariates": [], "alpha": 0.05},
    }
    row = cluster_level_analysis(patients, config).iloc[0]
    (key, tests), = batch.items()
    assert key == (row["analysis"], row["method"])
    for column in ("estimate", "se", "df"):
        assert getattr(tests, column)[0] == pytest.approx(row[column], rel=1e-8), column


def test_effect_shifts_only_the_estimate():
    """The invariance that makes coverage equal 1 - type I error in distribution, for the
    mixed model, GEE and CR2; the cluster-level stage 1 leaves arm out, so it lacks it."""
    shifted_design = replace(DESIGN, effect=0.7)
    null, shifted = ({**mixed_model(sums, DESIGN), **cluster_level(sums, DESIGN)}
                     for sums in (simulate_sums(d, 2, range(50)) for d in (DESIGN, shifted_design)))
    for key in null:
        a, b = null[key], shifted[key]
        invariant = key[0] == MIXED_MODEL
        moved = np.allclose(b.estimate, a.estimate + 0.7, rtol=0, atol=1e-9)
        assert moved == invariant, key
        if invariant:
            np.testing.assert_allclose(b.se, a.se, rtol=1e-7)
            np.testing.assert_allclose(b.df, a.df, rtol=1e-7)
    trial = simulate_patients(DESIGN, 2, 0)
    X = np.column_stack([np.ones(len(trial)), trial["arm"], trial["y0"]])
    y, codes = trial["y1"].to_numpy(), trial["cluster"].to_numpy()
    for analysis in (gee, cr2):
        base, moved = analysis(y, X, codes), analysis(y + 0.7 * X[:, 1], X, codes)
        for key, (estimate, se, df, *_) in base.items():
            assert moved[key][0] == pytest.approx(estimate + 0.7, abs=1e-9), key
            assert moved[key][1:3] == pytest.approx((se, df), rel=1e-7), key


def test_unanalysable_trials_are_left_out_not_fatal():
    # two clusters of 3 per arm, half lost to follow-up: some trials keep one cluster in an arm
    design = SimulationDesign(clusters_per_arm=2, cluster_size=3, icc=0.05, effect=0.0,
                              attrition=0.5)
    tests = mixed_model(simulate_sums(design, 1, range(40)), design)[MIXED_MODEL, "kenward-roger"]
    assert 0 < tests.analysed.sum() < 40
    assert np.isnan(tests.estimate[~tests.analysed]).all()


def test_bad_grids_and_settings_are_user_errors():
    with pytest.raises(TrialstatsError, match="even"):
        study_designs(clusters=(7,))
    with pytest.raises(TrialstatsError, match="non-zero effect"):
        StudySettings(effect=0.0)
    with pytest.raises(TrialstatsError, match="two replicates"):
        validity_study(reps=1, seed=1)


def test_figure_is_byte_identical_across_runs(small_study, tmp_path):
    for run in ("a", "b"):
        for suffix in (".svg", ".png"):
            save_figure(validity_figure(small_study), tmp_path / f"{run}{suffix}")
    for suffix in (".svg", ".png"):
        assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()


def test_cli_writes_table_and_figures(tmp_path, capsys):
    assert main(["methods-check", "--out", str(tmp_path), "--reps", "20", "--patient-reps", "4",
                 "--seed", "3"]) == 0
    table = pd.read_csv(tmp_path / "validity.csv")
    assert len(table) == 4 * 3 * 2 * len(ROWS)
    assert sorted(table["reps"].unique()) == [4, 20]
    assert (tmp_path / "validity.svg").stat().st_size > 0
    assert (tmp_path / "validity.png").stat().st_size > 0
    assert "outside the type I error band" in capsys.readouterr().out
