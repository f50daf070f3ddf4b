r"""Sensitivity analyses of stepped-wedge, crossover and parallel-baseline trials.

- ``cluster-level``: the cluster-period summary analysis. With :math:`\bar y_{it}` the mean of
  the observed outcomes of cluster :math:`i` in period :math:`t`,

  .. math::

      \bar y_{it} = \beta_0 + \theta X_{it} + \beta_t + u_i + \varepsilon_{it}, \quad
      u_i \sim N(0, \tau^2),\ \varepsilon_{it} \sim N(0, \sigma^2_\varepsilon),

  ``lmer(mean ~ treat + factor(period) + (1 | cluster))`` by exact REML
  (:mod:`trialstats.analysis.reml`), Satterthwaite df. Every cluster-period counts once
  whatever its size, and no assumption is made about individual-level errors or covariates
  (the within-cluster-period variance becomes part of :math:`\sigma^2_\varepsilon`); it is
  the analysis of cluster-period summaries of Thompson et al. (2018, *Stat. Med.* 37:2487)
  with the model-based (not permutation) inference that keeps the primary analysis'
  exchangeable-within-cluster assumption checkable against it.
- ``cr2``: the primary model's fixed part ``y ~ treat + factor(period) + covariates`` by OLS
  with CR2 cluster-robust standard errors and Bell-McCaffrey df (as
  ``clubSandwich::coef_test(lm(...), vcov = "CR2", cluster = cluster, test =
  "Satterthwaite")``): valid whatever the within-cluster correlation (working independence).

The other sensitivity analyses are defined for parallel designs; for a period design they
return one row per outcome saying so (``not estimable: <analysis> is for parallel designs``).
Both analyses above are linear models of the outcome's scale; a binary or count outcome gets a
row in its primary measure (odds ratio, rate ratio) saying why it is not estimated, never a
linear analysis of 0/1 values or counts (whose mean difference would be on another scale than
the GLMM's ratio and its MCID).
Rows carry :data:`~trialstats.contract.SENSITIVITY_COLUMNS`, ``month`` as the primary analysis
(:mod:`trialstats.analysis.period_analysis`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.effects import baseline_sd, mcid_raw
from trialstats.analysis.glmm_rows import GLMM_OUTCOME_TYPES, measures_of
from trialstats.analysis.inference import contrast_test
from trialstats.analysis.period_analysis import period_data
from trialstats.analysis.robust import cr2_test
from trialstats.analysis.rows import chosen_outcomes, fit_or_problem, frame, join_notes, t_row
from trialstats.contract import BELL_MCCAFFREY, CR2, MEAN_DIFFERENCE
from trialstats.data.periods import PERIOD_INDEX, cluster_periods
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

__all__ = ["CLUSTER_PERIOD", "period_sensitivity"]

#: ``analysis`` label of the cluster-period summary analysis.
CLUSTER_PERIOD = "cluster-level (cluster-period means)"


def _common(patients: pd.DataFrame, outcome: dict[str, Any], config: dict[str, Any]) -> dict:
    if outcome.get("type", "continuous") in GLMM_OUTCOME_TYPES:
        return {"outcome": outcome["name"], "month": config["design"]["primary_month"],
                "effect_measure": measures_of(outcome)[0]}
    sd0 = baseline_sd(patients.loc[patients[TREATED] == 0, outcome["name"]])
    return {"outcome": outcome["name"], "month": config["design"]["primary_month"],
            "effect_measure": MEAN_DIFFERENCE, "sd_baseline": sd0,
            "mcid": mcid_raw(outcome.get("mcid"), sd0)}


def _cluster_level(patients: pd.DataFrame, outcome: dict[str, Any],
                   config: dict[str, Any]) -> dict[str, Any]:
    table = cluster_periods(patients, config, outcome["name"]).dropna(subset=["mean"])
    codes, _ = pd.factorize(table[PERIOD_INDEX], sort=True)
    X = np.column_stack([np.ones(len(table)), table[TREATED].to_numpy(dtype=float),
                         (codes[:, None] == np.arange(1, codes.max() + 1)).astype(float)])
    clusters, ids = pd.factorize(table[config["design"]["cluster"]], sort=True)
    base = {**_common(patients, outcome, config), "analysis": CLUSTER_PERIOD,
            "method": "satterthwaite", "n_patients": int(table["n"].sum()),
            "n_clusters": len(ids)}
    means = table["mean"].to_numpy(dtype=float)
    sums, fit, problem = fit_or_problem(means, X, clusters, len(ids))
    if problem:
        return {**base, "converged": False, "notes": problem}
    test = contrast_test(sums, fit, np.eye(X.shape[1])[1], "satterthwaite")
    note = (f"lmer(mean ~ treat + factor(period) + (1 | cluster)) on {len(table)} "
            f"cluster-period means, REML, Satterthwaite df")
    return t_row({**base, "var_cluster": float(fit.var_cluster),
                  "var_residual": float(fit.var_residual), "converged": bool(fit.converged),
                  "notes": note}, estimate=float(test.estimate), se=float(test.se),
                 df=float(test.df), alpha=config["analysis"]["alpha"],
                 higher_is_better=outcome["higher_is_better"])


def _cr2(patients: pd.DataFrame, outcome: dict[str, Any],
         config: dict[str, Any]) -> dict[str, Any]:
    data = period_data(patients, outcome["name"], config)
    base = {**_common(patients, outcome, config), "analysis": CR2, "method": BELL_MCCAFFREY,
            "n_patients": len(data.y), "n_clusters": len(data.cluster_ids)}
    try:
        test = cr2_test(data.y, data.X, data.cluster_codes, data.contrast)
    except TrialstatsError as error:
        return {**base, "converged": False,
                "notes": join_notes(f"not estimable: {error}", data.exclusions)}
    terms = " + ".join(["treat", "factor(period)", *config["analysis"]["covariates"]])
    note = (f"OLS lm(y ~ {terms}) with CR2 cluster-robust SE (working independence) and "
            f"Bell-McCaffrey df")
    return t_row({**base, "converged": True, "notes": join_notes(data.exclusions, note)},
                 estimate=test.estimate, se=test.se, df=test.df,
                 alpha=config["analysis"]["alpha"], higher_is_better=outcome["higher_is_better"])


_ANALYSES = {"cluster-level": _cluster_level, "cr2": _cr2}


def period_sensitivity(
    name: str, patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None
) -> pd.DataFrame:
    """Sensitivity analysis ``name`` of a period design, every chosen outcome.

    Parameters
    ----------
    name : str
        A sensitivity analysis name (``cluster-level`` and ``cr2`` are estimated for
        continuous outcomes; the others, and these two for binary and count outcomes, give a
        not-estimable row).
    patients, config, outcomes
        As :func:`trialstats.analysis.primary.analyse_trial`.

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`, one row per outcome: the
        difference (intervention - control) with its inference, effect size and verdict as
        the primary analysis, ``var_cluster``/``var_residual`` of the cluster-level model
        (NaN for CR2), ``notes`` naming the model.
    """
    rows = []
    for outcome in chosen_outcomes(config, outcomes):
        if name in _ANALYSES and outcome.get("type", "continuous") in GLMM_OUTCOME_TYPES:
            rows.append({**_common(patients, outcome, config), "analysis": name,
                         "converged": False,
                         "notes": f"not estimable: {name} is a linear model of the outcome's "
                                  f"scale, not defined here for a {outcome['type']} outcome; "
                                  f"the primary GLMM gives its {measures_of(outcome)[0]}"})
        elif name in _ANALYSES:
            rows.append(_ANALYSES[name](patients, outcome, config))
        else:
            rows.append({**_common(patients, outcome, config), "analysis": name,
                         "converged": False,
                         "notes": f"not estimable: {name} is for parallel designs"})
    return frame(rows)
