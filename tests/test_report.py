"""The reporting stage: CONSORT counts, tables, and the same cells in every output format."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import docx
import numpy as np
import pandas as pd
import pytest

from test_report_support import (
    TABLES,
    WITHDRAWN,
    HtmlTables,
    ascii_minus,
    fake_results,
    load,
    table_cells,
    write_flow_trial,
    write_results,
)
from trialstats.cli import main
from trialstats.errors import TrialstatsError
from trialstats.report.consort import consort_counts
from trialstats.report.format import digits_for, fmt, fmt_p
from trialstats.report.render import latex_escape
from trialstats.report.tables import (
    baseline_summary,
    baseline_table,
    outcome_summary,
    outcome_table,
)


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("trial")
    return load(write_flow_trial(root))


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, trial):
    """The report of the flow trial, built twice into the same folder; returns the folder and
    the checksums of every file after the first run."""
    root = tmp_path_factory.mktemp("report")
    write_results(trial, root / "results")
    config = Path(trial.config["data"]["practices"]).parent / "config.yaml"
    argv = ["report", "--config", str(config), "--results", str(root / "results"),
            "--out-dir", str(root / "out")]
    assert main(argv) == 0
    first = {p: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((root / "out").rglob("*")) if p.is_file()}
    assert main(argv) == 0
    return root / "out", first


# --- CONSORT flow -------------------------------------------------------------------------------


def _expected_flow(trial) -> dict[tuple[str, str, int], int]:
    """Counts straight from the construction rules of ``flow_trial`` (k = row number)."""
    patients = trial.patients.reset_index(drop=True)
    k = np.arange(1, len(patients) + 1)
    left = patients["practice_id"].isin(WITHDRAWN).to_numpy()
    no_follow_up = (k % 5 == 0) & ~left
    none_at_12 = no_follow_up | ((k % 7 == 0) & ~left)
    third = patients["patient_id"].str.endswith("-3").to_numpy()
    no_age = np.isin(np.arange(len(patients)), [4, 30])
    analysed = ~left & ~none_at_12 & ~third & ~no_age
    expected = {}
    for arm in ("intervention", "control"):
        a = (patients["arm"] == arm).to_numpy()
        expected |= {
            ("allocated", arm, 0): int(a.sum()),
            ("withdrawn", arm, 0): int((a & left).sum()),
            ("lost", arm, 6): int((a & no_follow_up).sum()),
            ("lost", arm, 12): int((a & none_at_12).sum()),
            ("analysed", arm, 0): int((a & analysed).sum()),
            ("not_analysed", arm, 0): int((a & ~left & ~none_at_12 & ~analysed).sum()),
        }
    return expected


def test_flow_counts_match_the_data(trial):
    counts = consort_counts(trial.practices, trial.patients, fake_results(trial), trial.config)
    for (stage, arm, month), n in _expected_flow(trial).items():
        row = counts[(counts["stage"] == stage) & (counts["arm"] == arm)
                     & (counts["month"].fillna(0) == month)]
        assert int(row["patients"].iloc[0]) == n, (stage, arm, month)
    clusters = counts.set_index(["stage", "arm"])["clusters"]
    assert clusters[("randomised", "all")] == 8
    assert clusters[("allocated", "intervention")] == clusters[("allocated", "control")] == 4
    assert clusters[("withdrawn", "intervention")] == clusters[("withdrawn", "control")] == 1
    assert clusters[("analysed", "intervention")] == clusters[("analysed", "control")] == 3
    assert counts.loc[counts["stage"] == "randomised", "patients"].iloc[0] == len(trial.patients)


def test_flow_counts_must_agree_with_the_results(trial):
    results = fake_results(trial)
    primary = (results["outcome"] == "sdm") & (results["month"] == 12) & (
        results["method"] == "kenward-roger")
    results.loc[primary, "n_patients"] += 1
    with pytest.raises(TrialstatsError, match="do not belong to these data"):
        consort_counts(trial.practices, trial.patients, results, trial.config)


def test_screening_counts_from_the_config(trial):
    config = trial.config | {"report": {"consort": {
        "assessed": 20, "excluded": {"declined": 9, "not eligible": 3}}}}
    counts = consort_counts(trial.practices, trial.patients, fake_results(trial), config)
    assert counts["stage"].tolist()[:4] == ["assessed", "excluded", "excluded", "randomised"]
    assert counts.loc[counts["stage"] == "excluded", "clusters"].sum() == 12


# --- tables -------------------------------------------------------------------------------------


def test_number_formatting():
    assert fmt(-0.0004, 2) == "0.00"
    assert fmt(-1.25, 1) == "−1.2"
    assert fmt(12345.6, 0) == "12,346"
    assert fmt(np.nan, 2) == ""
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.0456) == "0.046"
    assert [digits_for(s) for s in (20, 1.9, 0.6, 0.26, 3000)] == [1, 2, 2, 3, 0]
    assert latex_escape("5% of a_b & −1 †") == (
        r"5\% of a\_b \& \textminus{}1 \textdagger{}")


def test_baseline_summaries(trial):
    summary = baseline_summary(trial.practices, trial.patients, trial.config)
    age = summary[summary["variable"] == "age"].set_index("arm")
    ages = pd.to_numeric(trial.patients["age"]).groupby(trial.patients["arm"])
    assert np.allclose(age.loc[["intervention", "control"], "mean"],
                       ages.mean()[["intervention", "control"]])
    assert age["n_missing"].sum() == 2
    assert set(age["summary"]) == {"mean_sd"}
    sex = summary[(summary["variable"] == "sex") & (summary["arm"] == "control")]
    assert sex["percent"].sum() == pytest.approx(100)
    skewed = trial.patients.assign(age=np.exp(np.arange(len(trial.patients)) / 5))
    summary = baseline_summary(trial.practices, skewed, trial.config)
    assert set(summary.loc[summary["variable"] == "age", "summary"]) == {"median_iqr"}
    table = baseline_table(summary, trial.config)
    assert table.columns == ("Characteristic", "Intervention", "Control")
    assert "Age, median (IQR)" in [r[0] for r in table.rows]
    assert "p" not in " ".join(table.columns).split()


def test_outcome_table_uses_the_primary_method_and_puts_primary_outcomes_first(trial):
    results = fake_results(trial)
    table = outcome_table(outcome_summary(trial.patients, trial.config), results, trial.config)
    labels = [r[0] for r in table.rows]
    assert labels[:2] == ["Primary outcomes", "Shared decision-making"]
    assert labels.index("Secondary outcomes") < labels.index("EQ-5D index")
    row = table.rows[labels.index("12 months")]
    chosen = results[(results["outcome"] == "sdm") & (results["month"] == 12)
                     & (results["method"] == "kenward-roger")].iloc[0]
    assert row[table.columns.index("p")] == fmt_p(chosen["p_value"])
    assert row[-1] == chosen["mcid_verdict"]
    observed = trial.patients.loc[trial.patients["arm"] == "control", "sdm_m12"].dropna()
    assert row[3] == str(len(observed))
    assert table.data.loc[0, "mean_control"] == pytest.approx(
        trial.patients.loc[trial.patients["arm"] == "control", "sdm_m0"].mean())


# --- outputs ------------------------------------------------------------------------------------


def test_every_output_is_written_and_reruns_are_byte_identical(report_dir):
    out, first = report_dir
    names = {p.relative_to(out).as_posix() for p in first}
    for name in ("report.html", "report.docx", "report.tex", "report.md",
                 "tables/consort_counts.csv",
                 "supplement.html", "supplement.docx", "supplement.tex", "supplement.md",
                 *(f"figures/{f}.{x}" for f in ("consort", "forest", "supplement_sensitivity_1")
                   for x in ("svg", "png", "pdf")),
                 *(f"tables/{t}{s}.csv" for t in TABLES for s in ("", "_data"))):
        assert name in names
    second = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in first}
    assert second == first


def test_docx_tables_match_the_csvs(report_dir):
    out, _ = report_dir
    document = docx.Document(str(out / "report.docx"))
    assert len(document.tables) == len(TABLES)
    for table, name in zip(document.tables, TABLES, strict=True):
        cells = [[ascii_minus(c.text) for c in row.cells] for row in table.rows]
        assert cells == table_cells(out, name), name


def test_html_tables_match_the_csvs_and_figures_are_embedded(report_dir):
    out, _ = report_dir
    parser = HtmlTables()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    assert len(parser.tables) == len(TABLES)
    for cells, name in zip(parser.tables, TABLES, strict=True):
        assert [[ascii_minus(c) for c in row] for row in cells] == table_cells(out, name), name
    assert len(parser.images) == 2
    assert all(src.startswith("data:image/svg+xml;base64,") for src in parser.images)


def test_latex_and_markdown_carry_the_same_rows(report_dir):
    out, _ = report_dir
    tex = (out / "report.tex").read_text(encoding="utf-8")
    assert tex.count(r"\toprule") == 2 * len(TABLES)
    assert r"\includegraphics" in tex and "figures/consort.pdf" in tex
    markdown = (out / "report.md").read_text(encoding="utf-8")
    table2 = table_cells(out, "table2_primary")
    for row in table2[1:]:
        if row[6]:
            assert row[6].replace("|", "\\|").replace("-", "−") in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == sum(len(table_cells(out, n)) for n in TABLES)


def test_no_planning_section_without_a_power_table(report_dir):
    out, first = report_dir
    for name in ("report.html", "report.md", "report.tex"):
        assert "Planning the next trial" not in (out / name).read_text(encoding="utf-8")
    document = docx.Document(str(out / "report.docx"))
    assert "Planning the next trial" not in [p.text for p in document.paragraphs]
    assert not any("planning" in p.name or "power" in p.name for p in first)


def test_report_without_sensitivity_results(tmp_path, trial):
    write_results(trial, tmp_path / "results", sensitivity=False)
    config = Path(trial.config["data"]["practices"]).parent / "config.yaml"
    assert main(["report", "--config", str(config), "--results", str(tmp_path / "results"),
                 "--out-dir", str(tmp_path / "out")]) == 0
    # only the primary model with its second df method is set beside the primary analysis
    rows = table_cells(tmp_path / "out", "table4_sensitivity")[1:]
    assert [r[0] for r in rows] == ["Shared decision-making", "Primary analysis (Kenward-Roger)",
                                    "Primary model with Satterthwaite df"]
    assert "Sensitivity analyses:" not in (tmp_path / "out" / "report.html").read_text()


def test_every_df_method_named_in_the_methods_is_shown(report_dir, trial):
    """The methods say the models were also summarised with Satterthwaite df: the table
    beside the primary (Kenward-Roger) analysis shows exactly that row of primary.csv."""
    out, _ = report_dir
    methods = (out / "report.md").read_text(encoding="utf-8")
    assert "also summarised with the Satterthwaite approximation" in methods
    rows = table_cells(out, "table4_sensitivity")
    row = next(r for r in rows if r[0] == "Primary model with Satterthwaite df")
    results = pd.read_csv(out.parent / "results" / "primary.csv")
    chosen = results[(results["outcome"] == "sdm") & (results["month"] == 12)
                     & (results["method"] == "satterthwaite")].iloc[0]
    assert row[3] == fmt_p(chosen["p_value"])
    assert row[2].startswith(fmt(chosen["estimate"], 1).replace("−", "-") + " (")


def test_every_named_method_is_referenced(report_dir):
    out, _ = report_dir
    text = (out / "report.md").read_text(encoding="utf-8")
    methods, references = text.split("## References")
    for name, author in (("Satterthwaite", "Satterthwaite FE"), ("Kenward", "Kenward MG"),
                         ("Rubin's rules", "Rubin DB"), ("Barnard–Rubin", "Barnard J")):
        assert (name in methods) == (author in references), name


def test_missing_results_is_a_user_error(tmp_path, trial, capsys):
    config = Path(trial.config["data"]["practices"]).parent / "config.yaml"
    status = main(["report", "--config", str(config), "--results", str(tmp_path),
                   "--out-dir", str(tmp_path / "out")])
    assert status == 2
    assert "practices.parquet: file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_flow_diagram_png_is_a_picture(report_dir):
    from PIL import Image

    out, _ = report_dir
    image = Image.open(io.BytesIO((out / "figures" / "consort.png").read_bytes()))
    assert image.size[0] == 1600
    pixels = np.asarray(image.convert("L"))
    assert (pixels < 128).mean() > 0.01


CHROMIUM = Path("/usr/bin/chromium")
_CHECK = (
    "<script>window.addEventListener('load', () => {"
    "const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0));"
    "document.body.dataset.images = document.images.length;"
    "document.body.dataset.broken = broken.length;});</script></body>"
)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed")
def test_html_renders_in_chromium_without_errors(report_dir, tmp_path):
    from PIL import Image

    out, _ = report_dir
    page = (out / "report.html").read_text(encoding="utf-8")
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", _CHECK), encoding="utf-8")
    dom = _chromium(tmp_path / "profile-dom", "--dump-dom", checked.as_uri())
    assert 'data-images="2"' in dom.stdout and 'data-broken="0"' in dom.stdout
    assert ":CONSOLE" not in dom.stderr, dom.stderr
    shot = tmp_path / "report.png"
    run = _chromium(tmp_path / "profile-shot", f"--screenshot={shot}",
                    "--window-size=1280,4000", (out / "report.html").as_uri())
    assert ":CONSOLE" not in run.stderr, run.stderr
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (4000, 1280)
    assert (pixels < 128).mean() > 0.01


def test_patients_per_practice_in_table1_and_the_flow(trial):
    from trialstats.report.consort import flow_boxes

    table = baseline_table(baseline_summary(trial.practices, trial.patients, trial.config),
                           trial.config)
    row = next(r for r in table.rows if r[0] == "Patients per practice, median (range)")
    sizes = trial.patients.groupby("practice_id").size()
    arms = trial.practices.set_index("practice_id")["arm"]
    counts = consort_counts(trial.practices, trial.patients, fake_results(trial), trial.config)
    boxes = flow_boxes(counts, trial.config)
    for j, arm in enumerate(("intervention", "control"), start=1):
        x = sizes[(arms[sizes.index] == arm).to_numpy()]
        median, spread = row[j].split(" ", 1)
        assert float(median) == x.median() and spread == f"({x.min()} to {x.max()})"
        assert f"per practice: median {x.median():g} (range {x.min()} to {x.max()})" in boxes[
            f"allocated:{arm}"]


def test_display_csvs_use_ascii_minus(report_dir):
    out, _ = report_dir
    texts = [p.read_text(encoding="utf-8") for p in (out / "tables").glob("*.csv")
             if not p.stem.endswith("_data")]
    assert texts and not any("−" in t for t in texts)
    assert any("(-" in t for t in texts)


def test_subgroups_without_verdicts_and_interaction_tests_as_tests(trial):
    from trialstats.report.supplement import subgroup_table

    base = fake_results(trial).iloc[[0]].drop(columns="method").assign(method="satterthwaite")
    rows = [base.assign(analysis="subgroup interaction: arm x condition (exploratory)",
                        estimate=np.nan, ci_low=np.nan, ci_high=np.nan, effect_size=np.nan,
                        mcid_verdict=np.nan, p_value=0.352838),
            base.assign(analysis="subgroup: copd (exploratory)", p_value=0.13,
                        mcid_verdict="inconclusive")]
    table = subgroup_table(pd.concat(rows, ignore_index=True), trial.config, "s", "Table S2.")
    assert not any("verdict" in c.lower() for c in table.columns)
    assert not any("inconclusive" in cell for row in table.rows for cell in row)
    interaction = next(r for r in table.rows if r[0].startswith("Interaction"))
    assert interaction[1:] == ("", "", "", "", "0.353")
    copd = next(r for r in table.rows if r[0].startswith("Copd"))
    assert copd[4] == "0.130" and copd[5] == ""
