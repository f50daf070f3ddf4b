"""Clustered permutation test: cvcrand's cptest, Monte Carlo sampling, CI by test inversion.

Reference p-values: ``tests/fixtures/allocation/reference.json`` from
``tests/fixtures/r/make_allocation_fixtures.R`` (cvcrand 0.1.1 ``cptest`` on Dickinson_outcome,
4,800 individuals in 16 counties, with the constrained space shipped in the package, the
vignette's example with documented p = 0.042, and with the l2 space saved by ``cvrall``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trialstats.allocation.constrained import enumerate_allocations, sample_allocations
from trialstats.analysis.design import ModelData
from trialstats.analysis.permutation import (
    permutation_test,
    practice_residuals,
    read_allocation_set,
)
from trialstats.analysis.rows import SENSITIVITY_COLUMNS
from trialstats.analysis.sensitivity import run_analysis
from trialstats.cli import main
from trialstats.config import load_config
from trialstats.data.validate import load_trial
from trialstats.errors import TrialstatsError

FIXTURES = Path(__file__).parent / "fixtures"
ALLOCATION = FIXTURES / "allocation"
REFERENCE = json.loads((ALLOCATION / "reference.json").read_text())["cptest"]


def _dickinson(observed: np.ndarray) -> ModelData:
    """cptest's model: outcome on the five cluster-level covariates, arm left out."""
    out = pd.read_csv(ALLOCATION / "outcome.csv")
    codes = out["county"].to_numpy() - 1
    x = pd.DataFrame({
        "(Intercept)": 1.0, "treated": observed[codes].astype(float),
        "urban": (out["location"] == "Urban").astype(float), "inciis": out["inciis"],
        "uptodate": out["uptodateonimmunizations"], "hispanic": out["hispanic"],
        "income1": (out["incomecat"] == 1).astype(float),
        "income2": (out["incomecat"] == 2).astype(float),
    })
    return ModelData(y=out["outcome"].to_numpy(dtype=float), X=x.to_numpy(dtype=float),
                     columns=tuple(x.columns), cluster_codes=codes,
                     cluster_ids=tuple(str(i) for i in range(1, 17)), excluded={},
                     n_randomised=len(out))


def _space(name: str) -> tuple[np.ndarray, np.ndarray]:
    table = pd.read_csv(ALLOCATION / f"{name}.csv")
    allocations = table.iloc[:, 1:].to_numpy(dtype=bool)
    return allocations, allocations[table.iloc[:, 0].to_numpy() == 1][0]


@pytest.mark.parametrize("space", ["shipped_constrained", "accepted_l2"])
@pytest.mark.parametrize("outcome_type", ["binary", "continuous"])
def test_p_value_equals_cptest(space, outcome_type):
    allocations, observed = _space(space)
    residuals, shift, treated = practice_residuals(_dickinson(observed),
                                                    outcome_type == "binary")
    assert np.array_equal(treated, observed)
    result = permutation_test(residuals, shift, treated, allocations)
    assert result["observed_in_set"] and result["n_allocations"] == 1287
    assert result["p_value"] == pytest.approx(REFERENCE[space][outcome_type]["pvalue"],
                                              abs=1e-12)


def test_vignette_p_value():
    allocations, observed = _space("shipped_constrained")
    residuals, shift, treated = practice_residuals(_dickinson(observed), True)
    assert round(permutation_test(residuals, shift, treated, allocations)["p_value"], 3) == 0.042


def test_sampled_allocations_agree_within_monte_carlo_error():
    _, observed = _space("shipped_constrained")
    residuals, shift, treated = practice_residuals(_dickinson(observed), False)
    exact = permutation_test(residuals, shift, treated, enumerate_allocations(16, 8))
    sample = sample_allocations(16, 8, 3000, np.random.default_rng(11))
    sampled = permutation_test(residuals, shift, treated, sample)
    p = exact["p_value"]
    assert abs(sampled["p_value"] - p) < 4 * np.sqrt(p * (1 - p) / 3000)


def _small_trial(seed: int, effect: float = 0.0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 15, size=10)
    codes = np.repeat(np.arange(10), sizes)
    observed = np.zeros(10, dtype=bool)
    observed[rng.choice(10, 5, replace=False)] = True
    baseline = rng.normal(50, 10, codes.size)
    y = (0.5 * baseline + effect * observed[codes] + rng.normal(0, 3, 10)[codes]
         + rng.normal(0, 8, codes.size))
    return y, baseline, codes, observed


def _brute_force_p(y, baseline, codes, observed, allocations, delta):
    """p(delta) from scratch: refit y - delta*T on the baseline, practice means, count."""
    shifted = y - delta * observed[codes]
    x = np.column_stack([np.ones_like(baseline), baseline])
    residual = shifted - x @ np.linalg.lstsq(x, shifted, rcond=None)[0]
    means = np.array([residual[codes == j].mean() for j in range(10)])

    def stat(a):
        return means[a].mean() - means[~a].mean()

    observed_stat = abs(stat(observed))
    return np.mean([abs(stat(a)) >= observed_stat - 1e-9 for a in allocations])


def test_interval_is_the_inverted_test():
    y, baseline, codes, observed = _small_trial(2, effect=4.0)
    x = np.column_stack([np.ones_like(y), observed[codes], baseline])
    data = ModelData(y=y, X=x, columns=("(Intercept)", "treated", "y_m0"),
                     cluster_codes=codes, cluster_ids=tuple(map(str, range(10))), excluded={},
                     n_randomised=len(y))
    allocations = enumerate_allocations(10, 5)
    result = permutation_test(*practice_residuals(data, False), allocations, alpha=0.1)
    assert result["p_value"] == pytest.approx(
        _brute_force_p(y, baseline, codes, observed, allocations, 0.0))
    low, high = result["ci_low"], result["ci_high"]
    assert low < result["estimate"] < high
    width = high - low
    for bound, outward in ((low, -1), (high, 1)):
        inside = _brute_force_p(y, baseline, codes, observed, allocations,
                                bound - outward * 1e-6 * width)
        outside = _brute_force_p(y, baseline, codes, observed, allocations,
                                 bound + outward * 1e-6 * width)
        assert inside > 0.1 >= outside


def test_separated_logistic_null_model_is_reported():
    codes = np.repeat(np.arange(6), 5)
    x = np.column_stack([np.ones(30), codes < 3, np.arange(30.0)])
    data = ModelData(y=(np.arange(30) > 14).astype(float), X=x,
                     columns=("(Intercept)", "treated", "b"), cluster_codes=codes,
                     cluster_ids=tuple("abcdef"), excluded={}, n_randomised=30)
    with pytest.raises(TrialstatsError, match="did not converge"):
        practice_residuals(data, True)


def test_allocation_set_is_read_by_practice_id(tmp_path):
    path = tmp_path / "accepted.csv"
    pd.DataFrame({"B": [1, 0], "A": [0, 1], "score": [0.1, 0.2]}).to_csv(path, index=False)
    assert read_allocation_set(path, ["A", "B"]).tolist() == [[False, True], [True, False]]
    with pytest.raises(TrialstatsError, match=r"no column for practice.*C"):
        read_allocation_set(path, ["A", "C"])
    pd.DataFrame({"A": [1, 2], "B": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(TrialstatsError, match="column 'A': row 3 is '2', not 0 or 1"):
        read_allocation_set(path, ["A", "B"])


def _config(tmp_path, **design):
    primary = FIXTURES / "primary"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"practices": str(primary / "practices.csv"),
                 "patients": str(primary / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": [12], **design},
        "outcomes": [{"name": "score", "mcid": {"scale": "raw", "value": 3.0}}],
        "analysis": {"covariates": ["age"]},
        "sensitivity": {"analyses": ["permutation-test"]},
    }))
    return path


def test_sensitivity_analysis_over_all_allocations_and_an_allocation_set(tmp_path):
    config = load_config(_config(tmp_path))
    trial = load_trial(config)
    rows = run_analysis("permutation-test", trial.patients, config)
    assert list(rows.columns) == list(SENSITIVITY_COLUMNS)
    (row,) = rows.itertuples()
    assert row.method == "permutation" and row.converged
    assert row.ci_low < row.estimate < row.ci_high and 0 < row.p_value <= 1
    assert "all 3,432 allocations" in row.notes  # 14 practices, 7 per arm
    # the allocation set restricted to the trial's own allocation and its mirror image
    practices = trial.practices
    own = practices["treated"].to_numpy()
    allocation_set = pd.DataFrame([own, 1 - own], columns=practices["practice_id"])
    allocation_set.to_csv(tmp_path / "accepted.csv", index=False)
    config = load_config(_config(tmp_path, allocation_set=str(tmp_path / "accepted.csv")))
    (row,) = run_analysis("permutation-test", trial.patients, config).itertuples()
    assert row.p_value == 1.0
    assert np.isinf(row.ci_low) and np.isinf(row.ci_high)


def test_cli_sensitivity_permutation_test(tmp_path):
    status = main(["sensitivity", "--config", str(_config(tmp_path)), "--out",
                   str(tmp_path / "s.csv")])
    assert status == 0
    table = pd.read_csv(tmp_path / "s.csv")
    assert table["analysis"].str.contains("permutation").all()


def test_accepted_set_of_allocate_is_an_allocation_set(tmp_path):
    primary = FIXTURES / "primary"
    assert main(["allocate", "--practices", str(primary / "practices.csv"), "--balance",
                 "list_size", "--top", "500", "--out", str(tmp_path / "allocation")]) == 0
    accepted = tmp_path / "allocation" / "accepted.csv"
    config = _config(tmp_path, allocation_set=str(accepted))
    assert main(["sensitivity", "--config", str(config), "--out", str(tmp_path / "s.csv")]) == 0
    (row,) = pd.read_csv(tmp_path / "s.csv").itertuples()
    assert f"allocations read from {accepted}" in row.notes
    assert row.notes.endswith(("; 500 allocations", "; 501 allocations"))
