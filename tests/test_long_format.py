"""Long-format patients tables: checked with the same standard as wide ones, then reshaped.

A long table holds one row per patient per measurement (``data.format: long``); rows in
messages are rows of the long file. See also tests/test_own_trial.py, where the long and
wide forms of the same trial give byte-identical results.
"""

from __future__ import annotations

import pandas as pd
import pytest

from trialstats.cli import main


def to_long(wide: pd.DataFrame) -> pd.DataFrame:
    """The long table of the conftest trial (outcome `score` at months 0 and 12)."""
    rows = []
    for _, patient in wide.iterrows():
        for month in (0, 12):
            rows.append({"patient_id": patient["patient_id"],
                         "practice_id": patient["practice_id"], "age": patient["age"],
                         "condition": patient["condition"], "month": month,
                         "score": patient[f"score_m{month}"]})
    return pd.DataFrame(rows)


@pytest.fixture
def long_files(trial_files):
    trial_files.patients = to_long(trial_files.patients)
    trial_files.config["data"]["format"] = "long"
    return trial_files


def validate(files, capsys):
    config = files.write()
    out = files.root / "out"
    status = main(["validate", "--config", str(config), "--out-dir", str(out)])
    captured = capsys.readouterr()
    return status, captured.err, captured.out, out


def assert_rejected(files, capsys, *fragments):
    status, err, _, out = validate(files, capsys)
    assert status == 2
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not out.exists()
    assert "Traceback" not in err


def test_long_table_equals_the_wide_one(trial_files, capsys, tmp_path):
    status, err, _, out = validate(trial_files, capsys)
    assert status == 0, err
    wide = pd.read_parquet(out / "patients.parquet")
    trial_files.root = tmp_path / "long"
    trial_files.root.mkdir()
    trial_files.patients = to_long(trial_files.patients)
    trial_files.config["data"]["format"] = "long"
    trial_files.patients_path = trial_files.root / "patients.csv"
    trial_files.practices_path = trial_files.root / "practices.csv"
    trial_files.config["data"].update(patients=str(trial_files.patients_path),
                                      practices=str(trial_files.practices_path))
    trial_files.config_path = trial_files.root / "config.yaml"
    status, err, _, out = validate(trial_files, capsys)
    assert status == 0, err
    pd.testing.assert_frame_equal(pd.read_parquet(out / "patients.parquet")[wide.columns], wide)


def test_the_same_patient_twice_in_a_month(long_files, capsys):
    long_files.patients.loc[2, "month"] = 12  # the second patient's baseline row -> month 12
    assert_rejected(long_files, capsys, "'patient_id' and 'month'", "more than one row",
                    "rows 4, 5")


def test_a_month_not_in_the_config(long_files, capsys):
    long_files.patients.loc[6, "month"] = 6
    assert_rejected(long_files, capsys, "column 'month'", "'6'", "row 8",
                    "not in the configuration")


def test_a_covariate_that_changes_between_a_patients_rows(long_files, capsys):
    long_files.patients.loc[1, "age"] = 99
    assert_rejected(long_files, capsys, "column 'age'", "row", "same on every row")


def test_an_unused_column_that_changes_is_left_out_with_a_note(long_files, capsys):
    long_files.patients["visit_date"] = [f"2024-01-{i % 28 + 1:02d}"
                                         for i in range(len(long_files.patients))]
    status, err, out, out_dir = validate(long_files, capsys)
    assert status == 0, err
    assert "'visit_date' changes between a patient's rows" in out
    assert "visit_date" not in pd.read_parquet(out_dir / "patients.parquet").columns


def test_non_numeric_score_names_the_long_row(long_files, capsys):
    long_files.patients["score"] = long_files.patients["score"].astype(object)
    long_files.patients.loc[9, "score"] = "n/a"
    assert_rejected(long_files, capsys, "column 'score'", "'n/a'", "row 11")


def test_unknown_practice_names_the_long_row(long_files, capsys):
    long_files.patients.loc[[10, 11], "practice_id"] = "P99"
    assert_rejected(long_files, capsys, "'P99'", "row 12", "not in")


def test_a_long_table_configured_as_wide(long_files, capsys):
    long_files.config["data"]["format"] = "wide"
    assert_rejected(long_files, capsys, "looks like long format", "format: long")


def test_a_wide_table_configured_as_long(trial_files, capsys):
    trial_files.config["data"]["format"] = "long"
    assert_rejected(trial_files, capsys, "month column 'month'", "looks like wide format",
                    "remove `format: long`")


def test_an_empty_baseline_column_suggests_baseline_false(trial_files, capsys):
    trial_files.patients["score_m0"] = None
    assert_rejected(trial_files, capsys, "column 'score_m0'", "empty in every row",
                    "baseline: false")


def test_an_outcome_without_baseline_needs_no_baseline_column(trial_files, capsys):
    trial_files.patients = trial_files.patients.drop(columns="score_m0")
    trial_files.config["outcomes"][0]["baseline"] = False
    status, err, _, out_dir = validate(trial_files, capsys)
    assert status == 0, err
    assert "score_m0" not in pd.read_parquet(out_dir / "patients.parquet").columns
