r"""Binary and count outcomes of stepped-wedge, crossover and parallel-baseline trials: the
GLMM with cluster and cluster-period random intercepts.

Model (cross-sectional; the GLMM of Hussey & Hughes 2007, *Contemp. Clin. Trials* 28:182,
with the cluster-period intercept of the nested-exchangeable model reviewed by Li, Hughes,
Hemming, Taljaard, Melnick & Heagerty 2021, *Stat. Methods Med. Res.* 30:612), for participant
:math:`k` of cluster :math:`i` in period :math:`t`:

.. math::

    g\{E(y_{itk} \mid u_i, v_{it})\} = \beta_0 + \theta X_{it} + \beta_t + x_{itk}'\gamma
        + o_{itk} + u_i + v_{it}, \quad u_i \sim N(0, \tau^2),\ v_{it} \sim N(0, \gamma^2),

``glmer(y ~ treat + factor(period) + covariates + (1 | cluster) + (1 | cluster:period))``:
logit link and Bernoulli :math:`y` (binary), log link with offset :math:`o_{itk} =
\log(\text{exposure})` and Poisson :math:`y` (count; :math:`o = 0` without an ``exposure``
column). The design and the population are those of the linear period model
(:func:`~trialstats.analysis.period_analysis.period_data`: participants with the outcome,
every covariate and the exposure; ``analysis.time_on_treatment`` replaces :math:`\theta X_{it}`
by exposure-time effects whose mean is reported). The cluster-periods are the inner level of
the nested GLMM of :mod:`trialstats.analysis.glmm_nested`, fitted by maximum likelihood with
``analysis.quadrature_points`` adaptive Gauss-Hermite nodes per dimension (1: the Laplace
approximation, glmer's ``nAGQ = 1``, the only choice lme4 offers with two random effects).

Rows (:func:`period_glmm_rows`), one per ``analysis.glmm_df_method`` and measure, as the
parallel GLMM rows (:mod:`trialstats.analysis.glmm_rows`):

* the odds ratio (binary) or rate ratio (count) :math:`e^{L\hat\beta}` with the SE of its log
  from the inverse observed information over :math:`(\beta, \tau, \gamma)` jointly (as glmer's
  ``vcov``);
* binary outcomes with a treatment indicator also get the marginal risk difference and risk
  ratio standardised over the analysed participants (:mod:`trialstats.analysis.marginal`):
  since :math:`u_i + v_{it} \sim N(0, \tau^2 + \gamma^2)`, the marginal risk of a participant
  is that of the one-intercept model with :math:`\sigma = (\tau^2 + \gamma^2)^{1/2}`, and the
  delta method carries the uncertainty of :math:`(\hat\tau, \hat\gamma)` through
  :math:`\partial\sigma/\partial\tau = \tau/\sigma`, :math:`\partial\sigma/\partial\gamma =
  \gamma/\sigma`. With exposure-time effects there is no single treatment column to set, so
  the notes say the marginal measures are not given.

``var_cluster`` is :math:`\tau^2 + \gamma^2` (as the linear period rows: the between-cluster
variance within a period) on the link scale; binary: ``var_residual`` :math:`\pi^2/3`, ``icc``
the latent-scale :math:`(\tau^2 + \gamma^2)/(\tau^2 + \gamma^2 + \pi^2/3)` (no interval);
counts: neither. ``notes`` give :math:`\tau^2`, :math:`\gamma^2` and the cluster autocorrelation
:math:`\mathrm{CAC} = \tau^2/(\tau^2 + \gamma^2)`, boundary fits and the quadrature. A
variance estimated at 0 is a boundary fit reported as such, the model is kept (as the linear
period analysis does): with :math:`\hat\gamma = 0` the fit is that of the model with the
cluster intercept only. Counts are Poisson: the cluster-period intercept takes up
over-dispersion between cluster-periods, and there is no nested negative binomial (the notes
say so).

Reference distribution (``analysis.glmm_df_method``): ``between-within`` (default) a *t* on
:math:`J` minus the columns of intercept, treatment (or exposure times) and periods: the
between-within rule the parallel GLMM rows use (Li & Redden 2015, *BMC Med. Res. Methodol.*
15:38), counted as the linear period model and SteppedPower count it for period designs,
where the treatment varies within clusters and so is not a cluster-level column; ``z`` Wald
normal; ``residual`` *t* on :math:`N - p`. ``sd_baseline`` and the standardised effect are
empty; an MCID judges the row of its own measure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.glmm import DEFAULT_N_AGQ, GlmmFit, latent_icc
from trialstats.analysis.glmm_nested import NestedFit, fit_nested_glmm
from trialstats.analysis.glmm_nested_likelihood import nested_data
from trialstats.analysis.glmm_rows import (
    marginal_rows,
    measure_row,
    measures_of,
    observed_note,
)
from trialstats.analysis.period_analysis import PeriodData, design_df, period_data
from trialstats.analysis.rows import join_notes
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

__all__ = ["period_glmm_note", "period_glmm_rows"]


def period_glmm_note(config: dict[str, Any], outcome: dict[str, Any]) -> str:
    """The fitted GLMM in lme4 notation, for ``notes`` and the report."""
    analysis = config["analysis"]
    effect = "factor(exposure_time)" if analysis["time_on_treatment"] else "treat"
    terms = [effect, "factor(period)", *analysis["covariates"]]
    if outcome.get("exposure"):
        terms.append(f"offset(log({outcome['exposure']}))")
    family = "binomial" if outcome["type"] == "binary" else "poisson"
    n_agq = analysis.get("quadrature_points", DEFAULT_N_AGQ)
    fit = ("Laplace approximation (nAGQ = 1)" if n_agq == 1 else
           f"nested adaptive quadrature, {n_agq} x {n_agq} nodes per cluster and cluster-period")
    return (f"{config['design']['type']}: glmer(y ~ {' + '.join(terms)} + (1 | cluster) + "
            f"(1 | cluster:period), family = {family}), maximum likelihood, {fit}"
            + (", time-averaged effect of exposure times" if analysis["time_on_treatment"]
               else ""))


def _fit(data: PeriodData, kind: str, n_agq: int) -> tuple[NestedFit | None, str]:
    """The nested fit, or why the model cannot be fitted ("not estimable: ...")."""
    if len(data.y) == 0 or np.ptp(data.X[:, 1]) == 0:
        return None, "not estimable: no comparison of intervention and control periods"
    if np.ptp(data.y) == 0:
        return None, f"not estimable: every analysed participant has {data.y[0]:g} as the outcome"
    cluster_period = data.cluster_codes * (int(data.period_codes.max()) + 1) + data.period_codes
    try:
        nested = nested_data(data.y, data.X, data.cluster_codes, cluster_period,
                             "binomial" if kind == "binary" else "poisson", offset=data.offset)
        return fit_nested_glmm(nested, n_agq), ""
    except TrialstatsError as error:
        return None, f"not estimable: {error}"


def _total_sd_fit(fit: NestedFit) -> GlmmFit:
    """The fit as a one-intercept binomial fit with :math:`\\sigma = (\\tau^2 +
    \\gamma^2)^{1/2}` and the covariance of :math:`(\\beta, \\sigma)` by the delta method (the
    marginal risks depend on the two SDs through :math:`\\sigma` only)."""
    p = fit.beta.shape[0]
    sds = np.array([fit.sigma_practice, fit.sigma_patient])
    sigma = float(np.hypot(*sds))
    free = np.r_[np.ones(p, bool), ~np.asarray(fit.boundary)]
    jacobian = np.zeros((p + 1, p + 2))
    jacobian[:p, :p] = np.eye(p)
    if sigma > 0:
        jacobian[p, p:] = sds / sigma
    jacobian = jacobian[:, free]
    cov = jacobian @ fit.cov[np.ix_(free, free)] @ jacobian.T
    return GlmmFit(beta=fit.beta, se=fit.se, sigma=np.float64(sigma), theta=None, cov=cov,
                   loglik=np.float64(fit.loglik), boundary=np.bool_(sigma == 0),
                   converged=np.bool_(fit.converged), n_agq=fit.n_agq, family="binomial")


def period_glmm_rows(patients: pd.DataFrame, outcome: dict[str, Any],
                     config: dict[str, Any]) -> list[dict[str, Any]]:
    """The primary rows of a binary or count outcome of a period design.

    Parameters
    ----------
    patients : DataFrame
        Validated participants (:func:`trialstats.data.periods.check_period_patients`).
    outcome : dict
        The outcome's configuration entry (``type`` binary or count, optional ``exposure``,
        ``mcid``).
    config : dict
        The validated configuration.

    Returns
    -------
    list of dict
        For each ``analysis.glmm_df_method``, one row per measure (odds ratio, risk difference,
        risk ratio; or rate ratio) with the contract's columns as described in the module
        notes: ``estimate``/``ci_*`` on the measure's scale, ``se`` of the log ratio (of the
        difference for the RD), ``df``, ``p_value``, ``var_cluster`` (:math:`\\tau^2 +
        \\gamma^2`), ``var_residual`` and ``icc`` (binary), ``mcid`` and ``mcid_verdict`` on
        the MCID's own measure, ``converged`` and ``notes``; rows saying "not estimable: why"
        when the model cannot be fitted or a df method leaves no df.
    """
    design, analysis = config["design"], config["analysis"]
    methods, alpha, kind = analysis["glmm_df_method"], analysis["alpha"], outcome["type"]
    n_agq = analysis.get("quadrature_points", DEFAULT_N_AGQ)
    data = period_data(patients, outcome["name"], config, outcome.get("exposure"))
    measures = measures_of(outcome)
    base = {"outcome": outcome["name"], "month": design["primary_month"],
            "n_patients": len(data.y), "n_clusters": len(data.cluster_ids),
            "sd_baseline": np.nan, "mcid": np.nan}
    notes = [period_glmm_note(config, outcome), data.exclusions]
    fit, problem = _fit(data, kind, n_agq)
    if problem:
        return [{**base, "method": m, "effect_measure": measure, "converged": False,
                 "notes": join_notes(problem, *notes)} for m in methods for measure in measures]
    tau2, gamma2 = fit.sigma_practice**2, fit.sigma_patient**2
    total = tau2 + gamma2
    scale = "logit" if kind == "binary" else "log"
    treated = data.X[:, data.contrast != 0].max(axis=1) == 1.0
    notes += [observed_note(data.y, data.offset, treated, kind),
              f"variances on the {scale} scale: cluster {tau2:.4g}, cluster-period "
              f"{gamma2:.4g}, CAC " + (f"{tau2 / total:.3f}" if total > 0 else "undefined")]
    notes += [f"{what} variance estimated at 0 (boundary fit)"
              for what, at_zero in zip(("cluster", "cluster-period"), fit.boundary, strict=True)
              if at_zero]
    if kind == "count":
        notes.append("family: Poisson (over-dispersion between cluster-periods is in the "
                     "cluster-period intercept; no negative binomial for nested models)")
    if not fit.converged:
        notes.append("GLMM fit did not converge (e.g. all or no events under a condition); "
                     "estimates are unreliable")
    marginal = kind == "binary" and not analysis["time_on_treatment"]
    why_not = ("not estimable: no marginal risk difference or ratio with exposure-time "
               "effects (no single treatment indicator to standardise over)")
    notes.append(f"no standardised effect size for a {kind} outcome")
    base |= {"var_cluster": total, "converged": fit.converged}
    if kind == "binary":
        base |= {"var_residual": np.pi**2 / 3, "icc": float(latent_icc(np.sqrt(total)))}
    p = fit.beta.shape[0]
    estimate = float(data.contrast @ fit.beta)
    se = float(np.sqrt(data.contrast @ fit.cov[:p, :p] @ data.contrast))
    rows = []
    for method in methods:
        df = design_df(method, data)
        row = {**base, "method": method, "notes": join_notes(*notes)}
        if not df > 0:
            rows += [{**row, "effect_measure": measure, "notes": join_notes(
                f"not estimable: {method} df {df:g} (clusters minus the columns of intercept, "
                f"treatment and periods)", *notes)} for measure in measures]
            continue
        rows.append(measure_row(row, outcome, measures[0], estimate=estimate, se=se, df=df,
                                alpha=alpha))
        if marginal:
            rows += marginal_rows(row, outcome, _total_sd_fit(fit), data.X,
                                  data.columns.index(TREATED), df=df, alpha=alpha)
        elif kind == "binary":
            rows += [{**row, "effect_measure": measure, "converged": False,
                      "notes": join_notes(why_not, *notes)} for measure in measures[1:]]
    return rows
