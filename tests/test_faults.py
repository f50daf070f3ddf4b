"""Faults: interrupted writes, corrupt or truncated inputs, degenerate outcomes.

Outputs go through :func:`trialstats.data.io.write_atomically`, so a run that dies mid-write
leaves the previous file (or none), never a truncated one; unreadable inputs are the
validation error (exit status 2, the file named, no traceback); an outcome that cannot be
analysed is a row saying so while the other outcomes are analysed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trialstats.analysis.primary import analyse_outcome
from trialstats.cli import main
from trialstats.data.io import write_atomically, write_csv


def failing_writer(text: str):
    """A writer that writes the first half of ``text`` and then fails."""

    def write(tmp: Path) -> None:
        with open(tmp, "w") as handle:
            handle.write(text[: len(text) // 2])
            handle.flush()
            raise OSError("disk full (simulated)")

    return write


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "primary.csv"
    write_csv(pd.DataFrame({"a": [1, 2]}), path)
    before = path.read_bytes()
    with pytest.raises(OSError, match="simulated"):
        write_atomically(path, failing_writer("x,y\n" * 1000))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["primary.csv"]


def test_failed_first_write_leaves_no_file(tmp_path):
    path = tmp_path / "sub" / "primary.csv"
    with pytest.raises(OSError, match="simulated"):
        write_atomically(path, failing_writer("x,y\n" * 1000))
    assert list(path.parent.iterdir()) == []


def test_atomic_output_gets_the_umask_mode(tmp_path):
    path = tmp_path / "table.csv"
    write_csv(pd.DataFrame({"a": [1]}), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# A `trialstats analyse` run whose CSV writer is killed (SIGKILL, no cleanup) after writing
# half of the table.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import pandas as pd
    from trialstats.cli import main

    original = pd.DataFrame.to_csv

    def to_csv_then_die(frame, path, **kwargs):
        text = original(frame, None, **kwargs)
        with open(path, "w") as handle:
            handle.write(text[: len(text) // 2])
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    pd.DataFrame.to_csv = to_csv_then_die
    sys.exit(main(sys.argv[1:]))
""")


def run_cli(*args: str, killed: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", KILLED_RUN] if killed else [
        sys.executable, "-m", "trialstats"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def test_cli_killed_mid_write_leaves_the_previous_output(trial_files, tmp_path):
    config = trial_files.write()
    out = tmp_path / "results"
    args = ("analyse", "--config", str(config), "--out", str(out / "primary.csv"))
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    table = out / "primary.csv"
    before = table.read_bytes()
    table.write_bytes(before.replace(b"score", b"SCORE"))  # mark the previous output
    marked = table.read_bytes()

    killed = run_cli(*args, killed=True)
    assert killed.returncode == -signal.SIGKILL
    assert table.read_bytes() == marked  # untouched, not truncated
    # the killed writer's half-written temporary file is hidden beside it, never the output
    strays = [p.name for p in out.iterdir() if p.name != "primary.csv"]
    assert all(name.startswith(".primary.csv.") and name.endswith(".tmp") for name in strays)

    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert table.read_bytes() == before


def corrupt_csv_cut_at_practice(trial_files) -> Path:
    text = trial_files.patients_path.read_text()
    last = text.rstrip("\n").rfind("\n") + 1
    cut = text[: last + text[last:].index(",") + 2]  # "<patient_id>,P" of the last row
    trial_files.patients_path.write_text(cut)
    return trial_files.patients_path


def binary_garbage_csv(trial_files) -> Path:
    rng = np.random.default_rng(7)
    trial_files.patients_path.write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return trial_files.patients_path


def truncated(suffix: str):
    def make(trial_files) -> Path:
        path = trial_files.root / f"patients{suffix}"
        writer = {
            ".parquet": lambda p: trial_files.patients.to_parquet(p),
            ".xlsx": lambda p: trial_files.patients.to_excel(p, index=False),
            ".dta": lambda p: trial_files.patients.to_stata(p, write_index=False),
        }[suffix]
        writer(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    return make


@pytest.mark.parametrize("corrupt", [
    corrupt_csv_cut_at_practice, binary_garbage_csv, truncated(".parquet"),
    truncated(".xlsx"), truncated(".dta"),
], ids=["csv-cut-mid-row", "binary-garbage-csv", "truncated-parquet", "truncated-xlsx",
        "truncated-dta"])
def test_corrupt_input_is_the_validation_error(trial_files, corrupt, capsys):
    config = trial_files.write()
    path = corrupt(trial_files)
    trial_files.config["data"]["patients"] = str(path)
    trial_files.config_path.write_text(yaml.safe_dump(trial_files.config))
    for command in ("validate", "analyse"):
        extra = ["--out", str(trial_files.root / "out.csv")] if command == "analyse" else []
        assert main([command, "--config", str(config), *extra]) == 2
        err = capsys.readouterr().err
        assert str(path) in err
        assert "Traceback" not in err
    assert not (trial_files.root / "out").exists()


def test_csv_cut_inside_the_last_row_is_an_error(trial_files, capsys):
    config = trial_files.write()
    text = trial_files.patients_path.read_text()
    last = text.rstrip("\n").rfind("\n") + 1
    fields = text[last:].split(",")
    # keep id, practice, age and half the condition: a valid-looking but wrong record
    trial_files.patients_path.write_text(
        text[:last] + ",".join(fields[:3]) + "," + fields[3][:2])
    assert main(["validate", "--config", str(config)]) == 2
    assert str(trial_files.patients_path) in capsys.readouterr().err


def test_degenerate_outcomes_are_reported_while_others_run(trial_files, tmp_path, capsys):
    patients = trial_files.patients
    treated = patients["practice_id"].map(
        trial_files.practices.set_index("practice_id")["arm"]) == "intervention"
    trial_files.patients = patients.assign(
        flat_m0=patients["score_m0"], flat_m12=42.0,
        gone_m0=patients["score_m0"], gone_m12=patients["score_m12"].where(~treated),
    )
    trial_files.config["outcomes"] += [{"name": "flat"}, {"name": "gone"}]
    config = trial_files.write()
    assert main(["analyse", "--config", str(config), "--out", str(tmp_path / "primary.csv")]) == 0
    rows = pd.read_csv(tmp_path / "primary.csv").set_index("outcome")
    assert bool(rows.loc["score", "converged"]) and np.isfinite(rows.loc["score", "estimate"])
    # Not estimable, so no fit was tried: converged is empty, never "did not converge".
    assert pd.isna(rows.loc["flat", "converged"])
    assert rows.loc["flat", "notes"].startswith("not estimable")
    assert "follow-up score is constant" in rows.loc["flat", "notes"]
    assert pd.isna(rows.loc["gone", "converged"])
    assert "fewer than two clusters" in rows.loc["gone", "notes"]
    assert np.isnan(rows.loc[["flat", "gone"], "estimate"]).all()
    out = capsys.readouterr().out
    assert "flat month 12" in out and "gone month 12" in out


# Seven patients in five practices, four fixed effects besides the intercept: REML finds no
# optimum below the top of its variance-ratio range (converged False).
TINY = pd.DataFrame({
    "practice_id": ["P0", "P0", "P0", "P1", "P2", "P3", "P4"],
    "treated": [1, 1, 1, 1, 1, 0, 0],
    "age": [40.0, 56, 67, 75, 58, 75, 57],
    "condition": ["copd", "diabetes", "copd", "copd", "diabetes", "diabetes", "diabetes"],
    "score_m0": [50.8, 44.2, 39.6, 50.3, 62.2, 54.5, 45.8],
    "score_m12": [72.5, 36.1, 46.5, 45.2, 53.9, 54.9, 51.4],
})


def test_non_converged_fit_is_reported_not_raised():
    rows = analyse_outcome(TINY, {"name": "score", "higher_is_better": True}, 12,
                           cluster="practice_id", baseline_month=0,
                           covariates=["age", "condition"], df_methods=["kenward-roger"])
    assert not rows["converged"].any()
    assert "did not converge" in rows["notes"].iloc[0]


# Six analysed patients, five fixed effects: the Kenward-Roger adjusted variance of the arm
# effect comes out negative, so its SE and p-value are NaN.
NEGATIVE_KR = pd.DataFrame({
    "practice_id": ["P0", "P0", "P1", "P1", "P2", "P3", "P3"],
    "treated": [1, 1, 1, 1, 0, 0, 0],
    "age": [34.0, 44, 54, 51, 50, 31, 30],
    "condition": ["copd", "copd", "diabetes", "diabetes", "diabetes", "copd", "diabetes"],
    "score_m0": [46.2, 53.7, 60.2, 57.2, 47.6, 40.0, 45.4],
    "score_m12": [np.nan, 29.3, 52.2, 40.4, 45.0, 40.1, 45.1],
})


def test_unusable_kenward_roger_inference_is_noted():
    with np.errstate(invalid="ignore"):
        row = analyse_outcome(NEGATIVE_KR, {"name": "score", "higher_is_better": True}, 12,
                              cluster="practice_id", baseline_month=0,
                              covariates=["age", "condition"],
                              df_methods=["kenward-roger"]).iloc[0]
    assert np.isnan(row["se"])
    assert not row["converged"] or "kenward" in row["notes"].lower()
