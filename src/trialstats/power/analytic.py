"""Analytic power and sample size for two-arm parallel cluster-randomised trials: continuous
outcomes, and the power and solving machinery the binary formulas of
:mod:`trialstats.power.binary` share.

Model
-----
Clusters are randomised to control (``k_c`` clusters) or intervention
(``k_i`` clusters); each cluster recruits on average ``m`` participants, of
whom a fraction ``attrition`` is lost, so ``m_a = m * (1 - attrition)`` are
analysed. For a continuous outcome with total SD ``sigma`` and a difference in
means ``delta`` (standardised effect ``d = delta / sigma``), the variance of
the estimated difference is

    Var = sigma**2 * DE * B * (1 / k_c + 1 / k_i) / m_a,

with ``DE = 1 + ((cv**2 + 1) * m_a - 1) * rho`` the design effect for
clustering with cluster-size coefficient of variation ``cv`` (Eldridge, Ashby
& Kerry 2006) and ``B`` the baseline factor: 1 for a follow-up-only analysis,
``1 - r**2`` for ANCOVA on the baseline value and ``2 * (1 - r)`` for change
scores, ``r`` the correlation of baseline and follow-up cluster means
(Teerenstra et al. 2012); see :mod:`trialstats.power.design_effect`.

The test statistic is ``Z = estimate / sqrt(Var)`` with noncentrality
``lambda = |delta| / sqrt(Var)``. The two-sided power is
``P(T > c) + P(T < -c)`` where, for ``distribution="t"``, ``T`` follows a
noncentral t distribution with ``k_c + k_i - 2`` degrees of freedom and
noncentrality ``lambda`` and ``c`` is the ``1 - alpha/2`` quantile of the
central t; for ``distribution="normal"`` both are standard normal
(the usual ``z_{1-alpha/2} + z_{1-beta}`` formulae).

Solving for clusters, cluster size or effect uses :func:`scipy.optimize.brentq`
on this exact power function, so the t-based answers are exact rather than the
usual iterate-the-normal-formula approximations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from trialstats.errors import TrialstatsError
from trialstats.power.design_effect import (
    BASELINE_METHODS,
    baseline_correlation,
    baseline_factor,
    design_effect,
)
from trialstats.power.solving import (
    DISTRIBUTIONS,
    add_solve_columns,
    analysed_size,
    arm_sizes,
    broadcast_terms,
    check_choice,
    check_unknown_given,
    limit_power,
    scenario_goal,
    size_columns,
    solve_each,
    solve_increasing,
    solve_trial_size,
    t_df,
    terms_at,
    two_sided_power,
)

CONTINUOUS_UNKNOWNS = ("power", "clusters_per_arm", "cluster_size", "effect")


def power_means(
    effect: ArrayLike, clusters_per_arm: ArrayLike, cluster_size: ArrayLike, icc: ArrayLike, *,
    allocation_ratio: ArrayLike = 1.0, cv: ArrayLike = 0.0, alpha: ArrayLike = 0.05,
    attrition: ArrayLike = 0.0, baseline: str = "none", rho_c: ArrayLike = 0.0,
    rho_s: ArrayLike = 0.0, distribution: str = "t",
) -> np.ndarray:
    """Power for a difference in means, as a bare array (vectorised kernel).

    Parameters
    ----------
    effect : array_like
        Standardised difference in means, ``d = delta / sigma`` (sign ignored).
    clusters_per_arm : array_like
        Number of clusters in the control arm, ``k_c``.
    cluster_size : array_like
        Mean number of participants recruited per cluster, ``m``.
    icc : array_like
        Intracluster correlation coefficient in [0, 1).
    allocation_ratio : array_like, default 1
        ``k_i / k_c``; the intervention arm has ``allocation_ratio * k_c``
        clusters.
    cv : array_like, default 0
        Coefficient of variation of cluster size.
    alpha : array_like, default 0.05
        Two-sided significance level.
    attrition : array_like, default 0
        Fraction of recruited participants not analysed, in [0, 1).
    baseline : {"none", "ancova", "change"}, default "none"
        Use of the baseline value of the outcome (Teerenstra et al. 2012).
    rho_c, rho_s : array_like, default 0
        Cluster and subject autocorrelations (used unless ``baseline="none"``).
    distribution : {"t", "normal"}, default "t"
        Noncentral t with ``k_c + k_i - 2`` df, or the normal approximation.

    Returns
    -------
    numpy.ndarray
        Power, broadcast over all array inputs.

    See Also
    --------
    power_continuous : the same calculation returned as a tidy table.
    """
    terms = _continuous_terms(
        effect=effect, k_control=clusters_per_arm, allocation_ratio=allocation_ratio,
        k_intervention=None, cluster_size=cluster_size, icc=icc, cv=cv, alpha=alpha,
        attrition=attrition, baseline=baseline, rho_c=rho_c, rho_s=rho_s, distribution=distribution,
    )
    return terms["power"]


def power_continuous(
    *, cluster_size: ArrayLike, icc: ArrayLike, clusters_per_arm: ArrayLike,
    effect: ArrayLike | None = None, difference: ArrayLike | None = None,
    sd: ArrayLike | None = None, allocation_ratio: ArrayLike = 1.0,
    k_intervention: ArrayLike | None = None, cv: ArrayLike = 0.0, alpha: ArrayLike = 0.05,
    attrition: ArrayLike = 0.0, baseline: str = "none", rho_c: ArrayLike = 0.0,
    rho_s: ArrayLike = 0.0, distribution: str = "t",
) -> pd.DataFrame:
    """Power of a two-arm cluster-randomised trial with a continuous outcome.

    Every numeric argument may be an array; they are broadcast together and
    the result has one row per scenario (in C order of the broadcast shape).

    Parameters
    ----------
    cluster_size : array_like
        Mean number of participants recruited per cluster, ``m`` (>= 1).
    icc : array_like
        Intracluster correlation coefficient in [0, 1).
    clusters_per_arm : array_like
        Number of clusters in the control arm, ``k_c`` (>= 2). With the
        default ``allocation_ratio`` of 1 this is the number in each arm.
    effect : array_like, optional
        Standardised difference in means ``delta / sigma``. Give either
        ``effect`` or ``difference`` together with ``sd``.
    difference : array_like, optional
        Raw difference in means ``delta``.
    sd : array_like, optional
        Total (between plus within cluster) SD of the outcome, ``sigma``.
    allocation_ratio : array_like, default 1
        ``k_i / k_c``.
    k_intervention : array_like, optional
        Number of intervention clusters; overrides ``allocation_ratio``.
    cv : array_like, default 0
        Coefficient of variation of cluster size (Eldridge et al. 2006).
    alpha : array_like, default 0.05
        Two-sided significance level.
    attrition : array_like, default 0
        Fraction of recruited participants lost; the analysed cluster size is
        ``m * (1 - attrition)``.
    baseline : {"none", "ancova", "change"}, default "none"
        Analysis of follow-up only, ANCOVA on baseline, or change scores.
    rho_c, rho_s : array_like, default 0
        Cluster and subject autocorrelations (Teerenstra et al. 2012).
    distribution : {"t", "normal"}, default "t"
        Noncentral t with ``k_c + k_i - 2`` df, or the normal approximation.

    Returns
    -------
    pandas.DataFrame
        One row per scenario with columns

        - ``power``: two-sided power,
        - ``clusters_per_arm``, ``k_control``, ``k_intervention``: clusters
          (``clusters_per_arm`` equals ``k_control``),
        - ``cluster_size``: mean recruited per cluster,
        - ``cluster_size_analysed``: ``cluster_size * (1 - attrition)``,
        - ``n_total``: participants analysed in both arms,
        - ``effect``: standardised effect; ``difference`` and ``sd`` (NaN
          when only a standardised effect was given),
        - ``icc``, ``cv``, ``alpha``, ``attrition``,
        - ``design_effect``: ``1 + ((cv**2 + 1) * m_a - 1) * icc``,
        - ``baseline``, ``baseline_correlation`` (``r``, NaN without
          baseline), ``baseline_factor`` (``B``),
        - ``variance_inflation``: ``design_effect * baseline_factor``,
        - ``noncentrality``, ``df`` (``inf`` for the normal approximation),
          ``distribution``.

    Notes
    -----
    See the module docstring for the variance formula. References: Donner A,
    Klar N (2000) Design and Analysis of Cluster Randomization Trials in
    Health Research, ch. 5; Eldridge SM, Ashby D, Kerry S (2006) Int J
    Epidemiol 35:1292-1300; Teerenstra S et al. (2012) Stat Med
    31:2169-2178; Rutterford C, Copas A, Eldridge S (2015) Int J Epidemiol
    44:1051-1067.
    """
    d, diff, sigma = _standardised_effect(effect, difference, sd)
    terms = _continuous_terms(
        effect=d, k_control=clusters_per_arm, allocation_ratio=allocation_ratio,
        k_intervention=k_intervention, cluster_size=cluster_size, icc=icc, cv=cv, alpha=alpha,
        attrition=attrition, baseline=baseline, rho_c=rho_c, rho_s=rho_s, distribution=distribution,
    )
    terms["difference"] = diff
    terms["sd"] = sigma
    return _continuous_frame(terms)


def solve_continuous(
    *, unknown: str, target_power: ArrayLike = 0.8, cluster_size: ArrayLike | None = None,
    icc: ArrayLike, clusters_per_arm: ArrayLike | None = None, effect: ArrayLike | None = None,
    difference: ArrayLike | None = None, sd: ArrayLike | None = None,
    allocation_ratio: ArrayLike = 1.0, cv: ArrayLike = 0.0, alpha: ArrayLike = 0.05,
    attrition: ArrayLike = 0.0, baseline: str = "none",
    rho_c: ArrayLike = 0.0, rho_s: ArrayLike = 0.0, distribution: str = "t",
) -> pd.DataFrame:
    """Solve the continuous-outcome design for one unknown.

    Parameters
    ----------
    unknown : {"power", "clusters_per_arm", "cluster_size", "effect"}
        The quantity to find; the argument of that name is left as ``None``
        (for ``"effect"`` leave out both ``effect`` and ``difference``; give
        ``sd`` to also get the minimum detectable raw ``difference``).
    target_power : array_like, default 0.8
        Power to achieve (ignored when ``unknown="power"``); must exceed
        ``alpha``.
    cluster_size, icc, clusters_per_arm, effect, difference, sd, allocation_ratio, cv, alpha, \
attrition, baseline, rho_c, rho_s, distribution
        As in :func:`power_continuous`. ``k_intervention`` is always
        ``allocation_ratio * k_control`` here.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`power_continuous`, evaluated at the solved
        design, plus

        - ``unknown`` and ``target_power``,
        - ``clusters_per_arm_exact``: the real-valued control-arm clusters at
          which the power equals the target (``clusters_per_arm`` is then the
          smallest integer whose design, with ``k_intervention`` rounded up to
          an integer, reaches the target, and ``power`` is its actual power);
        - ``cluster_size_exact``: likewise for the recruited cluster size
          (``cluster_size`` is its ceiling);
        - for ``unknown="effect"``, ``effect`` is the minimum detectable
          standardised effect (not rounded) and ``difference`` is
          ``effect * sd``.

        The ``*_exact`` columns repeat the given value when that quantity was
        not solved for.

    Raises
    ------
    TrialstatsError
        If an argument is missing or invalid, or the target cannot be reached.
        In particular, for ``unknown="cluster_size"`` the power is bounded as
        the cluster size grows (the variance tends to
        ``sigma**2 * (cv**2 + 1) * icc * B_inf * (1/k_c + 1/k_i)``, with
        ``B_inf`` the baseline factor at ``r = rho_c``); a target above that
        bound needs more clusters, and the error says so and reports the bound.

    Notes
    -----
    Roots are found with :func:`scipy.optimize.brentq` on the exact power
    function (noncentral t with ``k_c + k_i - 2`` df, which changes with the
    number of clusters). The number of clusters per arm is at least two.
    """
    if unknown not in CONTINUOUS_UNKNOWNS:
        raise TrialstatsError(
            f"Unknown quantity {unknown!r}; choose one of {', '.join(CONTINUOUS_UNKNOWNS)}."
        )
    check_choice(distribution, DISTRIBUTIONS, "distribution")
    check_choice(baseline, BASELINE_METHODS, "baseline")
    given = {
        "clusters_per_arm": clusters_per_arm,
        "cluster_size": cluster_size,
        "effect": effect if difference is None else difference,
    }
    check_unknown_given(unknown, given)
    if unknown == "power":
        frame = power_continuous(
            cluster_size=cluster_size, icc=icc, clusters_per_arm=clusters_per_arm, effect=effect,
            difference=difference, sd=sd, allocation_ratio=allocation_ratio, cv=cv, alpha=alpha,
            attrition=attrition, baseline=baseline, rho_c=rho_c, rho_s=rho_s,
            distribution=distribution,
        )
        return add_solve_columns(frame, unknown, np.nan)

    if unknown == "effect":
        d_in = np.nan
        if sd is not None and np.any(np.asarray(sd, dtype=float) <= 0):
            raise TrialstatsError("The outcome SD must be positive.")
        sigma = np.nan if sd is None else sd
    else:
        d_in, _, sigma = _standardised_effect(effect, difference, sd)
    flat, solved = solve_each(
        {
            "target_power": target_power,
            "cluster_size": np.nan if cluster_size is None else cluster_size, "icc": icc,
            "k_control": np.nan if clusters_per_arm is None else clusters_per_arm, "effect": d_in,
            "allocation_ratio": allocation_ratio, "cv": cv, "alpha": alpha, "attrition": attrition,
            "rho_c": rho_c, "rho_s": rho_s,
        },
        lambda scen: _solve_continuous_scenario(unknown, scen, baseline, distribution),
    )
    frame = power_continuous(
        cluster_size=solved["cluster_size"], icc=flat["icc"], clusters_per_arm=solved["k_control"],
        effect=solved["effect"], k_intervention=solved["k_intervention"], cv=flat["cv"],
        alpha=flat["alpha"], attrition=flat["attrition"], baseline=baseline, rho_c=flat["rho_c"],
        rho_s=flat["rho_s"], distribution=distribution,
    )
    sigma_b = np.broadcast_to(np.asarray(sigma, dtype=float), flat["icc"].shape).ravel()
    frame["sd"] = sigma_b
    frame["difference"] = frame["effect"] * sigma_b
    return add_solve_columns(frame, unknown, flat["target_power"], solved)


# --------------------------------------------------------------------------- internals


def _standardised_effect(
    effect: ArrayLike | None, difference: ArrayLike | None, sd: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (standardised effect, raw difference, sd); NaN where not given."""
    if (effect is None) == (difference is None):
        raise TrialstatsError(
            "Give the effect either as a standardised 'effect' or as a raw 'difference' "
            "with its 'sd', not both."
        )
    if difference is not None:
        if sd is None:
            raise TrialstatsError("A raw 'difference' needs the outcome's 'sd'.")
        sigma = np.asarray(sd, dtype=float)
        if np.any(sigma <= 0):
            raise TrialstatsError("The outcome SD must be positive.")
        diff = np.asarray(difference, dtype=float)
        return diff / sigma, diff, sigma
    d = np.asarray(effect, dtype=float)
    if sd is None:
        return d, np.full(d.shape, np.nan), np.full(d.shape, np.nan)
    sigma = np.asarray(sd, dtype=float)
    if np.any(sigma <= 0):
        raise TrialstatsError("The outcome SD must be positive.")
    return d, d * sigma, sigma


def _continuous_terms(
    *, effect: ArrayLike, k_control: ArrayLike, allocation_ratio: ArrayLike,
    k_intervention: ArrayLike | None, cluster_size: ArrayLike, icc: ArrayLike, cv: ArrayLike,
    alpha: ArrayLike, attrition: ArrayLike, baseline: str, rho_c: ArrayLike, rho_s: ArrayLike,
    distribution: str,
) -> dict[str, np.ndarray]:
    check_choice(baseline, BASELINE_METHODS, "baseline")
    k_c, k_i = arm_sizes(k_control, allocation_ratio, k_intervention)
    m_a = analysed_size(cluster_size, attrition)
    deff = design_effect(m_a, icc, cv)
    if baseline == "none":
        r = np.full(deff.shape, np.nan)
        bfac = np.ones(deff.shape)
    else:
        r = baseline_correlation(m_a, icc, rho_c, rho_s)
        bfac = baseline_factor(m_a, icc, rho_c, rho_s, method=baseline)
    vif = deff * bfac
    d = np.asarray(effect, dtype=float)
    ncp = np.abs(d) / np.sqrt(vif * (1.0 / k_c + 1.0 / k_i) / m_a)
    df = t_df(k_c, k_i, distribution)
    power = two_sided_power(ncp, alpha, df)
    return terms_at(power, k_control=k_c, k_intervention=k_i, cluster_size=cluster_size,
                    cluster_size_analysed=m_a, effect=d, icc=icc, cv=cv, alpha=alpha,
                    attrition=attrition, design_effect=deff, baseline_correlation=r,
                    baseline_factor=bfac, variance_inflation=vif, noncentrality=ncp, df=df,
                    baseline=baseline, distribution=distribution)


def _continuous_frame(terms: dict) -> pd.DataFrame:
    col = broadcast_terms(terms)
    return pd.DataFrame(
        {
            **size_columns(col),
            "effect": col["effect"], "difference": col["difference"], "sd": col["sd"],
            "icc": col["icc"], "cv": col["cv"], "alpha": col["alpha"],
            "attrition": col["attrition"], "design_effect": col["design_effect"],
            "baseline": col["baseline"], "baseline_correlation": col["baseline_correlation"],
            "baseline_factor": col["baseline_factor"],
            "variance_inflation": col["variance_inflation"], "noncentrality": col["noncentrality"],
            "df": col["df"], "distribution": col["distribution"],
        }
    )


def _solve_continuous_scenario(
    unknown: str, s: dict[str, float], baseline: str, distribution: str
) -> dict[str, float]:
    target, alpha, ratio = scenario_goal(s)

    def power_at(k_c: float, k_i: float, m: float, d: float) -> float:
        return float(
            _continuous_terms(
                effect=d, k_control=k_c, allocation_ratio=1.0, k_intervention=k_i, cluster_size=m,
                icc=s["icc"], cv=s["cv"], alpha=alpha, attrition=s["attrition"], baseline=baseline,
                rho_c=s["rho_c"], rho_s=s["rho_s"], distribution=distribution,
            )["power"]
        )

    k_c, m, d = s["k_control"], s["cluster_size"], s["effect"]
    out = {"k_control_exact": k_c, "cluster_size_exact": m, "effect": d}
    if d == 0 and unknown in ("clusters_per_arm", "cluster_size"):
        what = "number of clusters" if unknown == "clusters_per_arm" else "cluster size"
        raise TrialstatsError(f"A zero effect cannot be detected with any {what}.")
    size = solve_trial_size(
        unknown, lambda kc, ki, mm: power_at(kc, ki, mm, d), target=target, ratio=ratio,
        k_control=k_c, cluster_size=m, attrition=s["attrition"], icc=s["icc"],
        bound=lambda kc, ki: _continuous_power_bound(s, kc, ki, d, baseline, distribution),
        larger="effect",
    )
    if size is not None:
        return out | size
    k_i = ratio * k_c
    d_exact = solve_increasing(
        lambda dd: power_at(k_c, k_i, m, dd) - target, 0.0, 1.0, "effect size"
    )
    out.update(effect=d_exact, k_control=k_c, k_intervention=k_i, cluster_size=m)
    return out


def _continuous_power_bound(
    s: dict[str, float], k_c: float, k_i: float, d: float, baseline: str, distribution: str
) -> float:
    """Limit of the power as the cluster size tends to infinity (:func:`limit_power`; the
    baseline factor tends to its value at ``r = rho_c``)."""
    if baseline == "ancova":
        b_inf = 1.0 - s["rho_c"] ** 2
    elif baseline == "change":
        b_inf = 2.0 * (1.0 - s["rho_c"])
    else:
        b_inf = 1.0
    var_inf = (s["cv"] ** 2 + 1.0) * s["icc"] * b_inf * (1.0 / k_c + 1.0 / k_i)
    return limit_power(d, var_inf, k_c, k_i, s["alpha"], distribution)

