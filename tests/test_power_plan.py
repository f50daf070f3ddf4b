"""Planning the next trial from a finished analysis (``trialstats power plan``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trialstats.cli import main
from trialstats.errors import TrialstatsError
from trialstats.power.plan import PLAN_COLUMNS, plan_from_analysis, resolve_inputs
from trialstats.simulation.draw import SimulationDesign, simulate_patients

PRIMARY = pd.DataFrame({
    "outcome": ["sdm", "sdm", "sdm", "eq5d", "eq5d", "energy"],
    "month": [6, 12, 12, 12, 12, 12],
    "method": ["satterthwaite", "satterthwaite", "kenward-roger"] * 2,
    "n_patients": [3000, 2400, 2400, 2500, 2500, 2000],
    "n_clusters": [40, 40, 40, 40, 40, 40],
    "icc": [0.2, 0.05, 0.05, 0.02, 0.02, 0.03],
    "sd_baseline": [20.0, 20.0, 20.0, 0.25, 0.25, 10.0],
    "mcid": [4.0, 4.0, 4.0, 0.074, 0.074, np.nan],
})


def textbook_power(k: int, m: float, icc: float, effect: float, alpha: float = 0.05) -> float:
    """Two-sided noncentral-t power of the unadjusted comparison of two arms of k clusters of
    m patients: design effect 1 + (m - 1) icc, 2k - 2 df (e.g. Hayes & Moulton 2017, ch. 7)."""
    ncp = effect / np.sqrt(2 * (1 + (m - 1) * icc) / (k * m))
    df = 2 * k - 2
    crit = stats.t.isf(alpha / 2, df)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def test_plan_is_the_smallest_number_of_clusters_reaching_the_target():
    table = plan_from_analysis(PRIMARY, None, cluster_size=30, target_power=0.9)
    assert list(table.columns) == list(PLAN_COLUMNS)
    assert list(table["outcome"]) == ["sdm", "eq5d", "energy"]
    assert table["notes"].iloc[-1] == "not planned: outcome 'energy' has no MCID to plan for."
    plan = table.iloc[:2]
    for row in plan.itertuples():
        assert row.month == 12 and row.baseline == "none"
        effect = {"sdm": 4.0 / 20.0, "eq5d": 0.074 / 0.25}[row.outcome]
        assert row.effect == pytest.approx(effect)
        k = row.clusters_per_arm
        assert row.power == pytest.approx(textbook_power(k, 30, row.icc, effect), abs=1e-10)
        assert textbook_power(k, 30, row.icc, effect) >= 0.9 > textbook_power(
            k - 1, 30, row.icc, effect)
    assert plan.loc[0, "icc"] == 0.05  # the latest month, not the month-6 row


def test_plan_defaults_to_the_analysed_cluster_size_and_uses_the_autocorrelations():
    design = SimulationDesign(clusters_per_arm=60, cluster_size=40, icc=0.1, effect=0.0,
                              rho_s=0.5, rho_c=0.8)
    data = simulate_patients(design, seed=4, replicate=0)
    patients = pd.DataFrame({"practice_id": data["cluster"], "sdm_m0": 20 * data["y0"],
                             "sdm_m12": 20 * data["y1"]})
    plan = plan_from_analysis(PRIMARY, patients, outcomes=["sdm"])
    row = plan.iloc[0]
    assert row["cluster_size"] == 2400 / 40
    assert row["baseline"] == "ancova"
    assert row["rho_s"] == pytest.approx(0.5, abs=0.05)
    unadjusted = plan_from_analysis(PRIMARY, None, outcomes=["sdm"])
    assert row["clusters_per_arm"] < unadjusted.loc[0, "clusters_per_arm"]
    with pytest.raises(TrialstatsError, match="no MCID"):
        plan_from_analysis(PRIMARY, None, outcomes=["energy"])


def test_explicit_values_win_over_those_taken():
    taken = {"icc": 0.05, "sd": 20.0, "mcid_effect": 0.2, "rho_s": 0.5, "rho_c": 0.8,
             "notes": ["icc from the analysis"]}
    design = resolve_inputs({"icc": 0.1, "difference": 5.0}, taken, "trial")
    assert design["icc"] == 0.1 and design["effect"] == 0.25 and design["baseline"] == "ancova"
    assert design["notes"][0] == "icc from the analysis"
    assert resolve_inputs({}, taken, "trial")["effect"] == 0.2
    with pytest.raises(TrialstatsError, match="intracluster correlation"):
        resolve_inputs({}, {})


def test_an_outcome_not_estimable_is_a_row_saying_why_unless_named():
    primary = PRIMARY.assign(icc=PRIMARY["icc"].where(PRIMARY["outcome"] != "eq5d"),
                             notes=np.where(PRIMARY["outcome"] == "eq5d",
                                            "not estimable: fewer than two clusters; more", ""))
    plan = plan_from_analysis(primary, None, cluster_size=30, month=12)
    assert list(plan["outcome"]) == ["sdm", "eq5d", "energy"]
    assert plan["clusters_per_arm"].notna().tolist() == [True, False, False]
    assert plan["notes"].iloc[1] == ("not planned: the eq5d month-12 row has no ICC "
                                     "(not estimable: fewer than two clusters).")
    assert plan["month"].tolist() == [12, 12, 12]
    with pytest.raises(TrialstatsError, match="eq5d month-12 row has no ICC"):
        plan_from_analysis(primary, None, outcomes=["eq5d"], cluster_size=30)


def test_plan_command_writes_the_table(tmp_path, capsys):
    primary = tmp_path / "primary.csv"
    PRIMARY.to_csv(primary, index=False)
    out = tmp_path / "plan.csv"
    assert main(["power", "plan", "--results", str(primary), "--cluster-size", "30",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out)
    expected = plan_from_analysis(PRIMARY, None, cluster_size=30, source=str(primary))
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert "clusters per arm" in capsys.readouterr().out
    assert main(["power", "plan", "--results", str(tmp_path / "none.csv"),
                 "--out", str(out)]) == 2
    assert "file not found" in capsys.readouterr().err
