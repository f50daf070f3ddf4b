r"""Multiple imputation of binary and count outcomes: the primary GLMM in each completed dataset,
pooled by Rubin's rules.

Imputation
----------
All configured outcomes at all months are imputed together by the chained equations of
:mod:`trialstats.analysis.chained`; binary columns are drawn from a two-level logistic and count
columns from a two-level Poisson model (:mod:`trialstats.analysis.chained_glmm`).

Counts with an exposure
-----------------------
A count outcome with an ``exposure`` column (one column, the person-time of every follow-up
month's count) is imputed with offset :math:`\log(\text{exposure})` in its imputation
model and analysed with the same offset, as the primary analysis. The rule for patients
without a positive exposure (the data contract allows it only where every follow-up count is
missing): they have no person-time, so no imputed count of theirs can enter a rate, and they
are left out of that outcome's pooled analysis and counted in its ``notes`` (``n_patients`` and
``n_clusters`` are those analysed), exactly as the primary analysis leaves out a patient
without the exposure. Their follow-up counts are still drawn, at the mean observed log
exposure (:func:`~trialstats.analysis.imputation.exposure_offset`), because the chained
equations use every column as a predictor of every other; the notes say so. No exposure is
imputed: that would invent person-time the trial did not record.

Analysis and pooling
--------------------
Each completed dataset *m* is analysed with the primary binary/count model of
:mod:`trialstats.analysis.glmm_rows` (random-intercept GLMM by maximum likelihood, adaptive
Gauss–Hermite quadrature with ``analysis.quadrature_points`` nodes, the imputed baseline value
and the covariates as fixed effects; counts Poisson — the imputation model has no
over-dispersion term). With :math:`\hat Q_m` the log odds ratio or log rate ratio and
:math:`U_m` its squared standard error (joint observed information, as glmer), Rubin's rules
with Barnard–Rubin df (:func:`~trialstats.analysis.imputation.rubin_pool`, as
``mice::pool``) give the pooled estimate; the complete-data df :math:`\nu_{com}` is that of the
primary df method (``analysis.glmm_df_method``, first entry: between-within :math:`J - p_b`,
``residual`` :math:`N - p`, ``z`` infinite, i.e. Rubin's 1987 df). Binary outcomes also get the
marginal risk difference, pooled on its own scale, and the risk ratio, pooled on the log scale
(White, Royston & Wood 2011, *Stat Med* 30:377, sec. 7: pool on the scale where the estimate is
closest to normal), each standardised from the GLMM of that dataset with its delta-method
variance (:mod:`trialstats.analysis.marginal`). Ratios are reported exponentiated with ``se``
that of the log ratio (the contract's ``effect_measure`` rows).

Delta adjustment (missing not at random)
----------------------------------------
For a binary or count follow-up, :math:`\delta` is on the logit (log-rate) scale: the imputed
values of the chosen arm(s) are redrawn from the linear predictors of the last imputation step
shifted by :math:`\delta`, :math:`y = F^{-1}(u; \eta + \delta)` with the same uniforms
(Carpenter & Kenward 2013, *Multiple Imputation and its Application*, sec. 10.2; Leacy,
Floyd, Yates & White 2017, *Am J Epidemiol* 185:304), so :math:`\delta = 0` reproduces the MAR
rows exactly and :math:`e^\delta` is the odds (rate) ratio of the missing against the MAR
imputations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.chained_glmm import GLMM_FAMILIES, draw_values
from trialstats.analysis.glmm import DEFAULT_N_AGQ, fit_glmm, latent_icc
from trialstats.analysis.glmm_likelihood import glmm_data
from trialstats.analysis.glmm_rows import glmm_df, measure_row, measures_of
from trialstats.analysis.imputation import (
    IMPUTATION_COLUMNS,
    ImputedTrial,
    exposure_offset,
    impute_trial,
    multiple_imputation,
    pooled_row,
    rubin_pool,
)
from trialstats.analysis.marginal import marginal_effects
from trialstats.analysis.rows import arms_problem, chosen_outcomes, clusters_per_arm, join_notes
from trialstats.contract import RISK_DIFFERENCE, RISK_RATIO, imputation_label
from trialstats.data.validate import TREATED, outcome_column
from trialstats.errors import TrialstatsError

__all__ = ["glmm_pooled_rows", "imputed_outcome_rows", "redrawn_response"]

# Pooled df below this make no interval worth reporting (as the continuous rows).
_MIN_DF = 1.0


def redrawn_response(trial: ImputedTrial, column: str, delta: float,
                     cells: np.ndarray, family: str) -> np.ndarray:
    """The completed binary or count ``column`` (M, n) with the imputed values of the rows
    ``cells`` (bool, n) redrawn at the linear predictor shifted by ``delta`` (module notes)."""
    k = trial.score_columns.index(column)
    response = trial.completed(column)
    if delta == 0.0 or not cells.any():
        return response
    eta, uniforms = trial.latent[k]
    missing = np.flatnonzero(trial.missing[:, k])
    chosen = cells[missing]
    response[:, missing[chosen]] = draw_values(eta[:, chosen] + delta, uniforms[:, chosen],
                                               family)
    return response


def glmm_pooled_rows(
    trial: ImputedTrial,
    config: dict[str, Any],
    outcome: dict[str, Any],
    month: int,
    *,
    delta: float = 0.0,
    cells: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The primary GLMM fitted to every completed dataset and pooled: the rows of one binary or
    count outcome at one follow-up month.

    Parameters
    ----------
    trial : ImputedTrial
        From :func:`~trialstats.analysis.imputation.impute_trial`.
    config : dict
        The validated configuration (``design``, ``analysis``: ``alpha``, ``glmm_df_method``,
        ``quadrature_points``).
    outcome : dict
        The configured outcome entry (``type`` binary or count).
    month : int
        Follow-up month.
    delta : float
        Shift of the linear predictor of the imputed values of ``cells`` (logit or log scale).
    cells : ndarray of bool, shape (n,), optional
        Patients whose imputed month-``month`` value is redrawn at ``delta``.

    Returns
    -------
    list of dict
        One row per measure of :func:`~trialstats.analysis.glmm_rows.measures_of` (odds ratio,
        risk difference, risk ratio; or rate ratio) with the contract's columns: ``estimate``
        and ``ci_*`` back-transformed, ``se`` on the pooled scale, ``df`` Barnard–Rubin,
        ``var_cluster`` the mean :math:`\\hat\\sigma^2`, ``icc`` the mean latent-scale ICC
        (binary; its CI not computed), ``analysis`` ``"multiple imputation (m=M)"``, ``fmi``
        and ``riv`` of that measure; a row saying why when not estimable.
    """
    design, analysis = config["design"], config["analysis"]
    method = analysis.get("glmm_df_method", ["between-within"])[0]
    n_agq = analysis.get("quadrature_points", DEFAULT_N_AGQ)
    alpha, kind = float(analysis["alpha"]), outcome["type"]
    family = GLMM_FAMILIES[kind]
    frame, name, imputations = trial.frame, outcome["name"], trial.imputations
    exposure = outcome.get("exposure")
    # patients without person-time have no count to analyse (exposure_offset)
    analysed = (np.isfinite(trial.log_exposure[name]) if exposure
                else np.ones(len(frame.y), bool))
    codes = np.unique(frame.cluster_codes[analysed], return_inverse=True)[1]
    base = {"outcome": name, "month": month, "method": method,
            "n_patients": int(analysed.sum()), "n_clusters": int(codes.max()) + 1,
            "sd_baseline": np.nan, "mcid": np.nan, "analysis": imputation_label(imputations)}

    def not_estimable(why: str) -> list[dict[str, Any]]:
        return [{**base, "effect_measure": measure, "converged": None, "notes": why}
                for measure in measures_of(outcome)]

    column = outcome_column(name, month)
    observed = ~trial.missing[:, trial.score_columns.index(column)]
    problem = arms_problem(clusters_per_arm(trial.treated[observed],
                                            frame.cluster_codes[observed]))
    if problem:
        return not_estimable(f"{problem} with an observed month-{month} value; imputation "
                             "cannot stand in for an arm's outcome")
    cells = np.zeros(len(frame.y), bool) if cells is None else cells
    response = redrawn_response(trial, column, delta, cells, family)[:, analysed]
    X = np.array(np.broadcast_to(frame.X, (imputations, *frame.X.shape)))
    if outcome.get("baseline", True):
        X = np.insert(X, 2, trial.completed(outcome_column(name, design["baseline_month"])),
                      axis=2)
    X = X[:, analysed]
    offset = trial.log_exposure[name][analysed] if exposure else None
    arm = frame.columns.index(TREATED)
    shared = bool(np.all(X == X[0]))
    try:  # the M fits in one batched call, with one design or one per imputation
        fit = fit_glmm(glmm_data(response, X[0] if shared else X, codes, family,
                                 offset=offset), n_agq)
    except TrialstatsError as error:
        return not_estimable(f"not estimable: in the imputed datasets, {error}")
    beta, se, sigma = fit.beta, fit.se, fit.sigma
    converged, boundary = fit.converged, fit.boundary
    dfcom = glmm_df(method, response[0], X[0], codes, np.eye(X.shape[-1])[arm])
    estimates = {measures_of(outcome)[0]: (beta[:, arm], se[:, arm] ** 2)}
    if kind == "binary":
        effects = [marginal_effects(_one(fit, m), X[m], arm) for m in range(imputations)]
        estimates[RISK_DIFFERENCE] = (np.array([e["estimate"].iloc[0] for e in effects]),
                                      np.array([e["se"].iloc[0] for e in effects]) ** 2)
        estimates[RISK_RATIO] = (np.log([e["estimate"].iloc[1] for e in effects]),
                                 np.array([e["se"].iloc[1] for e in effects]) ** 2)
    notes = [trial.note, f"family: {'binomial (logit)' if kind == 'binary' else 'Poisson'}",
             f"{n_agq}-node adaptive quadrature",
             "variance components and ICC averaged over imputations; ICC CI not computed"]
    if kind == "count":
        notes.append("Poisson analysis: the imputation model has no over-dispersion term")
    if exposure:
        notes.append(_exposure_note(trial, exposure, name, month, analysed))
    notes.append(frame.exclusion_note())
    if boundary.any():
        notes.append(f"practice variance at 0 in {int(boundary.sum())} of {imputations} "
                     "imputed datasets")
    if not converged.all():
        notes.append(f"GLMM did not converge in {int((~converged).sum())} of {imputations} "
                     "imputed datasets; estimates are unreliable")
    common = {**base, "var_cluster": float(np.mean(sigma**2)), "converged": bool(converged.all())}
    if kind == "binary":
        common.update(var_residual=np.pi**2 / 3, icc=float(np.mean(latent_icc(sigma))),
                      icc_ci_low=np.nan, icc_ci_high=np.nan)
    rows = []
    for measure, (q, u) in estimates.items():
        pooled = rubin_pool(q, u, dfcom)
        estimate, pooled_se, df = float(pooled.estimate), float(pooled.se), float(pooled.df)
        if not (np.isfinite(estimate) and np.isfinite(pooled_se) and pooled_se > 0
                and df >= _MIN_DF):
            rows.append({**common, "effect_measure": measure, "converged": None,
                         "notes": f"not estimable: the pooled fit is degenerate (estimate "
                         f"{estimate:.4g}, SE {pooled_se:.4g} on {df:.4g} df)"})
            continue
        fmi = f"FMI {float(pooled.fmi):.3f}, relative increase in variance {float(pooled.riv):.3f}"
        row = measure_row({**common, "notes": join_notes(notes[0], fmi, *notes[1:])}, outcome,
                          measure, estimate=estimate, se=pooled_se, df=df, alpha=alpha)
        rows.append({**row, "fmi": float(pooled.fmi), "riv": float(pooled.riv)})
    return rows


def _exposure_note(trial: ImputedTrial, exposure: str, name: str, month: int,
                   analysed: np.ndarray) -> str:
    """How a count with an exposure was imputed and analysed, counting the patients left out
    for want of person-time."""
    note = (f"imputed and analysed with offset log({exposure}) (the imputation model's "
            f"offset is the analysis model's)")
    left_out = int((~analysed).sum())
    if not left_out:
        return note
    fill = exposure_offset(trial.log_exposure[name])[1]
    return (f"{note}; {left_out} of the {analysed.size} imputed patients have no positive "
            f"{exposure} (no person-time) and are not analysed: their month-{month} counts "
            f"were imputed at the geometric-mean {exposure} {np.exp(fill):.4g} only as "
            f"predictors of the other imputed columns")


def _one(fit: Any, m: int) -> Any:
    """Imputation ``m``'s fit, from the batched fit of all imputations, as a single fit."""
    return replace(fit, beta=fit.beta[m], se=fit.se[m], sigma=fit.sigma[m], cov=fit.cov[m],
                   loglik=fit.loglik[m], boundary=fit.boundary[m],
                   converged=fit.converged[m],
                   theta=None if fit.theta is None else fit.theta[m])


def imputed_outcome_rows(
    patients: pd.DataFrame,
    config: dict[str, Any],
    outcomes: list[str] | None = None,
    *,
    progress: Callable[[float], None] | None = None,
) -> pd.DataFrame:
    """The ``multiple-imputation`` analysis of every outcome type from one imputation.

    The imputation (``sensitivity.imputations`` and ``seed``) covers every configured outcome
    (:func:`~trialstats.analysis.imputation.impute_trial`); continuous outcomes get the row of
    :func:`~trialstats.analysis.imputation.pooled_row` (``effect_measure`` mean difference),
    binary and count outcomes those of :func:`glmm_pooled_rows`, per follow-up month, in
    configuration order, with the columns of
    :data:`~trialstats.analysis.imputation.IMPUTATION_COLUMNS`.
    """
    settings = config["sensitivity"]
    if all(o.get("type", "continuous") == "continuous" for o in config["outcomes"]):
        # scores only: the imputations analysed one batch at a time (the same rows)
        return multiple_imputation(patients, config, imputations=settings["imputations"],
                                   seed=settings["seed"], outcomes=outcomes, progress=progress)
    trial = impute_trial(patients, config, imputations=settings["imputations"],
                         seed=settings["seed"], progress=progress)
    rows = []
    for outcome in chosen_outcomes(config, outcomes):
        for month in config["design"]["followup_months"]:
            if outcome.get("type", "continuous") == "continuous":
                rows.append(pooled_row(trial, config, outcome, month))
            else:
                rows += glmm_pooled_rows(trial, config, outcome, month)
    return pd.DataFrame(rows, columns=list(IMPUTATION_COLUMNS))
