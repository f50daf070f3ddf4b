"""`trialstats validate`: every bad input gives exit 2, names the problem, writes nothing."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from trialstats.cli import main


def run_validate(trial_files, capsys, out=True):
    """Write the trial, run validate; return (status, stderr, stdout, out_dir)."""
    config = trial_files.write()
    out_dir = trial_files.root / "out"
    argv = ["validate", "--config", str(config)] + (["--out-dir", str(out_dir)] if out else [])
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.err, captured.out, out_dir


def assert_rejected(trial_files, capsys, *fragments):
    status, err, _, out_dir = run_validate(trial_files, capsys)
    assert status == 2
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not out_dir.exists()
    assert "Traceback" not in err


def test_valid_trial_prints_summary_and_writes_tables(trial_files, capsys):
    status, err, out, out_dir = run_validate(trial_files, capsys)
    assert status == 0, err
    assert "Valid trial" in out
    assert "intervention" in out and "control" in out
    assert "score" in out and "12 (100.0%)" in out
    patients = pd.read_parquet(out_dir / "patients.parquet")
    assert len(patients) == 24
    assert patients["treated"].sum() == 12
    assert patients["condition"].dtype == "string"
    assert patients["age"].dtype == float


def test_arms_coded_one_zero_with_an_unquoted_intervention_label(trial_files, capsys):
    """``intervention: 1`` (a YAML integer) names the arm label 1 of a 0/1 arm column."""
    intervention = trial_files.config["design"]["intervention"]
    treated = trial_files.practices["arm"] == intervention
    trial_files.practices["arm"] = treated.astype(int)
    trial_files.patients = trial_files.patients.drop(columns="arm", errors="ignore")
    trial_files.config["design"]["intervention"] = "1"
    config = trial_files.write()
    config.write_text(config.read_text().replace("intervention: '1'", "intervention: 1"))
    assert "intervention: 1\n" in config.read_text()
    out_dir = trial_files.root / "out"
    status = main(["validate", "--config", str(config), "--out-dir", str(out_dir)])
    assert status == 0, capsys.readouterr().err
    patients = pd.read_parquet(out_dir / "patients.parquet")
    assert patients["treated"].sum() == 12


def test_duplicate_patient_id(trial_files, capsys):
    trial_files.patients.loc[5, "patient_id"] = trial_files.patients.loc[2, "patient_id"]
    assert_rejected(trial_files, capsys, "patients.csv", "patient_id", "duplicate", "rows 4, 7")


def test_duplicate_practice_id(trial_files, capsys):
    trial_files.practices.loc[3, "practice_id"] = "P1"
    assert_rejected(trial_files, capsys, "practices.csv", "practice_id", "'P1'", "rows 2, 5")


def test_patient_in_unknown_practice(trial_files, capsys):
    trial_files.patients.loc[9, "practice_id"] = "P99"
    assert_rejected(trial_files, capsys, "patients.csv", "'P99'", "row 11", "not in")


def test_third_arm_label(trial_files, capsys):
    trial_files.practices.loc[4, "arm"] = "contol"
    assert_rejected(trial_files, capsys, "practices.csv", "'arm'", "'contol'", "row 6")


def test_practice_with_no_arm(trial_files, capsys):
    trial_files.practices.loc[2, "arm"] = None
    assert_rejected(trial_files, capsys, "practices.csv", "'arm'", "row 4", "no arm")


def test_patients_disagree_with_practice_arm(trial_files, capsys):
    arms = dict(zip(trial_files.practices["practice_id"], trial_files.practices["arm"],
                    strict=True))
    trial_files.patients["arm"] = trial_files.patients["practice_id"].map(arms)
    trial_files.patients.loc[0, "arm"] = "control"
    assert_rejected(trial_files, capsys, "patients.csv", "disagree", "row 2", "'P1'")


def test_non_numeric_score(trial_files, capsys):
    trial_files.patients["score_m12"] = trial_files.patients["score_m12"].astype(object)
    trial_files.patients.loc[7, "score_m12"] = "n/k"
    assert_rejected(trial_files, capsys, "'score_m12'", "non-numeric", "'n/k'", "row 9")


def test_score_outside_range(trial_files, capsys):
    trial_files.patients.loc[3, "score_m0"] = 101
    assert_rejected(trial_files, capsys, "'score_m0'", "outside the range", "row 5", "101")


def test_missing_outcome_column(trial_files, capsys):
    trial_files.patients = trial_files.patients.drop(columns="score_m12")
    assert_rejected(trial_files, capsys, "patients.csv", "'score_m12'", "not found")


def test_missing_covariate_column(trial_files, capsys):
    trial_files.config["analysis"]["covariates"] = ["age", "bmi"]
    assert_rejected(trial_files, capsys, "covariate 'bmi'", "neither")


def test_fewer_than_two_clusters_in_an_arm(trial_files, capsys):
    trial_files.practices.loc[[2, 4], "arm"] = "control"
    assert_rejected(trial_files, capsys, "at least two", "'intervention' has 1")


def test_empty_file(trial_files, capsys):
    trial_files.write()
    trial_files.patients_path.write_text("")
    status = main(["validate", "--config", str(trial_files.config_path), "--out-dir",
                   str(trial_files.root / "out")])
    err = capsys.readouterr().err
    assert status == 2 and "patients.csv" in err and "empty" in err
    assert not (trial_files.root / "out").exists()


def test_header_only_file(trial_files, capsys):
    trial_files.patients = trial_files.patients.iloc[:0]
    assert_rejected(trial_files, capsys, "patients.csv", "no data rows")


def test_semicolon_delimited_csv_with_decimal_comma_is_read(trial_files, capsys):
    config = trial_files.write()
    text = trial_files.patients.to_csv(index=False, sep=";", decimal=",")
    trial_files.patients_path.write_text(text)
    status = main(["validate", "--config", str(config), "--out-dir", str(trial_files.root / "o")])
    assert status == 0, capsys.readouterr().err
    patients = pd.read_parquet(trial_files.root / "o" / "patients.parquet")
    assert patients["score_m0"].tolist() == trial_files.patients["score_m0"].tolist()


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8-sig"])
def test_latin1_and_bom_files_are_read(trial_files, capsys, encoding):
    trial_files.patients.loc[0, "condition"] = "diabète"
    config = trial_files.write()
    trial_files.patients_path.write_bytes(
        trial_files.patients.to_csv(index=False).encode(encoding)
    )
    status = main(["validate", "--config", str(config), "--out-dir", str(trial_files.root / "o")])
    assert status == 0, capsys.readouterr().err
    patients = pd.read_parquet(trial_files.root / "o" / "patients.parquet")
    assert patients.columns[0] == "patient_id"
    assert patients.loc[0, "condition"] == "diabète"


@pytest.mark.parametrize("suffix", [".parquet", ".dta", ".sav", ".xlsx"])
def test_binary_formats_are_read(trial_files, capsys, suffix):
    config = trial_files.write()
    path = trial_files.root / f"patients{suffix}"
    frame = trial_files.patients
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".dta":
        frame.to_stata(path, write_index=False)
    elif suffix == ".sav":
        import pyreadstat

        pyreadstat.write_sav(frame, str(path))
    else:
        frame.to_excel(path, index=False)
    trial_files.config["data"]["patients"] = str(path)
    trial_files.config_path.write_text(__import__("yaml").safe_dump(trial_files.config))
    status = main(["validate", "--config", str(config), "--out-dir", str(trial_files.root / "o")])
    assert status == 0, capsys.readouterr().err
    patients = pd.read_parquet(trial_files.root / "o" / "patients.parquet")
    assert patients["score_m12"].tolist() == frame["score_m12"].tolist()


def test_corrupt_parquet_is_a_validation_error(trial_files, capsys):
    config = trial_files.write()
    path = trial_files.root / "patients.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    trial_files.config["data"]["patients"] = str(path)
    config.write_text(__import__("yaml").safe_dump(trial_files.config))
    status = main(["validate", "--config", str(config)])
    err = capsys.readouterr().err
    assert status == 2 and "patients.parquet" in err and "corrupt" in err


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda c: c["analysis"].update(alpha="0.05"), "'analysis.alpha'"),
        (lambda c: c["analysis"].update(alhpa=0.05), "unknown key 'analysis.alhpa'"),
        (lambda c: c.update(outcome=[]), "unknown key 'outcome'"),
        (lambda c: c["outcomes"][0].update(primary="yes"), "'outcomes[0].primary'"),
        (lambda c: c["analysis"].update(df_method="kr"), "'analysis.df_method'"),
        (lambda c: c["design"].update(primary_month=6), "design.primary_month"),
    ],
)
def test_config_errors_name_the_key(trial_files, capsys, edit, fragment):
    edit(trial_files.config)
    assert_rejected(trial_files, capsys, "config.yaml", fragment)


def test_cli_exit_status_and_message_in_a_real_process(trial_files):
    trial_files.patients.loc[1, "patient_id"] = trial_files.patients.loc[0, "patient_id"]
    config = trial_files.write()
    done = subprocess.run(
        [sys.executable, "-m", "trialstats", "validate", "--config", str(config)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2
    assert "duplicate patient ids" in done.stderr and "Traceback" not in done.stderr
