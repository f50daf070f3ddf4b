"""`trialstats sensitivity`: every configured analysis writes rows with the contract's columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from trialstats.cli import main
from trialstats.contract import COLUMNS

FIXTURE = Path(__file__).parent / "fixtures" / "primary"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("sensitivity")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"practices": str(FIXTURE / "practices.csv"),
                 "patients": str(FIXTURE / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": [12]},
        "outcomes": [{"name": "score", "mcid": {"scale": "raw", "value": 3.0}}],
        "analysis": {"covariates": ["age", "condition"]},
        "sensitivity": {"imputations": 3, "seed": 7},
    }))
    assert main(["sensitivity", "--config", str(config), "--out", str(root / "s.csv")]) == 0
    return pd.read_csv(root / "s.csv")


def test_columns_are_the_primary_contract_plus_analysis(table):
    assert set(COLUMNS) | {"analysis"} <= set(table.columns)


def test_every_analysis_contributes_rows(table):
    labels = " | ".join(table["analysis"].unique()).lower()
    for fragment in ["imputation", "repeated", "cluster-level", "gee", "cr2", "subgroup"]:
        assert fragment in labels


def test_rows_are_for_the_configured_outcome_and_month(table):
    assert set(table["outcome"]) == {"score"}
    assert set(table["month"]) == {12}


def test_unknown_analysis_is_a_user_error(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"practices": str(FIXTURE / "practices.csv"),
                 "patients": str(FIXTURE / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": [12]},
        "outcomes": [{"name": "score"}],
    }))
    status = main(["sensitivity", "--config", str(config), "--analysis", "bootstrap",
                   "--out", str(tmp_path / "s.csv")])
    assert status == 2
    assert "unknown sensitivity analysis 'bootstrap'" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_missing_data_command_writes_both_tables(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"practices": str(FIXTURE / "practices.csv"),
                 "patients": str(FIXTURE / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": [12]},
        "outcomes": [{"name": "score"}],
        "analysis": {"covariates": ["age", "condition"]},
    }))
    assert main(["missing-data", "--config", str(config), "--out-dir", str(tmp_path / "md")]) == 0
    completeness = pd.read_csv(tmp_path / "md" / "completeness.csv")
    dropout = pd.read_csv(tmp_path / "md" / "dropout.csv")
    patients = pd.read_csv(FIXTURE / "patients.csv")
    everyone = completeness.query("arm == 'all' and month == 12").iloc[0]
    assert everyone["n_observed"] == patients["score_m12"].notna().sum()
    assert "treated" in set(dropout["term"])
