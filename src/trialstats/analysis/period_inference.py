r"""Small-sample inference and variance-component intervals for stepped-wedge / crossover fits.

Model and notation as in :mod:`trialstats.analysis.reml_periods`: cluster :math:`u_i \sim
N(0, \tau^2)`, cluster-period :math:`v_{it} \sim N(0, \gamma^2)`, residual
:math:`e \sim N(0, \sigma^2)`, ratios :math:`\lambda_c = \tau^2/\sigma^2`,
:math:`\lambda_p = \gamma^2/\sigma^2`, :math:`\Phi = \hat\sigma^2 A^{-1}`.

- Satterthwaite df for :math:`L^\top\beta` as lmerTest (Kuznetsova, Brockhoff & Christensen
  2017, *J. Stat. Softw.* 82(13)), with analytic instead of numerical derivatives.
- Kenward-Roger adjusted covariance and df as pbkrtest (Kenward & Roger 1997, *Biometrics*
  53:983; Halekoh & Hojsgaard 2014, *J. Stat. Softw.* 59(9)).
- ICC :math:`= (\tau^2 + \gamma^2)/(\tau^2 + \gamma^2 + \sigma^2)` and CAC
  :math:`= \tau^2/(\tau^2 + \gamma^2)` (Hooper et al. 2016, *Stat. Med.* 35:4718) with
  profile-likelihood intervals on the REML likelihood.

The generic last steps (pseudo-inverse of the Hessian; pbkrtest's ``vcovAdj`` and ``Lb_ddf``
from the :math:`P, Q, K` terms) are those of :mod:`trialstats.analysis.inference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from trialstats.analysis.inference import (
    KenwardRoger,
    kenward_roger_from_terms,
    satterthwaite_from_hessian,
)
from trialstats.analysis.reml_periods import (
    PeriodFit,
    PeriodSums,
    PeriodTerms,
    fit_period_reml,
    period_terms,
    profiled_criterion,
)
from trialstats.errors import TrialstatsError

__all__ = [
    "VarianceIntervals",
    "kenward_roger_periods",
    "satterthwaite_periods",
    "variance_intervals",
]

# Largest total variance ratio searched for the upper ICC limit (ICC 1 - 1e-8).
_LAMBDA_MAX = 1e8
# Random-effect columns of Z_i: the cluster intercept, then the T cluster-periods.
_BLOCKS = (slice(0, 1), slice(1, None))


def _prepare(
    sums: PeriodSums, fit: PeriodFit, contrast: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, PeriodTerms]:
    """Ratios (B, 2), residual variance (B,), contrast (B, p) and the terms at the fit."""
    p = sums.n_params
    n_rep = int(np.prod(sums.batch_shape))
    if np.shape(fit.beta) != (*sums.batch_shape, p):
        raise TrialstatsError("The fit does not belong to these data (shapes differ).")
    L = np.asarray(contrast, dtype=float)
    if L.shape[-1:] != (p,) or not np.any(L != 0) or not np.all(np.isfinite(L)):
        raise TrialstatsError(f"The contrast needs {p} finite entries, not all zero.")
    L = np.broadcast_to(L, (*sums.batch_shape, p)).reshape(n_rep, p)
    lam = np.asarray(fit.ratios, dtype=float).reshape(n_rep, 2)
    s = np.asarray(fit.var_residual, dtype=float).reshape(n_rep)
    return lam, s, L, period_terms(sums, fit.ratios)


def satterthwaite_periods(sums: PeriodSums, fit: PeriodFit, contrast: Any) -> np.ndarray:
    """:func:`~trialstats.analysis.inference.satterthwaite_df` for the period model:
    ``sums`` and its :func:`fit_period_reml` ``fit``, contrast :math:`L` of shape (p,) or
    (..., p); degrees of freedom of the batch shape.

    Notes
    -----
    lmerTest's parameters are :math:`(\\theta_c, \\theta_p, \\sigma) = (\\sqrt{\\lambda_c},
    \\sqrt{\\lambda_p}, \\sqrt{s})`. With the REML deviance :math:`D = \\log|V| + \\log|A| +
    (N-p)\\log(2\\pi s) + q/s`: :math:`D_k = \\mathrm{tr}(PG_k) - r^\\top G_k r/s`,
    :math:`D_{kl} = 2 r^\\top G_k P G_l r/s - \\mathrm{tr}(PG_kPG_l)`,
    :math:`D_{ks} = r^\\top G_k r/s^2`, and by the chain rule
    :math:`H_{\\theta_k\\theta_l} = 4\\theta_k\\theta_l D_{kl} + 2\\delta_{kl} D_k`,
    :math:`H_{\\theta_k\\sigma} = 4\\theta_k\\sigma D_{ks}`,
    :math:`H_{\\sigma\\sigma} = 2 D_s + 4 s D_{ss}`. The gradient of :math:`L^\\top\\Phi L =
    s\\,L^\\top A^{-1} L` is :math:`(2\\theta_k s\\, v^\\top E_k v, 2\\sigma L^\\top A^{-1} L)`
    with :math:`v = A^{-1}L`, :math:`E_k = X^\\top W G_k W X`. A variance at 0 drops out
    (its row of the gradient and Hessian is zero off the diagonal), as in lmerTest.
    """
    lam, s, L, d = _prepare(sums, fit, contrast)
    q, dof = d.base.q, d.dof
    theta, sigma = np.sqrt(lam), np.sqrt(s)
    d_k = d.tr_pg - d.r_g_r / s[:, None]
    d_kl = 2.0 * d.r_gpg_r / s[:, None, None] - d.tr_pgpg
    d_ks = d.r_g_r / s[:, None] ** 2
    d_s = dof / s - q / s**2
    d_ss = -dof / s**2 + 2.0 * q / s**3
    hessian = np.empty((lam.shape[0], 3, 3))
    hessian[:, :2, :2] = 4.0 * theta[:, :, None] * theta[:, None, :] * d_kl
    hessian[:, [0, 1], [0, 1]] += 2.0 * d_k
    hessian[:, :2, 2] = hessian[:, 2, :2] = 4.0 * theta * sigma[:, None] * d_ks
    hessian[:, 2, 2] = 2.0 * d_s + 4.0 * s * d_ss
    v = np.einsum("bpq,bq->bp", d.base.a_inv, L)
    var_contrast = s * np.sum(v * L, axis=-1)
    grad = np.empty((lam.shape[0], 3))
    for k in range(2):
        grad[:, k] = 2.0 * theta[:, k] * s * np.einsum("bp,bpq,bq->b", v, d.e_1[k], v)
    grad[:, 2] = 2.0 * sigma * np.sum(v * L, axis=-1)
    df = satterthwaite_from_hessian(var_contrast, grad, hessian)
    return np.reshape(df, sums.batch_shape)[()]


def _cluster_blocks(terms: PeriodTerms) -> tuple[np.ndarray, np.ndarray]:
    """:math:`M_i = Z_i^\\top W_i Z_i` (B, J, T+1, T+1) and :math:`F_i = Z_i^\\top W_i X_i`
    (B, J, T+1, p), from :math:`M_{cc} = S e`, :math:`M_{cp} = e a^\\top`,
    :math:`M_{pp} = \\mathrm{diag}(a) - \\kappa a a^\\top` (module docstring of the kernel)."""
    a, e, kappa = terms.a, terms.base.e, terms.base.kappa
    n_per = a.shape[-1]
    m = np.empty((*a.shape[:2], n_per + 1, n_per + 1))
    m[..., 0, 0] = a.sum(axis=-1) * e
    m[..., 0, 1:] = m[..., 1:, 0] = a * e[..., None]
    m[..., 1:, 1:] = -kappa[..., None, None] * a[..., :, None] * a[..., None, :]
    m[..., np.arange(1, n_per + 1), np.arange(1, n_per + 1)] += a
    return m, np.concatenate(terms.f, axis=2)


def kenward_roger_periods(sums: PeriodSums, fit: PeriodFit, contrast: Any) -> KenwardRoger:
    """Kenward-Roger adjusted covariance, SE and df for :math:`L^\\top\\beta` (as pbkrtest).

    Parameters
    ----------
    sums, fit, contrast
        As :func:`satterthwaite_periods`.

    Returns
    -------
    KenwardRoger
        Batch shape of the fit.

    Notes
    -----
    Variance parameters :math:`(\\tau^2, \\gamma^2, \\sigma^2)` with
    :math:`\\Sigma = \\tau^2 G_c + \\gamma^2 G_p + \\sigma^2 I`, :math:`\\Sigma^{-1} = W/s`.
    Besides :math:`E_k`, :math:`E_{kl} = X^\\top W G_k W G_l W X` and
    :math:`\\mathrm{tr}(W G_k W G_l)` (see the module docstring), the residual parameter needs
    powers of :math:`W`; from :math:`W = I - W Z\\Lambda Z^\\top` (:math:`\\Lambda` the
    variance ratios of the :math:`T + 1` random-effect columns):
    :math:`X^\\top W^2 X = A - \\sum_i F_i^\\top\\Lambda F_i`,
    :math:`Z^\\top W^2 X = F - M\\Lambda F`, :math:`Z^\\top W^2 Z = M - M\\Lambda M`,
    :math:`X^\\top W^3 X = X^\\top W^2 X - \\sum_i F_i^\\top \\Lambda (F_i - M_i\\Lambda F_i)`
    and :math:`\\mathrm{tr}\\,W^2 = N - 2\\,\\mathrm{tr}(\\Lambda M) +
    \\mathrm{tr}(\\Lambda M \\Lambda M)`. Then :math:`P_k = -E_k/s^2`,
    :math:`Q_{kl} = E_{kl}/s^3`, :math:`K_{kl} = \\mathrm{tr}(WG_kWG_l)/s^2`, and so on.
    """
    lam, s, L, d = _prepare(sums, fit, contrast)
    m, f = _cluster_blocks(d)
    n_per = m.shape[-1] - 1
    lam_vec = np.concatenate([lam[:, :1], np.repeat(lam[:, 1:], n_per, axis=1)], axis=1)
    lam_f = lam_vec[:, None, :, None] * f  # Lambda F, (B, J, T+1, p)
    f2 = f - m @ lam_f  # Z'W^2 X
    m_lam = m * lam_vec[:, None, None, :]  # M Lambda
    m2 = m - m_lam @ m  # Z'W^2 Z
    a = np.linalg.inv(d.base.a_inv)
    xw2x = a - np.einsum("bjkp,bjkq->bpq", f, lam_f)
    xw3x = xw2x - np.einsum("bjkp,bjkq->bpq", lam_f, f2)
    n_obs = np.asarray(fit.n_obs, dtype=float).reshape(-1)
    tr_w2 = n_obs - 2.0 * np.einsum("bjkk->b", m_lam) + np.einsum("bjkl,bjlk->b", m_lam, m_lam)
    s2, s3 = s[:, None, None] ** 2, s[:, None, None] ** 3
    P = [-d.e_1[0] / s2, -d.e_1[1] / s2, -xw2x / s2]
    q_e = [np.einsum("bjkp,bjkq->bpq", f[:, :, bk], f2[:, :, bk]) / s3 for bk in _BLOCKS]
    Q = [[d.e_2[k][j] / s3 for j in range(2)] + [q_e[k]] for k in range(2)]
    Q.append([np.swapaxes(q_e[0], -1, -2), np.swapaxes(q_e[1], -1, -2), xw3x / s3])
    k_e = [np.trace(m2[:, :, bk, bk], axis1=-2, axis2=-1).sum(axis=1) / s**2 for bk in _BLOCKS]
    K = [[d.tr_wgwg[:, k, j] / s**2 for j in range(2)] + [k_e[k]] for k in range(2)]
    K.append([k_e[0], k_e[1], tr_w2 / s**2])
    kr = kenward_roger_from_terms(s[:, None, None] * d.base.a_inv, P, Q, K, L)
    batch = sums.batch_shape
    return KenwardRoger(
        df=np.reshape(kr.df, batch)[()],
        se=np.reshape(kr.se, batch)[()],
        vcov_adjusted=np.reshape(kr.vcov_adjusted, (*batch, *kr.vcov_adjusted.shape[-2:]))[()],
    )


@dataclass(frozen=True)
class VarianceIntervals:
    """ICC and CAC with profile-likelihood intervals; arrays have the batch shape of the sums.

    Attributes
    ----------
    icc, icc_low, icc_high : ndarray
        :math:`(\\tau^2 + \\gamma^2)/(\\tau^2 + \\gamma^2 + \\sigma^2)` and its interval.
    cac, cac_low, cac_high : ndarray
        :math:`\\tau^2/(\\tau^2 + \\gamma^2)` and its interval (NaN when both variances are 0).
    level : float
    """

    icc: np.ndarray
    icc_low: np.ndarray
    icc_high: np.ndarray
    cac: np.ndarray
    cac_low: np.ndarray
    cac_high: np.ndarray
    level: float


def _profile_limits(
    profile, estimate: float, lower: float, upper: float | None, cutoff: float
) -> tuple[float, float]:
    """Where ``profile(x) = cutoff`` either side of ``estimate`` (profile(estimate) = 0).

    ``upper=None`` searches upwards by doubling; a side whose end stays within the cut-off
    gives that end (``inf`` when doubling never leaves it).
    """

    def excess(x: float) -> float:
        return profile(x) - cutoff

    low = lower
    if excess(lower) > 0:
        low = optimize.brentq(excess, lower, estimate, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    if upper is not None:
        if excess(upper) <= 0:
            return low, upper
        hi = upper
    else:
        hi = max(estimate, 1e-3)
        while excess(hi) <= 0:
            if hi > _LAMBDA_MAX:
                return low, np.inf
            hi *= 2.0
    return low, optimize.brentq(excess, estimate, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps)


def _bounded_min(fun, upper: float) -> float:
    """Minimum of ``fun`` on [0, upper]: bounded Brent and both end points."""
    inner = optimize.minimize_scalar(
        fun, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12}
    )
    return min(float(inner.fun), fun(0.0), fun(upper))


def _one_replicate(one: PeriodSums, ratios: np.ndarray, cutoff: float) -> list[float]:
    """S, its limits, CAC and its limits for one dataset (CAC NaN when S = 0)."""

    def crit(total: float, cac: float) -> float:
        lam = np.array([[total * cac, total * (1.0 - cac)]])
        return float(profiled_criterion(one, lam)[0])

    s_hat = float(ratios.sum())
    c_hat = float(ratios[0] / s_hat) if s_hat > 0 else np.nan
    top = crit(s_hat, 0.0 if s_hat == 0 else c_hat)

    def icc_profile(total: float) -> float:
        return _bounded_min(lambda c: crit(total, c), 1.0) - top

    out = [s_hat, *_profile_limits(icc_profile, s_hat, 0.0, None, cutoff)]
    if s_hat == 0:
        return [*out, np.nan, np.nan, np.nan]
    s_max = 20.0 * s_hat + 1.0

    def cac_profile(cac: float) -> float:
        return _bounded_min(lambda total: crit(total, cac), s_max) - top

    return [*out, c_hat, *_profile_limits(cac_profile, c_hat, 0.0, 1.0, cutoff)]


def _replicate(sums: PeriodSums, index: tuple[int, ...]) -> PeriodSums:
    """One replicate of the sums (batch shape ())."""
    return PeriodSums(
        **{k: np.asarray(getattr(sums, k))[index] for k in PeriodSums.__dataclass_fields__}
    )


def variance_intervals(
    sums: PeriodSums, fit: PeriodFit | None = None, *, level: float = 0.95
) -> VarianceIntervals:
    """ICC and CAC with profile-likelihood confidence intervals.

    Parameters
    ----------
    sums : PeriodSums
        The data (any batch shape; replicates are handled one at a time).
    fit : PeriodFit, optional
        :func:`fit_period_reml` of ``sums``; fitted here when omitted.
    level : float, default 0.95

    Returns
    -------
    VarianceIntervals

    Notes
    -----
    Reparametrise :math:`S = \\lambda_c + \\lambda_p` (ICC :math:`= S/(1+S)`) and
    :math:`c = \\lambda_c / S` (CAC). The ICC interval is
    :math:`\\{S : \\min_{c \\in [0,1]} f(S, c) - f(\\hat S, \\hat c) \\le
    \\chi^2_1(\\text{level})\\}` with :math:`f` the profiled REML criterion of
    :mod:`~trialstats.analysis.reml_periods` (:math:`\\sigma^2` and :math:`\\beta` profiled
    out); the CAC interval likewise with :math:`S` profiled over :math:`[0, 20\\hat S + 1]`.
    Inner minima by bounded Brent (``scipy.optimize.minimize_scalar``) and the end points of
    the range, limits by Brent's root finder; a limit is 0 (or 1, for the CAC) when the
    profile there is within the cut-off (plain :math:`\\chi^2_1`, no boundary mixture; Self
    & Liang 1987). Replicates are handled one at a time (this is for analysing a trial, not
    for simulation).
    """
    if not 0.0 < level < 1.0:
        raise TrialstatsError(f"level must be between 0 and 1, got {level}.")
    if fit is None:
        fit = fit_period_reml(sums)
    batch = sums.batch_shape
    n_rep = int(np.prod(batch))
    ratios = np.asarray(fit.ratios, dtype=float).reshape(n_rep, 2)
    cutoff = stats.chi2.ppf(level, df=1)
    out = np.array(
        [
            _one_replicate(_replicate(sums, index), ratios[r], cutoff)
            for r, index in enumerate(np.ndindex(batch))
        ]
    ).reshape(n_rep, 6)
    with np.errstate(invalid="ignore"):
        icc = np.where(np.isinf(out[:, :3]), 1.0, out[:, :3] / (1.0 + out[:, :3]))
    parts = [*icc.T, *out[:, 3:].T]
    return VarianceIntervals(*(np.reshape(x, batch)[()] for x in parts), level=level)
