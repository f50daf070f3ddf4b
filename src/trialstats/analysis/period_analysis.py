r"""Primary analysis of stepped-wedge, crossover and parallel-baseline trials.

Model (cross-sectional; exact REML, :mod:`trialstats.analysis.reml_periods`), for participant
:math:`k` of cluster :math:`i` measured in period :math:`t`:

.. math::

    y_{itk} = \beta_0 + \theta X_{it} + \beta_t + x_{itk}'\gamma + u_i + v_{it} + e_{itk},
    \quad u_i \sim N(0, \tau^2),\ v_{it} \sim N(0, \gamma^2),\ e_{itk} \sim N(0, \sigma^2),

``lmer(y ~ treat + factor(period) + covariates + (1 | cluster) + (1 | cluster:period))``,
:math:`X_{it}` the treatment of cluster :math:`i`'s sequence in period :math:`t`
(:mod:`trialstats.data.periods`). With ``analysis.time_on_treatment`` the term
:math:`\theta X_{it}` becomes :math:`\sum_e \theta_e 1[E_{it} = e]` over exposure times
:math:`e = 1, \dots, E` and the reported effect is their mean :math:`\bar\theta` (the
time-averaged treatment effect; Kenny et al. 2022, *Stat. Med.* 41:4289).

Rows follow the output contract (one per outcome x df method): ``month`` holds
``design.primary_month`` (a period design has one measurement per participant, so the
label only keeps the contract's key); ``var_cluster`` is :math:`\tau^2 + \gamma^2`, the
between-cluster variance within a period, so that ``icc`` is
:math:`(\tau^2 + \gamma^2)/(\tau^2 + \gamma^2 + \sigma^2)` with its profile-likelihood
interval; :math:`\tau^2`, :math:`\gamma^2` and the cluster autocorrelation
:math:`\mathrm{CAC} = \tau^2/(\tau^2 + \gamma^2)` with its interval are in ``notes``.
``sd_baseline`` is the SD of the outcome of all participants measured under control (the
standardising SD of a design without a baseline measurement). Denominator df: Satterthwaite
(as lmerTest) and Kenward-Roger (as pbkrtest, with its adjusted SE); between-within is
:math:`J` minus the columns of intercept, treatment and periods (as SteppedPower); residual
:math:`N - p`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.design import (
    INTERCEPT,
    _covariate_matrix,
    complete_rows,
    exclusion_note,
)
from trialstats.analysis.effects import baseline_sd, mcid_raw
from trialstats.analysis.period_inference import (
    kenward_roger_periods,
    satterthwaite_periods,
    variance_intervals,
)
from trialstats.analysis.reml_periods import PeriodSums, fit_period_reml
from trialstats.analysis.rows import join_notes, t_row
from trialstats.contract import MEAN_DIFFERENCE
from trialstats.data.periods import EXPOSURE, PERIOD_INDEX
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

__all__ = [
    "PeriodData", "design_df", "period_data", "period_model_note", "period_outcome_rows",
]


@dataclass(frozen=True)
class PeriodData:
    """The arrays of one period-model fit.

    Attributes
    ----------
    y : ndarray (n,)
    X : ndarray (n, p)
        Intercept, treatment (or exposure times 1..E), periods 2..T, covariate columns.
    columns : tuple of str
    contrast : ndarray (p,)
        :math:`L`: the treatment column, or the mean of the exposure-time columns.
    n_design : int
        Columns of intercept, treatment and periods (for between-within df).
    cluster_codes, period_codes : ndarray (n,)
    cluster_ids : tuple of str
    exclusions : str
        Participants left out, by reason ("" when none).
    offset : ndarray (n,)
        Log exposure of each row (count outcomes with an ``exposure`` column; zeros otherwise).
    """

    y: np.ndarray
    X: np.ndarray
    columns: tuple[str, ...]
    contrast: np.ndarray
    n_design: int
    cluster_codes: np.ndarray
    period_codes: np.ndarray
    cluster_ids: tuple[str, ...]
    exclusions: str
    offset: np.ndarray


def period_data(patients: pd.DataFrame, outcome: str, config: dict[str, Any],
                exposure: str | None = None) -> PeriodData:
    """Assemble the period model of ``outcome`` for the participants with the outcome, every
    covariate and the ``exposure`` (if given; its log is the offset) observed (module
    docstring)."""
    design, analysis = config["design"], config["analysis"]
    needed = [outcome, *analysis["covariates"], *([exposure] if exposure else [])]
    keep, excluded = complete_rows(patients.index, [
        (f"without {name}", patients[name].isna()) for name in needed
    ])
    rows = patients.loc[keep]
    period_codes, periods = pd.factorize(rows[PERIOD_INDEX], sort=True)
    if analysis["time_on_treatment"]:
        top = max(int(rows[EXPOSURE].to_numpy().max(initial=0)), 1)
        effect = pd.DataFrame({f"exposure[{e}]": (rows[EXPOSURE] == e).astype(float)
                               for e in range(1, top + 1)}, index=rows.index)
    else:
        effect = rows[[TREATED]].astype(float)
    period_columns = pd.DataFrame(
        {f"period[{p}]": (period_codes == k).astype(float)
         for k, p in enumerate(rows[design["period_column"]].groupby(period_codes).first())
         if k > 0}, index=rows.index)
    blocks = [pd.DataFrame({INTERCEPT: 1.0}, index=rows.index), effect, period_columns,
              *[_covariate_matrix(rows[c], c) for c in analysis["covariates"]]]
    matrix = pd.concat(blocks, axis=1)
    contrast = np.zeros(matrix.shape[1])
    contrast[1:1 + effect.shape[1]] = 1.0 / effect.shape[1]
    cluster_codes, ids = pd.factorize(rows[design["cluster"]], sort=True)
    return PeriodData(
        y=rows[outcome].to_numpy(dtype=float), X=matrix.to_numpy(dtype=float),
        columns=tuple(matrix.columns), contrast=contrast,
        n_design=1 + effect.shape[1] + len(periods) - 1,
        cluster_codes=cluster_codes.astype(np.intp),
        period_codes=period_codes.astype(np.intp), cluster_ids=tuple(map(str, ids)),
        exclusions=exclusion_note(excluded, len(patients)),
        offset=(np.log(rows[exposure].to_numpy(dtype=float)) if exposure
                else np.zeros(len(rows))),
    )


def period_model_note(config: dict[str, Any]) -> str:
    """The fitted model in lme4 notation, for ``notes``."""
    design, analysis = config["design"], config["analysis"]
    effect = "factor(exposure_time)" if analysis["time_on_treatment"] else "treat"
    terms = " + ".join([effect, "factor(period)", *analysis["covariates"]])
    return (f"{design['type']}: lmer(y ~ {terms} + (1 | cluster) + (1 | cluster:period)), REML"
            + (", time-averaged effect of exposure times" if analysis["time_on_treatment"]
               else ""))


def _fit(data: PeriodData):
    """Sums and fit, or why the model cannot be fitted."""
    if len(data.y) == 0 or np.ptp(data.X[:, 1]) == 0:
        return None, None, "not estimable: no comparison of intervention and control periods"
    sums = PeriodSums.from_data(data.y, data.X, data.cluster_codes, data.period_codes)
    try:
        return sums, fit_period_reml(sums), ""
    except TrialstatsError as error:
        return sums, None, f"not estimable: {error}"


def design_df(method: str, data: PeriodData) -> float:
    """The df of a ``method`` that depends on the design only: ``between-within`` :math:`J`
    minus the columns of intercept, treatment and periods (as SteppedPower), ``residual``
    :math:`N - p`, ``z`` infinite."""
    if method == "between-within":
        return float(len(data.cluster_ids) - data.n_design)
    if method == "residual":
        return float(len(data.y) - len(data.columns))
    if method == "z":
        return np.inf
    raise TrialstatsError(f"no design-only df for method {method!r}")


def _test(method: str, sums: PeriodSums, fit, data: PeriodData) -> tuple[float, float]:
    """Standard error and df of the contrast by ``method``."""
    L = data.contrast
    se = float(np.sqrt(L @ fit.vcov @ L))
    if method == "satterthwaite":
        return se, float(satterthwaite_periods(sums, fit, L))
    if method == "kenward-roger":
        kr = kenward_roger_periods(sums, fit, L)
        return float(kr.se), float(kr.df)
    return se, design_df(method, data)


def period_outcome_rows(patients: pd.DataFrame, outcome: dict[str, Any],
                        config: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one continuous outcome, one per configured df method, with
    :data:`~trialstats.contract.COLUMNS` as described in the module docstring: ``estimate``
    is the adjusted difference intervention - control (or the time-averaged effect) with
    ``se``, ``df``, ``ci_*``, ``p_value``; ``var_cluster``, ``var_residual``, ``icc`` and
    interval; ``sd_baseline``, ``effect_size``, ``es_ci_*``, ``mcid``, ``mcid_verdict``,
    ``converged`` and ``notes``."""
    design, analysis = config["design"], config["analysis"]
    name, alpha = outcome["name"], analysis["alpha"]
    data = period_data(patients, name, config)
    sd0 = baseline_sd(patients.loc[patients[TREATED] == 0, name])
    common = {"outcome": name, "month": design["primary_month"],
              "effect_measure": MEAN_DIFFERENCE, "n_patients": len(data.y),
              "n_clusters": len(data.cluster_ids), "sd_baseline": sd0,
              "mcid": mcid_raw(outcome.get("mcid"), sd0)}
    notes = [period_model_note(config), data.exclusions]
    sums, fit, problem = _fit(data)
    if problem:
        return [{**common, "method": m, "converged": False, "notes": join_notes(problem, *notes)}
                for m in analysis["df_method"]]
    intervals = variance_intervals(sums, fit, level=1 - alpha)
    notes.append(
        f"cluster variance {float(fit.var_cluster):.4g}, cluster-period variance "
        f"{float(fit.var_cluster_period):.4g}, CAC {float(intervals.cac):.3f} "
        f"({float(intervals.cac_low):.3f} to {float(intervals.cac_high):.3f})")
    for boundary, what in zip(np.atleast_1d(fit.boundary), ("cluster", "cluster-period"),
                              strict=True):
        if boundary:
            notes.append(f"{what} variance estimated at 0 (boundary fit)")
    if not bool(fit.converged):
        notes.append("REML optimisation did not converge; estimates are unreliable")
    estimate = float(data.contrast @ fit.beta)
    rows = []
    for method in analysis["df_method"]:
        se, df = _test(method, sums, fit, data)
        base = {**common, "method": method,
                "var_cluster": float(fit.var_cluster + fit.var_cluster_period),
                "var_residual": float(fit.var_residual), "icc": float(intervals.icc),
                "icc_ci_low": float(intervals.icc_low), "icc_ci_high": float(intervals.icc_high),
                "converged": bool(fit.converged), "notes": join_notes(*notes)}
        rows.append(t_row(base, estimate=estimate, se=se, df=df, alpha=alpha,
                          higher_is_better=outcome["higher_is_better"]))
    return rows
