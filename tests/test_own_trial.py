"""Running a user's own trial: `trialstats run` from anywhere, long format, the trial's words.

The trial (tests/fixtures/own_trial, made by tests/fixtures/r/make_own_trial_fixture.R) is not
the synthetic one: 16 schools randomised to `Sngl`/`Mxd`, pupils, months 0 and 9, and its
primary result comes from lme4/lmerTest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from trialstats.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "own_trial"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())
SNAKEFILE = REPO / "src" / "trialstats" / "workflow" / "Snakefile"


def own_config(data_dir: str = "data", long: bool = False) -> dict:
    """The trial's configuration, with data paths relative to the configuration's folder."""
    patients = "pupils_long.csv" if long else "pupils_wide.csv"
    data = {"practices": f"{data_dir}/schools.csv", "patients": f"{data_dir}/{patients}"}
    if long:
        data.update(format="long", month_column="visit_month")
    return {
        "data": data,
        "design": {"cluster": "school", "patient": "pupil", "arm": "type",
                   "intervention": "Sngl", "baseline_month": 0, "followup_months": [9],
                   "primary_month": 9},
        "outcomes": [{"name": "reading", "label": "Reading age", "primary": True,
                      "mcid": {"scale": "raw", "value": 5}},
                     {"name": "attain", "label": "Attainment", "baseline": False,
                      "mcid": {"scale": "standardised", "value": 0.2}}],
        "analysis": {"covariates": ["sex"], "df_method": ["satterthwaite"]},
        "power": {"methods": ["analytic"],
                  "grid": {"clusters_per_arm": [8, 12], "icc": [0.05]}},
        "sensitivity": {"analyses": ["cluster-level", "cr2"], "subgroup": "sex"},
    }


def write_trial(folder: Path, config: dict) -> Path:
    """The fixture's tables in ``folder/data`` and ``config`` as ``folder/config.yaml``."""
    (folder / "data").mkdir(parents=True)
    for name in ("schools.csv", "pupils_wide.csv", "pupils_long.csv"):
        shutil.copy(FIXTURE / name, folder / "data" / name)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`trialstats ARGS` run as a user would, from ``cwd``, with this environment's scripts."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "trialstats", *args], cwd=cwd, env=env, capture_output=True,
        text=True, check=False, timeout=900,
    )


def primary_row(path: Path, outcome: str = "reading") -> pd.Series:
    table = pd.read_csv(path)
    return table[(table["outcome"] == outcome) & (table["method"] == "satterthwaite")].iloc[0]


def assert_matches_lmer(row: pd.Series, reference: dict) -> None:
    assert row["estimate"] == pytest.approx(reference["estimate"], rel=1e-6)
    assert row["se"] == pytest.approx(reference["se"], rel=1e-6)
    assert row["df"] == pytest.approx(reference["df_satterthwaite"], rel=1e-6)
    assert row["n_patients"] == reference["n_patients"]


def test_run_from_another_directory_writes_under_the_config_folder(tmp_path):
    """`trialstats run --config other/config.yaml` from elsewhere: relative data paths, outputs
    under other/, and the primary result equal to lmerTest's."""
    write_trial(tmp_path / "other", own_config())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = cli("run", "--config", "../other/config.yaml", "--cores", "2", cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-4000:]
    other = tmp_path / "other"
    assert_matches_lmer(primary_row(other / "results" / "primary.csv"), REFERENCE["reading"])
    for name in ("report.html", "report.docx", "report.tex", "report.md"):
        assert (other / "reports" / name).stat().st_size > 0
    assert not (elsewhere / "results").exists() and not (elsewhere / "reports").exists()
    html = (other / "reports" / "report.html").read_text()
    assert "Reading age" in html
    assert ("Attainment was measured only at follow-up: adjusted for the covariates alone"
            in (other / "reports" / "report.md").read_text())


def test_run_out_folder_and_long_format_give_identical_results(tmp_path):
    """The same trial in long format gives a byte-identical primary.csv to the wide format."""
    wide = write_trial(tmp_path / "wide", own_config())
    long = write_trial(tmp_path / "long", own_config(long=True))
    for config in (wide, long):
        done = cli("run", "--config", str(config), "--out", str(config.parent / "out"),
                   "--", "results/primary.csv", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-4000:]
    wide_table = (tmp_path / "wide" / "out" / "results" / "primary.csv").read_bytes()
    assert wide_table == (tmp_path / "long" / "out" / "results" / "primary.csv").read_bytes()
    assert_matches_lmer(primary_row(tmp_path / "long" / "out" / "results" / "primary.csv"),
                        REFERENCE["reading"])


def dry_run(*flags: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--dry-run",
         "--cores", "1", "--directory", str(cwd), *flags],
        cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300,
    )


def test_snakemake_configfile_never_plans_jobs_on_the_bundled_config(tmp_path):
    """`snakemake --configfile USER.yaml` from the repository plans every job on USER.yaml."""
    user = write_trial(tmp_path / "mine", own_config())
    done = dry_run("--configfile", str(user), "--printshellcmds", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    planned = done.stdout + done.stderr
    assert str(user) in planned
    assert "config/config.yaml" not in planned.replace(str(user), "")
    assert str(REPO / "data_synthetic") not in planned
    assert str(tmp_path / "mine" / "data" / "schools.csv") in planned


@pytest.mark.parametrize("flags, said", [
    (["--config", "seed=3"], "--config overrides (seed)"),
    (["--configfile", "USER", "REPO"], "exactly one configuration file"),
])
def test_snakemake_refuses_a_mixed_configuration(tmp_path, flags, said):
    user = write_trial(tmp_path / "mine", own_config())
    paths = {"USER": str(user), "REPO": str(REPO / "config" / "config.yaml")}
    flags = [paths.get(f, f) for f in flags]
    if "--configfile" not in flags:
        flags = ["--configfile", str(user), *flags]
    done = dry_run(*flags, cwd=tmp_path)
    assert done.returncode != 0
    said_all = done.stdout + done.stderr
    assert said in said_all
    assert "trialstats run --config" in said_all


def test_deployed_module_runs_the_same_trial(tmp_path):
    """The workflow catalog's convention (`snakedeploy deploy-workflow`): a user folder whose
    Snakefile uses this workflow as a module with its own config gives the same results."""
    user = tmp_path / "deployed"
    (user / "workflow").mkdir(parents=True)
    (user / "config").mkdir()
    config = own_config(data_dir="../data")
    write_trial(user, config)
    (user / "config.yaml").rename(user / "config" / "config.yaml")
    (user / "workflow" / "Snakefile").write_text(
        'configfile: "config/config.yaml"\n\n\n'
        "module trialstats:\n"
        f"    snakefile:\n        {str(SNAKEFILE)!r}\n"
        "    config:\n        config\n\n\n"
        "use rule * from trialstats\n"
    )
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "results/primary.csv"],
        cwd=user, env=env, capture_output=True, text=True, check=False, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert_matches_lmer(primary_row(user / "results" / "primary.csv"), REFERENCE["reading"])


def test_outcome_without_baseline_matches_lmer(tmp_path):
    """`baseline: false`: lmer(attain_m9 ~ treated + sex + (1 | school)), and the standardised
    effect divides by the SD at month 9, said in the notes."""
    write_trial(tmp_path / "t", own_config())
    assert main(["analyse", "--config", str(tmp_path / "t" / "config.yaml"),
                 "--outcome", "attain", "--out", str(tmp_path / "out" / "primary.csv")]) == 0
    row = primary_row(tmp_path / "out" / "primary.csv", "attain")
    assert_matches_lmer(row, REFERENCE["attain"])
    assert row["var_cluster"] == pytest.approx(REFERENCE["attain"]["var_cluster"], rel=1e-5)
    assert row["sd_baseline"] == pytest.approx(REFERENCE["attain"]["sd_followup"], rel=1e-12)
    assert row["effect_size"] == pytest.approx(row["estimate"] / row["sd_baseline"])
    assert "no baseline measurement" in row["notes"] and "SD at month 9" in row["notes"]


def test_sensitivity_analyses_follow_an_outcome_without_baseline(tmp_path):
    """Every sensitivity analysis runs on `baseline: false`; one follow-up month makes the
    repeated-measures model not estimable, reported as such (not as non-convergence)."""
    config = own_config()
    config["sensitivity"]["analyses"] = ["multiple-imputation", "repeated-measures",
                                         "cluster-level", "gee", "cr2", "subgroups"]
    config["sensitivity"]["imputations"] = 3
    path = write_trial(tmp_path / "t", config)
    assert main(["sensitivity", "--config", str(path), "--out",
                 str(tmp_path / "s.csv")]) == 0
    table = pd.read_csv(tmp_path / "s.csv")
    attain = table[table["outcome"] == "attain"]
    assert set(attain["analysis"].str.split(" ").str[0]) >= {
        "multiple", "repeated", "cluster-level", "GEE", "CR2", "subgroup:"}
    estimable = attain[~attain["notes"].str.startswith("not estimable")
                       & ~attain["analysis"].str.contains("interaction")]  # an F test, no estimate
    assert estimable["estimate"].notna().all()
    repeated = table[table["analysis"] == "repeated measures"]
    assert repeated["notes"].str.startswith("not estimable").all()
    assert repeated["converged"].isna().all()


def test_run_refuses_a_bad_config_before_planning(tmp_path, capsys):
    config = own_config()
    config["design"]["primary_month"] = 7
    path = write_trial(tmp_path / "bad", config)
    assert main(["run", "--config", str(path)]) == 2
    assert "primary_month" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "results").exists()


def test_tipping_points_reach_the_report(tmp_path):
    """delta-adjustment with its tipping table, then `report --tipping`: one sentence per
    primary outcome in the main report, and a figure per outcome in the supplement."""
    config = own_config()
    config["sensitivity"].update(analyses=["delta-adjustment"], imputations=3,
                                 delta=[0, -5, -10])
    path = write_trial(tmp_path / "t", config)
    results = tmp_path / "results"
    for argv in (["validate", "--config", str(path), "--out-dir", str(results / "data")],
                 ["analyse", "--config", str(path), "--data", str(results / "data"),
                  "--out", str(results / "primary.csv")],
                 ["sensitivity", "--config", str(path), "--data", str(results / "data"),
                  "--out", str(results / "sensitivity.csv"),
                  "--tipping-out", str(results / "tipping.csv")],
                 ["report", "--config", str(path), "--results", str(results),
                  "--tipping", str(results / "tipping.csv"), "--out-dir", str(tmp_path / "out")]):
        assert main(argv) == 0, argv
    tipping = pd.read_csv(results / "tipping.csv")
    assert set(tipping["outcome"]) == {"reading"}  # the primary outcome only
    main_text = (tmp_path / "out" / "report.md").read_text()
    assert "For Reading age at 9 months (missing at random:" in main_text
    supplement = (tmp_path / "out" / "supplement.md").read_text()
    assert "tipping points" in supplement
    assert "Delta-adjusted imputation, delta = −5" in supplement
    assert (tmp_path / "out" / "figures" / "supplement_tipping_1.svg").is_file()
