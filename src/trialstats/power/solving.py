"""The power function and solver machinery shared by the analytic formulas.

:func:`two_sided_power` turns a noncentrality into the two-sided power of a t (or z) test;
the helpers check arguments the same way for every formula (:func:`scenario_goal`) and solve
a design for one unknown: :func:`solve_increasing` finds the smallest root of power minus
target on an increasing power curve by bracketing and :func:`scipy.optimize.brentq`,
:func:`integer_clusters` rounds a solution for clusters up to whole clusters that still reach
the target, and :func:`limit_power` is the ceiling on the power that more participants per
cluster cannot lift. :mod:`trialstats.power.analytic` (continuous outcomes) and
:mod:`trialstats.power.binary` (binary outcomes) are built on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize, stats

from trialstats.analysis.rows import MIN_CLUSTERS_PER_ARM as ANALYSABLE_CLUSTERS_PER_ARM
from trialstats.errors import TrialstatsError

__all__ = [
    "DISTRIBUTIONS",
    "MIN_CLUSTERS_PER_ARM",
    "XTOL",
    "add_solve_columns",
    "analysed_size",
    "arm_sizes",
    "broadcast_terms",
    "ceil_arm",
    "check_choice",
    "check_target",
    "check_unknown_given",
    "integer_clusters",
    "limit_power",
    "scenario_goal",
    "size_columns",
    "solve_each",
    "solve_increasing",
    "solve_trial_size",
    "t_df",
    "terms_at",
    "two_sided_power",
]

#: Reference distributions of the test: noncentral t on ``k_c + k_i - 2`` df, or normal.
DISTRIBUTIONS = ("t", "normal")
#: The smallest design: as many clusters per arm as the analysis needs to compare the arms.
MIN_CLUSTERS_PER_ARM = float(ANALYSABLE_CLUSTERS_PER_ARM)
#: Absolute tolerance of the root finding.
XTOL = 1e-10
_MAX_DOUBLINGS = 60


def two_sided_power(noncentrality: ArrayLike, alpha: ArrayLike, df: ArrayLike) -> np.ndarray:
    """Two-sided power of a z or t test from its noncentrality.

    Parameters
    ----------
    noncentrality : array_like
        Expected value of the test statistic under the alternative,
        ``|effect| / SE``.
    alpha : array_like
        Two-sided significance level in (0, 1).
    df : array_like
        Degrees of freedom of the t test (> 0); ``numpy.inf`` gives the normal
        (z test) approximation.

    Returns
    -------
    numpy.ndarray
        ``P(T > c) + P(T < -c)``, with ``T`` noncentral t (or normal) and
        ``c`` its central ``1 - alpha/2`` quantile, broadcast over the inputs.

    Notes
    -----
    Both tails are counted, so the power at zero effect equals ``alpha``.
    R's ``power.t.test(strict = FALSE)`` and ``clusterPower`` count the upper
    tail only; the difference is negligible for powers of interest.
    """
    ncp, a, dfs = np.broadcast_arrays(
        np.abs(np.asarray(noncentrality, dtype=float)),
        np.asarray(alpha, dtype=float),
        np.asarray(df, dtype=float),
    )
    if np.any((a <= 0) | (a >= 1)):
        raise TrialstatsError("The significance level alpha must lie in (0, 1).")
    if np.any(dfs <= 0):
        raise TrialstatsError(
            "The t test has no degrees of freedom: the trial needs more than two clusters."
        )
    out = np.empty(ncp.shape)
    normal = np.isinf(dfs)
    if np.any(normal):
        z = stats.norm.isf(a[normal] / 2)
        out[normal] = stats.norm.sf(z - ncp[normal]) + stats.norm.cdf(-z - ncp[normal])
    t_dist = ~normal
    if np.any(t_dist):
        d = dfs[t_dist]
        crit = stats.t.isf(a[t_dist] / 2, d)
        lam = ncp[t_dist]
        lower = stats.nct.cdf(-crit, d, lam)
        # scipy's noncentral t returns NaN when the far tail underflows; that tail is
        # P(T < -c) <= P(Z + lambda < 0) = Phi(-lambda), so it is zero to working precision.
        lower = np.where(np.isnan(lower) & (stats.norm.sf(lam) < 1e-12), 0.0, lower)
        out[t_dist] = stats.nct.sf(crit, d, lam) + lower
    return out


def solve_each(
    quantities: dict[str, Any], solve_one: Callable[[dict[str, float]], dict[str, float]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Broadcast the design quantities (``None`` = unknown, NaN) and solve scenario by scenario.

    Returns the flattened quantities and the solved values, each an array per key.
    """
    arrays = np.broadcast_arrays(
        *(np.asarray(np.nan if v is None else v, dtype=float) for v in quantities.values())
    )
    flat = {name: arr.ravel() for name, arr in zip(quantities, arrays, strict=True)}
    n_scenarios = arrays[0].size
    rows = [solve_one({name: float(v[i]) for name, v in flat.items()}) for i in range(n_scenarios)]
    solved = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    return flat, solved


def terms_at(power: np.ndarray, **values: Any) -> dict[str, Any]:
    """``power`` and the design ``values`` behind it, each numeric value broadcast (as float)
    to the shape of ``power``; text values (``baseline``, ``distribution``) are kept."""
    return {"power": power, **{
        key: value if isinstance(value, str)
        else np.broadcast_to(np.asarray(value, dtype=float), power.shape)
        for key, value in values.items()
    }}


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    """Raise a user-facing error unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise TrialstatsError(f"Unknown {what} {value!r}; choose one of {', '.join(choices)}.")


def check_unknown_given(unknown: str, given: dict[str, object]) -> None:
    """Raise unless exactly the ``unknown`` quantity of ``given`` is left out (``None``)."""
    for name, value in given.items():
        if name == unknown and value is not None:
            raise TrialstatsError(f"'{name}' is the unknown being solved for; leave it out.")
        if name != unknown and value is None:
            raise TrialstatsError(f"'{name}' is needed to solve for '{unknown}'.")


def arm_sizes(
    k_control: ArrayLike, allocation_ratio: ArrayLike, k_intervention: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray]:
    """Control and intervention clusters, from ``k_intervention`` or the allocation ratio."""
    k_c = np.asarray(k_control, dtype=float)
    if k_intervention is None:
        ratio = np.asarray(allocation_ratio, dtype=float)
        if np.any(ratio <= 0):
            raise TrialstatsError("The allocation ratio must be positive.")
        k_i = ratio * k_c
    else:
        k_i = np.asarray(k_intervention, dtype=float)
    if np.any(k_c <= 0) or np.any(k_i <= 0):
        raise TrialstatsError("Each arm needs a positive number of clusters.")
    return k_c, k_i


def analysed_size(cluster_size: ArrayLike, attrition: ArrayLike) -> np.ndarray:
    """Analysed patients per cluster, ``m (1 - attrition)``, after checking both."""
    m = np.asarray(cluster_size, dtype=float)
    a = np.asarray(attrition, dtype=float)
    if np.any((a < 0) | (a >= 1)):
        raise TrialstatsError("Attrition must lie in [0, 1).")
    if np.any(m <= 0):
        raise TrialstatsError("Cluster size must be positive.")
    return m * (1.0 - a)


def t_df(k_c: np.ndarray, k_i: np.ndarray, distribution: str) -> np.ndarray:
    """Df of the test: ``k_c + k_i - 2`` for ``t``, infinite for ``normal``."""
    check_choice(distribution, DISTRIBUTIONS, "distribution")
    if distribution == "normal":
        return np.full(np.broadcast_shapes(k_c.shape, k_i.shape), np.inf)
    return k_c + k_i - 2.0


def add_solve_columns(
    frame: pd.DataFrame, unknown: str, target: ArrayLike,
    solved: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Add ``unknown``, ``target_power`` and the exact (unrounded) solution columns: those of
    ``solved`` (``k_control_exact``, ``cluster_size_exact``, as :func:`solve_each` returns
    them) or, without it, the design's own clusters and cluster size."""
    frame.insert(0, "unknown", unknown)
    frame.insert(1, "target_power", np.broadcast_to(np.asarray(target, dtype=float), len(frame)))
    if solved is not None:
        frame["clusters_per_arm_exact"] = solved["k_control_exact"]
        frame["cluster_size_exact"] = solved["cluster_size_exact"]
    elif "clusters_per_arm_exact" not in frame:
        frame["clusters_per_arm_exact"] = frame["clusters_per_arm"]
        frame["cluster_size_exact"] = frame["cluster_size"]
    return frame


def check_target(target: float, alpha: float) -> None:
    """Raise unless ``alpha < target < 1``."""
    if not 0 < target < 1:
        raise TrialstatsError("The target power must lie in (0, 1).")
    if target <= alpha:
        raise TrialstatsError(
            f"The target power {target:g} must exceed the significance level {alpha:g}."
        )


def scenario_goal(s: dict[str, float]) -> tuple[float, float, float]:
    """Target power, significance level and allocation ratio of one scenario to solve,
    checked (:func:`check_target`; the ratio must be positive)."""
    target, alpha, ratio = s["target_power"], s["alpha"], s["allocation_ratio"]
    check_target(target, alpha)
    if ratio <= 0:
        raise TrialstatsError("The allocation ratio must be positive.")
    return target, alpha, ratio


def limit_power(
    difference: float, var_inf: float, k_c: float, k_i: float, alpha: float, distribution: str
) -> float:
    """Power as the cluster size tends to infinity, the ``bound`` of :func:`solve_trial_size`.

    ``var_inf`` is the limit of the variance of the estimated difference (the clustering
    part, :math:`(cv^2 + 1)\rho` times the per-arm variance terms): the noncentrality tends
    to :math:`|\text{difference}| / \\sqrt{\text{var\\_inf}}` while the df stay
    ``k_c + k_i - 2`` (:func:`t_df`). Without a clustering variance the power tends to 1.
    """
    if var_inf <= 0:
        return 1.0
    ncp = abs(difference) / math.sqrt(var_inf)
    df = t_df(np.asarray(k_c), np.asarray(k_i), distribution)
    return float(two_sided_power(ncp, alpha, df))


def _expand_upper(fn: Callable[[float], float], lo: float, start: float, what: str) -> float:
    """Double ``start`` until ``fn`` (power minus target) is non-negative."""
    hi = max(start, lo * 2.0)
    for _ in range(_MAX_DOUBLINGS):
        if fn(hi) >= 0:
            return hi
        hi *= 2.0
    raise TrialstatsError(f"No {what} up to {hi:.3g} reaches the target power.")


def solve_increasing(fn: Callable[[float], float], lo: float, start: float, what: str) -> float:
    """Smallest root of an increasing ``fn`` on ``[lo, inf)``; ``lo`` if ``fn(lo) >= 0``."""
    if fn(lo) >= 0:
        return lo
    hi = _expand_upper(fn, lo, start, what)
    return optimize.brentq(fn, lo, hi, xtol=XTOL, rtol=4 * np.finfo(float).eps)


def integer_clusters(
    k_exact: float, ratio: float, power_at: Callable[[float, float], float], target: float
) -> tuple[float, float]:
    """Smallest integer control-arm clusters (and rounded-up intervention arm) reaching target."""
    lo = MIN_CLUSTERS_PER_ARM / min(1.0, ratio)
    k_c = max(math.ceil(k_exact - 1e-9), math.ceil(lo - 1e-9))
    while power_at(k_c, ceil_arm(ratio * k_c)) < target:
        k_c += 1
    while k_c - 1 >= lo and power_at(k_c - 1, ceil_arm(ratio * (k_c - 1))) >= target:
        k_c -= 1
    return float(k_c), ceil_arm(ratio * k_c)


def solve_trial_size(
    unknown: str, power_at: Callable[[float, float, float], float], *, target: float,
    ratio: float, k_control: float, cluster_size: float, attrition: float, icc: float,
    bound: Callable[[float, float], float], larger: str,
) -> dict[str, float] | None:
    """Solve one scenario for clusters per arm or cluster size (any outcome).

    Parameters
    ----------
    unknown : str
        ``clusters_per_arm`` or ``cluster_size``; anything else returns None (the caller
        solves for its effect itself).
    power_at : callable
        ``power_at(k_control, k_intervention, cluster_size)`` at the scenario's effect.
    target, ratio, k_control, cluster_size, attrition, icc : float
        Target power, allocation ratio, the given control clusters and cluster size,
        attrition and ICC (for messages).
    bound : callable
        ``bound(k_control, k_intervention)``: the limit of the power as clusters grow.
    larger : str
        What to accept instead when no cluster size suffices ("effect", "difference").

    Returns
    -------
    dict or None
        ``k_control_exact`` (clusters) or ``cluster_size_exact`` (size), with
        ``k_control``, ``k_intervention`` and ``cluster_size`` rounded up to whole numbers.
    """
    if unknown == "clusters_per_arm":
        lo = MIN_CLUSTERS_PER_ARM / min(1.0, ratio)
        k_exact = solve_increasing(
            lambda k: power_at(k, ratio * k, cluster_size) - target, lo, lo, "number of clusters"
        )
        k_c, k_i = integer_clusters(
            k_exact, ratio, lambda kc, ki: power_at(kc, ki, cluster_size), target
        )
        return {"k_control_exact": k_exact, "k_control": k_c, "k_intervention": k_i,
                "cluster_size": cluster_size}
    if unknown != "cluster_size":
        return None
    k_c, k_i = k_control, ratio * k_control
    limit = bound(k_c, k_i)
    if limit <= target:
        raise TrialstatsError(
            f"No cluster size reaches power {target:g} with {k_c:g} control and {k_i:g} "
            f"intervention clusters: as clusters grow the power only approaches "
            f"{limit:.4f} (ICC {icc:g}). Add clusters or accept a larger {larger}."
        )
    lo = 1.0 / (1.0 - attrition)
    m_exact = solve_increasing(
        lambda mm: power_at(k_c, k_i, mm) - target, lo, 2.0 * lo, "cluster size"
    )
    return {"cluster_size_exact": m_exact, "cluster_size": float(math.ceil(m_exact - 1e-9)),
            "k_control": k_c, "k_intervention": k_i}


def broadcast_terms(terms: dict[str, Any]) -> dict[str, np.ndarray]:
    """The terms of a power calculation broadcast to the shape of ``power`` and flattened."""
    shape = terms["power"].shape
    return {key: np.broadcast_to(np.asarray(value), shape).ravel() for key, value in terms.items()}


def size_columns(col: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The design-size columns every power table starts with, from :func:`broadcast_terms`."""
    return {
        "power": col["power"], "clusters_per_arm": col["k_control"],
        "k_control": col["k_control"], "k_intervention": col["k_intervention"],
        "cluster_size": col["cluster_size"], "cluster_size_analysed": col["cluster_size_analysed"],
        "n_total": (col["k_control"] + col["k_intervention"]) * col["cluster_size_analysed"],
    }


def ceil_arm(k: float) -> float:
    """Clusters of an arm rounded up (at least 1), forgiving rounding error of 1e-9."""
    return float(max(math.ceil(k - 1e-9), 1))
