r"""Clustered permutation test over the allocations the trial could have had.

After Gail et al. (1996, *Stat Med* 15:1069) and Li et al. (2016, *Stat Med* 35:1565; 2017,
36:3791), as ``cvcrand::cptest``. For practices :math:`j = 1..J` with analysed patients *i*:

1. Fit the null model without arm to the patients of the primary analysis population,
   :math:`y_{ij} = \alpha_0 + \alpha_1 y^{(0)}_{ij} + x_{ij}^\top\gamma + e_{ij}` (baseline and
   covariates as the primary model), by least squares for a continuous outcome or logistic
   regression for a binary one, and average the residuals (response scale,
   :math:`y_{ij} - \hat\mu_{ij}`) within practices: :math:`\bar r_j`.
2. For an allocation :math:`a \in \{0,1\}^J` the statistic is the difference of arm means of
   the practice residuals, :math:`D(a) = \mathrm{mean}_{a_j = 1} \bar r_j -
   \mathrm{mean}_{a_j = 0} \bar r_j` (with equal arms :math:`D = (2/J)\sum_j s_j \bar r_j`,
   :math:`s_j = \pm 1`, cptest's statistic up to a constant, so the p-values are equal).
3. Over the set :math:`\mathcal A` of allocations the design could have produced (the
   constrained space of ``trialstats allocate``, or every allocation with the trial's arm
   sizes; the trial's own allocation :math:`a^*` is one of them) the two-sided p-value is
   :math:`p = |\mathcal A|^{-1}\,\#\{a \in \mathcal A: |D(a)| \ge |D(a^*)|\}`. Every
   allocation counts once, so the test is exact when :math:`\mathcal A` is the whole
   randomisation set; when it is a uniform sample, p has Monte Carlo error
   :math:`\sqrt{p(1-p)/|\mathcal A|}`.

Confidence interval by test inversion (Garthwaite 1996; Rabideau & Wang 2021): under the
hypothesis of a constant additive effect :math:`\delta` the outcomes :math:`y - \delta T`
obey the null. For a continuous outcome the least-squares residuals are linear in
:math:`\delta`, :math:`\bar r_j(\delta) = \bar r_j - \delta \bar t_j` with :math:`\bar t_j` the
practice mean of the residual of the arm indicator on the null model's columns, exactly. For
a binary outcome the shift is applied to the practice residuals on the risk-difference scale,
:math:`\bar t_j = a^*_j`. Then :math:`D_a(\delta) = D_a - \delta E_a` with :math:`E_a` the
statistic of :math:`\bar t`, and the interval is the set of :math:`\delta` whose p-value
exceeds :math:`\alpha`, found by bisection outward from the estimate
:math:`\hat\delta = D(a^*)/E(a^*)` (where :math:`D_{a^*}(\hat\delta) = 0` and p = 1). A bound
that is never reached (too few allocations) is infinite.

Count outcomes have their own null model (Poisson, offset log exposure) and their own interval
(the rate ratio, the null model refitted for each hypothesised ratio), over the same allocation
sets and with the same statistic: :mod:`trialstats.analysis.permutation_counts`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

from trialstats.allocation.constrained import enumerate_allocations, sample_allocations
from trialstats.analysis.design import INTERCEPT, ModelData, model_data
from trialstats.analysis.effects import mcid_verdict
from trialstats.analysis.rows import (
    chosen_outcomes,
    frame,
    join_notes,
    outcome_scale,
    too_few_clusters,
)
from trialstats.data.io import read_table
from trialstats.data.validate import TREATED, baseline_month_of
from trialstats.errors import TrialstatsError

LABEL = "clustered permutation test (Gail et al. 1996)"
METHOD = "permutation"
#: Without an allocation set, every allocation is used up to this many; beyond, a sample.
MAX_ALLOCATIONS = 100_000
#: Size of that uniform sample of allocations.
SAMPLED_ALLOCATIONS = 20_000
#: Relative tolerance for |D(a)| = |D(a*)| (an allocation's mirror image ties exactly).
_TIE = 1e-9


def arm_differences(values: np.ndarray, allocations: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over the intervention practices minus over the control ones, for
    every allocation (rows of ``allocations``, bool)."""
    a = allocations.astype(np.float64)
    n1 = a.sum(axis=1)
    treated_sum = a @ values
    return treated_sum / n1 - (values.sum() - treated_sum) / (a.shape[1] - n1)


def permutation_p_value(d: np.ndarray, e: np.ndarray, d_obs: float, e_obs: float,
                        delta: float = 0.0) -> float:
    """Share of allocations with :math:`|D_a - \\delta E_a| \\ge |D^* - \\delta E^*|`."""
    shifted = np.abs(d - delta * e)
    observed = abs(d_obs - delta * e_obs)
    return float(np.mean(shifted >= observed - _TIE * (observed + np.max(shifted))))


def residual_p_value(residuals: np.ndarray, allocations: np.ndarray,
                     observed: np.ndarray) -> float:
    """The p-value of practice residuals with no shift: the share of ``allocations`` with
    :math:`|D_a| \\ge |D_{a^*}|`, :math:`a^*` the allocation ``observed`` (bool)."""
    d = arm_differences(residuals, allocations)
    d_obs = float(arm_differences(residuals, observed[None, :])[0])
    return permutation_p_value(d, np.zeros_like(d), d_obs, 0.0)


def inverted_bound(
    p_at: Callable[[float], float], estimate: float, step: float, direction: int,
    alpha: float, *, expansions: int = 64, tolerance: float = 0.0,
) -> float:
    """One bound of :math:`\\{\\delta: p(\\delta) > \\alpha\\}`, searched outward from
    ``estimate`` (where p = 1) in ``direction`` (-1 or +1).

    Steps of ``step``, doubled each time, go out until :math:`p \\le \\alpha` (at most
    ``expansions`` of them, else the bound is infinite); then bisection keeps
    :math:`p > \\alpha` on the inner end until the ends are ``tolerance`` apart (0: until they
    are adjacent floats). Returns the midpoint of the last bracket.
    """
    inside, outside = estimate, estimate + direction * step
    for _ in range(expansions):
        if p_at(outside) <= alpha:
            break
        inside, step = outside, 2 * step
        outside = estimate + direction * step
    else:
        return direction * math.inf
    for _ in range(200):
        middle = (inside + outside) / 2
        if middle in (inside, outside) or abs(outside - inside) <= tolerance:
            break
        if p_at(middle) > alpha:
            inside = middle
        else:
            outside = middle
    return (inside + outside) / 2


def with_observed(allocations: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, bool]:
    """The allocation set with the trial's own allocation added when it is not among them,
    and whether it was."""
    in_set = bool((allocations == observed).all(axis=1).any())
    return (allocations if in_set else np.vstack([allocations, observed])), in_set


def permutation_test(
    residuals: np.ndarray, shift: np.ndarray, observed: np.ndarray, allocations: np.ndarray,
    alpha: float = 0.05,
) -> dict[str, float]:
    """The permutation p-value, the estimate and the inverted-test interval (module notes).

    Parameters
    ----------
    residuals : ndarray (J,)
        Practice means of the null-model residuals, :math:`\\bar r_j`.
    shift : ndarray (J,)
        :math:`\\bar t_j`, how the practice residuals move per unit of effect.
    observed : ndarray (J,) of bool
        The trial's allocation :math:`a^*`.
    allocations : ndarray (m, J) of bool
        The allocation set; :math:`a^*` is added when it is not among them.
    alpha : float
        The interval is :math:`\\{\\delta: p(\\delta) > \\alpha\\}`.

    Returns
    -------
    dict
        ``estimate, ci_low, ci_high, p_value, n_allocations, observed_in_set``.
    """
    observed = np.asarray(observed, dtype=bool)
    allocations, in_set = with_observed(allocations, observed)
    d, e = arm_differences(residuals, allocations), arm_differences(shift, allocations)
    d_obs, e_obs = (float(arm_differences(v, observed[None, :])[0]) for v in (residuals, shift))
    estimate = d_obs / e_obs
    step = max(abs(estimate), float(np.max(np.abs(d))) / max(float(np.max(np.abs(e))), 1e-300))

    def p_at(delta: float) -> float:
        return permutation_p_value(d, e, d_obs, e_obs, delta)

    return {
        "estimate": estimate,
        "ci_low": inverted_bound(p_at, estimate, step, -1, alpha),
        "ci_high": inverted_bound(p_at, estimate, step, +1, alpha),
        "p_value": permutation_p_value(d, e, d_obs, e_obs),
        "n_allocations": len(allocations), "observed_in_set": in_set,
    }


def read_allocation_set(path: str | Path, cluster_ids: list[str]) -> np.ndarray:
    """Read an allocation set (``accepted.csv`` of ``trialstats allocate``).

    One row per allocation, a 0/1 column per practice named by its id (1 = intervention),
    other columns (``score``) ignored. Returns the bool matrix of the columns
    ``cluster_ids``, in that order.

    Raises
    ------
    TrialstatsError
        A practice of the trial without a column, or a cell that is not 0 or 1.
    """
    path = Path(path)
    table = read_table(path)
    missing = [c for c in cluster_ids if c not in table.columns]
    if missing:
        raise TrialstatsError(
            f"{path}: the allocation set has no column for practice(s) "
            f"{', '.join(missing[:10])}{' and more' if len(missing) > 10 else ''}; it needs a "
            f"0/1 column per randomised practice (as accepted.csv of trialstats allocate)."
        )
    cells = table[cluster_ids].apply(pd.to_numeric, errors="coerce")
    bad = ~cells.isin([0, 1])
    if bad.to_numpy().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise TrialstatsError(f"{path}, column '{cluster_ids[column]}': row {row + 2} is "
                              f"{table[cluster_ids[column]].iloc[row]!r}, not 0 or 1.")
    return cells.to_numpy(dtype=bool)


def practice_residuals(
    data: ModelData, binary: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1 of the module notes: the practices' mean residuals of the null model.

    Parameters
    ----------
    data : ModelData
        The primary model's data (:func:`trialstats.analysis.design.model_data`); the
        ``treated`` column is left out of the null model.
    binary : bool
        Logistic (True) or least-squares null model.

    Returns
    -------
    residuals, shift : ndarray (J,)
        :math:`\bar r_j` and :math:`\bar t_j` of the module notes.
    treated : ndarray (J,) of bool
        The trial's allocation of the practices.

    Raises
    ------
    TrialstatsError
        When the logistic null model does not converge (e.g. complete separation).
    """
    arm_column = data.columns.index(TREATED)
    arm = data.X[:, arm_column]
    null = np.delete(data.X, arm_column, axis=1)
    sizes = np.bincount(data.cluster_codes, minlength=data.n_clusters)

    def means(values: np.ndarray) -> np.ndarray:
        return np.bincount(data.cluster_codes, values, minlength=data.n_clusters) / sizes

    treated = means(arm) > 0.5
    if binary:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = sm.GLM(data.y, null, family=sm.families.Binomial()).fit()
        separated = any(issubclass(w.category, PerfectSeparationWarning) for w in caught)
        if separated or not fit.converged or not np.isfinite(fit.params).all():
            raise TrialstatsError("the logistic regression without arm did not converge "
                                  "(separation or too few events)")
        return means(data.y - fit.fittedvalues), treated.astype(float), treated
    projection = np.linalg.lstsq(null, np.column_stack([data.y, arm]), rcond=None)[0]
    residual = np.column_stack([data.y, arm]) - null @ projection
    return means(residual[:, 0]), means(residual[:, 1]), treated


def allocation_set(patients, config, cluster) -> tuple[np.ndarray, list[str], str]:
    """The allocation set over the trial's practices, their ids and a note on its origin."""
    per_practice = patients.groupby(cluster, sort=True)[TREATED].first()
    ids = [str(i) for i in per_practice.index]
    path = config["design"].get("allocation_set")
    if path:
        return read_allocation_set(path, ids), ids, f"allocations read from {path}"
    n, n_treated = len(ids), int(per_practice.sum())
    total = math.comb(n, n_treated)
    if total <= MAX_ALLOCATIONS:
        return enumerate_allocations(n, n_treated), ids, f"all {total:,} allocations"
    rng = np.random.default_rng(config["sensitivity"]["seed"])
    sample = sample_allocations(n, n_treated, SAMPLED_ALLOCATIONS, rng)
    return sample, ids, (f"{SAMPLED_ALLOCATIONS:,} of the {total:,} allocations sampled "
                         f"uniformly (seed {config['sensitivity']['seed']})")


def permutation_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None
) -> pd.DataFrame:
    """Clustered permutation test of every continuous outcome at every follow-up month
    (binary and count outcomes: :mod:`trialstats.analysis.permutation_counts`).

    Parameters
    ----------
    patients : DataFrame
        Validated patients (:class:`trialstats.data.validate.Trial`).
    config : dict
        Validated configuration; ``design.allocation_set`` names the allocation set (default:
        every allocation with the trial's arm sizes, a uniform sample when there are more
        than :data:`MAX_ALLOCATIONS`, seeded by ``sensitivity.seed``).
    outcomes : list of str, optional
        Outcome names; all configured outcomes by default.

    Returns
    -------
    DataFrame
        :data:`~trialstats.analysis.rows.SENSITIVITY_COLUMNS`; per outcome and month one row,
        ``method`` ``permutation``: ``estimate`` (:math:`\\hat\\delta`, a mean difference),
        ``ci_low``/``ci_high`` (test inversion),
        ``p_value`` (permutation); ``se``/``df`` and variance components NaN;
        ``effect_size``/``mcid_verdict`` as the primary analysis; ``notes`` give the
        allocation set and the exclusions.
    """
    design, analysis = config["design"], config["analysis"]
    cluster = design["cluster"]
    allocations, ids, origin = allocation_set(patients, config, cluster)
    rows = []
    for outcome in chosen_outcomes(config, outcomes):
        for month in design["followup_months"]:
            data = model_data(patients, outcome["name"], month, cluster=cluster,
                              baseline_month=baseline_month_of(outcome, design),
                              covariates=analysis["covariates"])
            base = {"outcome": outcome["name"], "month": month, "method": METHOD,
                    "n_patients": len(data.y), "n_clusters": data.n_clusters,
                    "analysis": LABEL, **outcome_scale(patients, outcome, design, month)}
            problem = too_few_clusters(data)
            if problem:
                rows.append({**base, "converged": False,
                             "notes": join_notes(problem, data.exclusion_note())})
                continue
            try:
                residuals, shift, treated = practice_residuals(data, binary=False)
            except TrialstatsError as problem:
                rows.append({**base, "converged": False,
                             "notes": join_notes(f"not estimable: {problem}",
                                                 data.exclusion_note())})
                continue
            analysed = [ids.index(c) for c in data.cluster_ids]
            result = permutation_test(residuals, shift, treated, allocations[:, analysed],
                                      alpha=analysis["alpha"])
            adjusted = ", ".join(c for c in data.columns if c not in (INTERCEPT, TREATED))
            note = (f"mean difference; residuals of the least-squares regression on {adjusted} "
                    f"(arm left out), averaged by practice; {origin}")
            if not result["observed_in_set"]:
                note += ", plus the trial's own allocation"
            sd0 = base["sd_baseline"]
            rows.append({
                **base, **{k: result[k] for k in ("estimate", "ci_low", "ci_high", "p_value")},
                "effect_size": result["estimate"] / sd0, "es_ci_low": result["ci_low"] / sd0,
                "es_ci_high": result["ci_high"] / sd0, "converged": True,
                "mcid_verdict": mcid_verdict(result["ci_low"], result["ci_high"], base["mcid"],
                                             outcome["higher_is_better"]),
                "notes": join_notes(data.exclusion_note(),
                                    f"{note}; {result['n_allocations']:,} allocations"),
            })
    return frame(rows)
