"""Clustered permutation test of a count outcome: cptest's recipe with a Poisson null model,
the rate ratio by test inversion.

Reference: ``tests/fixtures/count_permutation/reference.json`` from
``tests/fixtures/r/make_count_permutation_fixture.R`` (seed 20260415; R 4.2.2, cvcrand 0.1.1):
a 12-practice trial (6 per arm, 254 analysed patients) over all 924 allocations; the p-value
of ``cvcrand::cptest`` with its logistic null model replaced by ``family = "poisson"``, the same
statistic with offset log(months) + delta * treated, its root (uniroot) and the first delta with
p <= 0.05 scanning outward from it (bisected to 1e-11).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trialstats.allocation.constrained import enumerate_allocations
from trialstats.analysis.permutation_counts import (
    FARTHEST,
    TOLERANCE,
    count_permutation_test,
)
from trialstats.analysis.rows import primary_population
from trialstats.analysis.sensitivity import run_analysis
from trialstats.cli import main
from trialstats.config import load_config
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "count_permutation"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())
CASES = ("exposure", "no_exposure")


def _write_config(folder: Path, case: str, **design) -> Path:
    """A trial folder of its own: the fixture's tables under data/, a config beside them with
    relative paths, the count with (``exposure``) or without an exposure offset."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for name in ("practices.csv", "patients.csv"):
        shutil.copy(FIXTURE / name, folder / "data" / name)
    outcome = {"name": "visits", "label": "GP consultations", "type": "count",
               "higher_is_better": False, "mcid": {"scale": "rate-ratio", "value": 1.2}}
    if case == "exposure":
        outcome["exposure"] = "months"
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"practices": "data/practices.csv", "patients": "data/patients.csv"},
        "design": {"intervention": "intervention", "followup_months": [12], **design},
        "outcomes": [outcome],
        "analysis": {"covariates": ["age"]},
        "sensitivity": {"analyses": ["permutation-test"]},
    }))
    return path


def _trial(tmp_path, case, **design):
    config = load_config(_write_config(tmp_path / case, case, **design))
    return load_trial(config).patients, config


def _assert_matches_r(row, case):
    ref = REFERENCE["cases"][case]
    assert row.effect_measure == "rate ratio" and row.method == "permutation"
    assert row.n_patients == REFERENCE["n_patients"] and row.n_clusters == 12
    assert row.p_value == pytest.approx(ref["p_value"], abs=1e-12)
    assert np.log(row.estimate) == pytest.approx(ref["log_rate_ratio"], abs=1e-9)
    # Bounds are jump points of a step function, found to TOLERANCE here and 1e-11 in R, and
    # moved by up to ~1e-9 by the 1e-9 relative tie tolerance of the p-value.
    assert np.log([row.ci_low, row.ci_high]) == pytest.approx(ref["log_ci"], abs=1e-8)


@pytest.mark.parametrize("case", CASES)
def test_rows_match_cptest_with_a_poisson_null_model(tmp_path, case):
    patients, config = _trial(tmp_path, case)
    (row,) = run_analysis("permutation-test", patients, config).itertuples()
    _assert_matches_r(row, case)
    assert "all 924 allocations" in row.notes and "excluded 16 of 270 patients" in row.notes
    assert ("offset log(months)" in row.notes) == (case == "exposure")
    assert np.isnan(row.se) and np.isnan(row.df) and np.isnan(row.effect_size)
    assert row.mcid == 1.2 and row.mcid_verdict == "inconclusive"  # 0.51-0.90 crosses 1/1.2
    # the same allocations read from the cptest-layout file of the R script
    patients, config = _trial(tmp_path, case, allocation_set=str(FIXTURE / "allocations.csv"))
    (again,) = run_analysis("permutation-test", patients, config).itertuples()
    _assert_matches_r(again, case)
    assert "allocations read from" in again.notes


@pytest.mark.parametrize("case", CASES)
def test_p_value_of_each_hypothesised_rate_ratio_matches_r(tmp_path, case):
    patients, config = _trial(tmp_path, case)
    data = primary_population(patients, config["outcomes"][0], 12, config).data
    result = count_permutation_test(data, enumerate_allocations(12, 6))
    ref = REFERENCE["cases"][case]
    assert [result["p_at"](delta) for delta in ref["grid"]] == pytest.approx(ref["grid_p"],
                                                                             abs=1e-12)


def _poisson_newton(y, X, offset):
    """Poisson maximum likelihood by plain Newton steps (independent of statsmodels)."""
    beta = np.zeros(X.shape[1])
    beta[0] = np.log(y.mean()) - offset.mean()
    for _ in range(100):
        mu = np.exp(X @ beta + offset)
        step = np.linalg.solve(X.T @ (mu[:, None] * X), X.T @ (y - mu))
        beta += step
        if np.max(np.abs(step)) < 1e-13:
            break
    return np.exp(X @ beta + offset)


def _brute_force_p(data, allocations, delta):
    """p(delta) from scratch: refit with offset + delta * arm, practice means, count."""
    arm = data.X[:, 1]
    mu = _poisson_newton(data.y, np.delete(data.X, 1, axis=1), data.offset + delta * arm)
    means = np.array([(data.y - mu)[data.cluster_codes == j].mean()
                      for j in range(data.n_clusters)])
    observed = np.array([arm[data.cluster_codes == j][0] == 1 for j in range(data.n_clusters)])

    def stat(a):
        return means[a].mean() - means[~a].mean()

    reference = abs(stat(observed))
    return np.mean([abs(stat(a)) >= reference for a in allocations])


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_interval_is_the_inverted_test(tmp_path, alpha):
    patients, config = _trial(tmp_path, "exposure")
    data = primary_population(patients, config["outcomes"][0], 12, config).data
    allocations = enumerate_allocations(12, 6)
    result = count_permutation_test(data, allocations, alpha=alpha)
    low, high, estimate = result["ci_low"], result["ci_high"], result["estimate"]
    assert low < estimate < high
    assert _brute_force_p(data, allocations, estimate) == 1.0
    assert _brute_force_p(data, allocations, 0.0) == pytest.approx(result["p_value"])
    for bound, outward in ((low, -1), (high, 1)):
        # the defining property at the bisection tolerance, on the test's own p(delta) ...
        inside, outside = (result["p_at"](bound + side * outward * 2 * TOLERANCE)
                           for side in (-1, 1))
        assert inside > alpha >= outside
        # ... and from scratch, beyond the ~1e-9 the p-value's tie tolerance moves a jump
        inside, outside = (_brute_force_p(data, allocations, bound + side * outward * 1e-8)
                           for side in (-1, 1))
        assert inside > alpha >= outside


def test_cli_from_another_directory_with_and_without_exposure(tmp_path, monkeypatch):
    for case in CASES:
        _write_config(tmp_path / "other" / case, case)
    monkeypatch.chdir(tmp_path)
    for case in CASES:
        out = tmp_path / f"{case}.csv"
        assert main(["sensitivity", "--config", f"other/{case}/config.yaml", "--analysis",
                     "permutation-test", "--out", str(out)]) == 0
        (row,) = pd.read_csv(out).itertuples()
        _assert_matches_r(row, case)


def test_practice_with_zero_exposure_is_refused_with_its_rows(tmp_path, capsys):
    path = _write_config(tmp_path, "exposure")
    patients = pd.read_csv(tmp_path / "data" / "patients.csv")
    patients.loc[patients["practice_id"] == "GP03", "months"] = 0
    patients.to_csv(tmp_path / "data" / "patients.csv", index=False)
    assert main(["sensitivity", "--config", str(path), "--analysis", "permutation-test",
                 "--out", str(tmp_path / "s.csv")]) == 2
    message = capsys.readouterr().err
    assert "patients.csv, column 'months'" in message and "must be a positive number" in message
    assert "rows 51, 52" in message and "Traceback" not in message
    assert not (tmp_path / "s.csv").exists()


def test_an_arm_without_events_is_not_estimable(tmp_path):
    patients, config = _trial(tmp_path, "exposure")
    patients = patients.copy()
    patients.loc[patients["treated"] == 1, "visits_m12"] = 0.0
    (row,) = run_analysis("permutation-test", patients, config).itertuples()
    assert row.notes.startswith("not estimable: no events in the intervention arm")
    assert np.isnan(row.estimate) and row.converged is None


def test_too_few_allocations_give_an_unbounded_interval(tmp_path):
    patients, config = _trial(tmp_path, "no_exposure")
    own = pd.read_csv(FIXTURE / "practices.csv")["arm"].eq("intervention").astype(int)
    ids = pd.read_csv(FIXTURE / "practices.csv")["practice_id"]
    pd.DataFrame([own.to_numpy(), 1 - own.to_numpy()], columns=ids).to_csv(
        tmp_path / "two.csv", index=False)
    config = {**config, "design": {**config["design"], "allocation_set": str(tmp_path / "two.csv")}}
    (row,) = run_analysis("permutation-test", patients, config).itertuples()
    assert row.p_value == 1.0 and row.ci_low == 0.0 and np.isinf(row.ci_high)
    assert f"exp(+-{FARTHEST:g})" in row.notes and "; 2 allocations" in row.notes


def test_binary_rows_match_cptest_and_its_inversion():
    """The binary row against cvcrand's cptest(outcometype = "binary") over all 3,432
    allocations of the binary fixture trial, and the risk difference and its interval by the
    same statistic inverted in R (tests/fixtures/r/make_binary_permutation_fixture.R)."""
    folder = Path(__file__).parent / "fixtures" / "binary_trial"
    reference = json.loads((folder / "permutation_reference.json").read_text())
    config = load_config(folder / "config.yaml")
    rows = run_analysis("permutation-test", load_trial(config).patients, config)
    binary, count, continuous = (rows[rows.outcome == name].iloc[0]
                                 for name in ("admitted", "visits", "qol"))
    assert binary.effect_measure == "risk difference" and binary.converged
    assert (binary.n_patients, binary.n_clusters) == (reference["n_patients"],
                                                      reference["n_clusters"])
    assert binary.p_value == pytest.approx(reference["p_value"], abs=1e-12)
    assert round(binary.p_value, 4) == reference["cptest_pvalue"]
    assert binary.estimate == pytest.approx(reference["estimate"], abs=1e-10)
    assert binary.ci_low == pytest.approx(reference["ci_low"], abs=1e-7)
    assert binary.ci_high == pytest.approx(reference["ci_high"], abs=1e-7)
    assert f"{reference['n_allocations']:,} allocations" in binary.notes
    assert "logistic regression" in binary.notes
    # the MCID is a risk difference of 0.05: the interval (-0.13, 0.09) spans it
    assert binary.mcid == 0.05 and binary.mcid_verdict == "inconclusive"
    assert count.effect_measure == "rate ratio" and 0 < count.p_value <= 1
    assert count.ci_low < count.estimate < count.ci_high
    assert continuous.effect_measure == "mean difference" and continuous.converged
