"""Issue 16, findings 3-5: analysis-ready tables carry the fingerprint of what they were
validated with; degenerate trials give "not estimable: why" rows, never a traceback or a number
from a degenerate fit, and one failing analysis never loses the others' rows; infinite scores
are refused; a control character in a label does not break the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from trialstats.analysis import imputation, sensitivity
from trialstats.analysis.delta import delta_rows, tipping_points
from trialstats.analysis.imputation import impute_trial, multiple_imputation
from trialstats.cli import main
from trialstats.config import load_config
from trialstats.data.fingerprint import FINGERPRINT_FILE
from trialstats.data.validate import load_trial
from trialstats.errors import TrialstatsError

ANALYSES = ["multiple-imputation", "delta-adjustment", "repeated-measures", "cluster-level",
            "gee", "cr2", "subgroups"]


def _arm(files) -> pd.Series:
    return files.patients["practice_id"].map(
        dict(zip(files.practices["practice_id"], files.practices["arm"], strict=True)))


def _degenerate(files, kind: str) -> None:
    """Make the small trial of ``files`` degenerate in one of the ways of finding 5."""
    arm = _arm(files)
    if kind == "no outcome in an arm":
        files.patients.loc[arm == "intervention", "score_m12"] = np.nan
    elif kind == "constant score":
        files.patients["score_m12"] = 50.0
    elif kind == "one cluster per arm":
        files.patients.loc[~files.patients["practice_id"].isin(["P1", "P2"]), "score_m12"] = np.nan
    elif kind == "covariate aliased with arm":
        files.patients["age"] = (arm == "intervention").astype(int)
    files.config["sensitivity"] = {"analyses": ANALYSES, "imputations": 4}


# --- finding 3: the fingerprint of the analysis-ready tables -------------------------------------


def _validated(files, tmp_path):
    config = files.write()
    data = tmp_path / "data"
    assert main(["validate", "--config", str(config), "--out-dir", str(data)]) == 0
    return config, data


def test_validate_out_writes_the_fingerprint_and_matching_tables_are_read(trial_files, tmp_path):
    config, data = _validated(trial_files, tmp_path)
    recorded = json.loads((data / FINGERPRINT_FILE).read_text())
    assert set(recorded) == {"data", "design", "outcomes", "analysis.covariates",
                             "input practices", "input patients"}
    # the science that validation does not depend on may change freely
    trial_files.config["analysis"]["alpha"] = 0.1
    trial_files.config_path.write_text(yaml.safe_dump(trial_files.config))
    assert main(["analyse", "--config", str(config), "--data", str(data),
                 "--out", str(tmp_path / "o.csv")]) == 0


@pytest.mark.parametrize("command", ["analyse", "missing-data", "sensitivity"])
def test_a_changed_covariate_list_is_refused(trial_files, tmp_path, capsys, command):
    config, data = _validated(trial_files, tmp_path)
    trial_files.config["analysis"]["covariates"] = ["age", "condition", "list_size"]
    trial_files.config_path.write_text(yaml.safe_dump(trial_files.config))
    out = tmp_path / ("o" if command == "missing-data" else "o.csv")
    extra = ["--analysis", "cluster-level"] if command == "sensitivity" else []
    flag = "--out-dir" if command == "missing-data" else "--out"
    capsys.readouterr()
    assert main([command, "--config", str(config), "--data", str(data), flag, str(out),
                 *extra]) == 2
    err = capsys.readouterr().err
    assert "analysis.covariates changed" in err and "validate" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_changed_inputs_and_ranges_are_named(trial_files, tmp_path, capsys):
    config, data = _validated(trial_files, tmp_path)
    trial_files.patients.loc[0, "score_m12"] = 12.5
    trial_files.config["outcomes"][0]["range"] = [0, 50]
    trial_files.write()
    capsys.readouterr()
    assert main(["analyse", "--config", str(config), "--data", str(data),
                 "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "outcomes, input patients changed" in err
    assert "design" not in err.split("changed")[0]


def test_tables_without_fingerprint_are_refused(trial_files, tmp_path, capsys):
    config, data = _validated(trial_files, tmp_path)
    (data / FINGERPRINT_FILE).unlink()
    assert main(["analyse", "--config", str(config), "--data", str(data),
                 "--out", str(tmp_path / "o.csv")]) == 2
    assert "fingerprint.json not found" in capsys.readouterr().err


def test_report_refuses_tables_of_another_configuration(trial_files, tmp_path, capsys):
    config, data = _validated(trial_files, tmp_path)
    results = tmp_path
    assert main(["analyse", "--config", str(config), "--data", str(data),
                 "--out", str(results / "primary.csv")]) == 0
    trial_files.config["design"]["intervention"] = "control"
    trial_files.config_path.write_text(yaml.safe_dump(trial_files.config))
    capsys.readouterr()
    assert main(["report", "--config", str(config), "--results", str(results),
                 "--out-dir", str(tmp_path / "reports")]) == 2
    assert "design changed" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


# --- finding 4: no number from a degenerate pooled fit ------------------------------------------


def test_imputation_with_no_observed_outcome_in_an_arm_is_not_estimable(trial_files):
    _degenerate(trial_files, "no outcome in an arm")
    trial = load_trial(load_config(trial_files.write()))
    config = trial.config
    table = multiple_imputation(trial.patients, config, imputations=4, seed=1)
    row = table.iloc[0]
    assert np.isnan(row["estimate"]) and np.isnan(row["ci_low"]) and np.isnan(row["df"])
    assert row["notes"].startswith("not estimable: fewer than two clusters")
    assert "intervention 0" in row["notes"]
    imputed = impute_trial(trial.patients, config, imputations=4, seed=1)
    delta = delta_rows(imputed, config, [0.0, -2.0])
    assert delta["estimate"].isna().all()
    assert delta["notes"].str.startswith("not estimable").all()
    trial_files.config["outcomes"][0]["primary"] = True
    config = load_config(trial_files.write())
    tipping = tipping_points(imputed, config)
    assert tipping["delta"].isna().all()
    assert tipping["notes"].str.startswith("not estimable").all()


def test_a_pooled_result_on_absurd_df_is_not_reported(trial_files, monkeypatch):
    trial = load_trial(load_config(trial_files.write()))
    real = imputation.rubin_pool

    def absurd(*args, **kwargs):  # the pooled df of finding 4's garbage number
        pooled = real(*args, **kwargs)
        return type(pooled)(**{**pooled.__dict__, "df": np.float64(0.0014)})

    monkeypatch.setattr(imputation, "rubin_pool", absurd)
    row = multiple_imputation(trial.patients, trial.config, imputations=4, seed=1).iloc[0]
    assert np.isnan(row["estimate"]) and np.isnan(row["ci_high"])
    assert row["notes"].startswith("not estimable: the pooled fit is degenerate")
    assert "0.0014 df" in row["notes"]


# --- finding 5: degenerate trials give rows, never tracebacks -----------------------------------


@pytest.mark.parametrize("kind", ["no outcome in an arm", "constant score",
                                  "one cluster per arm", "covariate aliased with arm"])
def test_every_sensitivity_analysis_degrades_to_rows(trial_files, tmp_path, capsys, kind):
    _degenerate(trial_files, kind)
    out = tmp_path / "sensitivity.csv"
    assert main(["sensitivity", "--config", str(trial_files.write()), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    labels = table["analysis"].fillna("").str.lower()
    for name in ("imputation", "delta", "repeated", "cluster-level", "gee", "cr2", "subgroup"):
        assert labels.str.contains(name).any(), name
    untried = table["notes"].fillna("").str.startswith(("not estimable", "skipped"))
    reported = table[~untried]
    assert np.isfinite(reported[["estimate", "se", "df", "ci_low", "ci_high"]]).all().all()
    assert (reported["se"] > 1e-8 * reported["sd_baseline"]).all()
    assert (reported["df"] >= 1).all()  # finding 4: 46.1 on 0.0014 df
    assert table.loc[untried, "estimate"].isna().all()
    assert "batch index" not in " ".join(table["notes"].fillna(""))


def test_one_failing_analysis_keeps_the_others_rows(trial_files, tmp_path, monkeypatch):
    def broken(patients, config, outcomes):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setitem(sensitivity.ANALYSES, "gee", broken)
    out = tmp_path / "sensitivity.csv"
    config = trial_files.write()
    assert main(["sensitivity", "--config", str(config), "--analysis", "cluster-level",
                 "--analysis", "gee", "--analysis", "cr2", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    gee = table[table["analysis"] == "gee"]
    assert len(gee) == 1
    assert gee["notes"].iloc[0] == ("not estimable: gee failed on these data "
                                    "(Singular matrix)")
    assert gee["converged"].isna().all()
    others = table[table["analysis"] != "gee"]
    assert len(others) == 3 and np.isfinite(others["estimate"]).all()


def test_an_unknown_outcome_is_still_a_user_error(trial_files):
    with pytest.raises(TrialstatsError, match="unknown outcome"):
        sensitivity.run_analysis("gee", None, load_config(trial_files.write()), ["nope"])


@pytest.mark.parametrize("cell", ["inf", "-inf", "1e308", "-2.5e16"])
def test_infinite_or_huge_scores_are_refused_naming_file_row_and_column(trial_files, capsys,
                                                                        cell):
    trial_files.config["outcomes"][0].pop("range")
    trial_files.patients["score_m12"] = trial_files.patients["score_m12"].astype(object)
    trial_files.patients.loc[3, "score_m12"] = cell
    config = trial_files.write()
    for command in ("validate", "analyse"):
        argv = [command, "--config", str(config)]
        argv += ["--out", str(trial_files.root / "o.csv")] if command == "analyse" else []
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{trial_files.patients_path}, column 'score_m12'" in err
        assert "row 5 " in err and "infinite or beyond" in err


def test_report_survives_control_characters_in_labels_and_data(trial_files, tmp_path):
    trial_files.config["outcomes"][0]["label"] = "Shared\x07decision\x1b[31m making"
    trial_files.patients.loc[0, "condition"] = "copd\x0b"
    config = trial_files.write()
    results = tmp_path / "results"
    assert main(["validate", "--config", str(config), "--out-dir", str(results / "data")]) == 0
    assert main(["analyse", "--config", str(config), "--data", str(results / "data"),
                 "--out", str(results / "primary.csv")]) == 0
    assert main(["report", "--config", str(config), "--results", str(results),
                 "--out-dir", str(tmp_path / "reports")]) == 0
    html = (tmp_path / "reports" / "report.html").read_text()
    assert "Shared\ufffddecision\ufffd[31m making" in html
    assert "\x07" not in html and "\x1b" not in html
    assert (tmp_path / "reports" / "report.docx").stat().st_size > 0
