r"""Analytic power and clusters per arm for two event rates (count outcomes), Hayes & Bennett.

Model
-----
``k`` clusters per arm, each observed for ``y`` units of person-time; event rates
:math:`\lambda_0` (control) and :math:`\lambda_1 = R\lambda_0` (intervention) per unit; the true
cluster rates vary within an arm with coefficient of variation :math:`c_v` (between-cluster CV).
Hayes & Bennett (1999, *Int J Epidemiol* 28:319, equation 5) size the trial as

.. math::

    k = 1 + (z_{1-\alpha/2} + z_{1-\beta})^2\,
        \frac{(\lambda_0 + \lambda_1)/y + c_v^2(\lambda_0^2 + \lambda_1^2)}
             {(\lambda_0 - \lambda_1)^2},

the leading 1 their allowance for the *t* distribution with few clusters. Solved for power,
the noncentrality is :math:`\delta = |\lambda_1 - \lambda_0| \sqrt{(k - 1) / V}` with
:math:`V` the fraction's numerator, and the two-sided power is
:math:`\Phi(\delta - z_{1-\alpha/2}) + \Phi(-\delta - z_{1-\alpha/2})` (clusterPower's
``cpa.count`` counts the first term only).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from trialstats.errors import TrialstatsError

__all__ = ["power_rates"]


def power_rates(
    *, rate0: float, rate_ratio: float | None, person_time: float | None, cv_between: float,
    clusters_per_arm: float | None = None, target_power: float | None = None,
    alpha: float = 0.05,
) -> dict[str, float]:
    r"""Power for a given design, or the one design quantity left out for a target power.

    Parameters
    ----------
    rate0 : float
        Control event rate per unit of person-time (> 0).
    rate_ratio : float or None
        Intervention / control rate (> 0, not 1). None: solved from ``target_power``, the
        detectable *reduction* (the rate ratio below 1), as clusterPower's ``cpa.count``
        with its default ``r1inc = TRUE``.
    person_time : float or None
        Person-time of observation per cluster, ``y`` (> 0). None: solved.
    cv_between : float
        Between-cluster coefficient of variation of the true rates (>= 0).
    clusters_per_arm : float or None
        Clusters per arm (>= 2). None: solved.
    target_power : float, optional
        Power to reach when solving; with it exactly one of ``rate_ratio``, ``person_time``
        and ``clusters_per_arm`` is None, without it none is.
    alpha : float
        Two-sided level.

    Returns
    -------
    dict
        ``power``, ``clusters_per_arm`` (whole clusters: the exact value rounded up when
        solved), ``clusters_per_arm_exact``, ``rate0``, ``rate1``, ``rate_ratio``,
        ``person_time``, ``cv_between``, ``alpha``, ``variance`` (the numerator *V*) and
        ``solved`` (the quantity solved for, or ``"power"``).

    Notes
    -----
    Each unknown is the root of :math:`\text{power} = \text{target}` in a quantity the power
    is monotone in: clusters per arm (increasing), person-time (increasing, to the limit
    :math:`\Phi(|\lambda_1 - \lambda_0|\sqrt{(k-1)/(c_v^2(\lambda_0^2 +
    \lambda_1^2))} - z) + \dots` as :math:`y \to \infty`, which must exceed the target)
    and the rate ratio on (0, 1) (decreasing).
    """
    if rate0 <= 0 or (rate_ratio is not None and (rate_ratio <= 0 or rate_ratio == 1)):
        raise TrialstatsError("Counts need --rate0 > 0 and --rate-ratio > 0 other than 1.")
    if (person_time is not None and person_time <= 0) or cv_between < 0 or not 0 < alpha < 1:
        raise TrialstatsError("Counts need person-time per cluster > 0, a between-cluster CV "
                              ">= 0 and alpha in (0, 1).")
    unknown = [name for name, value in (("clusters_per_arm", clusters_per_arm),
                                        ("person_time", person_time),
                                        ("rate_ratio", rate_ratio)) if value is None]
    if len(unknown) != (target_power is not None):
        raise TrialstatsError(
            "Give --rate-ratio, --cluster-size (person-time per cluster) and --clusters-per-arm "
            "for power, or leave out exactly one of them and give --target-power to solve "
            "for it.")
    if target_power is not None and not alpha < target_power < 1:
        raise TrialstatsError(f"The target power must lie in ({alpha:g}, 1).")
    if clusters_per_arm is not None and clusters_per_arm < 2:
        raise TrialstatsError("Each arm needs at least two clusters.")
    z = stats.norm.isf(alpha / 2)

    def power_at(k: float, y: float, ratio: float) -> float:
        return _power(k, rate0, rate0 * ratio, _variance(rate0, ratio, y, cv_between), z)

    k, y, ratio = clusters_per_arm, person_time, rate_ratio
    solved = unknown[0] if unknown else "power"
    exact = k
    if solved == "clusters_per_arm":
        # Hayes & Bennett's one-tail answer bounds the two-sided one from above; at k = 1
        # the power is alpha, below the target
        rate1 = rate0 * ratio
        upper = 1 + ((z + stats.norm.ppf(target_power)) ** 2
                     * _variance(rate0, ratio, y, cv_between) / (rate1 - rate0) ** 2)
        exact = optimize.brentq(lambda c: power_at(c, y, ratio) - target_power, 1.0, upper,
                                xtol=1e-12)
        k = max(float(np.ceil(exact - 1e-9)), 2.0)
    elif solved == "person_time":
        if power_at(k, np.inf, ratio) <= target_power:
            raise TrialstatsError(
                f"No person-time per cluster reaches power {target_power:g} with {k:g} "
                f"clusters per arm: the between-cluster CV {cv_between:g} caps it at "
                f"{power_at(k, np.inf, ratio):.4f}; add clusters.")
        y = float(np.exp(optimize.brentq(
            lambda v: power_at(k, np.exp(v), ratio) - target_power, -40.0, 40.0, xtol=1e-13)))
    elif solved == "rate_ratio":
        ratio = optimize.brentq(lambda r: power_at(k, y, r) - target_power, 1e-9, 1 - 1e-9,
                                xtol=1e-14)
    exact = k if exact is None or solved != "clusters_per_arm" else exact
    rate1 = rate0 * ratio
    return {"power": power_at(k, y, ratio), "clusters_per_arm": k,
            "clusters_per_arm_exact": exact, "rate0": rate0, "rate1": rate1,
            "rate_ratio": ratio, "person_time": y, "cv_between": cv_between,
            "alpha": alpha, "variance": _variance(rate0, ratio, y, cv_between),
            "solved": solved}


def _variance(rate0: float, ratio: float, person_time: float, cv_between: float) -> float:
    r"""The numerator :math:`V = (\lambda_0 + \lambda_1)/y + c_v^2(\lambda_0^2 +
    \lambda_1^2)` (``person_time`` may be ``inf``)."""
    rate1 = rate0 * ratio
    return (rate0 + rate1) / person_time + cv_between**2 * (rate0**2 + rate1**2)


def _power(k: float, rate0: float, rate1: float, variance: float, z: float) -> float:
    # V = 0 (no CV, endless person-time): power 1
    ncp = abs(rate1 - rate0) * np.sqrt((k - 1) / variance) if variance > 0 else np.inf
    return float(stats.norm.cdf(ncp - z) + stats.norm.cdf(-ncp - z))
