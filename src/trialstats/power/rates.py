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
    *, rate0: float, rate_ratio: float, person_time: float, cv_between: float,
    clusters_per_arm: float | None = None, target_power: float | None = None,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Power for given clusters per arm, or the clusters per arm for a target power.

    Parameters
    ----------
    rate0 : float
        Control event rate per unit of person-time (> 0).
    rate_ratio : float
        Intervention / control rate (> 0, not 1).
    person_time : float
        Person-time of observation per cluster, ``y`` (> 0).
    cv_between : float
        Between-cluster coefficient of variation of the true rates (>= 0).
    clusters_per_arm : float, optional
        Given: power is computed. Omitted: solved from ``target_power``.
    target_power : float, optional
        Power to reach when solving.
    alpha : float
        Two-sided level.

    Returns
    -------
    dict
        ``power``, ``clusters_per_arm`` (whole clusters: the exact value rounded up when
        solved), ``clusters_per_arm_exact``, ``rate0``, ``rate1``, ``rate_ratio``,
        ``person_time``, ``cv_between``, ``alpha`` and ``variance`` (the numerator *V*).
    """
    if rate0 <= 0 or rate_ratio <= 0 or rate_ratio == 1:
        raise TrialstatsError("Counts need --rate0 > 0 and --rate-ratio > 0 other than 1.")
    if person_time <= 0 or cv_between < 0 or not 0 < alpha < 1:
        raise TrialstatsError("Counts need person-time per cluster > 0, a between-cluster CV "
                              ">= 0 and alpha in (0, 1).")
    if (clusters_per_arm is None) == (target_power is None):
        raise TrialstatsError("Give either --clusters-per-arm (for power) or --target-power "
                              "(for clusters per arm).")
    rate1 = rate0 * rate_ratio
    variance = (rate0 + rate1) / person_time + cv_between**2 * (rate0**2 + rate1**2)
    z = stats.norm.isf(alpha / 2)
    if clusters_per_arm is None:
        if not alpha < target_power < 1:
            raise TrialstatsError(f"The target power must lie in ({alpha:g}, 1).")
        # Hayes & Bennett's one-tail answer bounds the two-sided one from above; at k = 1
        # the power is alpha, below the target
        upper = 1 + (z + stats.norm.ppf(target_power)) ** 2 * variance / (rate1 - rate0) ** 2
        exact = optimize.brentq(
            lambda k: _power(k, rate0, rate1, variance, z) - target_power, 1.0, upper,
            xtol=1e-12)
        k = max(float(np.ceil(exact - 1e-9)), 2.0)
    else:
        if clusters_per_arm < 2:
            raise TrialstatsError("Each arm needs at least two clusters.")
        exact = k = float(clusters_per_arm)
    return {"power": _power(k, rate0, rate1, variance, z), "clusters_per_arm": k,
            "clusters_per_arm_exact": exact, "rate0": rate0, "rate1": rate1,
            "rate_ratio": rate_ratio, "person_time": person_time, "cv_between": cv_between,
            "alpha": alpha, "variance": variance}


def _power(k: float, rate0: float, rate1: float, variance: float, z: float) -> float:
    ncp = abs(rate1 - rate0) * np.sqrt((k - 1) / variance)
    return float(stats.norm.cdf(ncp - z) + stats.norm.cdf(-ncp - z))
