"""The validity study (``trialstats methods-check``): what it simulates, analyses and writes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import docx
import numpy as np
import pandas as pd
import pytest

from test_report_support import HtmlTables
from trialstats.analysis.primary import analyse_outcome
from trialstats.cli import main
from trialstats.contract import SIMULATION_DF_METHODS as MIXED_MODEL_METHODS
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError
from trialstats.report.files import save_figure
from trialstats.report.validity import validity_figure
from trialstats.simulation.analyse import MIXED_MODEL, cluster_level, cr2, gee, mixed_model
from trialstats.simulation.draw import SimulationDesign, simulate_patients, simulate_sums
from trialstats.simulation.validity import COLUMNS, StudySettings, study_designs, validity_study

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


def test_cli_writes_table_figures_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["methods-check", "--out-dir", str(out), "--reps", "20", "--patient-reps", "4",
                 "--seed", "3"]) == 0
    table = pd.read_csv(out / "validity.csv")
    assert len(table) == 4 * 3 * 2 * len(ROWS)
    assert sorted(table["reps"].unique()) == [4, 20]
    for name in ("validity.html", "validity.docx", "validity.md", "validity.tex",
                 "figures/validity.svg", "figures/validity.png", "figures/validity.pdf"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert "outside the type I error band" in printed
    # the permutation test on constrained designs: its own table, printed and in the report
    permutation = pd.read_csv(out / "permutation_validity.csv")
    assert list(permutation[["n_clusters", "outcome", "trials"]].itertuples(index=False)) == [
        (16, "continuous", 20), (16, "binary", 20)]
    assert printed.count("permutation test, 16 practices") == 2
    markdown = (out / "validity.md").read_text()
    assert "Type I error of the permutation test on constrained designs" in markdown
    assert f"{permutation['type_i_error'].iloc[0]:.4f}" in markdown
    # re-rendering from the table reproduces the report without simulating
    again = tmp_path / "again"
    assert main(["methods-check", "--out-dir", str(again), "--from-table",
                 str(out / "validity.csv"), "--from-permutation",
                 str(out / "permutation_validity.csv")]) == 0
    assert not (again / "validity.csv").exists()
    for name in ("validity.html", "validity.docx", "validity.md", "validity.tex"):
        assert (again / name).read_bytes() == (out / name).read_bytes()


#: Type I error and coverage of the synthetic study, per (method, cell); the band edges are in
#: band, values just outside are flagged even where they round to the edge.
SIZES = {
    "kenward-roger": [0.04, 0.0164, 0.0532, 0.06],
    "satterthwaite": [0.0499, 0.06004, 0.039996, 0.0575],
    "J-2": [0.05, 0.0123456, 0.1, 0.045],
    "bell-mccaffrey": [0.055, 0.048, 0.061, 0.0401],
}
COVERAGES = {
    "kenward-roger": [0.94, 0.9836, 0.95, 0.96],
    "satterthwaite": [0.93996, 0.9501, 0.96004, 0.951],
    "J-2": [0.9512345, 0.939, 0.95, 0.97],
    "bell-mccaffrey": [0.95, 0.9, 0.955, 0.9449],
}


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    """A validity.csv of four methods over four cells with chosen rates."""
    analyses = {"kenward-roger": MIXED_MODEL, "satterthwaite": MIXED_MODEL,
                "J-2": "cluster-level (Hayes & Moulton)",
                "bell-mccaffrey": "CR2 (Bell-McCaffrey)"}
    cells = [(6, 0.05, 0.0), (6, 0.05, 0.8), (20, 0.05, 0.0), (20, 0.05, 0.8)]
    rows = []
    for method, analysis in analyses.items():
        patients = method == "bell-mccaffrey"
        for k, (j, icc, cv) in enumerate(cells):
            size, coverage = SIZES[method][k], COVERAGES[method][k]
            reps = 50 if patients else 400
            rows.append({
                "analysis": analysis, "method": method, "n_clusters": j, "icc": icc, "cv": cv,
                "cluster_size": 127.0, "attrition": 0.27, "rho_s": 0.5, "rho_c": 0.7,
                "effect": 0.2, "alpha": 0.05, "reps": reps, "n_analysed": reps,
                "type_i_error": size, "type_i_error_mc_se": np.sqrt(size * (1 - size) / reps),
                "coverage": coverage,
                "coverage_mc_se": np.sqrt(coverage * (1 - coverage) / reps),
                "power": 0.5, "power_mc_se": 0.02, "median_df": j - 2.0, "se_ratio": 1.0,
                "boundary_share": 0.1, "n_not_converged": 0,
                "within_band": bool(0.04 <= size <= 0.06),
                "generator": "patients" if patients else "sums", "seed": 11,
            })
    path = tmp_path / "validity.csv"
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(path, index=False)
    return path


def expected_cells(study: pd.DataFrame, rate: str, band: tuple[float, float]) -> list[list[str]]:
    """Header and body of a rate table, from the CSV: 4 decimals, † outside ``band``."""
    labels = {"kenward-roger": "KR", "satterthwaite": "Satt", "J-2": "CL",
              "bell-mccaffrey": "CR2"}
    methods = list(dict.fromkeys(study["method"]))
    cells = [["Design", *(labels[m] for m in methods)]]
    for j, group in study.groupby("n_clusters"):
        cells.append([f"{j} clusters", *[""] * len(methods)])
        for (icc, cv), cell in group.groupby(["icc", "cv"]):
            values = cell.set_index("method")[rate]
            cells.append([f"ICC {icc:g}, CV {cv:g}", *(
                f"{values[m]:.4f}" + ("" if band[0] <= values[m] <= band[1] else "†")
                for m in methods)])
    return cells


def test_report_cells_equal_the_table_after_rounding(synthetic_csv, tmp_path):
    out = tmp_path / "out"
    assert main(["methods-check", "--out-dir", str(out), "--from-table", str(synthetic_csv)]) == 0
    study = pd.read_csv(synthetic_csv)
    expected = [expected_cells(study, "type_i_error", (0.04, 0.06)),
                expected_cells(study, "coverage", (0.94, 0.96))]
    assert sum(c.endswith("†") for t in expected for r in t for c in r) == 12
    assert expected[0][3][2] == "0.0600†" and expected[1][2][1] == "0.9400"
    parser = HtmlTables()
    parser.feed((out / "validity.html").read_text(encoding="utf-8"))
    assert parser.tables == expected
    assert len(parser.images) == 1 and parser.images[0].startswith("data:image/svg+xml;base64,")
    document = docx.Document(str(out / "validity.docx"))
    assert [[cell.text for cell in row.cells] for row in document.tables[0].rows] == \
        expected[0]
    assert [[cell.text for cell in row.cells] for row in document.tables[1].rows] == \
        expected[1]
    assert len(document.inline_shapes) == 1
    html = (out / "validity.html").read_text(encoding="utf-8")
    for fact in ("6 and 20 clusters", "ICC 0.05", "127 patients", "27%", "400 trials per cell",
                 "50 for CR2", "Base seed 11", "[0.04, 0.06]", "[0.94, 0.96]"):
        assert fact in html.replace("\n", " ")
    assert r"\textdagger{}" in (out / "validity.tex").read_text(encoding="utf-8")
    assert "0.0600†" in (out / "validity.md").read_text(encoding="utf-8")


def test_from_table_refuses_simulation_options_and_other_tables(synthetic_csv, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["methods-check", "--out-dir", out, "--from-table", str(synthetic_csv),
                 "--reps", "10"]) == 2
    assert "--reps only apply when simulating" in capsys.readouterr().err
    pd.read_csv(synthetic_csv).drop(columns="coverage").to_csv(tmp_path / "bad.csv", index=False)
    assert main(["methods-check", "--out-dir", out, "--from-table", str(tmp_path / "bad.csv")]) == 2
    assert "coverage not found" in capsys.readouterr().err
    assert main(["methods-check", "--out-dir", out, "--from-table", str(tmp_path / "no.csv")]) == 2
    assert "file not found" in capsys.readouterr().err
