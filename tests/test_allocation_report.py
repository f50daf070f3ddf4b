"""The allocation section of the trial report (``trialstats report --allocation DIR``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_report_support import load, write_flow_trial, write_results
from trialstats.cli import main
from trialstats.report.allocation import allocation_section, read_allocation
from trialstats.report.document import FigureFile, Table
from trialstats.report.format import fmt

FIXTURES = Path(__file__).parent / "fixtures" / "allocation"
COVARIATES = ["location", "inciis", "uptodateonimmunizations", "hispanic", "incomecat"]
CATEGORICAL = ["location", "incomecat"]


@pytest.fixture(scope="module")
def allocated(tmp_path_factory):
    """The cvcrand example (Dickinson et al. 2015: 16 counties) allocated by trialstats."""
    out = tmp_path_factory.mktemp("allocation")
    assert main(["allocate", "--practices", str(FIXTURES / "design.csv"), "--id", "county",
                 "--balance", ",".join(COVARIATES), "--categorical", ",".join(CATEGORICAL),
                 "--seed", "12345", "--out", str(out)]) == 0
    return out


def test_section_states_the_method_and_shows_the_balance_and_scores(allocated):
    summary, balance, histogram = read_allocation(allocated)
    # the histogram counts every allocation scored, each accepted one at or below the cut-off
    assert histogram["allocations"].sum() == summary["n_allocations"] == 12870
    accepted = pd.read_csv(allocated / "accepted.csv")["score"]
    below = histogram[histogram["bin_high"] <= summary["cutoff_score"]]["allocations"].sum()
    assert below <= len(accepted) == summary["n_accepted"] == 1287
    section = allocation_section(summary, balance, histogram)
    text, table, figure = section.items
    assert section.heading == "Allocation"
    for fact in ("16 practices", "8 to the intervention", "every one of the 12,870",
                 "best 10%", "1,287 allocations", f"{summary['cutoff_score']:.4g}",
                 f"(score {summary['score']:.4g})", "seed 12345"):
        assert fact in text
    assert isinstance(table, Table) and isinstance(figure, FigureFile)
    # every balance row, rounded from balance.csv (an independent read of the same numbers)
    assert len(table.rows) == len(balance)
    for row, source in zip(table.rows, balance.itertuples(), strict=True):
        assert row[-1] == fmt(source.standardised_difference, 3)
        if source.statistic == "proportion":
            assert row[1] == f"{fmt(100 * source.intervention, 1)}%"
        else:
            assert row[1].startswith(fmt(source.intervention, 2))
    assert np.isclose(balance["n_intervention"].iloc[0], 8)


def test_sequential_method_has_no_scores_figure(tmp_path):
    assert main(["allocate", "--practices", str(FIXTURES / "design.csv"), "--id", "county",
                 "--method", "minimisation", "--balance", "inciis,hispanic",
                 "--out", str(tmp_path)]) == 0
    summary, balance, histogram = read_allocation(tmp_path)
    assert histogram is None
    section = allocation_section(summary, balance, histogram)
    assert [type(i) for i in section.items] == [str, Table]
    assert "minimisation" in section.items[0] and "probability 0.8" in section.items[0]


def test_report_flag_adds_the_section(tmp_path, allocated):
    (tmp_path / "trial").mkdir()
    trial = load(write_flow_trial(tmp_path / "trial"))
    write_results(trial, tmp_path / "results", sensitivity=False)
    config = Path(trial.config["data"]["practices"]).parent / "config.yaml"
    argv = ["report", "--config", str(config), "--results", str(tmp_path / "results")]
    assert main([*argv, "--allocation", str(allocated), "--out-dir", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "Allocation" in markdown and "Table A1. Balance of the allocated practices" in markdown
    assert (out / "figures" / "allocation_scores.svg").stat().st_size > 0
    balance = pd.read_csv(out / "tables" / "allocation_balance.csv", dtype=str)
    assert len(balance) == len(pd.read_csv(allocated / "balance.csv"))
    assert main([*argv, "--allocation", str(tmp_path / "nowhere"),
                 "--out-dir", str(tmp_path / "bad")]) == 2
