"""The "Planning the next trial" section: clusters needed, the power-curve figure's layout, and
the section in every output format when (and only when) ``--power`` is given."""

from __future__ import annotations

import hashlib
import io

import docx
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from test_report_support import (
    TABLES,
    HtmlTables,
    fake_power,
    load,
    table_cells,
    write_flow_trial,
    write_results,
)
from trialstats.cli import main
from trialstats.errors import TrialstatsError
from trialstats.report.files import save_figure
from trialstats.report.planning import (
    check_power,
    clusters_needed,
    family_keys,
    planning_methods,
    planning_table,
)
from trialstats.report.power_curves import power_curve_figure

SECTION = "Planning the next trial"
PLANNED = (*TABLES[:-1], "planning_power", TABLES[-1])


# --- clusters needed ----------------------------------------------------------------------------


def test_families_follow_the_figure_layout():
    assert family_keys(fake_power()) == ("icc", ["effect"])
    assert family_keys(fake_power(icc=[0.05])) == ("effect", [])
    assert family_keys(fake_power(icc=[0.05], effect=[0.5])) == (None, [])


def test_clusters_needed_brackets_the_requirement():
    needed = clusters_needed(fake_power())
    assert len(needed) == 6 * 2 * 2
    row = needed.set_index(["effect", "icc", "method", "target_power"])
    # effect 0.3, ICC 0.01: analytic power 0.632, 0.777, 0.865 at 4, 6, 8 clusters per arm
    assert row.loc[(0.3, 0.01, "analytic", 0.8), "clusters_per_arm"] == 8
    assert row.loc[(0.3, 0.01, "analytic", 0.8), "previous_clusters_per_arm"] == 6
    assert row.loc[(0.3, 0.01, "analytic", 0.8), "power"] == pytest.approx(1 - np.exp(-2.4 / 1.2))
    # simulated power is 0.03 higher: 0.807 at 6
    assert row.loc[(0.3, 0.01, "simulation", 0.8), "clusters_per_arm"] == 6
    assert row.loc[(0.3, 0.01, "simulation", 0.8), "mc_se"] > 0
    # effect 0.5, ICC 0.01: 0.811 already at 4; never 90% at ICC 0.1
    assert row.loc[(0.5, 0.01, "analytic", 0.8), "clusters_per_arm"] == 4
    assert np.isnan(row.loc[(0.5, 0.01, "analytic", 0.8), "previous_clusters_per_arm"])
    assert np.isnan(row.loc[(0.5, 0.1, "analytic", 0.9), "clusters_per_arm"])
    assert (needed["largest_clusters_per_arm"] == 8).all()


def test_planning_table_cells():
    power = fake_power()
    table = planning_table(clusters_needed(power), power, 4)
    assert table.title == "Table 4. Clusters per arm needed for 80% and 90% power"
    assert table.columns == ("Scenario", "80% power, analytic", "80% power, simulated",
                             "90% power, analytic", "90% power, simulated")
    rows = {r[0]: r[1:] for r in table.rows if r[0].startswith("Effect")}
    assert list(rows) == ["Effect 0.3 SD", "Effect 0.5 SD"]
    assert table.rows[1] == ("ICC 0.01", "8", "6", ">8", ">8")
    assert table.rows[5] == ("ICC 0.01", "≤4", "≤4", "6", "6")
    assert table.depth == (0, 1, 1, 1, 0, 1, 1, 1)
    assert "200 simulated trials" in table.notes


def test_planning_table_of_one_method_and_one_family():
    power = fake_power(methods=("analytic",), icc=[0.01], effect=[0.5])
    table = planning_table(clusters_needed(power), power, 3)
    assert table.columns == ("Scenario", "80% power, analytic", "90% power, analytic")
    assert table.rows == (("Planned design", "≤4", "6"),)
    assert "Simulated" not in table.notes


def test_methods_sentence_reads_the_table():
    power = fake_power()
    text = planning_methods(power, {"eldridge": 4, "teerenstra": 5, "morris": 6})
    assert text.count(".") >= 1 and text.endswith(").")
    for fact in ("18 scenarios", "200 trials per scenario", "base seed 7",
                 "between-within degrees of freedom", "every patient generated", "[4]", "[6]"):
        assert fact in text, fact


def test_a_power_table_without_its_columns_is_a_user_error():
    with pytest.raises(TrialstatsError, match=r"power.csv: required columns .*reps"):
        check_power(fake_power().drop(columns=["reps", "seed"]), "power.csv")


# --- the figure ---------------------------------------------------------------------------------


def _legend(figure):
    legend = figure.legends[0]
    return legend.get_title().get_text(), [t.get_text() for t in legend.get_texts()]


def test_figure_panels_by_effect_and_curves_by_icc():
    figure = power_curve_figure(fake_power())
    assert [ax.get_title() for ax in figure.axes] == ["effect 0.3 SD", "effect 0.5 SD"]
    assert _legend(figure) == ("ICC", ["0.01", "0.05", "0.1"])
    colours = [to_hex(h.get_color()) for h in figure.legends[0].legend_handles]
    assert len(set(colours)) == 3
    curves = {to_hex(line.get_color()) for line in figure.axes[0].get_lines()}
    assert set(colours) <= curves
    text = " ".join(t.get_text() for t in figure.texts)
    assert "mean cluster size 20" in text and "attrition 0.2" in text
    assert "95% Monte Carlo interval" in text and "80%, 90% power" in text
    assert all(ax.get_xlabel() == "clusters per arm" for ax in figure.axes)


def test_figure_labels_combinations_when_more_quantities_vary():
    figure = power_curve_figure(fake_power(cluster_size=[10, 30], attrition=[0.1, 0.2]))
    assert len(figure.axes) == 8
    assert figure.axes[0].get_title() == "mean cluster size 10, effect 0.3 SD, attrition 0.1"
    assert _legend(figure)[0] == "ICC"


def test_figure_with_one_curve_or_another_axis():
    single = power_curve_figure(fake_power(methods=("analytic",), icc=[0.05], effect=[0.5]))
    assert len(single.axes) == 1 and not single.legends
    assert "points" not in " ".join(t.get_text() for t in single.texts)
    by_icc = power_curve_figure(fake_power(clusters_per_arm=[6]))
    assert by_icc.axes[0].get_xlabel() == "ICC"
    assert _legend(by_icc)[0] == "effect (SD)"


def test_figure_files_are_byte_identical_on_rerun(tmp_path):
    for name in ("a.png", "b.png"):
        save_figure(power_curve_figure(fake_power()), tmp_path / name)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


# --- the report ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The flow trial's report with a power table, built twice into the same folder; returns
    the folder and the checksums of every file after the first run."""
    root = tmp_path_factory.mktemp("planned")
    config = write_flow_trial(root)
    write_results(load(config), root / "results")
    fake_power().to_csv(root / "power.csv", index=False)
    argv = ["report", "--config", str(config), "--results", str(root / "results"),
            "--power", str(root / "power.csv"), "--out-dir", str(root / "out")]
    assert main(argv) == 0
    first = {p: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((root / "out").rglob("*")) if p.is_file()}
    assert main(argv) == 0
    return root / "out", first


def test_section_appears_in_every_format_with_the_power_table(planned):
    out, first = planned
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f'<h2>{SECTION}</h2>' in html and 'id="figure-power_curves"' in html
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert f"## {SECTION}" in markdown and "**Table 5. Clusters per arm needed" in markdown
    assert rf"\section*{{{SECTION}}}" in (out / "report.tex").read_text(encoding="utf-8")
    headings = [p.text for p in docx.Document(str(out / "report.docx")).paragraphs
                if p.style.name == "Heading 1"]
    assert headings.index(SECTION) == headings.index("Outcomes") + 1
    for name in ("tables/planning_power.csv", "tables/planning_power_data.csv",
                 *(f"figures/power_curves.{x}" for x in ("svg", "png", "pdf"))):
        assert out / name in first
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in first} == first


def test_planning_cells_equal_the_csv_in_docx_and_html(planned):
    out, _ = planned
    expected = table_cells(out, "planning_power")
    assert expected[1:3] == [["Effect 0.3 SD", "", "", "", ""], ["ICC 0.01", "8", "6", ">8", ">8"]]
    document = docx.Document(str(out / "report.docx"))
    assert len(document.tables) == len(PLANNED)
    cells = [[c.text for c in row.cells] for row in document.tables[PLANNED.index(
        "planning_power")].rows]
    assert cells == expected
    parser = HtmlTables()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    assert [len(t) for t in parser.tables] == [len(table_cells(out, n)) for n in PLANNED]
    assert parser.tables[PLANNED.index("planning_power")] == expected
    data = pd.read_csv(out / "tables" / "planning_power_data.csv")
    assert len(data) == 6 * 2 * 2


def test_power_figure_png_is_a_picture(planned):
    from PIL import Image

    out, _ = planned
    image = Image.open(io.BytesIO((out / "figures" / "power_curves.png").read_bytes()))
    assert image.size[0] > image.size[1] > 500
    assert (np.asarray(image.convert("L")) < 128).mean() > 0.01


def test_missing_power_table_is_a_user_error(tmp_path, capsys):
    config = write_flow_trial(tmp_path)
    write_results(load(config), tmp_path / "results", sensitivity=False)
    status = main(["report", "--config", str(config), "--results", str(tmp_path / "results"),
                   "--power", str(tmp_path / "power.csv"), "--out-dir", str(tmp_path / "out")])
    assert status == 2
    assert "power.csv: file not found; run the power stage" in capsys.readouterr().err


def test_numbering_follows_the_tables_before_it(tmp_path):
    config = write_flow_trial(tmp_path)
    write_results(load(config), tmp_path / "results", sensitivity=False)
    fake_power().to_csv(tmp_path / "power.csv", index=False)
    assert main(["report", "--config", str(config), "--results", str(tmp_path / "results"),
                 "--power", str(tmp_path / "power.csv"), "--out-dir", str(tmp_path / "out")]) == 0
    markdown = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "**Table 5. Clusters per arm needed for 80% and 90% power**" in markdown
    assert "*Figure 3. Power of the next trial by clusters per arm" in markdown
