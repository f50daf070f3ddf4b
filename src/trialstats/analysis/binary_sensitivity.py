r"""Sensitivity analyses of binary and count outcomes: cluster-level, GEE and CR2.

Both analyse the primary analysis population (:func:`~trialstats.analysis.rows.primary_population`:
follow-up, baseline and covariates observed; counts with their exposure).

Cluster-level analysis (Hayes & Moulton 2017, *Cluster Randomised Trials*, 2nd ed., ch. 9)
-----------------------------------------------------------------------------------------
*Adjusted* (ratio residuals). Stage 1 fits, ignoring arm, the individual-level logistic
(binary) or Poisson (count, offset log exposure) regression of the outcome on the baseline value
and the covariates by maximum likelihood; each practice's observed events :math:`O_j` are
compared with those expected from it, :math:`E_j = \sum_i \hat\mu_{ij}`, and stage 2 compares
:math:`\log(O_j/E_j)` between arms with the pooled-variance two-sample *t* test on
:math:`J - 2` df; :math:`\exp` of the difference and of its limits is the adjusted risk (rate)
ratio. A practice without events has no log ratio residual: the row is then not estimable.

*Unadjusted*. Binary: the difference in mean practice proportions :math:`\bar p_{(1)} -
\bar p_{(0)}` (risk difference) by the same *t* test. Count: the *t* test of the log practice
rates :math:`\log(\sum_i y_{ij} / \sum_i t_{ij})`, exponentiated (rate ratio).

GEE (logit or log link)
-----------------------
The exchangeable GEE of :mod:`trialstats.analysis.gee_glm` on the primary model's columns, its
arm coefficient the population-averaged log odds (rate) ratio with the Mancl-DeRouen and
Kauermann-Carroll corrected SEs and *t* on :math:`J - 2` df, and the Fay-Graubard corrected SE
(bound 0.75) with *t* on Fay & Graubard's :math:`\tilde d_H` df
(:func:`~trialstats.analysis.robust.gee_tests`).

CR2 linear probability model (binary only)
------------------------------------------
Ordinary least squares of the 0/1 outcome on the primary model's columns, whose arm
coefficient is the covariate-adjusted risk difference, with the CR2 cluster-robust variance and
Bell-McCaffrey df of :func:`~trialstats.analysis.robust.cr2_test` (as ``clubSandwich``). It
needs no iterative fitting, so it always exists, and is valid for the risk difference whatever
the within-practice correlation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm

from trialstats.analysis.cluster_level import practice_t_test
from trialstats.analysis.gee_glm import gee_glm
from trialstats.analysis.glmm_rows import measure_row, measures_of
from trialstats.analysis.robust import GEE_METHODS, cr2_test, gee_df_note, gee_tests
from trialstats.analysis.rows import join_notes, primary_population
from trialstats.contract import (
    ADJUSTED,
    BELL_MCCAFFREY,
    CLUSTER_DF,
    CR2,
    RATE_RATIO,
    RISK_DIFFERENCE,
    RISK_RATIO,
    UNADJUSTED,
)
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

__all__ = ["cluster_level_rows", "cr2_rows", "gee_rows"]


def _blank(population, outcome, analysis, method, measure, problem) -> dict[str, Any]:
    return {**population.base, "sd_baseline": np.nan, "mcid": np.nan, "analysis": analysis,
            "method": method, "effect_measure": measure, "converged": False,
            "notes": join_notes(problem, population.exclusions)}


def cluster_level_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any]
) -> list[dict[str, Any]]:
    """The adjusted and unadjusted cluster-level rows of a binary or count outcome."""
    population = primary_population(patients, outcome, month, config)
    data, binary = population.data, outcome["type"] == "binary"
    ratio = RISK_RATIO if binary else RATE_RATIO
    unadjusted = RISK_DIFFERENCE if binary else RATE_RATIO
    if population.problem:
        return [_blank(population, outcome, label, CLUSTER_DF, measure, population.problem)
                for label, measure in ((ADJUSTED, ratio), (UNADJUSTED, unadjusted))]
    arm = data.columns.index(TREATED)
    keep = [k for k in range(len(data.columns)) if k != arm]
    family = sm.families.Binomial() if binary else sm.families.Poisson()
    stage1 = sm.GLM(data.y, data.X[:, keep], family=family, offset=data.offset).fit()
    per = np.bincount(data.cluster_codes, minlength=data.n_clusters)
    treated = np.bincount(data.cluster_codes, data.X[:, arm], minlength=data.n_clusters) / per
    observed = np.bincount(data.cluster_codes, data.y, minlength=data.n_clusters)
    expected = np.bincount(data.cluster_codes, stage1.fittedvalues, minlength=data.n_clusters)
    exposure = np.bincount(data.cluster_codes, np.exp(data.offset), minlength=data.n_clusters)
    base = {**population.base, "sd_baseline": np.nan, "method": CLUSTER_DF, "converged": True}
    alpha = config["analysis"]["alpha"]
    covariates = ", ".join(c for c in data.columns if c not in ("(Intercept)", TREATED))
    model = "logistic" if binary else "Poisson (offset log exposure)"
    rows = []
    if np.any(observed == 0):
        rows.append(_blank(population, outcome, ADJUSTED, CLUSTER_DF, ratio,
                           "not estimable: a practice has no events, so no log ratio residual"))
    else:
        estimate, se, df = practice_t_test(np.log(observed / expected), treated)
        note = (f"t test (J - 2 = {df:.0f} df) of log(observed/expected) events per practice, "
                f"expected from the {model} regression on {covariates} (arm left out)")
        rows.append(measure_row({**base, "analysis": ADJUSTED,
                                 "notes": join_notes(population.exclusions, note)},
                                outcome, ratio, estimate=estimate, se=se, df=df, alpha=alpha))
    if binary:
        values, what = observed / per, "practice proportions"
    elif np.any(observed == 0):
        rows.append(_blank(population, outcome, UNADJUSTED, CLUSTER_DF, unadjusted,
                           "not estimable: a practice has no events, so no log rate"))
        return rows
    else:
        values, what = np.log(observed / exposure), "log practice rates"
    estimate, se, df = practice_t_test(values, treated)
    note = f"t test (J - 2 = {df:.0f} df) of {what}, practices weighted equally"
    rows.append(measure_row({**base, "analysis": UNADJUSTED,
                             "notes": join_notes(population.exclusions, note)},
                            outcome, unadjusted, estimate=estimate, se=se, df=df, alpha=alpha))
    return rows


def gee_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any]
) -> list[dict[str, Any]]:
    """The GEE rows (Mancl-DeRouen, Kauermann-Carroll, Fay-Graubard) of a binary or count
    outcome."""
    population = primary_population(patients, outcome, month, config)
    data, problem, measure = population.data, population.problem, measures_of(outcome)[0]
    binary = outcome["type"] == "binary"
    if not problem:
        try:
            fit = gee_glm(data.y, data.X, data.cluster_codes,
                          "binomial" if binary else "poisson", data.offset)
        except (TrialstatsError, np.linalg.LinAlgError) as error:
            problem = f"not estimable: {error}"
    if problem:
        return [_blank(population, outcome, label, method, measure, problem)
                for label, method in GEE_METHODS.items()]
    arm = data.columns.index(TREATED)
    note = (f"{'logit' if binary else 'log'}-link GEE, exchangeable working correlation "
            f"{fit.alpha:.4g}, scale {fit.scale:.4g}; uncorrected robust SE "
            f"{np.sqrt(fit.vcov_robust[arm, arm]):.4g}"
            + ("" if fit.alpha == fit.alpha_moment else
               f"; the moment estimate of the working correlation ({fit.alpha_moment:.4g}) was "
               "below the bound for a positive-definite matrix; independence working "
               "correlation used")
            + ("" if fit.converged else "; GEE iteration did not converge"))
    return [measure_row({**population.base, "sd_baseline": np.nan, "analysis": label,
                         "method": method, "converged": fit.converged,
                         "notes": join_notes(population.exclusions,
                                             f"{note}; {gee_df_note(method, df)}")},
                        outcome, measure, estimate=float(fit.beta[arm]), se=se, df=df,
                        alpha=config["analysis"]["alpha"])
            for label, method, se, df in gee_tests(fit, arm, data.n_clusters)]


def cr2_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any]
) -> list[dict[str, Any]]:
    """The CR2 linear-probability-model row (risk difference) of a binary outcome; a count
    gets a row saying it is not estimable."""
    population = primary_population(patients, outcome, month, config)
    data, problem = population.data, population.problem
    if outcome["type"] != "binary":
        problem = "not estimable: CR2 (linear probability model) is for binary outcomes"
    if not problem:
        contrast = np.zeros(len(data.columns))
        contrast[data.columns.index(TREATED)] = 1.0
        try:
            test = cr2_test(data.y, data.X, data.cluster_codes, contrast)
        except TrialstatsError as error:
            problem = f"not estimable: {error}"
    if problem:
        return [_blank(population, outcome, CR2, BELL_MCCAFFREY,
                       measures_of(outcome)[0] if outcome["type"] != "binary"
                       else RISK_DIFFERENCE, problem)]
    note = ("linear probability model (OLS of the 0/1 outcome) with CR2 cluster-robust SE and "
            "Bell-McCaffrey (Satterthwaite) df")
    base = {**population.base, "sd_baseline": np.nan, "analysis": CR2,
            "method": BELL_MCCAFFREY, "converged": True,
            "notes": join_notes(population.exclusions, note)}
    return [measure_row(base, outcome, RISK_DIFFERENCE, estimate=test.estimate, se=test.se,
                        df=test.df, alpha=config["analysis"]["alpha"])]
