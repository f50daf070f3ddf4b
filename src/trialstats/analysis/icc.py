r"""Intra-cluster correlation with a profile-likelihood confidence interval.

For the random-intercept model of :mod:`trialstats.analysis.reml`,

.. math::

    \rho = \frac{\sigma_b^2}{\sigma_b^2 + \sigma_e^2} = \frac{\gamma}{1 + \gamma},
    \qquad \gamma = \sigma_b^2 / \sigma_e^2 .

The interval inverts the likelihood-ratio test on the REML log-likelihood profiled over
:math:`\sigma_e^2` (and :math:`\beta`), :math:`\ell_R(\gamma)`:

.. math::

    \{\gamma \ge 0 : 2\{\ell_R(\hat\gamma) - \ell_R(\gamma)\} \le \chi^2_{1}(1 - \alpha)\},

and is mapped to :math:`\rho` by the monotone :math:`\gamma / (1 + \gamma)`. When the profile at
:math:`\gamma = 0` lies within the cut-off the lower limit is 0 (no boundary mixture correction:
the plain :math:`\chi^2_1` cut-off, a slightly conservative choice at the boundary; Self & Liang
1987). The end points are found by the bracketed Newton iteration of the kernel on the analytic
derivative of the profile. See Searle, Casella & McCulloch (1992, ch. 6) for REML and
Ukoumunne (2002, *Stat. Med.* 21:3757) for ICC intervals in cluster trials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from trialstats.analysis.reml import ClusterSums, RemlFit, fit_reml, profile_terms
from trialstats.analysis.roots import bracketed_newton
from trialstats.errors import TrialstatsError

__all__ = ["IccInterval", "icc_interval"]

# The upper end point is bracketed on gamma-hat * 10**k, k = 1..12 (on 10**k, k = -4..7, when
# gamma-hat = 0); if the profile never leaves the cut-off there the upper limit is ICC 1.
_LADDER_FACTORS = 10.0 ** np.arange(1, 13)
_LADDER_FROM_ZERO = 10.0 ** np.arange(-4, 8)
# Largest variance ratio searched for the upper limit (ICC 1 - 1e-8). Beyond it A(gamma) tends to
# the within-cluster scatter, which is singular for cluster-level columns, so the profile cannot
# be evaluated; an upper limit not found below it is reported as ICC 1.
_GAMMA_MAX = 1e8


@dataclass(frozen=True)
class IccInterval:
    """ICC estimate and profile-likelihood interval; arrays have the batch shape of the sums.

    Attributes
    ----------
    estimate, low, high : ndarray
        :math:`\\hat\\rho` and the interval; ``high`` is 1 when the profile never falls below
        the cut-off.
    gamma, gamma_low, gamma_high : ndarray
        The same on the variance-ratio scale (``gamma_high`` may be ``inf``).
    level : float
        Confidence level.
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    gamma: np.ndarray
    gamma_low: np.ndarray
    gamma_high: np.ndarray
    level: float


def _flat_batch(sums: ClusterSums) -> ClusterSums:
    """The same sums with the batch dimensions merged into one."""
    n_slots, p = np.shape(sums.n)[-1], sums.n_params
    shapes = {"n": (), "xtx": (p, p), "xty": (p,), "yty": (), "xsum": (p,), "ysum": ()}
    return ClusterSums(
        **{k: np.reshape(getattr(sums, k), (-1, n_slots, *tail)) for k, tail in shapes.items()}
    )


def _take(sums: ClusterSums, index: np.ndarray) -> ClusterSums:
    """Replicates ``index`` of sums with one batch dimension."""
    return ClusterSums(**{k: getattr(sums, k)[index] for k in ClusterSums.__dataclass_fields__})


def _to_icc(gamma: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(gamma), 1.0, gamma / (1.0 + gamma))


def icc_interval(
    sums: ClusterSums, fit: RemlFit | None = None, *, level: float = 0.95
) -> IccInterval:
    """ICC from a REML fit with its profile-likelihood confidence interval, vectorised.

    Parameters
    ----------
    sums : ClusterSums
        The data (any batch shape).
    fit : RemlFit, optional
        :func:`~trialstats.analysis.reml.fit_reml` of ``sums``; fitted here when omitted.
    level : float, default 0.95
        Confidence level; the cut-off is :math:`\\chi^2_1` at ``level``.

    Returns
    -------
    IccInterval
    """
    if not 0.0 < level < 1.0:
        raise TrialstatsError(f"level must be between 0 and 1, got {level}.")
    if fit is None:
        fit = fit_reml(sums)
    batch = sums.batch_shape
    if np.shape(fit.gamma) != batch:
        raise TrialstatsError("The fit does not belong to these data (batch shapes differ).")
    flat = _flat_batch(sums)
    n_rep = flat.n.shape[0]
    gamma_hat = np.asarray(fit.gamma, dtype=float).reshape(n_rep)
    cutoff = stats.chi2.ppf(level, df=1)

    def profile(x: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        terms = profile_terms(_take(flat, index), x)
        return terms.criterion(), terms.d_criterion()

    everyone = np.arange(n_rep)
    top, _ = profile(gamma_hat, everyone)
    at_zero, _ = profile(np.zeros(n_rep), everyone)

    # Lower limit: 0 if the profile at 0 is within the cut-off, else the root on (0, gamma-hat)
    # of  top + cutoff - f(gamma), which increases from negative to cutoff.
    gamma_low = np.zeros(n_rep)
    need = np.flatnonzero(at_zero - top > cutoff)
    if need.size:

        def lower(x: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            value, slope = profile(x, need[index])
            return top[need[index]] + cutoff - value, -slope

        gamma_low[need], _ = bracketed_newton(
            lower,
            np.zeros(need.size),
            gamma_hat[need],
            top[need] + cutoff - at_zero[need],
            np.full(need.size, cutoff),
        )

    # Upper limit: bracket the root of f(gamma) - top - cutoff on a ladder above gamma-hat.
    ladder = np.minimum(
        np.where(gamma_hat[:, None] > 0, gamma_hat[:, None] * _LADDER_FACTORS, _LADDER_FROM_ZERO),
        _GAMMA_MAX,
    )
    crit = profile_terms(flat, ladder).criterion() - top[:, None] - cutoff
    crit = np.where(np.isfinite(crit), crit, np.inf)
    above = crit > 0
    found = np.any(above, axis=1)
    first = np.argmax(above, axis=1)
    gamma_high = np.full(n_rep, np.inf)
    rows = np.flatnonzero(found)
    if rows.size:
        k = first[rows]
        lo = np.where(k > 0, ladder[rows, np.maximum(k - 1, 0)], gamma_hat[rows])
        value_lo = np.where(k > 0, crit[rows, np.maximum(k - 1, 0)], -cutoff)

        def upper(x: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            value, slope = profile(x, rows[index])
            return value - top[rows[index]] - cutoff, slope

        gamma_high[rows], _ = bracketed_newton(
            upper, lo, ladder[rows, k], value_lo, np.minimum(crit[rows, k], 1e300)
        )

    def shaped(values: np.ndarray) -> np.ndarray:
        return values.reshape(batch)[()]

    return IccInterval(
        estimate=shaped(_to_icc(gamma_hat)),
        low=shaped(_to_icc(gamma_low)),
        high=shaped(_to_icc(gamma_high)),
        gamma=shaped(gamma_hat),
        gamma_low=shaped(gamma_low),
        gamma_high=shaped(gamma_high),
        level=level,
    )
