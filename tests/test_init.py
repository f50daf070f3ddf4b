"""``trialstats init``: a new trial's scaffold, and the default results reproduced from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

from trialstats.cli import main
from trialstats.config import load_config

REPO = Path(__file__).resolve().parents[1]
FILES = ("config.yaml", "README.md", "data/practices.csv", "data/patients.csv")


def _key_paths(node, prefix=""):
    """Every key path of a parsed YAML document (list items share their list's path)."""
    paths = set()
    if isinstance(node, dict):
        for key, value in node.items():
            paths |= {f"{prefix}{key}"} | _key_paths(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for item in node:
            paths |= _key_paths(item, prefix)
    return paths


def test_init_writes_config_templates_and_readme(tmp_path, capsys):
    trial = tmp_path / "my_trial"
    assert main(["init", str(trial)]) == 0
    assert sorted(str(p.relative_to(trial)) for p in trial.rglob("*") if p.is_file()) == sorted(
        FILES
    )
    assert "Next: fill in the data" in capsys.readouterr().out

    config = load_config(trial / "config.yaml")
    assert {key: config["data"][key] for key in ("practices", "patients")} == {
        "practices": str(trial / "data" / "practices.csv"),
        "patients": str(trial / "data" / "patients.csv"),
    }
    design = config["design"]
    months = [design["baseline_month"], *design["followup_months"]]
    practices = pd.read_csv(trial / "data" / "practices.csv")
    patients = pd.read_csv(trial / "data" / "patients.csv")
    assert practices.empty and patients.empty
    assert {design["cluster"], design["arm"], design["withdrawn"]} <= set(practices.columns)
    assert {design["patient"], design["cluster"]} <= set(patients.columns)
    outcome_columns = [f"{o['name']}_m{m}" for o in config["outcomes"] for m in months]
    assert outcome_columns == list(patients.columns[-len(outcome_columns):])
    for covariate in config["analysis"]["covariates"]:
        assert covariate in set(practices.columns) ^ set(patients.columns)
    assert f"trialstats validate --config {trial / 'config.yaml'}" in (
        trial / "README.md"
    ).read_text()


def test_init_config_has_the_keys_of_the_default_config(tmp_path):
    """Guard against drift: when config/config.yaml gains a key, so must the scaffold
    (src/trialstats/scaffold/config.yaml.tmpl)."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert main(["init", str(tmp_path / "sms"), "--example", "sms"]) == 0
    sms = yaml.safe_load((tmp_path / "sms" / "config.yaml").read_text())
    assert {k: v for k, v in sms.items() if k != "data"} == {
        k: v for k, v in default.items() if k != "data"
    }
    assert main(["init", str(tmp_path / "starter")]) == 0
    starter = yaml.safe_load((tmp_path / "starter" / "config.yaml").read_text())
    # The starter leaves out what must be the trial's own: the CONSORT screening numbers,
    # outcome ranges, a subgroup and the power-planning assumptions (commented examples).
    own = ("report.consort", "report.labels.", "power", "sensitivity.subgroup", "outcomes.range")
    assert _key_paths(starter) == {
        p for p in _key_paths(default) if not p.startswith(own)
    }


def test_starter_has_nothing_of_the_synthetic_trial(tmp_path):
    """A neutral template: no SMS outcome, covariate, subgroup or planning grid."""
    assert main(["init", str(tmp_path / "starter")]) == 0
    text = (tmp_path / "starter" / "config.yaml").read_text()
    starter = yaml.safe_load(text)
    sms_outcomes = {o["name"] for o in yaml.safe_load(
        (REPO / "config" / "config.yaml").read_text())["outcomes"]}
    assert not {o["name"] for o in starter["outcomes"]} & sms_outcomes
    assert starter["analysis"]["covariates"] == []
    assert "power" not in starter and "subgroup" not in starter["sensitivity"]
    assert "subgroups" not in starter["sensitivity"]["analyses"]
    columns = (tmp_path / "starter" / "data" / "patients.csv").read_text()
    assert "condition" not in columns and "sdm" not in columns


def test_sms_templates_have_the_synthetic_trial_columns(tmp_path):
    assert main(["init", str(tmp_path), "--example", "sms"]) == 0
    for table in ("practices", "patients"):
        template = (tmp_path / "data" / f"{table}.csv").read_text()
        synthetic = (REPO / "data_synthetic" / f"{table}.csv").read_text()
        assert template == synthetic.splitlines(keepends=True)[0]


def test_init_never_overwrites(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "patients.csv").write_text("mine\n")
    assert main(["init", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "data/patients.csv already exists" in error and "never overwrites" in error
    assert (tmp_path / "data" / "patients.csv").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["data", "patients.csv"]


def test_init_into_a_file_is_an_error(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("")
    assert main(["init", str(target)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_synthetic_data_in_a_new_trial_reproduce_the_default_results(tmp_path, monkeypatch):
    """init --example sms, drop in data_synthetic/*.csv, then validate, analyse and report:
    the same primary.csv and report tables as the default run (provenance aside, which
    names the files)."""
    monkeypatch.chdir(REPO)  # the default config's data paths are relative to the repository
    trial = tmp_path / "trial"
    assert main(["init", str(trial), "--example", "sms"]) == 0
    for table in ("practices.csv", "patients.csv"):
        shutil.copy(REPO / "data_synthetic" / table, trial / "data" / table)

    runs = {"default": REPO / "config" / "config.yaml", "init": trial / "config.yaml"}
    for name, config in runs.items():
        results, reports = tmp_path / name / "results", tmp_path / name / "reports"
        steps = (
            ["validate", "--config", str(config), "--out-dir", str(results / "data")],
            ["analyse", "--config", str(config), "--data", str(results / "data"),
             "--out", str(results / "primary.csv")],
            ["report", "--config", str(config), "--results", str(results),
             "--out-dir", str(reports)],
        )
        for step in steps:
            assert main(step) == 0, step
    default, init = tmp_path / "default", tmp_path / "init"
    primary = Path("results", "primary.csv")
    assert (init / primary).read_bytes() == (default / primary).read_bytes()
    tables = sorted(
        path.relative_to(default)
        for path in (default / "reports" / "tables").glob("*.csv")
        if not path.name.startswith("provenance")
    )
    assert tables
    for table in tables:
        assert (init / table).read_bytes() == (default / table).read_bytes(), table


def test_init_from_a_finished_trial_takes_its_planning_grid(tmp_path):
    """`init --from CONFIG`: the power grid comes from the finished trial's own results (the
    schools trial of tests/fixtures/own_trial, its ICC from lmer), never from the SMS grid."""
    import json

    fixture = REPO / "tests" / "fixtures" / "own_trial"
    reference = json.loads((fixture / "reference.json").read_text())["reading"]
    done = tmp_path / "done"
    (done / "data").mkdir(parents=True)
    for name in ("schools.csv", "pupils_wide.csv"):
        shutil.copy(fixture / name, done / "data" / name)
    config = {
        "data": {"practices": "data/schools.csv", "patients": "data/pupils_wide.csv"},
        "design": {"cluster": "school", "patient": "pupil", "arm": "type", "intervention": "Sngl",
                   "baseline_month": 0, "followup_months": [9], "primary_month": 9},
        "outcomes": [{"name": "reading", "primary": True, "mcid": {"scale": "raw", "value": 5}}],
        "analysis": {"covariates": ["sex"]},
    }
    (done / "config.yaml").write_text(yaml.safe_dump(config))
    results = done / "results"
    assert main(["validate", "--config", str(done / "config.yaml"),
                 "--out-dir", str(results / "data")]) == 0
    assert main(["analyse", "--config", str(done / "config.yaml"), "--data",
                 str(results / "data"), "--out", str(results / "primary.csv")]) == 0
    assert main(["init", str(tmp_path / "next"), "--from", str(done / "config.yaml")]) == 0
    grid = load_config(tmp_path / "next" / "config.yaml")["power"]["grid"]
    pupils = pd.read_csv(fixture / "pupils_wide.csv")
    sizes = pupils.groupby("school").size()
    icc = reference["var_cluster"] / (reference["var_cluster"] + reference["var_residual"])
    assert grid["icc"] == [round(icc, 3)]
    assert grid["effect"] == [round(5 / reference["sd_baseline"], 2)]
    assert grid["cluster_size"] == [round(sizes.mean(), 1)]
    assert grid["cv"] == [round(sizes.std() / sizes.mean(), 2)]
    assert grid["attrition"] == [round(pupils["reading_m9"].isna().mean(), 2)]
    assert 8 in grid["clusters_per_arm"]  # 16 schools: 8 per arm
    assert -1 <= grid["rho_s"][0] <= 1 and -1 <= grid["rho_c"][0] <= 1


def test_init_from_a_trial_that_has_not_run(tmp_path, capsys):
    assert main(["init", str(tmp_path / "a")]) == 0
    assert main(["init", str(tmp_path / "b"), "--from", str(tmp_path / "a" / "config.yaml")]) == 2
    assert "run the finished trial first" in capsys.readouterr().err
