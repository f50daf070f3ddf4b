"""The report of a trial with a binary primary outcome and a count (issue 13, deliverable 6).

The trial (tests/fixtures/binary_report, made with a seed by
tests/fixtures/r/make_binary_report_fixture.R) is run end to end once by `trialstats run`;
the report must show the outcomes in their own terms. Reference values come from the R script
(``reference.json``: the by-arm summaries computed in R from the simulated data, and the odds
ratio from ``glmer(..., nAGQ = 15)`` with a t on J - 2 df), and, for the formatting of the other
effect measures, from the run's own ``primary.csv`` (those numbers are tested against R in
tests/test_glmm_rows.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trialstats.config import load_config, resolve_paths
from trialstats.contract import ODDS_RATIO, RISK_DIFFERENCE, RISK_RATIO
from trialstats.data.validate import load_trial
from trialstats.report.disclosure import suppress_small_counts
from trialstats.report.figures import measure_band, measure_figure, measure_forest_data
from trialstats.report.measures import NOT_ESTIMABLE, glmm_cells, verdict_cell
from trialstats.report.tables import baseline_summary, baseline_table

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "binary_report"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())
ARMS = ("programme", "usual care")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The fixture trial run by `trialstats run` from another folder; its output folder."""
    root = tmp_path_factory.mktemp("binary_report")
    trial = root / "trial"
    shutil.copytree(FIXTURE, trial)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [sys.executable, "-m", "trialstats", "run", "--config", str(trial / "config.yaml"),
         "--out", str(root / "out"), "--cores", "2"], cwd=root, env=env, capture_output=True,
        text=True, check=False, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return root / "out"


def _markdown_row(text: str, first_cell: str, after: str = "") -> list[str]:
    """The cells of the first Markdown table row starting with ``first_cell`` after ``after``."""
    start = text.index(after) if after else 0
    for line in text[start:].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r}")


def _ci(row: pd.Series, digits: int) -> str:
    def f(x: float) -> str:
        return f"{x:.{digits}f}".replace("-", "−")
    return f"{f(row.estimate)} ({f(row.ci_low)} to {f(row.ci_high)})"


def test_every_report_file_is_written(run):
    reports = run / "reports"
    for stem in ("report", "supplement"):
        for ext in ("html", "docx", "tex", "md"):
            assert (reports / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext}"
    for figure in ("consort", "forest", "forest_ratios", "forest_risk_differences",
                   "supplement_sensitivity_ratios_1",
                   "supplement_sensitivity_risk_differences_1"):
        for ext in ("svg", "png", "pdf"):
            assert (reports / "figures" / f"{figure}.{ext}").stat().st_size > 0, figure
    for table in ("table1_baseline", "table2_primary", "table3_other", "table4_sensitivity",
                  "table_s1_sensitivity"):
        assert (reports / "tables" / f"{table}.csv").exists(), table
    assert "Figure 3. Odds, risk and rate ratios" in (reports / "report.html").read_text()


def test_table1_binary_and_count_baseline_against_r(run):
    """The binary outcome at baseline is one n (%) row of its events; the count, skewed in R's
    computation (g1 = 1.56 > 1), a median (IQR); numbers as computed in R."""
    reference = REFERENCE["table1"]
    summary = pd.read_csv(run / "reports" / "tables" / "table1_baseline_data.csv",
                          keep_default_na=False, na_values=[""])
    events = summary[summary["variable"] == "hba1c_target_m0"]
    assert events["summary"].tolist() == ["events", "events"]  # one row, no "0" category
    counts = summary[summary["variable"] == "consultations_m0"]
    assert counts["skewness"].iloc[0] == pytest.approx(
        reference["consultations_m0"]["skewness"], rel=1e-10)
    assert set(counts["summary"]) == {"median_iqr"}
    wellbeing = summary[summary["variable"] == "wellbeing_m0"]
    table = (run / "reports" / "report.md").read_text()
    for k, arm in enumerate(ARMS, start=1):
        ref = reference["hba1c_target_m0"][arm]
        row = events[events["arm"] == arm].iloc[0]
        assert (row["count"], row["n"]) == (ref["count"], ref["n"])
        assert row["percent"] == pytest.approx(ref["percent"], rel=1e-12)
        cells = _markdown_row(table, "HbA1c at or below 58 mmol/mol, n (%)")
        assert cells[k] == f"{ref['count']} ({ref['percent']:.1f})"
        ref = reference["consultations_m0"][arm]
        row = counts[counts["arm"] == arm].iloc[0]
        assert (row["median"], row["q1"], row["q3"]) == (ref["median"], ref["q1"], ref["q3"])
        ref = reference["wellbeing_m0"][arm]
        row = wellbeing[wellbeing["arm"] == arm].iloc[0]
        assert row["mean"] == pytest.approx(ref["mean"], rel=1e-12)
        assert row["sd"] == pytest.approx(ref["sd"], rel=1e-12)
        for variable, value in (("sex_female", "female"), ("smoker_yes", "yes")):
            ref = reference[variable][arm]
            row = summary[(summary["variable"] == variable.split("_")[0])
                          & (summary["category"] == value) & (summary["arm"] == arm)].iloc[0]
            assert (row["count"], row["n"]) == (ref["count"], ref["n"])


def test_outcome_table_events_rates_and_effects_side_by_side(run):
    """Events n (%) and events / exposure (rate) per arm as computed in R; the OR as glmer's;
    RD and RR beside it in the same row; the MCID and its verdict on the RD's scale."""
    reference = REFERENCE["outcome_table"]
    glmer = REFERENCE["glmm_hba1c_target"]
    primary = pd.read_csv(run / "results" / "primary.csv")
    rows = primary[primary["outcome"] == "hba1c_target"].set_index("effect_measure")
    report = (run / "reports" / "report.md").read_text()
    header = _markdown_row(report, "Outcome and time", "Table 2.")
    assert header[5:12] == ["Analysed n (practices)", "Effect (95% CI)", "p",
                            "Risk difference (95% CI)", "Risk ratio (95% CI)", "ICC (95% CI)",
                            "MCID"]
    assert not any("Standardised" in h for h in header)  # no score in Table 2
    cells = _markdown_row(report, "12 months", "Table 2.")
    for k, arm in enumerate(ARMS):
        ref = reference["hba1c_target_m12"][arm]
        assert cells[1 + 2 * k] == str(ref["n"])
        assert cells[2 + 2 * k] == f"{ref['count']} ({ref['percent']:.1f}%)"
    assert cells[5] == f"{glmer['n']} ({glmer['n_clusters']})"
    odds = rows.loc[ODDS_RATIO]
    assert odds.estimate == pytest.approx(glmer["odds_ratio"], rel=1e-5)
    assert [odds.ci_low, odds.ci_high] == pytest.approx(glmer["ci"], rel=1e-5)
    assert cells[6] == (f"OR {glmer['odds_ratio']:.2f} ({glmer['ci'][0]:.2f} to "
                        f"{glmer['ci'][1]:.2f})")
    assert cells[7] == f"{glmer['p']:.3f}"
    assert cells[8] == _ci(rows.loc[RISK_DIFFERENCE], 3)
    assert cells[9] == _ci(rows.loc[RISK_RATIO], 2)
    assert cells[11:] == ["RD 0.050", "important benefit shown (RD)"]
    assert rows.loc[RISK_DIFFERENCE, "ci_low"] > 0.05  # the verdict follows from the RD's CI
    counts = _markdown_row(report, "12 months", "*GP consultations*")
    for k, arm in enumerate(ARMS):
        ref = reference["consultations_m12"][arm]
        assert counts[2 + 2 * k] == (f"{ref['events']:,} / {ref['person_time']:,} "
                                     f"({ref['rate']:.3f})")
    rate = primary[primary["outcome"] == "consultations"].iloc[0]
    assert counts[6] == "rate ratio " + _ci(rate, 2)
    assert counts[-2:] == ["rate ratio 1.25", str(rate.mcid_verdict)]


def test_sensitivity_tables_name_measures_and_not_estimable_rows(run):
    report = (run / "reports" / "report.md").read_text()
    header = _markdown_row(report, "Outcome and analysis", "Table 4.")
    assert header == ["Outcome and analysis", "Analysed n (practices)", "Effect (95% CI)", "p",
                      "MCID verdict"]  # the binary primary outcome has no standardised effect
    gee = _markdown_row(report, "GEE (Mancl-DeRouen)", "Table 4.")
    assert gee[2].startswith("OR ")
    supplement = (run / "reports" / "supplement.md").read_text()
    cr2 = _markdown_row(supplement, "CR2 (Bell-McCaffrey)", "**GP consultations**")
    assert cr2[2] == NOT_ESTIMABLE and "†" not in "".join(cr2)


def test_forest_plots_ratios_on_a_log_axis(run):
    """Ratios on a log axis with the null line at 1 and the rate ratio's MCID band 1/1.25 to
    1.25; risk differences on a linear axis at 0 with the band −0.05 to 0.05."""
    config = load_config(FIXTURE / "config.yaml")
    primary = pd.read_csv(run / "results" / "primary.csv")
    ratios = measure_forest_data(primary, config, ratios=True)
    assert ratios["effect_measure"].tolist() == ["odds ratio", "risk ratio", "rate ratio"]
    band = ratios.set_index("effect_measure").loc["rate ratio", ["band_low", "band_high"]]
    assert band.tolist() == pytest.approx([0.8, 1.25])
    axis = measure_figure(ratios, config, ratios=True).axes[0]
    assert axis.get_xscale() == "log"
    null = [line for line in axis.get_lines() if list(line.get_xdata()) == [1, 1]]
    assert len(null) == 1
    low, high = axis.get_xlim()
    assert low == pytest.approx(1 / high)  # symmetric about 1 on the log scale
    differences = measure_forest_data(primary, config, ratios=False)
    assert differences["effect_measure"].tolist() == ["risk difference"]
    axis = measure_figure(differences, config, ratios=False).axes[0]
    assert axis.get_xscale() == "linear"
    assert (differences[["band_low", "band_high"]].iloc[0].tolist()
            == pytest.approx([-0.05, 0.05]))
    svg = (run / "reports" / "figures" / "forest_ratios.svg").read_text()
    assert "1/MCID to MCID" in svg


def test_methods_describe_what_ran(run):
    report = (run / "reports" / "report.md").read_text()
    methods = report[report.index("## Statistical methods"):report.index("## Participant")]
    assert "adaptive Gauss-Hermite quadrature with 15 nodes" in methods
    assert "negative binomial for GP consultations" in methods
    assert "marginal risk difference and risk ratio are standardised" in methods
    assert "with a logit or log link" in methods and "linear probability model" in methods
    assert "multiple imputation" not in methods.lower()  # not run
    assert "1 outcome-by-analysis result was not estimable" in methods
    assert "did not converge" not in methods
    references = report[report.index("## References"):]
    for author in ("Bates D", "Li P, Redden DT", "Localio AR", "Mancl LA", "Kauermann G",
                   "Hayes RJ"):
        assert author in references, author
    numbers = [int(n) for group in re.findall(r"\\\[([\d, ]+)\\\]", methods)
               for n in group.split(",")]
    first = list(dict.fromkeys(numbers))
    assert first == list(range(1, len(first) + 1))  # numbered in order of first citation


needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
needs_office = pytest.mark.skipif(shutil.which("soffice") is None,
                                  reason="LibreOffice not installed")


@needs_tex
def test_latex_builds(run, tmp_path):
    shutil.copytree(run / "reports", tmp_path / "reports")
    for stem in ("report", "supplement"):
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                               f"{stem}.tex"], cwd=tmp_path / "reports", capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-3000:]


@needs_office
def test_word_opens_in_libreoffice(run, tmp_path):
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",
                    "--convert-to", "pdf", "--outdir", str(tmp_path),
                    str(run / "reports" / "report.docx")],
                   capture_output=True, timeout=300, check=True)
    text = subprocess.run(["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    text = " ".join(text.split())  # cells wrap
    assert "OR 2.27" in text and "important benefit shown (RD)" in text


def _rows(*measures: tuple[str, float, float]) -> pd.DataFrame:
    """Results rows of one outcome x month: (measure, estimate, mcid)."""
    return pd.DataFrame([{
        "effect_measure": m, "estimate": e, "ci_low": e * 0.8, "ci_high": e * 1.2,
        "p_value": 0.01, "n_patients": 100, "n_clusters": 10, "icc": np.nan,
        "icc_ci_low": np.nan, "icc_ci_high": np.nan, "effect_size": np.nan,
        "es_ci_low": np.nan, "es_ci_high": np.nan, "mcid": mcid, "sd_baseline": np.nan,
        "mcid_verdict": "inconclusive" if np.isfinite(mcid) else np.nan, "converged": True,
    } for m, e, mcid in measures])


def test_glmm_cells_pick_the_measures_and_the_judged_row():
    rows = _rows((RISK_RATIO, 1.5, np.nan), (RISK_DIFFERENCE, 0.1, np.nan),
                 (ODDS_RATIO, 2.0, 1.5))
    cells = glmm_cells(rows, 1, binary=True, standardised=False)
    assert cells[1] == "OR 2.00 (1.60 to 2.40)"
    assert cells[3:5] == ["0.100 (0.080 to 0.120)", "1.50 (1.20 to 1.80)"]
    assert cells[-2:] == ["OR 1.50", "inconclusive (OR)"]
    assert verdict_cell(rows.iloc[:2]) == ""
    missing = rows.assign(estimate=np.nan, converged=np.nan)
    assert glmm_cells(missing, 1, True, False)[1] == NOT_ESTIMABLE


def test_measure_band_on_each_scale():
    row = pd.Series({"effect_measure": "rate ratio", "mcid": 0.8})
    assert measure_band(row) == pytest.approx((0.8, 1.25))
    row = pd.Series({"effect_measure": RISK_DIFFERENCE, "mcid": 0.05})
    assert measure_band(row) == pytest.approx((-0.05, 0.05))
    assert np.isnan(measure_band(pd.Series({"effect_measure": ODDS_RATIO,
                                            "mcid": np.nan}))[0])


def test_few_events_or_few_non_events_are_suppressed():
    """A binary outcome's baseline row is suppressed when its events, or its non-events
    (n - events, which the row reveals), are below ``report.min_cell``."""
    summary = pd.DataFrame({
        "summary": ["events"] * 3, "count": [3, 40, 20], "n": [50, 42, 40],
        "percent": [6.0, 95.2, 50.0], "n_missing": [0, 0, 0],
        **{c: np.nan for c in ("mean", "sd", "median", "q1", "q3")},
    })
    shown = suppress_small_counts(summary, 5)
    assert shown["suppressed"].tolist() == [True, True, False]
    assert shown["count"].isna().tolist() == [True, True, False]


def test_binary_baseline_without_events_still_has_its_row():
    """No events at baseline in either arm: the row reads 0 (0.0), it is not dropped."""
    config = resolve_paths(load_config(FIXTURE / "config.yaml"), FIXTURE)
    trial = load_trial(config)
    patients = trial.patients.assign(hba1c_target_m0=trial.patients["hba1c_target_m0"] * 0)
    table = baseline_table(baseline_summary(trial.practices, patients, trial.config),
                           trial.config)
    assert ("HbA1c at or below 58 mmol/mol, n (%)", "0 (0.0)", "0 (0.0)") in table.rows
