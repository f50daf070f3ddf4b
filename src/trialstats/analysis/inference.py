r"""Small-sample t tests of a contrast :math:`L^\top\beta` after a random-intercept REML fit.

Notation as in :mod:`trialstats.analysis.reml`: cluster :math:`j` has size :math:`n_j`, column
totals :math:`s_j = X_j^\top 1`, :math:`h_j = 1 + \gamma n_j`; the fit gives
:math:`\hat\sigma_e^2 = s`, :math:`\hat\sigma_b^2 = \gamma s` and
:math:`\Phi = \widehat{\mathrm{Var}}(\hat\beta) = s A(\gamma)^{-1}`. The compound-symmetric block
inverse :math:`V_j^{-1} = s^{-1}(I - \tfrac{\gamma}{h_j} 1 1^\top)` and
:math:`V_j^{-1} 1 = (s h_j)^{-1} 1` turn every quantity below into weighted sums of
:math:`s_j s_j^\top` and :math:`X_j^\top X_j`, so the cost does not depend on :math:`N` once the
cluster sums exist and no :math:`N \times N` matrix is formed.

Denominator degrees of freedom
------------------------------
``residual``
    :math:`N - p`.
``between-within``
    SAS ``DDFM=BETWITHIN`` (Schluchter & Elashoff 1990): a column constant within every cluster
    is "between" and gets :math:`J - p_b` df (:math:`p_b` such columns, intercept included);
    any other column gets the within df :math:`N - J - (p - p_b)`. A contrast gets the smallest
    df among the columns it involves.
``satterthwaite``
    As lmerTest (Kuznetsova, Brockhoff & Christensen 2017, *J. Stat. Softw.* 82(13)), after
    Satterthwaite (1946) and Giesbrecht & Burns (1985):
    :math:`\nu = 2 (L^\top\Phi L)^2 / (g^\top W g)` with :math:`g` the gradient of
    :math:`L^\top \Phi L` and :math:`W = 2 H^{-1}` from the Hessian :math:`H` of the REML
    deviance, both in lmerTest's parameters :math:`(\theta, \sigma) = (\sqrt\gamma, \sqrt s)`;
    here both are analytic instead of numerical (``numDeriv``). Eigenvalues of :math:`H` below
    ``1e-8`` are dropped from the inverse, as in lmerTest.
``kenward-roger``
    Kenward & Roger (1997, *Biometrics* 53:983-997), as ``pbkrtest::vcovAdj`` and
    ``pbkrtest::Lb_ddf`` (used by lmerTest ``ddf = "Kenward-Roger"``): variance parameters
    :math:`(\sigma_b^2, \sigma_e^2)` with linear structure
    :math:`\Sigma = \sigma_b^2 G_1 + \sigma_e^2 G_2` (:math:`G_1 = ZZ^\top`, :math:`G_2 = I`),
    their covariance :math:`W` from the expected REML information, the adjusted covariance
    :math:`\Phi_A = \Phi + 2\Phi\{\sum_{ij} W_{ij}(Q_{ij} - P_i \Phi P_j)\}\Phi` and the
    scaled-F denominator df :math:`m`; the t test uses :math:`\sqrt{L^\top \Phi_A L}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from trialstats.analysis.reml import ClusterSums, RemlFit, profile_terms
from trialstats.contract import DF_METHODS
from trialstats.errors import TrialstatsError

__all__ = [
    "ContrastTest",
    "KenwardRoger",
    "between_within_df",
    "contrast_test",
    "kenward_roger",
    "kenward_roger_from_terms",
    "satterthwaite_df",
    "satterthwaite_from_hessian",
]

# lmerTest drops Hessian eigenvalues below this from the inverse (as_lmerModLT, tol = 1e-8).
_LMERTEST_EIGEN_TOL = 1e-8
# pbkrtest inverts the information with ginv when its smallest |eigenvalue| is below this.
_PBKRTEST_COND_TOL = 1e-10
# A column whose within-cluster sum of squares is below this share of its total sum of
# squares is treated as cluster-level.
_WITHIN_TOL = 1e-10


@dataclass(frozen=True)
class ContrastTest:
    """A t test of :math:`L^\\top\\beta = 0`; arrays have the batch shape of the fit.

    Attributes
    ----------
    estimate : :math:`L^\\top\\hat\\beta`.
    se : standard error used by the test: the Kenward-Roger adjusted one for
        ``kenward-roger``, the model-based one otherwise.
    df : denominator degrees of freedom.
    t : ``estimate / se``.
    p_value : two-sided p value from the t distribution with ``df``.
    se_model : model-based standard error :math:`\\sqrt{L^\\top\\Phi L}`.
    method : the df method.
    """

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    t: np.ndarray
    p_value: np.ndarray
    se_model: np.ndarray
    method: str


@dataclass(frozen=True)
class KenwardRoger:
    """Kenward-Roger quantities for one contrast; arrays have the batch shape of the fit.

    Attributes
    ----------
    df : denominator df :math:`m` (pbkrtest ``Lb_ddf``).
    se : :math:`\\sqrt{L^\\top \\Phi_A L}`.
    vcov_adjusted : :math:`\\Phi_A` (pbkrtest ``vcovAdj``), shape (..., p, p).
    """

    df: np.ndarray
    se: np.ndarray
    vcov_adjusted: np.ndarray


def _as_sums(data: Any) -> ClusterSums:
    """Accept ClusterSums, or anything with ``y``, ``X``, ``cluster_codes`` (e.g. ModelData)."""
    if isinstance(data, ClusterSums):
        return data
    try:
        y, X, codes = data.y, data.X, data.cluster_codes
    except AttributeError as error:
        raise TrialstatsError(
            "contrast tests need ClusterSums or data with y, X and cluster_codes."
        ) from error
    return ClusterSums.from_data(y, X, codes, getattr(data, "n_clusters", None))


def _contrast(contrast: Any, fit: RemlFit) -> np.ndarray:
    beta = np.asarray(fit.beta)
    L = np.asarray(contrast, dtype=float)
    if L.shape[-1:] != beta.shape[-1:] or not np.all(np.isfinite(L)):
        raise TrialstatsError(
            f"The contrast has {L.shape[-1:] or 'no'} entries; the model has {beta.shape[-1]} "
            "fixed effects."
        )
    if not np.any(L != 0):
        raise TrialstatsError("The contrast is all zeros.")
    return np.broadcast_to(L, beta.shape)


def _check_fit(sums: ClusterSums, fit: RemlFit) -> None:
    if np.shape(fit.gamma) != sums.batch_shape or np.shape(fit.beta)[-1] != sums.n_params:
        raise TrialstatsError(
            f"The fit (batch shape {np.shape(fit.gamma)}, {np.shape(fit.beta)[-1]} fixed effects) "
            f"does not belong to these data (batch shape {sums.batch_shape}, "
            f"{sums.n_params} columns)."
        )


def _weighted_outer(sums: ClusterSums, weights: np.ndarray) -> np.ndarray:
    """:math:`\\sum_j weight_j s_j s_j^\\top` over the cluster axis."""
    xsum = np.asarray(sums.xsum, dtype=float)
    return np.einsum("...j,...jk,...jl->...kl", weights, xsum, xsum)


def _quad(vector: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return np.einsum("...k,...kl,...l->...", vector, matrix, vector)


def _sym_inverse(matrix: np.ndarray, tol: float) -> np.ndarray:
    """Inverse of symmetric matrices over the eigenvalues above ``tol`` (pseudo-inverse)."""
    values, vectors = np.linalg.eigh(matrix)
    keep = values > tol
    inv_values = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
    return np.einsum("...ik,...k,...jk->...ij", vectors, inv_values, vectors)


def satterthwaite_df(data: Any, fit: RemlFit, contrast: Any) -> np.ndarray:
    """Satterthwaite denominator df for :math:`L^\\top\\beta`, as lmerTest, vectorised.

    Parameters
    ----------
    data : ClusterSums or object with ``y``, ``X``, ``cluster_codes``
        The data the model was fitted to (any batch shape).
    fit : RemlFit
        :func:`~trialstats.analysis.reml.fit_reml` of ``data``.
    contrast : array_like, shape (p,) or (..., p)
        :math:`L`.

    Returns
    -------
    ndarray
        Degrees of freedom, batch shape.

    Notes
    -----
    With :math:`D(\\gamma, s) = \\sum_j \\log h_j + \\log|A| + (N-p)\\log(2\\pi s) +
    \\mathrm{RSS}/s` (REML deviance, :math:`s = \\sigma_e^2`), lmerTest's Hessian in
    :math:`(\\theta, \\sigma)` follows by the chain rule: :math:`H_{\\theta\\theta} = 2 D_\\gamma +
    4\\gamma D_{\\gamma\\gamma}`, :math:`H_{\\theta\\sigma} = 4\\theta\\sigma D_{\\gamma s}`,
    :math:`H_{\\sigma\\sigma} = 2 D_s + 4 s D_{ss}`. The gradient of
    :math:`L^\\top\\Phi L = s\\,u^\\top A u` (:math:`u = A^{-1}L`) is
    :math:`(2\\theta s\\, u^\\top(-dA/d\\gamma)u,\\; 2\\sigma L^\\top A^{-1} L)`. At a boundary fit
    (:math:`\\theta = 0`) this gives :math:`N - p`, as lmerTest does.
    """
    sums = _as_sums(data)
    _check_fit(sums, fit)
    L = _contrast(contrast, fit)
    gamma = np.asarray(fit.gamma, dtype=float)
    s = np.asarray(fit.var_residual, dtype=float)
    terms = profile_terms(sums, gamma)
    dof = terms.dof

    d_g = terms.sum_n_h + terms.d_logdet_a + terms.d_rss / s
    d_gg = -terms.sum_n2_h2 + terms.d2_logdet_a + terms.d2_rss / s
    d_s = dof / s - terms.rss / s**2
    d_ss = -dof / s**2 + 2.0 * terms.rss / s**3
    d_gs = -terms.d_rss / s**2
    theta, sigma = np.sqrt(gamma), np.sqrt(s)
    hessian = np.empty((*gamma.shape, 2, 2))
    hessian[..., 0, 0] = 2.0 * d_g + 4.0 * gamma * d_gg
    hessian[..., 0, 1] = hessian[..., 1, 0] = 4.0 * theta * sigma * d_gs
    hessian[..., 1, 1] = 2.0 * d_s + 4.0 * s * d_ss

    u = np.einsum("...kl,...l->...k", terms.a_inv, L)
    var_contrast = s * np.sum(u * L, axis=-1)
    grad = np.stack(
        [2.0 * theta * s * _quad(u, -terms.d_a), 2.0 * sigma * np.sum(u * L, axis=-1)], axis=-1
    )
    return satterthwaite_from_hessian(var_contrast, grad, hessian)


def satterthwaite_from_hessian(
    var_contrast: np.ndarray, gradient: np.ndarray, hessian: np.ndarray
) -> np.ndarray:
    """Satterthwaite df :math:`2 (L^\\top\\Phi L)^2 / (g^\\top W g)`, :math:`W = 2 H^{-1}`.

    Parameters
    ----------
    var_contrast : ndarray, shape (...)
        :math:`L^\\top\\Phi L`.
    gradient : ndarray, shape (..., k)
        Its gradient in lmerTest's variance parameters (relative covariance factors, then
        the residual SD).
    hessian : ndarray, shape (..., k, k)
        Hessian of the REML deviance in the same parameters; eigenvalues below ``1e-8`` are
        dropped from the inverse, as in lmerTest.

    Returns
    -------
    ndarray
        Degrees of freedom, shape (...).
    """
    vcov_varpar = 2.0 * _sym_inverse(hessian, _LMERTEST_EIGEN_TOL)
    return (2.0 * var_contrast**2 / _quad(gradient, vcov_varpar))[()]


def kenward_roger(data: Any, fit: RemlFit, contrast: Any) -> KenwardRoger:
    """Kenward-Roger adjusted covariance and df for :math:`L^\\top\\beta` (as pbkrtest).

    Parameters
    ----------
    data, fit, contrast
        As in :func:`satterthwaite_df`.

    Returns
    -------
    KenwardRoger

    Notes
    -----
    With :math:`d_j = 1/(s h_j)` and :math:`S_j = s_j s_j^\\top` (sums over non-empty clusters):

    - :math:`P_1 = -X^\\top\\Sigma^{-1}G_1\\Sigma^{-1}X = -\\sum_j d_j^2 S_j`,
      :math:`P_2 = -X^\\top\\Sigma^{-2}X = -s^{-2}\\{X^\\top X - \\sum_j
      \\gamma(2 + \\gamma n_j) h_j^{-2} S_j\\}`;
    - :math:`Q_{11} = \\sum_j n_j d_j^3 S_j`, :math:`Q_{12} = \\sum_j d_j^3 S_j`,
      :math:`Q_{22} = X^\\top\\Sigma^{-3}X = s^{-3}\\{X^\\top X - \\sum_j
      \\gamma(h_j^2 + h_j + 1) h_j^{-3} S_j\\}`;
    - :math:`\\mathrm{tr}(\\Sigma^{-1}G_i\\Sigma^{-1}G_j)`: :math:`\\sum_j n_j^2 d_j^2`,
      :math:`\\sum_j n_j d_j^2`, :math:`\\sum_j \\{(n_j - 1)s^{-2} + d_j^2\\}`;
    - :math:`I_{ij} = \\mathrm{tr}(\\Sigma^{-1}G_i\\Sigma^{-1}G_j) - 2\\,\\mathrm{tr}(\\Phi Q_{ij})
      + \\mathrm{tr}(\\Phi P_i \\Phi P_j)` and :math:`W = 2 I^{-1}` (pbkrtest's ``IE2``, ``WW``).

    For one contrast (:math:`q = 1`, :math:`\\Theta = LL^\\top / L^\\top\\Phi L`) pbkrtest's
    :math:`A_1` and :math:`A_2` coincide: :math:`A_1 = A_2 = a^\\top W a` with
    :math:`a_i = \\phi^\\top P_i \\phi / L^\\top\\Phi L`, :math:`\\phi = \\Phi L`; the rest follows
    ``Lb_ddf`` line by line.
    """
    sums = _as_sums(data)
    _check_fit(sums, fit)
    L = _contrast(contrast, fit)
    gamma = np.asarray(fit.gamma, dtype=float)[..., None]
    s = np.asarray(fit.var_residual, dtype=float)[..., None]
    phi = np.asarray(fit.vcov, dtype=float)
    n = np.asarray(sums.n, dtype=float)
    h = 1.0 + gamma * n
    xtx = np.asarray(sums.xtx, dtype=float).sum(axis=-3)
    s2, s3 = s[..., None] ** 2, s[..., None] ** 3

    d = 1.0 / (s * h)
    p1 = -_weighted_outer(sums, d**2)
    p2 = -(xtx - _weighted_outer(sums, gamma * (2.0 + gamma * n) / h**2)) / s2
    q11 = _weighted_outer(sums, n * d**3)
    q12 = _weighted_outer(sums, d**3)
    q22 = (xtx - _weighted_outer(sums, gamma * (h**2 + h + 1.0) / h**3)) / s3
    nonempty = n > 0
    k11 = np.sum(n**2 * d**2, axis=-1)
    k12 = np.sum(n * d**2, axis=-1)
    k22 = np.sum(np.where(nonempty, (n - 1.0) / s**2 + d**2, 0.0), axis=-1)

    P = (p1, p2)
    Q = ((q11, q12), (q12, q22))
    K = ((k11, k12), (k12, k22))
    return kenward_roger_from_terms(phi, P, Q, K, L)


def kenward_roger_from_terms(
    phi: np.ndarray, P: Any, Q: Any, K: Any, contrast: np.ndarray
) -> KenwardRoger:
    """Kenward-Roger adjustment from the terms of a linear covariance structure (pbkrtest).

    For :math:`\\Sigma = \\sum_i \\sigma_i G_i` with :math:`k` variance parameters.

    Parameters
    ----------
    phi : ndarray, shape (..., p, p)
        Model-based :math:`\\Phi = (X^\\top\\Sigma^{-1}X)^{-1}`.
    P : sequence of k ndarrays (..., p, p)
        :math:`P_i = -X^\\top\\Sigma^{-1}G_i\\Sigma^{-1}X`.
    Q : k x k nested sequence of ndarrays (..., p, p)
        :math:`Q_{ij} = X^\\top\\Sigma^{-1}G_i\\Sigma^{-1}G_j\\Sigma^{-1}X`
        (:math:`Q_{ji} = Q_{ij}^\\top`).
    K : k x k nested sequence of ndarrays (...)
        :math:`\\mathrm{tr}(\\Sigma^{-1}G_i\\Sigma^{-1}G_j)`.
    contrast : ndarray, shape (..., p)
        :math:`L`.

    Returns
    -------
    KenwardRoger
        See :func:`kenward_roger` for the formulas (pbkrtest ``vcovAdj``, ``Lb_ddf``).
    """
    L = contrast
    n_par = len(P)

    def trace_product(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.einsum("...kl,...lk->...", left, right)

    info = np.empty((*phi.shape[:-2], n_par, n_par))
    for i in range(n_par):
        for j in range(n_par):
            info[..., i, j] = (
                K[i][j]
                - 2.0 * trace_product(phi, Q[i][j])
                + trace_product(phi @ P[i], phi @ P[j])
            )
    smallest = np.min(np.abs(np.linalg.eigvalsh(info)), axis=-1)
    regular = smallest > _PBKRTEST_COND_TOL
    safe = np.where(regular[..., None, None], info, np.eye(n_par))
    W = 2.0 * np.where(regular[..., None, None], np.linalg.inv(safe), np.linalg.pinv(info))

    U = sum(
        W[..., i, j, None, None] * (Q[i][j] - P[i] @ phi @ P[j])
        for i in range(n_par)
        for j in range(n_par)
    )
    phi_a = phi + 2.0 * phi @ U @ phi

    var0 = _quad(L, phi)
    phi_l = np.einsum("...kl,...l->...k", phi, L)
    a = np.stack([_quad(phi_l, P[i]) for i in range(n_par)], axis=-1) / var0[..., None]
    a1 = a2 = _quad(a, W)
    q = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        B = (a1 + 6.0 * a2) / (2.0 * q)
        g = ((q + 1.0) * a1 - (q + 4.0) * a2) / ((q + 2.0) * a2)
        denom = 3.0 * q + 2.0 * (1.0 - g)
        c1, c2, c3 = g / denom, (q - g) / denom, (q + 2.0 - g) / denom
        v0 = 1.0 + c1 * B
        v0 = np.where(np.abs(v0) < 1e-10, 0.0, v0)
        v1 = 1.0 - c2 * B
        v2 = 1.0 - c3 * B
        numerator = 1.0 - a2 / q
        both_tiny = (np.abs(numerator) < 1e-14) & (np.abs(v1) < 1e-14)
        ratio = np.where(both_tiny, 1.0, numerator / v1)
        rho = ratio**2 * v0 / (q * v2)
        df = 4.0 + (q + 2.0) / (q * rho - 1.0)
    return KenwardRoger(
        df=df[()], se=np.sqrt(_quad(L, phi_a))[()], vcov_adjusted=phi_a[()]
    )


def _cluster_level_columns(sums: ClusterSums) -> np.ndarray:
    """Columns constant within every non-empty cluster, shape (..., p)."""
    n = np.asarray(sums.n, dtype=float)
    xsum = np.asarray(sums.xsum, dtype=float)
    diag = np.diagonal(np.asarray(sums.xtx, dtype=float), axis1=-2, axis2=-1)  # (..., J, p)
    safe_n = np.where(n > 0, n, 1.0)[..., None]
    within = np.sum(np.where(n[..., None] > 0, diag - xsum**2 / safe_n, 0.0), axis=-2)
    return within <= _WITHIN_TOL * np.sum(diag, axis=-2)


def between_within_df(data: Any, contrast: Any) -> np.ndarray:
    """SAS ``DDFM=BETWITHIN`` df for :math:`L^\\top\\beta`, batch shape.

    Parameters
    ----------
    data : ClusterSums or object with ``y``, ``X``, ``cluster_codes``
    contrast : array_like, shape (p,) or (..., p)

    Returns
    -------
    ndarray
        The smallest df among the columns the contrast involves: :math:`J - p_b` for a
        cluster-level column, :math:`N - J - (p - p_b)` for any other; :math:`J` counts
        non-empty clusters, :math:`p_b` the cluster-level columns (intercept included;
        independent because X has full rank).
    """
    sums = _as_sums(data)
    between = _cluster_level_columns(sums)
    L = np.broadcast_to(np.asarray(contrast, dtype=float), between.shape)
    n = np.asarray(sums.n, dtype=float)
    n_obs, n_clusters = n.sum(axis=-1), np.sum(n > 0, axis=-1)
    p_between = between.sum(axis=-1)
    df_between = n_clusters - p_between
    df_within = n_obs - n_clusters - (sums.n_params - p_between)
    column_df = np.where(between, df_between[..., None], df_within[..., None])
    return np.min(np.where(L != 0, column_df, np.inf), axis=-1).astype(float)[()]


def contrast_test(
    data: Any, fit: RemlFit, contrast: Any, method: str = "satterthwaite"
) -> ContrastTest:
    """t test of :math:`L^\\top\\beta = 0` with small-sample degrees of freedom.

    Parameters
    ----------
    data : ClusterSums or object with ``y``, ``X``, ``cluster_codes`` (e.g. ``ModelData``)
        The data the model was fitted to.
    fit : RemlFit
        :func:`~trialstats.analysis.reml.fit_reml` of ``data``.
    contrast : array_like, shape (p,) or (..., p)
        :math:`L`, for example the indicator of the arm coefficient.
    method : {"residual", "between-within", "satterthwaite", "kenward-roger"}
        Denominator df (see the module docstring); ``kenward-roger`` also replaces the
        standard error by the adjusted one.

    Returns
    -------
    ContrastTest
    """
    if method not in DF_METHODS:
        raise TrialstatsError(
            f"Unknown df method {method!r}; choose one of {', '.join(DF_METHODS)}."
        )
    sums = _as_sums(data)
    _check_fit(sums, fit)
    L = _contrast(contrast, fit)
    estimate = np.sum(L * np.asarray(fit.beta), axis=-1)
    se_model = np.sqrt(_quad(L, np.asarray(fit.vcov)))
    se = se_model
    if method == "residual":
        df = np.asarray(fit.n_obs, dtype=float) - sums.n_params
    elif method == "between-within":
        df = between_within_df(sums, L)
    elif method == "satterthwaite":
        df = satterthwaite_df(sums, fit, L)
    else:
        kr = kenward_roger(sums, fit, L)
        df, se = kr.df, kr.se
    t = estimate / se
    p_value = 2.0 * stats.t.sf(np.abs(t), df)
    return ContrastTest(
        estimate=estimate[()],
        se=np.asarray(se)[()],
        df=np.asarray(df, dtype=float)[()],
        t=np.asarray(t)[()],
        p_value=np.asarray(p_value)[()],
        se_model=se_model[()],
        method=method,
    )
