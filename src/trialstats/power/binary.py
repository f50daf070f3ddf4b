"""Analytic power and sample size for two-arm parallel cluster-randomised trials with a binary
outcome.

Model
-----
With ``k_c`` control and ``k_i`` intervention clusters of on average ``m`` recruited
participants, ``m_a = m * (1 - attrition)`` analysed, and outcome proportions ``p_c`` and
``p_i`` (Donner & Klar 2000),

    Var = DE * (p_c * (1 - p_c) / k_c + p_i * (1 - p_i) / k_i) / m_a,

with the design effect ``DE`` of :mod:`trialstats.power.design_effect`; the two-sided power
of the test of ``p_i - p_c`` follows from the noncentrality ``|p_i - p_c| / sqrt(Var)`` as in
:func:`trialstats.power.analytic.two_sided_power` (noncentral t on ``k_c + k_i - 2`` df, or
normal). :func:`clusters_hayes_bennett` is Hayes & Bennett's (1999) coefficient-of-variation
formula. Solving for an unknown uses the exact power function, as the continuous formulas do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize, stats

from trialstats.errors import TrialstatsError
from trialstats.power import solving
from trialstats.power.design_effect import design_effect

__all__ = [
    "BINARY_UNKNOWNS",
    "clusters_hayes_bennett",
    "power_binary",
    "power_proportions",
    "solve_binary",
]

BINARY_UNKNOWNS = ("power", "clusters_per_arm", "cluster_size", "p_intervention")


def power_proportions(
    p_control: ArrayLike, p_intervention: ArrayLike, clusters_per_arm: ArrayLike,
    cluster_size: ArrayLike, icc: ArrayLike, *, allocation_ratio: ArrayLike = 1.0,
    cv: ArrayLike = 0.0, alpha: ArrayLike = 0.05, attrition: ArrayLike = 0.0,
    distribution: str = "t",
) -> np.ndarray:
    """Power for a difference in proportions, as a bare array (vectorised kernel).

    Parameters
    ----------
    p_control, p_intervention : array_like
        Outcome proportions in the control and intervention arms, in (0, 1).
    clusters_per_arm, cluster_size, icc, allocation_ratio, cv, alpha, attrition, distribution
        As in :func:`power_means`.

    Returns
    -------
    numpy.ndarray
        Power of the two-sided test of the two proportions, broadcast over the array inputs
        (:func:`power_binary` returns the same calculation as a tidy table).
    """
    return _binary_terms(
        p_control=p_control, p_intervention=p_intervention, k_control=clusters_per_arm,
        allocation_ratio=allocation_ratio, k_intervention=None, cluster_size=cluster_size, icc=icc,
        cv=cv, alpha=alpha, attrition=attrition, distribution=distribution,
    )["power"]


def power_binary(
    *, p_control: ArrayLike, p_intervention: ArrayLike, cluster_size: ArrayLike, icc: ArrayLike,
    clusters_per_arm: ArrayLike, allocation_ratio: ArrayLike = 1.0,
    k_intervention: ArrayLike | None = None, cv: ArrayLike = 0.0, alpha: ArrayLike = 0.05,
    attrition: ArrayLike = 0.0, distribution: str = "t",
) -> pd.DataFrame:
    """Power of a two-arm cluster-randomised trial with a binary outcome.

    Parameters
    ----------
    p_control, p_intervention : array_like
        Outcome proportions in the control and intervention arms, in (0, 1).
    cluster_size, icc, clusters_per_arm, allocation_ratio, k_intervention, cv, alpha, \
attrition, distribution
        As in :func:`power_continuous`.

    Returns
    -------
    pandas.DataFrame
        One row per scenario with columns ``power``, ``clusters_per_arm``,
        ``k_control``, ``k_intervention``, ``cluster_size``,
        ``cluster_size_analysed``, ``n_total``, ``p_control``,
        ``p_intervention``, ``difference`` (``p_intervention - p_control``),
        ``icc``, ``cv``, ``alpha``, ``attrition``, ``design_effect``,
        ``noncentrality``, ``df`` and ``distribution``.

    Notes
    -----
    Unpooled variance with the design effect,
    ``DE * (p_c (1 - p_c) / k_c + p_i (1 - p_i) / k_i) / m_a`` (Donner A,
    Klar N (2000) Design and Analysis of Cluster Randomization Trials in
    Health Research, section 5.3), with the Eldridge et al. (2006) design
    effect for unequal cluster sizes. ``distribution="normal"`` gives the
    textbook formula; ``"t"`` uses ``k_c + k_i - 2`` df as in the R package
    ``clusterPower`` (``cpa.binary``).
    """
    terms = _binary_terms(
        p_control=p_control, p_intervention=p_intervention, k_control=clusters_per_arm,
        allocation_ratio=allocation_ratio, k_intervention=k_intervention, cluster_size=cluster_size,
        icc=icc, cv=cv, alpha=alpha, attrition=attrition, distribution=distribution,
    )
    return _binary_frame(terms)


def solve_binary(
    *, unknown: str, target_power: ArrayLike = 0.8, p_control: ArrayLike,
    p_intervention: ArrayLike | None = None, cluster_size: ArrayLike | None = None, icc: ArrayLike,
    clusters_per_arm: ArrayLike | None = None, allocation_ratio: ArrayLike = 1.0,
    cv: ArrayLike = 0.0, alpha: ArrayLike = 0.05, attrition: ArrayLike = 0.0,
    direction: str = "increase", distribution: str = "t",
) -> pd.DataFrame:
    """Solve the binary-outcome design for one unknown.

    Parameters
    ----------
    unknown : {"power", "clusters_per_arm", "cluster_size", "p_intervention"}
        The quantity to find; the argument of that name is left as ``None``.
    target_power : array_like, default 0.8
        Power to achieve (ignored when ``unknown="power"``).
    direction : {"increase", "decrease"}, default "increase"
        For ``unknown="p_intervention"``: look for the smallest detectable
        proportion above (``"increase"``) or the largest below
        (``"decrease"``) ``p_control``.
    p_control, p_intervention, cluster_size, icc, clusters_per_arm, allocation_ratio, cv, \
alpha, attrition, distribution
        As in :func:`power_binary`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`power_binary` at the solved design plus
        ``unknown``, ``target_power``, ``clusters_per_arm_exact`` and
        ``cluster_size_exact``, with the same rounding rules as
        :func:`solve_continuous` (``p_intervention`` is not rounded).

    Raises
    ------
    TrialstatsError
        If an argument is missing or invalid or the target cannot be reached
        (the power is bounded as the cluster size grows, and no proportion in
        (0, 1) may be detectable with the given clusters).
    """
    if unknown not in BINARY_UNKNOWNS:
        raise TrialstatsError(
            f"Unknown quantity {unknown!r}; choose one of {', '.join(BINARY_UNKNOWNS)}."
        )
    solving.check_choice(distribution, solving.DISTRIBUTIONS, "distribution")
    solving.check_choice(direction, ("increase", "decrease"), "direction")
    given = {
        "clusters_per_arm": clusters_per_arm,
        "cluster_size": cluster_size,
        "p_intervention": p_intervention,
    }
    solving.check_unknown_given(unknown, given)
    if unknown == "power":
        frame = power_binary(
            p_control=p_control, p_intervention=p_intervention, cluster_size=cluster_size, icc=icc,
            clusters_per_arm=clusters_per_arm, allocation_ratio=allocation_ratio, cv=cv,
            alpha=alpha, attrition=attrition, distribution=distribution,
        )
        return solving.add_solve_columns(frame, unknown, np.nan)

    flat, solved = solving.solve_each(
        {
            "target_power": target_power, "p_control": p_control, "p_intervention": p_intervention,
            "cluster_size": cluster_size, "icc": icc, "k_control": clusters_per_arm,
            "allocation_ratio": allocation_ratio, "cv": cv, "alpha": alpha, "attrition": attrition,
        },
        lambda scen: _solve_binary_scenario(unknown, scen, direction, distribution),
    )
    frame = power_binary(
        p_control=flat["p_control"], p_intervention=solved["p_intervention"],
        cluster_size=solved["cluster_size"], icc=flat["icc"], clusters_per_arm=solved["k_control"],
        k_intervention=solved["k_intervention"], cv=flat["cv"], alpha=flat["alpha"],
        attrition=flat["attrition"], distribution=distribution,
    )
    return solving.add_solve_columns(frame, unknown, flat["target_power"], solved)


def clusters_hayes_bennett(
    p_control: ArrayLike, p_intervention: ArrayLike, cluster_size: ArrayLike, cv_between: ArrayLike,
    *, alpha: ArrayLike = 0.05, power: ArrayLike = 0.8,
) -> np.ndarray:
    """Clusters per arm for two proportions, Hayes & Bennett coefficient-of-variation method.

    Parameters
    ----------
    p_control, p_intervention : array_like
        Outcome proportions ``pi_0`` and ``pi_1`` in (0, 1).
    cluster_size : array_like
        Number of participants per cluster, ``m``.
    cv_between : array_like
        Coefficient of variation ``k`` of the true cluster proportions within
        each arm (SD of cluster proportions / their mean), >= 0.
    alpha : array_like, default 0.05
        Two-sided significance level.
    power : array_like, default 0.8
        Target power.

    Returns
    -------
    numpy.ndarray
        Unrounded number of clusters per arm

        ``c = 1 + (z_{1-alpha/2} + z_{power})**2 * (pi_0 (1 - pi_0) / m +
        pi_1 (1 - pi_1) / m + k**2 (pi_0**2 + pi_1**2)) / (pi_0 - pi_1)**2``;
        round up for the design.

    Notes
    -----
    Hayes RJ, Bennett S (1999) Simple sample size calculation for
    cluster-randomized trials. Int J Epidemiol 28:319-326, equation (3);
    Hayes RJ, Moulton LH (2017) Cluster Randomised Trials, 2nd ed., section
    7.3. The leading 1 is their small-sample allowance for the use of the t
    distribution.
    """
    p0 = np.asarray(p_control, dtype=float)
    p1 = np.asarray(p_intervention, dtype=float)
    m = np.asarray(cluster_size, dtype=float)
    k = np.asarray(cv_between, dtype=float)
    _check_proportions(p0, p1)
    if np.any(p0 == p1):
        raise TrialstatsError("The two proportions must differ to size a trial.")
    if np.any(m <= 0):
        raise TrialstatsError("Cluster size must be positive.")
    if np.any(k < 0):
        raise TrialstatsError("The between-cluster coefficient of variation must be >= 0.")
    z = _z_sum(alpha, power)
    var = p0 * (1 - p0) / m + p1 * (1 - p1) / m + k**2 * (p0**2 + p1**2)
    return 1.0 + z**2 * var / (p0 - p1) ** 2


def _z_sum(alpha: ArrayLike, power: ArrayLike) -> np.ndarray:
    a = np.asarray(alpha, dtype=float)
    pw = np.asarray(power, dtype=float)
    if np.any((a <= 0) | (a >= 1)):
        raise TrialstatsError("The significance level alpha must lie in (0, 1).")
    if np.any((pw <= 0) | (pw >= 1)):
        raise TrialstatsError("Power must lie in (0, 1).")
    return stats.norm.isf(a / 2) + stats.norm.ppf(pw)


def _check_proportions(p0: np.ndarray, p1: np.ndarray) -> None:
    if np.any((p0 <= 0) | (p0 >= 1)) or np.any((p1 <= 0) | (p1 >= 1)):
        raise TrialstatsError("Proportions must lie strictly between 0 and 1.")


def _binary_terms(
    *, p_control: ArrayLike, p_intervention: ArrayLike, k_control: ArrayLike,
    allocation_ratio: ArrayLike, k_intervention: ArrayLike | None, cluster_size: ArrayLike,
    icc: ArrayLike, cv: ArrayLike, alpha: ArrayLike, attrition: ArrayLike, distribution: str,
) -> dict[str, np.ndarray]:
    p0 = np.asarray(p_control, dtype=float)
    p1 = np.asarray(p_intervention, dtype=float)
    _check_proportions(p0, p1)
    k_c, k_i = solving.arm_sizes(k_control, allocation_ratio, k_intervention)
    m_a = solving.analysed_size(cluster_size, attrition)
    deff = design_effect(m_a, icc, cv)
    var = deff * (p0 * (1 - p0) / k_c + p1 * (1 - p1) / k_i) / m_a
    ncp = np.abs(p1 - p0) / np.sqrt(var)
    df = solving.t_df(k_c, k_i, distribution)
    power = solving.two_sided_power(ncp, alpha, df)
    return solving.terms_at(power, k_control=k_c, k_intervention=k_i, cluster_size=cluster_size,
                    cluster_size_analysed=m_a, p_control=p0, p_intervention=p1, icc=icc, cv=cv,
                    alpha=alpha, attrition=attrition, design_effect=deff, noncentrality=ncp, df=df,
                    distribution=distribution)


def _binary_frame(terms: dict) -> pd.DataFrame:
    col = solving.broadcast_terms(terms)
    return pd.DataFrame(
        {
            **solving.size_columns(col),
            "p_control": col["p_control"], "p_intervention": col["p_intervention"],
            "difference": col["p_intervention"] - col["p_control"], "icc": col["icc"],
            "cv": col["cv"], "alpha": col["alpha"], "attrition": col["attrition"],
            "design_effect": col["design_effect"], "noncentrality": col["noncentrality"],
            "df": col["df"], "distribution": col["distribution"],
        }
    )


def _solve_binary_scenario(
    unknown: str, s: dict[str, float], direction: str, distribution: str
) -> dict[str, float]:
    target, alpha, ratio = solving.scenario_goal(s)
    p0 = s["p_control"]

    def power_at(k_c: float, k_i: float, m: float, p1: float) -> float:
        return float(
            _binary_terms(
                p_control=p0, p_intervention=p1, k_control=k_c, allocation_ratio=1.0,
                k_intervention=k_i, cluster_size=m, icc=s["icc"], cv=s["cv"], alpha=alpha,
                attrition=s["attrition"], distribution=distribution,
            )["power"]
        )

    k_c, m, p1 = s["k_control"], s["cluster_size"], s["p_intervention"]
    out = {"k_control_exact": k_c, "cluster_size_exact": m, "p_intervention": p1}
    if p1 == p0 and unknown in ("clusters_per_arm", "cluster_size"):
        raise TrialstatsError("Equal proportions cannot be told apart with any trial size.")
    size = solving.solve_trial_size(
        unknown, lambda kc, ki, mm: power_at(kc, ki, mm, p1), target=target, ratio=ratio,
        k_control=k_c, cluster_size=m, attrition=s["attrition"], icc=s["icc"],
        bound=lambda kc, ki: _binary_power_bound(s, kc, ki, p1, distribution),
        larger="difference",
    )
    if size is not None:
        return out | size
    k_i = ratio * k_c
    sign = 1.0 if direction == "increase" else -1.0
    room = (1.0 - p0) if direction == "increase" else p0
    edge = room * (1.0 - 1e-12)
    if power_at(k_c, k_i, m, p0 + sign * edge) < target:
        raise TrialstatsError(
            f"No intervention proportion {'above' if sign > 0 else 'below'} {p0:g} is detected "
            f"with power {target:g} by this design; add clusters or participants."
        )
    delta = optimize.brentq(
        lambda x: power_at(k_c, k_i, m, p0 + sign * x) - target, 0.0, edge, xtol=solving.XTOL,
    )
    out.update(p_intervention=p0 + sign * delta, k_control=k_c, k_intervention=k_i, cluster_size=m)
    return out


def _binary_power_bound(
    s: dict[str, float], k_c: float, k_i: float, p1: float, distribution: str
) -> float:
    """Limit of the power as the cluster size tends to infinity (:func:`limit_power`)."""
    p0 = s["p_control"]
    var_inf = (s["cv"] ** 2 + 1.0) * s["icc"] * (p0 * (1 - p0) / k_c + p1 * (1 - p1) / k_i)
    return solving.limit_power(p1 - p0, var_inf, k_c, k_i, s["alpha"], distribution)
