r"""Clustered permutation test of a count outcome, with the rate ratio by test inversion, and
the rows of the binary and count outcomes.

A binary outcome is tested as :mod:`trialstats.analysis.permutation` describes (logistic null
model, the risk difference by shifting the intervention practices' residuals, as
``cvcrand::cptest``), in the primary binary analysis population; a count outcome as follows.

The test of :mod:`trialstats.analysis.permutation` (Gail et al. 1996, *Stat Med* 15:1069; the
recipe of ``cvcrand::cptest``, whose null model is linear or logistic) with a Poisson null
model, as Bennett et al. (2002, *Int J Epidemiol* 31:839) adjust incidence rates in cluster
randomised trials: for patient *i* of practice *j* with count :math:`y_{ij}` and exposure
:math:`t_{ij}` (1 without an ``exposure`` column), in the primary analysis population
(:func:`~trialstats.analysis.rows.primary_population`),

1. the Poisson regression without arm, :math:`\log \mu_{ij}(\delta) = \log t_{ij} + \delta
   T_j + \alpha_0 + \alpha_1 y^{(0)}_{ij} + x_{ij}^\top\gamma` (baseline count and covariates as
   the primary count model; :math:`T_j` the trial's own allocation), is fitted by maximum
   likelihood with :math:`\delta` a fixed offset, and its residuals on the response scale,
   :math:`y_{ij} - \hat\mu_{ij}(\delta)` (observed minus expected events, as cptest's
   ``residuals(type = "response")``), are averaged within practices: :math:`\bar r_j(\delta)`;
2. the statistic of an allocation *a* is the difference of arm means of the practice residuals,
   :math:`D_a(\delta) = \mathrm{mean}_{a_j = 1} \bar r_j(\delta) - \mathrm{mean}_{a_j = 0}
   \bar r_j(\delta)`;
3. over the allocation set :math:`\mathcal A` (the constrained space of ``trialstats
   allocate``, or every allocation with the trial's arm sizes, or a uniform sample of them),
   :math:`p(\delta) = |\mathcal A|^{-1} \#\{a \in \mathcal A: |D_a(\delta)| \ge
   |D_{a^*}(\delta)|\}`, two-sided.

:math:`p(0)` is the test of no effect: the null model is the Poisson regression without arm.
:math:`p(\delta)` tests the hypothesis that the intervention multiplies every patient's rate by
the rate ratio :math:`e^\delta`: its outcomes then follow the null model with the offset
:math:`\log t_{ij} + \delta T_j`, so the model is refitted with that offset (the coefficient
of arm held at the hypothesised value, as in a score test) and its residuals permuted. Such a
non-zero hypothesis is what inverting a randomisation test needs, and what is hard to pose for
non-continuous outcomes (Rabideau & Wang 2021, *Biostatistics* 22:913); for counts the
residual permutation test kept its size on constrained designs whose space was not too small
in the simulations of the HEALing Communities Study (*Trials* 2022,
doi:10.1186/s13063-022-06708-9). The point estimate :math:`\hat\delta` solves
:math:`D_{a^*}(\delta) = 0` (where :math:`p = 1`), and the :math:`100(1-\alpha)\%` interval is
:math:`\{\delta: p(\delta) > \alpha\}`, each bound found by
:func:`~trialstats.analysis.permutation.inverted_bound` outward from :math:`\hat\delta` to
within :data:`TOLERANCE` on the log scale; a bound beyond :data:`FARTHEST` log units of the
estimate (too few allocations to reach :math:`\alpha`) is infinite (a rate ratio of 0 or
infinity). Rows give the rate ratio :math:`e^{\hat\delta}` and its interval; ``se`` and
``df`` are empty (a permutation test has neither). The Poisson null model only makes the
residuals: the test's validity rests on the randomisation, so it holds for over-dispersed
counts too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize

from trialstats.analysis.design import INTERCEPT, ModelData
from trialstats.analysis.glmm_rows import interval_row
from trialstats.analysis.permutation import (
    LABEL,
    METHOD,
    allocation_set,
    arm_differences,
    inverted_bound,
    permutation_test,
    practice_residuals,
    residual_p_value,
    with_observed,
)
from trialstats.analysis.rows import chosen_outcomes, frame, join_notes, primary_population
from trialstats.contract import RATE_RATIO, RISK_DIFFERENCE
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

__all__ = ["FARTHEST", "TOLERANCE", "count_permutation_analysis", "count_permutation_test"]

#: First step (log rate ratio) of the search for a bound or for the estimate's bracket; it
#: doubles each time.
_STEP = 0.25
#: Doublings of that step: the search reaches :data:`FARTHEST` log units.
_EXPANSIONS = 7
#: How far (log rate ratio) from the estimate a bound is searched before it is infinite.
FARTHEST = _STEP * 2 ** (_EXPANSIONS - 1)
#: Width (log rate ratio) of the bracket a bound is bisected to.
TOLERANCE = 1e-10
#: Convergence of the Poisson fits (absolute change in deviance).
_GLM_TOL = 1e-12


def _null_residuals(data: ModelData) -> tuple[Callable[[float], np.ndarray], np.ndarray]:
    """:math:`\\delta \\mapsto \\bar r(\\delta)` of the module notes, and the trial's own
    allocation of the practices (bool).

    Raises
    ------
    TrialstatsError
        When the Poisson regression without arm does not converge.
    """
    arm_column = data.columns.index(TREATED)
    arm = data.X[:, arm_column]
    null = np.delete(data.X, arm_column, axis=1)
    sizes = np.bincount(data.cluster_codes, minlength=data.n_clusters)
    treated = np.bincount(data.cluster_codes, arm, minlength=data.n_clusters) / sizes > 0.5
    start = None

    def residuals(delta: float) -> np.ndarray:
        nonlocal start
        with np.errstate(over="ignore"):  # a far delta's first IRLS steps
            fit = sm.GLM(data.y, null, family=sm.families.Poisson(),
                         offset=data.offset + delta * arm).fit(tol=_GLM_TOL,
                                                               start_params=start)
        if not fit.converged or not np.isfinite(fit.params).all():
            raise TrialstatsError(f"the Poisson regression without arm did not converge "
                                  f"(offset log rate ratio {delta:.4g})")
        if start is None:
            start = fit.params  # every later fit starts from the fit of no effect
        return np.bincount(data.cluster_codes, data.y - fit.fittedvalues,
                           minlength=data.n_clusters) / sizes

    return residuals, treated


def _estimate(observed_statistic: Callable[[float], float]) -> float:
    """The root of :math:`D_{a^*}(\\delta)`, bracketed outward from 0 by doubling steps."""
    at_zero = observed_statistic(0.0)
    if at_zero == 0:
        return 0.0
    direction = 1.0 if at_zero > 0 else -1.0  # D decreases as delta grows
    inner, step = 0.0, _STEP
    for _ in range(_EXPANSIONS):
        outer = direction * step
        if observed_statistic(outer) * at_zero <= 0:
            return optimize.brentq(observed_statistic, min(inner, outer), max(inner, outer),
                                   xtol=1e-13)
        inner, step = outer, 2 * step
    raise TrialstatsError(f"no rate ratio within exp(+-{FARTHEST:g}) balances the arms' "
                          f"residuals")


def count_permutation_test(
    data: ModelData, allocations: np.ndarray, alpha: float = 0.05
) -> dict[str, Any]:
    """The permutation p-value, the log rate ratio and its inverted-test interval.

    Parameters
    ----------
    data : ModelData
        The primary count model's data (``offset`` the log exposure); the ``treated`` column
        is left out of the null model.
    allocations : ndarray (m, J) of bool
        The allocation set over ``data``'s practices; the trial's own is added when it is not
        among them.
    alpha : float
        The interval is :math:`\\{\\delta: p(\\delta) > \\alpha\\}`.

    Returns
    -------
    dict
        ``estimate, ci_low, ci_high`` (log rate ratio, :math:`\\pm\\infty` for a bound beyond
        :data:`FARTHEST`), ``p_value`` (:math:`p(0)`), ``n_allocations``,
        ``observed_in_set`` and ``p_at``, the function :math:`\\delta \\mapsto p(\\delta)`.

    Raises
    ------
    TrialstatsError
        When the Poisson null model does not converge or no rate ratio balances the arms.
    """
    residuals, observed = _null_residuals(data)
    allocations, in_set = with_observed(allocations, observed)

    def observed_statistic(delta: float) -> float:
        return float(arm_differences(residuals(delta), observed[None, :])[0])

    def p_at(delta: float) -> float:
        return residual_p_value(residuals(delta), allocations, observed)

    estimate = _estimate(observed_statistic)
    low, high = (inverted_bound(p_at, estimate, _STEP, direction, alpha,
                                expansions=_EXPANSIONS, tolerance=TOLERANCE)
                 for direction in (-1, +1))
    return {"estimate": estimate, "ci_low": low, "ci_high": high, "p_value": p_at(0.0),
            "n_allocations": len(allocations), "observed_in_set": in_set, "p_at": p_at}


def _events_problem(data: ModelData) -> str:
    """Why the rate ratio cannot be estimated from the events per arm ("" if it can)."""
    arm = data.X[:, data.columns.index(TREATED)]
    empty = [label for label, value in (("intervention", 1.0), ("control", 0.0))
             if data.y[arm == value].sum() == 0]
    if not empty:
        return ""
    return (f"not estimable: no events in the {' or the '.join(empty)} arm, so the rate "
            f"ratio is 0 or infinite")


def _binary_test(data: ModelData, allocations: np.ndarray, alpha: float) -> dict[str, Any]:
    """The permutation test of a binary outcome: logistic null model, risk-difference shift
    (:mod:`trialstats.analysis.permutation`, as ``cvcrand::cptest``)."""
    residuals, shift, treated = practice_residuals(data, binary=True)
    return permutation_test(residuals, shift, treated, allocations, alpha=alpha)


def _outcome_row(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any],
    allocations: np.ndarray, ids: list[str], origin: str,
) -> dict[str, Any]:
    """The permutation row of a binary (risk difference) or count (rate ratio) outcome at
    ``month`` (module notes)."""
    binary = outcome.get("type") == "binary"
    measure = RISK_DIFFERENCE if binary else RATE_RATIO
    population = primary_population(patients, outcome, month, config)
    data = population.data
    base = {**population.base, "sd_baseline": np.nan, "mcid": np.nan, "method": METHOD,
            "analysis": LABEL, "effect_measure": measure}
    problem = population.problem or ("" if binary else _events_problem(data))
    if not problem:
        analysed = [ids.index(c) for c in data.cluster_ids]
        test = _binary_test if binary else count_permutation_test
        try:
            result = test(data, allocations[:, analysed], alpha=config["analysis"]["alpha"])
        except TrialstatsError as error:
            problem = f"not estimable: {error}"
    if problem:
        return {**base, "converged": False, "notes": join_notes(problem, population.exclusions)}
    adjusted = ", ".join(c for c in data.columns if c not in (INTERCEPT, TREATED))
    if binary:
        note = (f"risk difference; residuals (observed - expected risk) of the logistic "
                f"regression on {adjusted or 'an intercept'} (arm left out), averaged by "
                f"practice; interval by test inversion, the intervention practices' residuals "
                f"shifted by the risk difference; {origin}")
    else:
        offset = (f"offset log({outcome['exposure']})" if outcome.get("exposure")
                  else "no offset")
        note = (f"rate ratio; residuals (observed - expected events) of the Poisson regression "
                f"on {adjusted or 'an intercept'} ({offset}; arm left out), averaged by "
                f"practice; interval by test inversion, the regression refitted with offset "
                f"log rate ratio x arm; {origin}")
    if not result["observed_in_set"]:
        note += ", plus the trial's own allocation"
    if not np.isfinite([result["ci_low"], result["ci_high"]]).all():
        note += ("; a bound never reached (too few allocations to reach alpha) is infinite"
                 if binary else
                 f"; a bound beyond a rate ratio of exp(+-{FARTHEST:g}) from the estimate is "
                 f"reported as 0 or infinity (too few allocations to reach alpha)")
    return interval_row({**base, "p_value": result["p_value"], "converged": True,
                         "notes": join_notes(population.exclusions,
                                             f"{note}; {result['n_allocations']:,} allocations")},
                        outcome, measure, estimate=result["estimate"],
                        low=result["ci_low"], high=result["ci_high"])


def count_permutation_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None
) -> pd.DataFrame:
    """Clustered permutation test of every binary and count outcome at every follow-up month.

    Parameters
    ----------
    patients, config, outcomes
        As for :func:`~trialstats.analysis.permutation.permutation_analysis`, whose
        allocation set (``design.allocation_set``, else every allocation or a seeded uniform
        sample) is used; ``outcomes`` names binary or count outcomes (all by default).

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`; per outcome and month one row,
        ``method`` ``permutation``, ``effect_measure`` risk difference (binary) or rate ratio
        (count): ``estimate`` and ``ci_low``/``ci_high`` (by test inversion), ``p_value``
        (permutation), ``mcid`` and its verdict for an MCID on that measure; ``se``, ``df``,
        variance components and the standardised effect empty; ``notes`` give the null
        model, the allocation set and the exclusions.
    """
    allocations, ids, origin = allocation_set(patients, config, config["design"]["cluster"])
    rows = []
    for outcome in chosen_outcomes(config, outcomes):
        for month in config["design"]["followup_months"]:
            rows.append(_outcome_row(patients, outcome, month, config, allocations, ids,
                                     origin))
    return frame(rows)
