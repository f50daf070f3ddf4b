"""The rule-to-CLI contract: every file a command reads or writes is named on its command line.

The folder forms kept for use by hand (``--out-dir``, ``--data``, ``--results``,
``--missing-data``) must give exactly the files the named options give; output sets are
written together or not at all; a folder mixed with the files it stands for, a part of a set,
or documents whose ``figures/`` is elsewhere are refused with a message, never a traceback.
"""

from __future__ import annotations

import os

import pytest

from test_report_support import fake_power, load, write_flow_trial, write_results
from trialstats.atomic import staged_files
from trialstats.cli import main
from trialstats.commands.inputs import VALIDATED
from trialstats.commands.report import REPORT
from trialstats.errors import TrialstatsError


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _named_validated(root):
    """The four outputs of ``validate``, each in its own folder."""
    return {name: root / name / file for name, file in VALIDATED.items()}


def test_named_outputs_and_inputs_match_the_folder_forms(trial_files, tmp_path, capsys):
    config = str(trial_files.write())
    assert main(["validate", "--config", config, "--out-dir", str(tmp_path / "folder")]) == 0
    named = _named_validated(tmp_path / "named")
    assert main(["validate", "--config", config,
                 *[arg for name, path in named.items()
                   for arg in (f"--{name}-out", str(path))]]) == 0
    for name, file in VALIDATED.items():
        assert named[name].read_bytes() == (tmp_path / "folder" / file).read_bytes(), name
    # the analysis reads the named tables exactly as the folder form
    assert main(["analyse", "--config", config, "--data", str(tmp_path / "folder"),
                 "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["analyse", "--config", config, "--patients", str(named["patients"]),
                 "--fingerprint", str(named["fingerprint"]),
                 "--out", str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # missing-data: two named tables or the folder form, the same bytes
    assert main(["missing-data", "--config", config, "--data", str(tmp_path / "folder"),
                 "--out-dir", str(tmp_path / "md")]) == 0
    assert main(["missing-data", "--config", config, "--patients", str(named["patients"]),
                 "--fingerprint", str(named["fingerprint"]),
                 "--completeness-out", str(tmp_path / "c.csv"),
                 "--dropout-out", str(tmp_path / "d" / "d.csv")]) == 0
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "md" / "completeness.csv").read_bytes()
    assert (tmp_path / "d" / "d.csv").read_bytes() == (tmp_path / "md" / "dropout.csv").read_bytes()


@pytest.mark.parametrize("argv, message", [
    (["--practices-out", "p.parquet"], "missing --patients-out, --summary-out, --fingerprint-out"),
    (["--out-dir", "o", "--summary-out", "s.txt"], "give the folder or the files, not both"),
    (["--practices-out", "x.parquet", "--patients-out", "x.parquet", "--summary-out", "s.txt",
      "--fingerprint-out", "f.json"], "named for two outputs"),
])
def test_part_of_a_set_a_mix_or_a_path_twice_is_refused(trial_files, capsys, argv, message):
    config = str(trial_files.write())
    root = trial_files.root
    paths = [str(root / a) if not a.startswith("--") else a for a in argv]
    before = sorted(p.name for p in root.iterdir())
    capsys.readouterr()
    assert main(["validate", "--config", config, *paths]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in root.iterdir()) == before  # nothing written


def test_analysis_ready_patients_need_their_fingerprint(trial_files, tmp_path, capsys):
    config = str(trial_files.write())
    assert main(["validate", "--config", config, "--out-dir", str(tmp_path / "v")]) == 0
    capsys.readouterr()
    assert main(["analyse", "--config", config,
                 "--patients", str(tmp_path / "v" / "patients.parquet"),
                 "--out", str(tmp_path / "o.csv")]) == 2
    assert "missing --fingerprint" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_report_writes_each_named_output_and_keeps_figures_beside_the_documents(tmp_path,
                                                                                 capsys):
    config = write_flow_trial(tmp_path)
    write_results(load(config), tmp_path / "results")
    fake_power().to_csv(tmp_path / "power.csv", index=False)
    inputs = ["report", "--config", str(config), "--results", str(tmp_path / "results"),
              "--power", str(tmp_path / "power.csv")]
    assert main([*inputs, "--out-dir", str(tmp_path / "folder")]) == 0
    # documents in one folder, supplement in another with its own figures, tables elsewhere
    named = {name: tmp_path / ("supp" if name.startswith("supplement") else "main") / file
             for name, file in REPORT.items()}
    named["figures"] = tmp_path / "main" / "figures"
    named["tables"] = tmp_path / "tables_here"
    argv = [arg for name, path in named.items()
            for arg in (f"--{name.replace('_', '-')}-out", str(path))]
    assert main([*inputs, *argv]) == 2  # the supplement would link figures/ it does not have
    err = capsys.readouterr().err
    assert "--supplement-markdown-out" in err and "--figures-out" in err
    assert not (tmp_path / "main").exists() and not (tmp_path / "tables_here").exists()
    named = {name: tmp_path / "main" / file for name, file in REPORT.items()}
    named["tables"] = tmp_path / "tables_here"
    argv = [arg for name, path in named.items()
            for arg in (f"--{name.replace('_', '-')}-out", str(path))]
    assert main([*inputs, *argv]) == 0
    folder = _files(tmp_path / "folder")
    tables = {f"tables/{k}": v for k, v in _files(tmp_path / "tables_here").items()}
    assert {**_files(tmp_path / "main"), **tables}.keys() == folder.keys()
    for name in ("figures/forest.svg", "tables/table2_primary.csv"):
        assert name in folder
    assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name] == []


def test_staged_files_change_nothing_when_an_output_is_not_written(tmp_path):
    (tmp_path / "a.csv").write_text("old a")
    with pytest.raises(FileNotFoundError), staged_files(
            {"a": tmp_path / "a.csv", "b": tmp_path / "sub" / "b.csv"}) as stage:
        stage["a"].write_text("new a")  # b is never written
    assert (tmp_path / "a.csv").read_text() == "old a"
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "sub"]
    assert os.listdir(tmp_path / "sub") == []
    with pytest.raises(TrialstatsError, match="named for two outputs"), staged_files(
            {"a": tmp_path / "a.csv", "b": tmp_path / "sub" / ".." / "a.csv"}):
        pass
