"""Hostile-but-realistic inputs (issue 16): identifiers kept out of reports, readers that
refuse ambiguity, duplicate YAML keys, atomic multi-file outputs, formula-safe CSV cells,
escaped Markdown and messages that name the real problem."""

from __future__ import annotations

import gzip
import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from test_report_support import flow_config, flow_trial, load, write_flow_trial, write_results
from trialstats.cli import main
from trialstats.config import read_yaml
from trialstats.data.io import read_table
from trialstats.errors import TrialstatsError
from trialstats.report.render import render_markdown
from trialstats.report.tables import baseline_summary, baseline_table

#: The generating specification of the bundled synthetic trial.
SYNTHETIC = Path(__file__).resolve().parents[1] / "config" / "synthetic.yaml"


# --- 1. privacy: Table 1 shows only what the config names --------------------------------------


def _nhs_numbers(n: int, rng: np.random.Generator) -> list[str]:
    """Valid-looking NHS numbers (nine digits plus the modulus-11 check digit), spaced 3-3-4."""
    out = []
    while len(out) < n:
        digits = [int(d) for d in rng.integers(0, 10, 9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 10:
            continue
        text = "".join(map(str, digits)) + str(0 if check == 11 else check)
        out.append(f"{text[:3]} {text[3:6]} {text[6:]}")
    return out


def _planted(root: Path, table1: list[str], min_cell: int | None = None) -> tuple[Path, dict]:
    """The flow trial with an NHS number, a date of birth and a free-text GP note per patient,
    all three named in ``report.table1``; returns the config path and the planted values."""
    practices, patients = flow_trial()
    rng = np.random.default_rng(16)
    n = len(patients)
    planted = {
        "nhs_number": _nhs_numbers(n, rng),
        "date_of_birth": [f"19{rng.integers(30, 99)}-0{rng.integers(1, 10)}-1{rng.integers(0, 10)}"
                          for _ in range(n)],
        "gp_note": [f"seen {i} times, lives alone near Mill Lane {rng.integers(1, 99)}"
                    for i in range(n)],
    }
    for column, values in planted.items():
        patients[column] = values
    practices.to_csv(root / "practices.csv", index=False)
    patients.to_csv(root / "patients.csv", index=False)
    config = flow_config(root / "practices.csv", root / "patients.csv")
    config["report"] = {"table1": table1}
    if min_cell is not None:
        config["report"]["min_cell"] = min_cell
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, planted


def _output_texts(out: Path) -> dict[str, str]:
    """Every output file as text (the DOCX as its document XML)."""
    texts = {}
    for path in sorted(out.rglob("*")):
        if path.suffix in {".html", ".md", ".tex", ".csv"}:
            texts[path.name] = path.read_text(encoding="utf-8")
        elif path.suffix == ".docx":
            with zipfile.ZipFile(path) as archive:
                texts[path.name] = archive.read("word/document.xml").decode("utf-8")
    return texts


def test_planted_identifiers_never_reach_any_report_output(tmp_path):
    config, planted = _planted(tmp_path, ["sex", "nhs_number", "date_of_birth", "gp_note"])
    trial = load(config)
    write_results(trial, tmp_path / "results")
    out = tmp_path / "out"
    assert main(["report", "--config", str(config), "--results", str(tmp_path / "results"),
                 "--out-dir", str(out)]) == 0
    texts = _output_texts(out)
    assert {"report.html", "report.md", "report.tex", "report.docx",
            "table1_baseline.csv", "table1_baseline_data.csv"} <= set(texts)
    for name, text in texts.items():
        for column, values in planted.items():
            leaked = [v for v in values if v in text or v.replace(" ", "") in text]
            assert not leaked, f"{name} contains {column} values {leaked[:3]}"
    table1 = (out / "tables" / "table1_baseline.csv").read_text()
    assert "Sex, n (%)" in table1  # a named, harmless column is still shown
    html = texts["report.html"]
    for column in planted:
        assert column in html  # the note names what was left out (names only, no values)
    assert "Not tabulated because they look like identifiers or free text" in html


def test_table1_shows_only_covariates_and_report_table1(tmp_path):
    config, _ = _planted(tmp_path, ["list_size"])
    trial = load(config)
    variables = set(baseline_summary(trial.practices, trial.patients, trial.config)["variable"])
    assert variables - {""} == {"list_size", "age", "condition", "sdm_m0", "eq5d_m0"}


def test_min_cell_suppresses_small_counts(tmp_path):
    config, _ = _planted(tmp_path, ["sex"], min_cell=5)
    trial = load(config)
    patients = trial.patients.copy()
    patients.loc[patients.index[:2], "condition"] = "rare"
    summary = baseline_summary(trial.practices, patients, trial.config)
    rare = summary[summary["category"] == "rare"]
    hidden = rare[rare["arm"] == "intervention"]  # both rare patients are in practice P1
    assert hidden["count"].isna().all() and hidden["percent"].isna().all()
    assert hidden["suppressed"].all()
    assert rare.loc[rare["arm"] == "control", "count"].tolist() == [0]
    table = baseline_table(summary, trial.config)
    row = next(r for r in table.rows if r[0] == "rare")
    assert set(row[1:]) <= {"<5", "0 (0.0)"} and "<5" in row
    assert "fewer than 5" in table.notes
    missing_age = summary.loc[summary["variable"] == "age", "n_missing"]  # two, one arm
    assert missing_age.isna().sum() == 1 and missing_age.fillna(0).sum() == 0
    labels = [r[0] for r in table.rows]
    after_age = table.rows[labels.index("Age, mean (SD)") + 1]
    assert after_age[0] == "Missing, n" and "<5" in after_age


@pytest.mark.parametrize(
    ("name", "values", "reason"),
    [
        ("ref", ["943 476 5919", "401 023 2137", "123 456 7890"] * 1, "NHS-number-like"),
        ("ref", [9434765919, 4010232137, 1234567890], "NHS-number-like"),
        ("born", ["1950-03-01", "1961-11-23", "1972-02-14"], "dates"),
        ("visit", pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01"]), "dates"),
        ("hospital_number", ["A1", "A1", "B2"], "identifier-like name"),
        ("dob", ["x", "y", "x"], "identifier-like name"),
        ("PatientName", ["x", "y", "x"], "identifier-like name"),
        ("postcode", ["x", "y", "x"], "identifier-like name"),
        ("code", [f"K{i:04d}" for i in range(30)], "unique per row"),
        ("comment", [f"note {i % 40} about the visit" for i in range(200)], "free text"),
    ],
)
def test_identifier_like_and_free_text_columns_are_detected(name, values, reason):
    from trialstats.data.columns import identifier_reason

    assert reason in identifier_reason(name, pd.Series(values))


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("age", list(range(30, 80)) * 4),
        ("condition", ["diabetes", "copd", "ibs"] * 50),
        ("list_size", list(range(2000, 2044))),  # unique per practice, but a measurement
        ("imd_score", np.linspace(5, 60, 44)),
        ("bmi", np.linspace(18, 40, 500)),
        ("sex", ["female", "male", None] * 20),
        ("ethnicity", [f"group {i % 18}" for i in range(300)]),
    ],
)
def test_ordinary_characteristics_are_not_flagged(name, values):
    from trialstats.data.columns import identifier_reason

    assert identifier_reason(name, pd.Series(values)) is None


def test_validation_summary_names_identifier_like_columns(tmp_path, capsys):
    config, planted = _planted(tmp_path, [])
    assert main(["validate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    for column in planted:
        assert column in out
    assert "never shown in reports" in out
    assert not any(v in out for values in planted.values() for v in values)


# --- 2. readers that refuse ambiguity ------------------------------------------------------------


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_thousands_separators_are_recognised_from_the_file(tmp_path):
    path = _csv(tmp_path, 'id,list_size,imd\n1,"10,163",21.5\n2,950,3.25\n3,"1,020",7.0\n')
    frame = read_table(path)
    assert pd.to_numeric(frame["list_size"]).tolist() == [10163, 950, 1020]
    assert pd.to_numeric(frame["imd"]).tolist() == [21.5, 3.25, 7.0]


def test_unambiguous_thousands_in_the_column_decide_it(tmp_path):
    path = _csv(tmp_path, 'id;n\n1;"1,234,567"\n2;"10,163"\n')
    assert pd.to_numeric(read_table(path)["n"]).tolist() == [1234567, 10163]


def test_decimal_commas_are_recognised_from_the_file(tmp_path):
    path = _csv(tmp_path, "id;score;imd\n1;10,163;21,5\n2;950;3,25\n")
    frame = read_table(path)
    assert pd.to_numeric(frame["score"]).tolist() == [10.163, 950]


def test_undecidable_comma_numbers_are_refused(tmp_path):
    path = _csv(tmp_path, 'id,list_size\n1,"10,163"\n2,950\n3,"2,500"\n')
    with pytest.raises(TrialstatsError) as error:
        read_table(path)
    message = str(error.value)
    assert "t.csv" in message and "list_size" in message and "rows 2, 4" in message
    assert "thousands" in message and "decimal comma" in message


def test_a_lone_decimal_comma_among_decimal_points_is_refused(tmp_path):
    path = _csv(tmp_path, 'id,score\n1,6.5\n2,"7,5"\n3,8.0\n')
    with pytest.raises(TrialstatsError, match=r"column 'score'.*row 3"):
        read_table(path)


def test_text_columns_with_commas_are_left_alone(tmp_path):
    path = _csv(tmp_path, 'id,note\n1,"a, b"\n2,"1,5 or 2"\n')
    assert read_table(path)["note"].tolist() == ["a, b", "1,5 or 2"]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_exact_duplicate_column_names_are_an_error(tmp_path, suffix):
    frame = pd.DataFrame([[1, 2, 3, 4]], columns=["id", "sdm_m12", "arm", "sdm_m12"])
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_excel(path, index=False)
    with pytest.raises(TrialstatsError, match="repeated column names: sdm_m12"):
        read_table(path)


def _workbook(trial_files, sheets: dict[str, pd.DataFrame]) -> Path:
    path = trial_files.root / "patients.xlsx"
    with pd.ExcelWriter(path) as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
    trial_files.config["data"]["patients"] = str(path)
    return path


def test_a_workbook_with_several_sheets_needs_data_sheet(trial_files, capsys):
    _workbook(trial_files, {"old": trial_files.patients.iloc[:10],
                            "current": trial_files.patients})
    config = trial_files.write()
    assert main(["validate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "2 sheets" in err and "'old'" in err and "'current'" in err and "data.sheet" in err


def test_the_configured_sheet_is_read_and_named_in_the_summary(trial_files, capsys):
    _workbook(trial_files, {"old": trial_files.patients.iloc[:10],
                            "current": trial_files.patients})
    trial_files.config["data"]["sheet"] = {"patients": "current"}
    config = trial_files.write()
    assert main(["validate", "--config", str(config), "--out-dir",
                 str(trial_files.root / "o")]) == 0
    assert "sheet 'current'" in capsys.readouterr().out
    assert len(pd.read_parquet(trial_files.root / "o" / "patients.parquet")) == 24
    trial_files.config["data"]["sheet"] = {"patients": "newest"}
    trial_files.write()
    assert main(["validate", "--config", str(config)]) == 2
    assert "no sheet 'newest'" in capsys.readouterr().err


def test_gzip_and_workbooks_renamed_csv_are_named(trial_files, capsys):
    config = trial_files.write()
    text = trial_files.patients_path.read_bytes()
    trial_files.patients_path.write_bytes(gzip.compress(text))
    assert main(["validate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "gzip" in err and "delimiter" not in err
    trial_files.patients.to_excel(trial_files.root / "p.xlsx", index=False)
    os.replace(trial_files.root / "p.xlsx", trial_files.patients_path)
    assert main(["validate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Excel workbook" in err and "delimiter" not in err


def test_utf16_is_read_and_named(trial_files, capsys):
    trial_files.patients.loc[0, "condition"] = "diabète"
    config = trial_files.write()
    trial_files.patients_path.write_bytes(
        trial_files.patients.to_csv(index=False, sep="\t").encode("utf-16"))
    assert main(["validate", "--config", str(config), "--out-dir",
                 str(trial_files.root / "o")]) == 0
    assert "UTF-16" in capsys.readouterr().out
    patients = pd.read_parquet(trial_files.root / "o" / "patients.parquet")
    assert patients.loc[0, "condition"] == "diabète"


# --- 3. duplicate YAML keys ----------------------------------------------------------------------


def test_duplicate_yaml_keys_are_an_error_naming_key_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("analysis:\n  alpha: 0.05\n  covariates: []\n  alpha: 0.2\n")
    with pytest.raises(TrialstatsError, match=r"c.yaml.*'alpha' appears twice.*lines 2 and 4"):
        read_yaml(path)
    path.write_text("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")
    assert read_yaml(path) == {"base": {"x": 1}, "other": {"x": 2}}  # merge keys still work


# --- 6. atomic multi-file outputs ----------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_validate_leaves_the_previous_outputs_whole(trial_files, capsys, monkeypatch):
    config = trial_files.write()
    out = trial_files.root / "o"
    assert main(["validate", "--config", str(config), "--out-dir", str(out)]) == 0
    before = _snapshot(out)
    trial_files.practices["region"] = "north"
    trial_files.patients = pd.concat([trial_files.patients] * 2, ignore_index=True)
    trial_files.patients["patient_id"] = [f"X{i}" for i in range(len(trial_files.patients))]
    trial_files.write()
    calls = []
    real = pd.DataFrame.to_parquet

    def fail_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail_second)
    with pytest.raises(OSError):
        main(["validate", "--config", str(config), "--out-dir", str(out)])
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".o")) == []


def test_a_failed_report_leaves_the_previous_outputs_whole(tmp_path, monkeypatch):
    config = write_flow_trial(tmp_path)
    trial = load(config)
    write_results(trial, tmp_path / "results")
    out = tmp_path / "out"
    argv = ["report", "--config", str(config), "--results", str(tmp_path / "results"),
            "--out-dir", str(out)]
    assert main(argv) == 0
    (out / "README.md").write_text("kept")  # a file the report does not own
    before = _snapshot(out)
    (tmp_path / "results" / "sensitivity.csv").unlink()  # the next run has fewer tables

    def fail(report):
        raise RuntimeError("Word step failed")

    monkeypatch.setattr("trialstats.report.files.docx_bytes", fail)
    with pytest.raises(RuntimeError):
        main(argv)
    assert _snapshot(out) == before
    monkeypatch.undo()
    assert main(argv) == 0
    after = _snapshot(out)
    assert after["README.md"] == b"kept"
    fresh = tmp_path / "fresh"
    assert main([*argv[:-1], str(fresh)]) == 0
    # no stale file of the old run: exactly the files a fresh run writes (and the README)
    assert set(after) - {"README.md"} == set(_snapshot(fresh))
    assert "tables/table_s1_sensitivity.csv" in before
    assert before["tables/table_s1_sensitivity.csv"] != after["tables/table_s1_sensitivity.csv"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_failed_move_into_place_is_undone(tmp_path, monkeypatch):
    from trialstats.atomic import staged_files

    target = tmp_path / "out"
    (target / "tables").mkdir(parents=True)
    (target / "tables" / "old.csv").write_text("old")
    (target / "a.txt").write_text("old a")
    (target / "keep.txt").write_text("not ours")
    before = _snapshot(target)
    real, calls = os.replace, []

    def fail_late(source, destination):
        calls.append(1)
        if len(calls) == 4:  # a.txt retired and replaced, tables/ retired, then fail
            raise OSError("device gone")
        real(source, destination)

    monkeypatch.setattr(os, "replace", fail_late)
    with pytest.raises(OSError), staged_files({"a": target / "a.txt",
                                               "tables": target / "tables"}) as stage:
        stage["tables"].mkdir()
        (stage["tables"] / "new.csv").write_text("new")
        stage["a"].write_text("new a")
    monkeypatch.undo()
    assert _snapshot(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert sorted(p.name for p in target.iterdir()) == ["a.txt", "keep.txt", "tables"]


def test_a_file_as_output_folder_is_a_user_error(tmp_path, capsys, trial_files):
    config = trial_files.write()
    (tmp_path / "o").write_text("")
    assert main(["validate", "--config", str(config), "--out-dir", str(tmp_path / "o")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_staged_outputs_honour_the_umask(trial_files, capsys):
    config = trial_files.write()
    old = os.umask(0o022)
    try:
        assert main(["validate", "--config", str(config), "--out-dir",
                     str(trial_files.root / "o")]) == 0
    finally:
        os.umask(old)
    for path in (trial_files.root / "o").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


# --- 7. formula-safe CSV cells, escaped Markdown -------------------------------------------------


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    from trialstats.report.render import csv_text

    frame = pd.DataFrame({
        "label": ["=HYPERLINK(\"http://x\")", "=cmd|' /C calc'!A0", "+1+2", "@SUM(A1)",
                  "-abc", "−0.5 (−1 to 0)", "-0.5", "plain"],
        "value": [1.0, -2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    })
    cells = pd.read_csv(__import__("io").StringIO(csv_text(frame)), dtype=str)
    assert cells["label"].tolist() == [
        "'=HYPERLINK(\"http://x\")", "'=cmd|' /C calc'!A0", "'+1+2", "'@SUM(A1)", "'-abc",
        "−0.5 (−1 to 0)", "-0.5", "plain"]
    assert cells["value"].tolist()[1] == "-2.5"


def test_report_csvs_and_markdown_carry_no_live_formulas_or_html(tmp_path):
    practices, patients = flow_trial()
    patients["condition"] = patients["condition"].map({
        "diabetes": "=HYPERLINK(\"http://evil\")", "copd": "<script>alert(1)</script>",
        "ibs": "-cmd"})
    practices.to_csv(tmp_path / "practices.csv", index=False)
    patients.to_csv(tmp_path / "patients.csv", index=False)
    config = flow_config(tmp_path / "practices.csv", tmp_path / "patients.csv")
    config["outcomes"][0]["label"] = "<img src=x onerror=alert(1)> | *SDM*"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    trial = load(path)
    write_results(trial, tmp_path / "results")
    out = tmp_path / "out"
    assert main(["report", "--config", str(path), "--results", str(tmp_path / "results"),
                 "--out-dir", str(out)]) == 0
    for csv in (out / "tables").glob("*.csv"):
        for line in csv.read_text().splitlines():
            for cell in line.split(","):
                assert not cell.lstrip('"').startswith(("=", "+", "@")), (csv.name, cell)
    markdown = (out / "report.md").read_text()
    assert not re.search(r"(?<!\\)<", markdown)  # every < escaped: no raw HTML
    assert "\\<script\\>" in markdown


def test_markdown_escapes_the_text_of_every_item():
    from trialstats.report.document import Report, Section

    text = render_markdown(Report("T <b>", "s", (Section("H", ("a <i>b</i> [x](y) *z*",)),)))
    assert "<b>" not in text and "<i>" not in text and "[x](y)" not in text
    assert "a \\<i\\>b\\</i\\> \\[x\\](y) \\*z\\*" in text


# --- 8. messages ---------------------------------------------------------------------------------


def test_a_header_one_name_short_is_named(trial_files, capsys):
    config = trial_files.write()
    lines = trial_files.patients_path.read_text().splitlines()
    lines[0] = lines[0].replace("patient_id,", "")
    trial_files.patients_path.write_text("\n".join(lines) + "\n")
    assert main(["validate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "duplicate" not in err
    assert "header" in err and "more fields" in err and "rows 2, 3, 4" in err


@pytest.mark.parametrize("header", ["id;score;", "id;score"])
def test_a_delimiter_at_the_end_of_every_line_is_allowed(tmp_path, header):
    path = _csv(tmp_path, f"{header}\n1;2,5;\n2;3;\n")
    frame = read_table(path)
    assert frame.columns.tolist() == ["id", "score"]
    assert frame["id"].tolist() == ["1", "2"] and frame["score"].tolist() == ["2.5", "3"]


def test_a_column_with_values_but_no_name_is_refused(tmp_path):
    with pytest.raises(TrialstatsError, match="column 2 has values but no name"):
        read_table(_csv(tmp_path, "id,,score\n1,x,2\n"))


def test_one_row_takes_has(trial_files, capsys):
    trial_files.patients["practice_id"] = trial_files.patients["practice_id"].astype(object)
    trial_files.patients.loc[2, "practice_id"] = None
    config = trial_files.write()
    assert main(["validate", "--config", str(config)]) == 2
    assert "row 4 has no practice" in capsys.readouterr().err


def test_synth_files_honour_the_umask(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert main(["synth", "--config", str(SYNTHETIC), "--seed", "1",
                     "--out", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    for name in ("practices.csv", "patients.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_practices_that_recruited_nobody_are_named(trial_files, capsys):
    trial_files.patients = trial_files.patients[trial_files.patients["practice_id"] != "P3"]
    config = trial_files.write()
    assert main(["validate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Warning" in out and "P3" in out and "recruited no patients" in out
