"""Contract tests of ``trialstats power``: run the real command on tiny inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from trialstats.cli import main
from trialstats.config import load_schema
from trialstats.power.analytic import power_continuous, solve_continuous
from trialstats.power.grid import expand_grid, run_scenarios
from trialstats.simulation.draw import SimulationDesign, simulate_patients

DESIGN = ["--cluster-size", "127", "--cv", "0.6", "--icc", "0.05", "--attrition", "0.27",
          "--baseline-corr", "0.5", "--cluster-autocorr", "0.8"]
KEYS = ["power", "mc_se", "clusters_per_arm", "cluster_size", "effect", "design_effect"]


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_analytic_power_json(capsys):
    out = _json(capsys, ["power", "analytic", "--clusters-per-arm", "22", *DESIGN,
                         "--effect", "0.2", "--json"])
    assert list(out)[:6] == KEYS
    expected = power_continuous(cluster_size=127, icc=0.05, clusters_per_arm=22, effect=0.2,
                                cv=0.6, attrition=0.27, baseline="ancova", rho_c=0.8,
                                rho_s=0.5).iloc[0]
    assert out["power"] == pytest.approx(expected["power"], rel=1e-12)
    assert out["mc_se"] is None
    assert out["design_effect"] == pytest.approx(expected["design_effect"])
    assert (out["clusters_per_arm"], out["cluster_size"], out["effect"]) == (22, 127, 0.2)


def test_analytic_solves_for_the_quantity_left_out(capsys):
    out = _json(capsys, ["power", "analytic", *DESIGN, "--effect", "0.2", "--target-power",
                         "0.9", "--json"])
    expected = solve_continuous(unknown="clusters_per_arm", target_power=0.9, cluster_size=127,
                                icc=0.05, effect=0.2, cv=0.6, attrition=0.27,
                                baseline="ancova", rho_c=0.8, rho_s=0.5).iloc[0]
    assert out["clusters_per_arm"] == expected["clusters_per_arm"] == 20
    assert out["power"] >= 0.9
    out = _json(capsys, ["power", "analytic", "--clusters-per-arm", "22", *DESIGN,
                         "--target-power", "0.8", "--df", "z", "--json"])
    assert out["power"] == pytest.approx(0.8, abs=1e-8) and 0 < out["effect"] < 0.2


@pytest.mark.parametrize("argv, message", [
    (["--clusters-per-arm", "10", "--cluster-size", "20", "--effect", "0.3"], "--icc"),
    (["--cluster-size", "20", "--icc", "0.05", "--target-power", "0.8"], "exactly one"),
    (["--clusters-per-arm", "10", "--cluster-size", "20", "--icc", "0.05", "--effect", "0.3",
      "--baseline-corr", "0.5"], "--cluster-autocorr"),
    (["--clusters-per-arm", "10", "--cluster-size", "20", "--icc", "1.5", "--effect", "0.3"],
     "ICC"),
])
def test_user_errors_exit_2_with_one_message(capsys, argv, message):
    assert main(["power", "analytic", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_simulate_json_is_reproducible_and_writes_a_tidy_row(capsys, tmp_path: Path):
    argv = ["power", "simulate", "--clusters-per-arm", "6", "--cluster-size", "12", "--cv",
            "0.5", "--icc", "0.05", "--effect", "0.5", "--attrition", "0.2", "--baseline-corr",
            "0.5", "--cluster-autocorr", "0.5", "--reps", "200", "--seed", "9", "--json"]
    first = _json(capsys, [*argv, "--out", str(tmp_path / "sim.csv")])
    assert _json(capsys, argv) == first
    assert list(first)[:6] == KEYS
    assert first["mc_se"] == pytest.approx(math.sqrt(first["power"] * (1 - first["power"]) / 200))
    assert 0 <= first["type_i_error"] <= 0.2
    row = pd.read_csv(tmp_path / "sim.csv")
    assert len(row) == 1 and row["method"].iloc[0] == "simulation"
    assert row["power"].iloc[0] == first["power"] and row["seed"].iloc[0] == 9


def test_simulate_solves_clusters_by_bisection(capsys):
    out = _json(capsys, ["power", "simulate", "--cluster-size", "10", "--icc", "0.05",
                         "--effect", "0.6", "--reps", "200", "--seed", "1", "--target-power",
                         "0.8", "--json"])
    assert out["power"] >= 0.8
    smaller = _json(capsys, ["power", "simulate", "--cluster-size", "10", "--icc", "0.05",
                             "--effect", "0.6", "--reps", "200", "--seed", "1",
                             "--clusters-per-arm", str(out["clusters_per_arm"] - 1), "--json"])
    assert smaller["power"] < 0.8


def test_from_a_finished_analysis(capsys, tmp_path: Path):
    design = SimulationDesign(clusters_per_arm=40, cluster_size=40, icc=0.1, effect=0.0,
                              rho_s=0.5, rho_c=0.8)
    data = simulate_patients(design, seed=3, replicate=0)
    (tmp_path / "data").mkdir()
    patients = pd.DataFrame({"practice_id": "P" + data["cluster"].astype(str),
                             "sdm_m0": 50 + 10 * data["y0"], "sdm_m12": 50 + 10 * data["y1"]})
    patients.to_parquet(tmp_path / "data" / "patients.parquet")
    pd.DataFrame({"outcome": ["sdm"], "month": [12], "method": ["kenward-roger"],
                  "var_cluster": [4.0], "var_residual": [76.0], "icc": [0.05],
                  "sd_baseline": [10.0], "mcid": [3.0]}).to_csv(tmp_path / "primary.csv",
                                                                index=False)
    argv = ["power", "analytic", "--from", str(tmp_path), "--outcome", "sdm",
            "--clusters-per-arm", "10", "--cluster-size", "30"]
    assert main([*argv, "--out", str(tmp_path / "plan.csv")]) == 0
    printed = capsys.readouterr().out
    assert "icc = 0.05 from primary.csv" in printed and "MCID" in printed
    row = pd.read_csv(tmp_path / "plan.csv").iloc[0]
    assert row["icc"] == 0.05 and row["effect"] == pytest.approx(0.3)
    assert row["baseline"] == "ancova"
    assert row["rho_s"] == pytest.approx(0.5, abs=0.05)
    assert row["rho_c"] == pytest.approx(0.8, abs=0.15)
    out = _json(capsys, [*argv, "--difference", "2", "--icc", "0.02", "--json"])
    assert out["effect"] == pytest.approx(0.2)  # explicit flags win; 2 / sd_baseline 10
    assert main(["power", "analytic", "--from", str(tmp_path), "--outcome", "eq5d",
                 "--clusters-per-arm", "10", "--cluster-size", "30"]) == 2
    assert "no row for outcome 'eq5d'" in capsys.readouterr().err


def _spec():
    return {
        "methods": ["analytic", "simulation"], "reps": 100, "seed": 5, "alpha": 0.05,
        "df_method": "between-within", "distribution": "t", "baseline": "ancova",
        "min_cluster_size": 2, "generator": "patients",
        "grid": {"clusters_per_arm": [4, 6, 8], "allocation_ratio": [1], "cluster_size": [10],
                 "cv": [0.4], "icc": [0.05], "effect": [0.5], "attrition": [0.2],
                 "rho_s": [0.5], "rho_c": [0.5]},
    }


def test_gather_writes_table_and_figures(capsys, tmp_path: Path):
    spec = _spec()
    scenarios = expand_grid(spec)
    paths = []
    for chunk in range(2):
        part = run_scenarios(scenarios[scenarios["scenario"] % 2 == chunk], spec)
        paths.append(tmp_path / f"chunk{chunk}.csv")
        part.to_csv(paths[-1], index=False)
    argv = ["power", "gather", *map(str, paths), "--out", str(tmp_path / "power.csv"),
            "--figure", str(tmp_path / "power.svg"), "--figure", str(tmp_path / "power.png")]
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "power.csv")
    assert table["scenario"].tolist() == [0, 0, 1, 1, 2, 2]
    assert (tmp_path / "power.svg").stat().st_size > 0 and (tmp_path / "power.png").is_file()
    svg = (tmp_path / "power.svg").read_bytes()
    assert main(argv) == 0
    assert (tmp_path / "power.svg").read_bytes() == svg


@pytest.mark.skipif("power" not in load_schema("config")["properties"],
                    reason="the power: section is not yet in the config schema")
def test_grid_chunks_from_config(capsys, tmp_path: Path, trial_files):
    trial_files.config["power"] = _spec()
    config = trial_files.write()
    outs = []
    for chunk in range(2):
        outs.append(tmp_path / f"c{chunk}.csv")
        assert main(["power", "grid", "--config", str(config), "--chunk", str(chunk),
                     "--n-chunks", "2", "--out", str(outs[-1]), "--quiet"]) == 0
    assert main(["power", "grid", "--config", str(config), "--out", str(tmp_path / "all.csv"),
                 "--quiet"]) == 0
    assert main(["power", "gather", *map(str, outs), "--out", str(tmp_path / "g.csv")]) == 0
    assert (tmp_path / "g.csv").read_bytes() == (tmp_path / "all.csv").read_bytes()
    assert yaml.safe_load(config.read_text())["power"]["reps"] == 100
