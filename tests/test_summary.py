"""`trialstats summary`: one line per finished stage, built from the run's tidy tables."""

from __future__ import annotations

import pandas as pd

from trialstats.cli import main


def test_summary_lines_follow_the_tables(tmp_path, capsys):
    results, reports = tmp_path / "results", tmp_path / "reports"
    (results / "data").mkdir(parents=True)
    reports.mkdir()
    pd.DataFrame({"practice_id": ["A", "B", "C", "D"]}).to_parquet(
        results / "data" / "practices.parquet")
    pd.DataFrame({"treated": [1, 0, 1]}).to_parquet(results / "data" / "patients.parquet")
    pd.DataFrame({
        "outcome": ["a", "a", "b", "c"], "month": 12,
        "method": ["satterthwaite", "kenward-roger", "satterthwaite", "satterthwaite"],
        "converged": [True, True, False, None],
        "mcid_verdict": ["important effect ruled out", "inconclusive", None, None],
        "notes": ["", "", "boundary", "not estimable: one follow-up month"],
    }).to_csv(results / "primary.csv", index=False)
    (reports / "report.html").write_text("<html></html>")
    assert main(["summary", "--results", str(results), "--reports", str(reports)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "data: 4 practices randomised, 3 patients"
    assert lines[1].startswith("primary: 3 outcome x month models (satterthwaite df), "
                               "1 not estimable, 1 not converged;")
    assert "1 important effect ruled out" in lines[1] and "2 no verdict" in lines[1]
    assert "inconclusive" not in lines[1]  # the second df method is not the primary one
    assert lines[2] == f"report: {reports / 'report.html'}"
    assert len(lines) == 3  # no sensitivity or power results: no lines for them


def test_summary_counts_binary_outcomes_once_with_their_own_method(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    pd.DataFrame({
        "outcome": ["score", "score", "admitted", "admitted", "admitted"], "month": 12,
        "method": ["satterthwaite", "kenward-roger", "between-within", "between-within",
                   "between-within"],
        "effect_measure": ["mean difference", "mean difference", "odds ratio",
                           "risk difference", "risk ratio"],
        "converged": True, "mcid_verdict": [None, None, None, "inconclusive", None],
        "notes": "family: binomial (logit)",
    }).to_csv(results / "primary.csv", index=False)
    assert main(["summary", "--results", str(results), "--reports", str(tmp_path)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("primary: 2 outcome x month models (satterthwaite, between-within "
                           "df), 0 not estimable, 0 not converged;")
    assert "1 inconclusive" in line and "1 no verdict" in line  # once per model, not per measure


def test_summary_uses_the_trials_words(tmp_path):
    from trialstats.report.format import Words
    from trialstats.summary import stage_lines

    results = tmp_path / "results"
    (results / "data").mkdir(parents=True)
    pd.DataFrame({"practice_id": ["A", "B"]}).to_parquet(results / "data" / "practices.parquet")
    pd.DataFrame({"treated": [1, 0, 1]}).to_parquet(results / "data" / "patients.parquet")
    words = Words(cluster="school", clusters="schools", participant="pupil",
                  participants="pupils")
    assert stage_lines(results, tmp_path, words)[0] == "data: 2 schools randomised, 3 pupils"
