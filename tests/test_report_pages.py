"""The report on paper: LaTeX compiles clean, Word renders in LibreOffice within the page.

Three trials, rendered from tidy results (the fake results of ``test_report_support``, not a
workflow run): the default run's synthetic trial (9 outcomes), the flow trial (2 outcomes) and
the flow trial widened to 20 outcomes. For each, ``pdflatex`` runs twice on ``report.tex`` and
``supplement.tex`` and must exit 0 with no overfull box wider than 5 pt; the Word files render
to PDF in LibreOffice (the main report in at most 20 pages) and every picture fits the text
block of its section, every table's header row repeats, every row is kept whole and every
caption is in Word's Caption style; every figure is at most 1.4 times as tall as wide.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import docx
import numpy as np
import pandas as pd
import pytest
import yaml
from docx.oxml.ns import qn

from test_report_support import fake_power, flow_config, flow_trial, load, write_results
from trialstats.cli import main
from trialstats.report.tables import CHECK

REPO = Path(__file__).resolve().parents[1]
OVERFULL = re.compile(r"Overfull \\hbox \(([\d.]+)pt too wide\)")
needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
needs_office = pytest.mark.skipif(shutil.which("soffice") is None,
                                  reason="LibreOffice not installed")


def _twenty_outcomes(root: Path) -> Path:
    """The flow trial with 18 more outcomes (shifted copies of ``sdm``), 4 of them primary."""
    practices, patients = flow_trial()
    config = flow_config(root / "practices.csv", root / "patients.csv")
    rng = np.random.default_rng(20)
    for k in range(1, 19):
        for month in (0, 6, 12):
            noise = rng.normal(0, 5, len(patients))
            patients[f"scale{k}_m{month}"] = (patients[f"sdm_m{month}"] + noise).clip(0, 100)
        config["outcomes"].append({
            "name": f"scale{k}", "label": f"Questionnaire scale number {k} (0 to 100)",
            "primary": k <= 3, "range": [0, 100],
            "mcid": {"scale": "standardised", "value": 0.2},
        })
    practices.to_csv(root / "practices.csv", index=False)
    patients.to_csv(root / "patients.csv", index=False)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _two_outcomes(root: Path) -> Path:
    practices, patients = flow_trial()
    practices.to_csv(root / "practices.csv", index=False)
    patients.to_csv(root / "patients.csv", index=False)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(flow_config(root / "practices.csv", root / "patients.csv")))
    return path


TRIALS = {
    "default": lambda root: REPO / "config" / "config.yaml",
    "two": _two_outcomes,
    "twenty": _twenty_outcomes,
}


@pytest.fixture(scope="module", params=sorted(TRIALS))
def rendered(request, tmp_path_factory):
    """The report and supplement of one trial, with the missing-data tables and a power grid."""
    root = tmp_path_factory.mktemp(request.param)
    config = TRIALS[request.param](root)
    results = root / "results"
    write_results(load(config), results)
    assert main(["missing-data", "--config", str(config), "--data", str(results / "data"),
                 "--out-dir", str(results / "missing_data")]) == 0
    fake_power().to_csv(root / "power.csv", index=False)
    assert main(["report", "--config", str(config), "--results", str(results),
                 "--power", str(root / "power.csv"), "--missing-data",
                 str(results / "missing_data"), "--out-dir", str(root / "out")]) == 0
    return request.param, root / "out"


@needs_tex
@pytest.mark.parametrize("stem", ["report", "supplement"])
def test_latex_compiles_twice_without_overflow(rendered, stem):
    _, out = rendered
    for _ in range(2):
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                              f"{stem}.tex"], cwd=out, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stdout[-3000:]
    log = (out / f"{stem}.log").read_text(encoding="latin-1")
    overflow = [float(x) for x in OVERFULL.findall(log)]
    assert max(overflow, default=0.0) <= 5.0, overflow
    assert "LaTeX Error" not in log


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    return int(re.search(r"^Pages:\s+(\d+)", info.stdout, re.M).group(1))


@needs_office
def test_word_renders_within_twenty_pages(rendered, tmp_path):
    _, out = rendered
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",
                    "--convert-to", "pdf", "--outdir", str(tmp_path), str(out / "report.docx"),
                    str(out / "supplement.docx")],
                   capture_output=True, timeout=300, check=True)
    assert 1 <= _pages(tmp_path / "report.pdf") <= 20
    assert _pages(tmp_path / "supplement.pdf") >= 1


def _body_sections(document):
    """Each block-level element of the body with the section (page setup) it belongs to."""
    body = document.element.body
    sections = list(document.sections)
    k = 0
    for element in body.iterchildren():
        yield element, sections[min(k, len(sections) - 1)]
        if element.find(f".//{qn('w:sectPr')}") is not None:
            k += 1


@pytest.mark.parametrize("stem", ["report", "supplement"])
def test_word_tables_pictures_and_captions(rendered, stem):
    _, out = rendered
    document = docx.Document(str(out / f"{stem}.docx"))
    assert document.tables
    for table in document.tables:
        rows = table._tbl.tr_lst
        assert rows[0].trPr.find(qn("w:tblHeader")) is not None
        assert all(r.trPr.find(qn("w:cantSplit")) is not None for r in rows[1:])
    pictures = 0
    for element, section in _body_sections(document):
        width = section.page_width - section.left_margin - section.right_margin
        height = section.page_height - section.top_margin - section.bottom_margin
        if element.tag == qn("w:tbl"):
            grid = element.find(qn("w:tblGrid"))
            total = sum(int(c.get(qn("w:w"))) for c in grid.findall(qn("w:gridCol")))
            assert total * 635 <= width * 1.001   # twips to EMU
        for extent in element.iter(qn("wp:extent")):
            pictures += 1
            assert int(extent.get("cx")) <= width and int(extent.get("cy")) <= height
    assert pictures >= 1
    texts = {p: "".join(t.text for t in p._p.iter(qn("w:t"))) for p in document.paragraphs}
    captions = [p for p, text in texts.items() if re.match(r"^(Table|Figure) S?\d+\. ", text)]
    assert captions
    assert all(p.style.name == "Caption" for p in captions)
    assert all(p._p.find(qn("w:fldSimple")) is not None for p in captions)


def test_every_figure_fits_a_page(rendered):
    _, out = rendered
    from PIL import Image

    for png in (out / "figures").glob("*.png"):
        width, height = Image.open(png).size
        assert height <= 1.4 * width, png.name


def test_supplement_holds_subgroups_missing_data_and_every_sensitivity_row(rendered):
    _, out = rendered
    tables = {p.stem for p in (out / "tables").glob("table_s*.csv")}
    assert {t for t in tables if t.endswith(("completeness", "dropout"))} == {
        "table_s2_completeness", "table_s3_dropout"}
    full = pd.read_csv(out / "tables" / "table_s1_sensitivity_data.csv")
    sensitivity = pd.read_csv(out.parent / "results" / "sensitivity.csv")
    shown = ~full["analysis"].isin(["primary analysis", CHECK])
    assert len(full[shown]) == len(sensitivity)
