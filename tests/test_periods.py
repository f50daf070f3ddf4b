"""Period designs (stepped wedge, crossover): validation and the primary analysis through the
CLI against lme4 + lmerTest + pbkrtest (tests/fixtures/r/make_period_fixtures.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trialstats.cli import main
from trialstats.config import load_config
from trialstats.data.periods import EXPOSURE
from trialstats.data.validate import load_trial
from trialstats.errors import TrialstatsError

FIXTURES = Path(__file__).parent / "fixtures" / "periods"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())


def write_config(tmp_path: Path, name: str, **analysis) -> Path:
    """A configuration for fixture ``name`` (sw or crossover) with outcome ``score``."""
    design_type = {"sw": "stepped-wedge", "crossover": "crossover"}[name]
    config = {
        "data": {"practices": str(FIXTURES / f"{name}_practices.csv"),
                 "patients": str(FIXTURES / f"{name}_patients.csv"), "format": "long"},
        "design": {"type": design_type, "intervention": "intervention"},
        "outcomes": [{"name": "score", "higher_is_better": True,
                      "mcid": {"scale": "raw", "value": 3}}],
        "analysis": {"covariates": ["condition"],
                     "df_method": ["satterthwaite", "kenward-roger"], **analysis},
        "sensitivity": {"analyses": ["cluster-level", "cr2"]},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def analyse(tmp_path: Path, name: str, **analysis) -> pd.DataFrame:
    config = write_config(tmp_path, name, **analysis)
    assert main(["analyse", "--config", str(config), "--out",
                 str(tmp_path / "out" / "primary.csv")]) == 0
    return pd.read_csv(tmp_path / "out" / "primary.csv").set_index("method")


@pytest.mark.parametrize(("name", "key", "analysis"), [
    ("sw", "sw", {}),
    ("sw", "sw_exposure", {"time_on_treatment": True}),
    ("crossover", "crossover", {}),
])
def test_primary_matches_lmer_lmertest_pbkrtest(tmp_path, name, key, analysis):
    rows = analyse(tmp_path, name, **analysis)
    ref = REFERENCE[key]
    for method, r in (("satterthwaite", ref["satterthwaite"]),
                      ("kenward-roger", ref["kenward_roger"])):
        row = rows.loc[method]
        assert row.n_patients == ref["n"]
        assert row.estimate == pytest.approx(r["estimate"], abs=1e-6)
        assert row.se == pytest.approx(r["se"], abs=1e-6)
        assert row.df == pytest.approx(r["df"], abs=1e-3)
        assert row.var_cluster == pytest.approx(ref["var_cluster"] + ref["var_cluster_period"],
                                                rel=1e-5)
        assert row.var_residual == pytest.approx(ref["var_residual"], rel=1e-6)
        total = row.var_cluster + row.var_residual
        assert row.icc == pytest.approx(row.var_cluster / total, rel=1e-9)
        assert row.icc_ci_low < row.icc < row.icc_ci_high
        assert "lmer(y ~" in row.notes and "CAC" in row.notes
        assert row.month == 12 and bool(row.converged)


def test_sd_baseline_is_the_control_sd(tmp_path):
    rows = analyse(tmp_path, "sw")
    config = load_config(write_config(tmp_path, "sw"))
    patients = load_trial(config).patients
    control = patients.loc[patients["treated"] == 0, "score"]
    assert rows.loc["satterthwaite", "sd_baseline"] == pytest.approx(control.std(ddof=1))
    assert rows.loc["satterthwaite", "effect_size"] == pytest.approx(
        rows.loc["satterthwaite", "estimate"] / control.std(ddof=1))


def test_treatment_follows_sequence_and_period(tmp_path):
    patients = load_trial(load_config(write_config(tmp_path, "sw"))).patients
    switch = patients["practice_id"].map(
        pd.read_csv(FIXTURES / "sw_practices.csv").set_index("practice_id")["switch_period"])
    assert (patients["treated"] == (patients["period"] >= switch).astype(int)).all()
    assert (patients[EXPOSURE] == np.where(patients["treated"] == 1,
                                           patients["period"] - switch + 1, 0)).all()
    crossover = load_trial(load_config(write_config(tmp_path, "crossover"))).patients
    on = crossover["practice_id"].map(
        pd.read_csv(FIXTURES / "crossover_practices.csv").set_index("practice_id")[
            "switch_period"])
    assert (crossover["treated"] == (crossover["period"] == on).astype(int)).all()


def _invalid(tmp_path, practices=None, patients=None, **design) -> str:
    """The message of validating the sw fixture after the given edits."""
    config_path = write_config(tmp_path, "sw")
    config = yaml.safe_load(config_path.read_text())
    config["design"].update(design)
    for key, frame in (("practices", practices), ("patients", patients)):
        if frame is not None:
            frame.to_csv(tmp_path / f"{key}.csv", index=False)
            config["data"][key] = str(tmp_path / f"{key}.csv")
    config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(TrialstatsError) as error:
        load_trial(load_config(config_path))
    return str(error.value)


def _tables():
    return (pd.read_csv(FIXTURES / "sw_practices.csv"),
            pd.read_csv(FIXTURES / "sw_patients.csv"))


def test_a_cluster_that_switches_back_is_refused(tmp_path):
    practices, patients = _tables()
    switch = patients["practice_id"].map(practices.set_index("practice_id")["switch_period"])
    patients["arm"] = np.where(patients["period"] >= switch, "intervention", "control")
    back = (patients["practice_id"] == "SW01") & (patients["period"] == 6)
    patients.loc[back, "arm"] = "control"
    message = _invalid(tmp_path, patients=patients)
    assert "patients.csv, column 'arm'" in message and "switch back" in message
    assert "'SW01'" in message and "rows 38, 39" in message


def test_a_period_outside_the_design_is_refused(tmp_path):
    _practices, patients = _tables()
    patients.loc[3, "period"] = 9
    message = _invalid(tmp_path, patients=patients, periods=[1, 2, 3, 4, 5, 6])
    assert "column 'period'" in message and "9" in message and "row 5" in message


def test_a_sequence_with_no_clusters_is_refused(tmp_path):
    _practices, patients = _tables()
    patients = patients[~patients["practice_id"].isin(["SW09", "SW10"])]
    message = _invalid(tmp_path, patients=patients)
    assert "sequences '5' have no clusters" in message


def test_a_practice_without_sequence_is_refused(tmp_path):
    practices, _patients = _tables()
    practices.loc[2, "sequence"] = None
    message = _invalid(tmp_path, practices=practices)
    assert "practices.csv, column 'sequence'" in message and "row 4" in message


def test_periods_must_be_numbers(tmp_path):
    _practices, patients = _tables()
    patients["period"] = patients["period"].astype(object)
    patients.loc[0, "period"] = "first"
    message = _invalid(tmp_path, patients=patients)
    assert "column 'period'" in message and "'first'" in message and "row 2" in message


def test_disagreeing_switch_periods_in_a_sequence_are_refused(tmp_path):
    practices, _patients = _tables()
    practices.loc[1, "switch_period"] = 4
    message = _invalid(tmp_path, practices=practices)
    assert "must share the switch period" in message


def test_period_design_needs_long_format(tmp_path):
    config_path = write_config(tmp_path, "sw")
    config = yaml.safe_load(config_path.read_text())
    config["data"]["format"] = "wide"
    config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(TrialstatsError, match="long format"):
        load_config(config_path)


def test_cli_exit_status_2_on_bad_period_data(tmp_path, capsys):
    practices, _patients = _tables()
    practices.loc[0, "sequence"] = None
    practices.to_csv(tmp_path / "practices.csv", index=False)
    config_path = write_config(tmp_path, "sw")
    config = yaml.safe_load(config_path.read_text())
    config["data"]["practices"] = str(tmp_path / "practices.csv")
    config_path.write_text(yaml.safe_dump(config))
    assert main(["validate", "--config", str(config_path)]) == 2
    assert "column 'sequence'" in capsys.readouterr().err


@pytest.mark.parametrize(("analysis", "key", "label"), [
    ("cluster-level", "sw_cluster_level", "cluster-level (cluster-period means)"),
    ("cr2", "sw_cr2", "CR2 (Bell-McCaffrey)"),
])
def test_sensitivity_matches_lmer_on_means_and_clubsandwich(tmp_path, analysis, key, label):
    config = write_config(tmp_path, "sw")
    out = tmp_path / "sensitivity.csv"
    assert main(["sensitivity", "--config", str(config), "--analysis", analysis,
                 "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    ref = REFERENCE[key]
    assert row.analysis == label
    assert row.estimate == pytest.approx(ref["estimate"], abs=1e-6)
    assert row.se == pytest.approx(ref["se"], abs=1e-6)
    assert row.df == pytest.approx(ref["df"], abs=1e-3)


def test_parallel_only_sensitivity_says_so(tmp_path):
    config = write_config(tmp_path, "sw")
    out = tmp_path / "sensitivity.csv"
    assert main(["sensitivity", "--config", str(config), "--analysis", "gee",
                 "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row.notes == "not estimable: gee is for parallel designs"
    assert np.isnan(row.estimate) and pd.isna(row.converged)  # not estimable: no fit tried


def test_consort_counts_and_schematic_of_an_incomplete_design(tmp_path):
    from trialstats.report.periods import consort_sw_counts, trial_design

    config = load_config(write_config(tmp_path, "sw"))
    trial = load_trial(config)
    counts = consort_sw_counts(trial.practices, trial.patients, config)
    raw = pd.read_csv(FIXTURES / "sw_patients.csv")
    measured = counts[counts["stage"] == "measured"]
    assert measured["participants"].sum() == len(raw)
    sizes = raw.groupby(["practice_id", "period"]).size()
    assert measured["per_cluster_min"].min() == sizes.min()
    assert measured["per_cluster_max"].max() == sizes.max()
    analysed = counts[counts["stage"] == "analysed"]
    assert analysed["participants"].sum() == REFERENCE["sw"]["n"]
    assert (counts.loc[counts["stage"] == "randomised", "clusters"] == 2).all()
    design = trial_design(trial.practices, trial.patients, config)
    expected = (np.arange(6)[None, :] >= np.arange(1, 6)[:, None]).astype(float)
    expected[4, 5] = np.nan
    np.testing.assert_array_equal(design.treatment, expected)
    assert list(design.clusters) == [2] * 5


def test_crossover_report_builds(tmp_path):
    from trialstats.report.build import Provenance, build_report

    config_path = write_config(tmp_path, "crossover")
    rows = analyse(tmp_path, "crossover").reset_index()
    config = load_config(config_path)
    trial = load_trial(config)
    report, _, counts = build_report(trial.practices, trial.patients, config, rows, None,
                                     Provenance(files=[], versions={}, commit="none"))
    assert [f.name for f in report.figures()] == ["consort", "schematic"]
    assert set(counts["sequence"]) == {"AB", "BA"}
    table = report.tables()[0]
    assert table.rows[1][1].startswith("3.") and "primary, Satterthwaite" == table.rows[1][0]


def test_between_within_and_residual_df(tmp_path):
    rows = analyse(tmp_path, "sw", df_method=["between-within", "residual"])
    # 10 clusters minus intercept, treatment and 5 period effects; N minus 9 columns
    # (intercept, treatment, 5 periods, 2 condition levels)
    assert rows.loc["between-within", "df"] == 10 - 7
    assert rows.loc["residual", "df"] == REFERENCE["sw"]["n"] - 9
    assert rows.loc["residual", "se"] == pytest.approx(REFERENCE["sw"]["satterthwaite"]["se"],
                                                       abs=1e-6)


def test_parallel_baseline_treats_from_the_switch_and_never_without_one(tmp_path):
    practices, _patients = _tables()
    practices["switch_period"] = np.where(practices["sequence"] <= 2, 2, np.nan)
    practices.to_csv(tmp_path / "practices.csv", index=False)
    config_path = write_config(tmp_path, "sw")
    config = yaml.safe_load(config_path.read_text())
    config["design"]["type"] = "parallel-baseline"
    config["data"]["practices"] = str(tmp_path / "practices.csv")
    config_path.write_text(yaml.safe_dump(config))
    trial = load_trial(load_config(config_path))
    sequence = trial.patients["sequence"].astype(int)
    expected = ((sequence <= 2) & (trial.patients["period"] >= 2)).astype(int)
    assert (trial.patients["treated"] == expected).all()
    assert main(["analyse", "--config", str(config_path), "--out",
                 str(tmp_path / "primary.csv")]) == 0
    assert np.isfinite(pd.read_csv(tmp_path / "primary.csv")["estimate"]).all()
