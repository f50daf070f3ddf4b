"""Repeated-measures analysis of binary and count outcomes, through ``run_analysis``.

Reference: tests/fixtures/r/make_binary_repeated_fixture.R (seed 20261201; blocks
``repeated_<outcome>`` of tests/fixtures/binary_repeated/reference.json): ``glmer(y ~ treated *
month + y0 + age (+ offset(log(months))) + (1 | practice_id/patient_id), nAGQ = 1)`` (Laplace,
the only choice lme4 has for nested random effects), the arm effect per month ``L %*% fixef``
with its SE from numDeriv's Hessian of glmer's deviance. The default fit (15 x 15 nested
adaptive quadrature) is checked against brute-force integration in tests/test_glmm_nested.py.
The trial: 10 practices of 3 to 90 patients, a binary and a count outcome at 6 and 12 months.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from trialstats.analysis.sensitivity import run_analysis
from trialstats.config import load_config
from trialstats.contract import REPEATED_MEASURES, SENSITIVITY_COLUMNS
from trialstats.data.validate import load_trial

FIXTURE = Path(__file__).parent / "fixtures" / "binary_repeated"
REFERENCE = json.loads((FIXTURE / "reference.json").read_text())
N_CLUSTERS = 10


@pytest.fixture(scope="module")
def trial():
    config = load_config(FIXTURE / "config.yaml")
    return load_trial(config).patients, config


def _config(config, **analysis):
    return {**config, "analysis": {**config["analysis"], **analysis}}


@pytest.fixture(scope="module")
def laplace(trial):
    patients, config = trial
    return run_analysis("repeated-measures", patients,
                        _config(config, quadrature_points=1, glmm_df_method=["between-within",
                                                                              "z"]))


@pytest.mark.parametrize(("outcome", "measure"), [("admitted", "odds ratio"),
                                                  ("visits", "rate ratio")])
def test_laplace_rows_match_glmer(laplace, outcome, measure):
    ref = REFERENCE[f"repeated_{outcome}"]
    part = laplace[laplace.outcome == outcome]
    assert list(part.columns) == list(SENSITIVITY_COLUMNS)
    assert list(zip(part.month, part.method, strict=True)) == [
        (6, "between-within"), (6, "z"), (12, "between-within"), (12, "z")]
    assert (part.analysis == REPEATED_MEASURES).all() and (part.effect_measure == measure).all()
    assert (part.n_patients == ref["n_patients"]).all() and (part.n_clusters == 10).all()
    assert part.converged.all()
    assert part.var_cluster.iloc[0] == pytest.approx(ref["sigma_practice"] ** 2, rel=1e-4,
                                                     abs=1e-6)
    for k, month in enumerate([6, 12]):
        bw = part[(part.month == month) & (part.method == "between-within")].iloc[0]
        z = part[(part.month == month) & (part.method == "z")].iloc[0]
        assert np.log(bw.estimate) == pytest.approx(ref["estimate"][k], rel=1e-5)
        assert bw.se == pytest.approx(ref["se"][k], rel=1e-4)
        assert bw.df == N_CLUSTERS - 2  # the contrast involves the practice-level arm column
        assert bw.p_value == pytest.approx(
            2 * stats.t.sf(abs(ref["estimate"][k] / ref["se"][k]), N_CLUSTERS - 2), rel=1e-3)
        assert np.isnan(z.df)
        assert [z.ci_low, z.ci_high] == pytest.approx(
            np.exp(ref["estimate"][k] + np.array([-1, 1]) * 1.959963984540054 * ref["se"][k]),
            rel=1e-4)
    notes = part.notes.iloc[0]
    counts = ref["n_per_month"]
    assert f"{ref['n_obs']:,} observations (month 6: {counts[0]}, month 12: {counts[1]})" in notes
    assert "Laplace approximation (as glmer nAGQ = 1)" in notes
    if outcome == "admitted":
        within = ref["sigma_patient"] ** 2 + np.pi**2 / 3
        assert part.var_residual.iloc[0] == pytest.approx(within, rel=1e-4)
    else:
        assert part.var_residual.isna().all() and part.icc.isna().all()
        assert "Poisson" in notes


def test_default_quadrature_rows(trial):
    patients, config = trial
    table = run_analysis("repeated-measures", patients, config, ["admitted"])
    assert len(table) == 2 and table.converged.all()
    assert "nested adaptive quadrature, 15 x 15 nodes" in table.notes.iloc[0]
    laplace = REFERENCE["repeated_admitted"]
    # 15 x 15 nodes move the patient SD well away from glmer's Laplace value (see glmm_nested)
    assert table.var_residual.iloc[0] - np.pi**2 / 3 > 1.2 * laplace["sigma_patient"] ** 2
    assert np.isfinite(table[["estimate", "se", "ci_low", "ci_high", "p_value"]]).all().all()


@pytest.mark.parametrize("kind", ["one follow-up month", "no events", "one practice per arm",
                                  "no events in an arm"])
def test_degenerate_trials_give_rows_with_a_reason(trial, kind):
    patients, config = trial
    config = _config(config, quadrature_points=1)
    patients = patients.copy()
    if kind == "one follow-up month":
        config = {**config, "design": {**config["design"], "followup_months": [12]}}
    elif kind == "no events":
        patients[["admitted_m6", "admitted_m12"]] *= 0
    elif kind == "one practice per arm":
        keep = patients.practice_id.isin(["GP01", "GP02", "GP03", "GP04", "GP05", "GP06"])
        arms = patients[keep].groupby("practice_id").treated.first()
        first = [arms[arms == 1].index[0], arms[arms == 0].index[0]]
        patients.loc[~patients.practice_id.isin(first), ["admitted_m6", "admitted_m12"]] = np.nan
    else:
        patients.loc[patients.treated == 1, ["admitted_m6", "admitted_m12"]] *= 0
    table = run_analysis("repeated-measures", patients, config, ["admitted"])
    assert len(table) == len(config["design"]["followup_months"])
    if kind == "no events in an arm":
        # separation: the log odds ratio drifts to minus infinity; reported, never hidden
        assert not table.converged.any() and (table.estimate < 1e-6).all()
        assert table.notes.str.contains("GLMM fit did not converge").all()
        return
    assert table.notes.str.startswith("not estimable: ").all()
    assert table.converged.isna().all() and table.estimate.isna().all()
    reason = {"one follow-up month": "at least two follow-up months",
              "no events": "every analysed observation has 0",
              "one practice per arm": "fewer than two clusters"}[kind]
    assert reason in table.notes.iloc[0]
