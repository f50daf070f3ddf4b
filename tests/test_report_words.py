"""The trial's own words: a trial of schools and pupils with arms ``Sngl``/``Mxd`` and sex
coded ``F``/``M`` is reported with its configured names and labels, and no document says
"practice" or "patient" (outside the provenance table, which names the input files)."""

from __future__ import annotations

import re
from pathlib import Path

import docx
import pytest
import yaml

from test_report_support import (
    fake_power,
    fake_results,
    flow_config,
    flow_trial,
    load,
    write_results,
)
from trialstats.cli import main
from trialstats.report.consort import consort_counts, flow_boxes
from trialstats.report.figures import favours_labels

WORDS = {
    "title": "Single-sex schooling trial",
    "cluster_name": ["school", "schools"],
    "participant_name": ["pupil", "pupils"],
    "arm_labels": {"Sngl": "single-sex schools", "Mxd": "mixed schools"},
    "value_labels": {"sex": {"F": "Female", "M": "Male"}},
}
FORBIDDEN = re.compile(r"practice|patient", re.I)


def school_trial(root: Path) -> Path:
    practices, patients = flow_trial()
    arms = {"intervention": "Sngl", "control": "Mxd"}
    practices = practices.rename(columns={"practice_id": "school_id"}).replace({"arm": arms})
    patients = patients.rename(columns={"practice_id": "school_id", "patient_id": "pupil_id"})
    patients["sex"] = patients["sex"].map({"female": "F", "male": "M"})
    practices.to_csv(root / "schools.csv", index=False)
    patients.to_csv(root / "pupils.csv", index=False)
    config = flow_config(root / "schools.csv", root / "pupils.csv")
    config["design"] |= {"cluster": "school_id", "patient": "pupil_id", "intervention": "Sngl"}
    config["analysis"]["covariates"] = ["age", "sex"]
    config["report"] |= WORDS
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def school(tmp_path_factory):
    root = tmp_path_factory.mktemp("school")
    config = school_trial(root)
    trial = load(config)
    write_results(trial, root / "results")
    assert main(["missing-data", "--config", str(config), "--data", str(root / "results/data"),
                 "--out-dir", str(root / "results/missing_data")]) == 0
    fake_power().to_csv(root / "power.csv", index=False)
    assert main(["report", "--config", str(config), "--results", str(root / "results"),
                 "--missing-data", str(root / "results/missing_data"),
                 "--power", str(root / "power.csv"),
                 "--out-dir", str(root / "out")]) == 0
    return trial, root / "out"


def _documents(out: Path) -> dict[str, str]:
    """Text of every document and display table, the provenance table cut off."""
    texts = {}
    for stem in ("report", "supplement"):
        for ext in ("html", "md", "tex"):
            text = (out / f"{stem}.{ext}").read_text(encoding="utf-8")
            texts[f"{stem}.{ext}"] = re.split(r"Provenance</h2>|## Provenance|"
                                              r"\\section\*\{Provenance\}", text)[0]
        document = docx.Document(str(out / f"{stem}.docx"))
        paragraphs = [p.text for p in document.paragraphs]
        if "Provenance" in paragraphs:
            paragraphs = paragraphs[:paragraphs.index("Provenance")]
        tables = [c.text for t in document.tables for r in t.rows for c in r.cells
                  if not t.rows[0].cells[0].text == "Item"]
        texts[f"{stem}.docx"] = "\n".join(paragraphs + tables)
    for path in (out / "tables").glob("*.csv"):
        if not path.stem.endswith("_data") and path.stem not in ("provenance", "consort_counts"):
            texts[path.name] = path.read_text(encoding="utf-8")
    return texts


def test_no_document_says_practice_or_patient(school):
    _, out = school
    for name, text in _documents(out).items():
        found = FORBIDDEN.findall(text)
        assert not found, (name, found[:5])


def test_the_trials_words_and_labels_appear(school):
    _, out = school
    texts = _documents(out)
    for name in ("report.html", "report.md", "report.tex", "report.docx"):
        text = texts[name]
        assert "Planning the next trial" in text
        assert WORDS["title"] in text
        for word in ("schools", "pupils", "Single-sex schools", "Mixed schools", "Female",
                     "Male"):
            assert word in text, (name, word)
        assert "Sngl" not in text and "Mxd" not in text, name
    assert "single-sex schools minus mixed schools" in texts["report.md"]
    table1 = texts["table1_baseline.csv"]
    assert "Schools randomised" in table1 and "Pupils per school, median (range)" in table1


def test_flow_diagram_and_forest_plot_use_the_words(school):
    trial, _ = school
    counts = consort_counts(trial.practices, trial.patients, fake_results(trial), trial.config)
    boxes = flow_boxes(counts, trial.config)
    text = "\n".join(line for lines in boxes.values() for line in lines)
    assert not FORBIDDEN.search(text)
    assert "Allocated to single-sex schools" in text and "pupils recruited" in text
    assert "per school: median" in text
    assert favours_labels(trial.config) == ("← favours mixed schools",
                                            "favours single-sex schools →")
