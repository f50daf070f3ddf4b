r"""Exact REML for cross-sectional stepped-wedge and cluster-crossover trials.

Model
-----
Patient :math:`k` of cluster :math:`i = 1, \dots, J` measured in period :math:`t = 1, \dots, T`
(:math:`n_{it} \ge 0` patients in cluster-period :math:`(i, t)`):

.. math::

    y_{itk} = x_{itk}^\top \beta + u_i + v_{it} + e_{itk}, \qquad
    u_i \sim N(0, \tau^2), \quad v_{it} \sim N(0, \gamma^2), \quad e_{itk} \sim N(0, \sigma^2),

all independent, :math:`x` holding the treatment indicator, period fixed effects and
covariates: ``lmer(y ~ treat + factor(period) + covariates + (1 | cluster) +
(1 | cluster:period))``. With variance ratios :math:`\lambda_c = \tau^2/\sigma^2` and
:math:`\lambda_p = \gamma^2/\sigma^2`, cluster :math:`i`'s covariance is
:math:`\sigma^2 V_i`, :math:`V_i = I + \lambda_p\,\mathrm{blockdiag}_t(1 1^\top) +
\lambda_c 1 1^\top` (nested compound symmetry). The ICC is
:math:`(\tau^2 + \gamma^2)/(\tau^2 + \gamma^2 + \sigma^2)` and the cluster autocorrelation
:math:`\mathrm{CAC} = \tau^2/(\tau^2 + \gamma^2)` (Hooper et al. 2016, *Stat. Med.* 35:4718).

Closed-form inverse (two Woodbury steps)
----------------------------------------
With :math:`u_{it} = 1/(1 + \lambda_p n_{it})`, :math:`a_{it} = n_{it} u_{it}`,
:math:`S_i = \sum_t a_{it}`, :math:`e_i = 1/(1 + \lambda_c S_i)` and
:math:`\kappa_i = \lambda_c e_i`, the cluster-period blocks invert to
:math:`I - \lambda_p u_{it} 1 1^\top` and the rank-one cluster term then gives
:math:`V_i^{-1} = B_i^{-1} - \kappa_i B_i^{-1} 1 1^\top B_i^{-1}`,
:math:`|V_i| = (1 + \lambda_c S_i) \prod_t (1 + \lambda_p n_{it})` (Searle, Casella &
McCulloch 1992, ch. 3). With cluster-period totals :math:`s_{it} = X_{it}^\top 1`,
:math:`t_{it} = y_{it}^\top 1` and :math:`g_i = \sum_t u_{it} s_{it}`,
:math:`\tau_i = \sum_t u_{it} t_{it}`,

.. math::

    A = X^\top X - \sum_{it} \lambda_p u_{it} s_{it} s_{it}^\top - \sum_i \kappa_i g_i g_i^\top,
    \quad c = X^\top y - \sum_{it} \lambda_p u_{it} s_{it} t_{it} - \sum_i \kappa_i g_i \tau_i,

:math:`\hat\beta = A^{-1} c`, :math:`q = y^\top V^{-1} y - c^\top \hat\beta` and, with
:math:`\sigma^2 = q/(N - p)` profiled out, the criterion

.. math:: f(\lambda) = (N - p) \log q + \sum_i \log|V_i| + \log|A|

is lme4's REML deviance less :math:`(N-p)\{1 + \log(2\pi/(N-p))\}` (Bates et al. 2015,
*J. Stat. Softw.* 67(1)). Only per-cluster-period counts and totals and the whole-data
:math:`X^\top X, X^\top y, y^\top y` enter; no :math:`N \times N` matrix is formed.

Derivatives
-----------
With :math:`Z_i = [1, \text{period indicators}]` (:math:`G_c = Z_c Z_c^\top`,
:math:`G_p = Z_p Z_p^\top`), :math:`W = V^{-1}`, :math:`P = W - W X A^{-1} X^\top W`,
:math:`r = P y`, the blocks :math:`Z_i^\top W_i Z_i`, :math:`Z_i^\top W_i X_i`,
:math:`Z_i^\top W_i r_i` are closed forms in the quantities above (e.g.
:math:`Z_p^\top W Z_p = \mathrm{diag}(a) - \kappa a a^\top`), so that the exact

.. math::

    \partial_k f = \mathrm{tr}(P G_k) - (N-p)\, r^\top G_k r / q, \quad
    \partial_{kl} f = (N-p)\{2 r^\top G_k P G_l r / q - r^\top G_k r\, r^\top G_l r / q^2\}
        - \mathrm{tr}(P G_k P G_l)

are sums over clusters (:func:`_derivatives`).

Optimisation
------------
For all replicates at once: the best point of the grid :math:`\lambda \in \{0, 0.02, 0.2\}^2`
starts projected Newton steps on :math:`\lambda \ge 0` (analytic Hessian, eigenvalues made
positive; Armijo backtracking), a coordinate held at 0 while its derivative there is
non-negative, so boundary fits (either or both variances 0, lme4's singular fits) are exact.
Iteration stops after a step below :math:`\sqrt{xtol}` relative to :math:`\lambda` with a
positive definite Hessian (quadratic convergence leaves an error of order ``xtol``).
Satterthwaite and Kenward-Roger df and ICC / CAC intervals:
:mod:`trialstats.analysis.period_inference`; simulated trials:
:mod:`trialstats.simulation.periods`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from trialstats.analysis.batched import CellSums, FitDiagnostics, FlatSums, rank_deficient
from trialstats.errors import TrialstatsError

__all__ = [
    "PeriodFit",
    "PeriodSums",
    "PeriodTerms",
    "fit_period_reml",
    "period_terms",
    "profiled_criterion",
]

# Start grid for each variance ratio (cluster, cluster-period).
_START = np.array([0.0, 0.02, 0.2])
# Largest variance ratio searched; beyond it the fit is reported as not converged.
_LAMBDA_MAX = 1e8
# Newton decrement (criterion units) below which, with a positive definite Hessian, the full
# step is taken without line search (deep inside the quadratic region: a 95% profile
# interval spans 3.84 units).
_DECREMENT_TOL = 1e-4


@dataclass(frozen=True)
class PeriodSums(CellSums):
    """Cluster-period sufficient statistics; arrays share leading batch (replicate) dims ``...``.

    Attributes
    ----------
    n : ndarray, shape (..., J, T)
        Patients per cluster-period (0 = not measured).
    xsum : ndarray, shape (..., J, T, p)
        Column totals :math:`s_{it} = X_{it}^\\top 1`.
    ysum : ndarray, shape (..., J, T)
        Outcome totals :math:`t_{it}`.
    xtx, xty, yty : ndarray, shapes (..., p, p), (..., p), (...)
        Whole-data :math:`X^\\top X`, :math:`X^\\top y`, :math:`y^\\top y`.
    """

    n: np.ndarray
    xsum: np.ndarray
    ysum: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yty: np.ndarray

    _CELL_AXES = 2  # clusters x periods

    def __post_init__(self) -> None:
        shape = np.shape(self.n)
        if len(shape) < 2:
            raise TrialstatsError("PeriodSums.n must have cluster and period dimensions.")
        batch, p = shape[:-2], np.shape(self.xsum)[-1]
        expected = zip(
            ("xsum", "ysum", "xtx", "xty", "yty"),
            ((*shape, p), shape, (*batch, p, p), (*batch, p), batch),
            strict=True,
        )
        for name, want in expected:
            if np.shape(getattr(self, name)) != want:
                raise TrialstatsError(
                    f"PeriodSums.{name} has shape {np.shape(getattr(self, name))}, expected {want}."
                )
        if np.any(np.asarray(self.n) < 0):
            raise TrialstatsError("PeriodSums.n has a negative cluster-period size.")

    @classmethod
    def from_data(
        cls,
        y: np.ndarray,
        X: np.ndarray,
        cluster_codes: np.ndarray,
        period_codes: np.ndarray,
        n_clusters: int | None = None,
        n_periods: int | None = None,
    ) -> PeriodSums:
        """Sums from patient-level data.

        Parameters
        ----------
        y : array_like, shape (N,) or (..., N)
            Outcome; leading dimensions are replicates sharing ``X`` and the codes.
        X : array_like, shape (N, p)
            Fixed-effects design, intercept included.
        cluster_codes, period_codes : array_like of int, shape (N,)
            Cluster ``0 .. J - 1`` and period ``0 .. T - 1`` of each row.
        n_clusters, n_periods : int, optional
            ``J`` and ``T``; default to the largest code plus one.
        """
        y, X = np.asarray(y, dtype=float), np.asarray(X, dtype=float)
        cluster, period = np.asarray(cluster_codes), np.asarray(period_codes)
        n_obs = X.shape[0] if X.ndim == 2 else -1
        if X.ndim != 2 or not y.shape[-1:] == cluster.shape == period.shape == (n_obs,):
            raise TrialstatsError("Need y (..., N), X (N, p) and cluster and period codes (N,).")
        for codes in (cluster, period):
            if not np.issubdtype(codes.dtype, np.integer) or (n_obs and codes.min() < 0):
                raise TrialstatsError("Cluster and period codes must be non-negative integers.")
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
            raise TrialstatsError("y and X must be finite (drop incomplete rows before fitting).")
        n_cl, n_per = (int(codes.max()) + 1 if n_obs else 0 for codes in (cluster, period))
        if (n_clusters or n_cl) < n_cl or (n_periods or n_per) < n_per:
            raise TrialstatsError("n_clusters / n_periods are below the largest code plus one.")
        n_cl, n_per = n_clusters or n_cl, n_periods or n_per
        cell = cluster * n_per + period
        indicator = sparse.csr_matrix(
            (np.ones(n_obs), (cell, np.arange(n_obs))), shape=(n_cl * n_per, n_obs)
        )
        batch = y.shape[:-1]
        y_rows = y.reshape(-1, n_obs)
        ysum = np.asarray(indicator @ y_rows.T).T.reshape(*batch, n_cl, n_per)
        xsum = np.asarray(indicator @ X).reshape(n_cl, n_per, -1)
        return cls(
            n=np.broadcast_to(
                np.bincount(cell, minlength=n_cl * n_per).reshape(n_cl, n_per),
                (*batch, n_cl, n_per),
            ).astype(float),
            xsum=np.broadcast_to(xsum, (*batch, *xsum.shape)).copy(),
            ysum=ysum,
            xtx=np.broadcast_to(X.T @ X, (*batch, X.shape[1], X.shape[1])).copy(),
            xty=y @ X,
            yty=np.sum(y * y, axis=-1),
        )


@dataclass(frozen=True)
class PeriodFit(FitDiagnostics):
    """REML estimates and the :class:`~trialstats.analysis.batched.FitDiagnostics` of the fit;
    arrays have the batch shape of the sums (plus trailing dims).

    Attributes
    ----------
    beta : ndarray, shape (..., p)
        Fixed effects (GLS at the REML variance components).
    vcov : ndarray, shape (..., p, p)
        :math:`\\hat\\sigma^2 A^{-1}` (lme4's ``vcov``).
    var_cluster, var_cluster_period, var_residual : ndarray, shape (...)
        :math:`\\hat\\tau^2`, :math:`\\hat\\gamma^2`, :math:`\\hat\\sigma^2`.
    ratios : ndarray, shape (..., 2)
        :math:`(\\hat\\lambda_c, \\hat\\lambda_p)`.
    icc, cac : ndarray, shape (...)
        :math:`(\\tau^2 + \\gamma^2)/(\\tau^2 + \\gamma^2 + \\sigma^2)` and
        :math:`\\tau^2/(\\tau^2 + \\gamma^2)` (NaN when both variances are 0).
    boundary : ndarray of bool, shape (..., 2)
        Cluster / cluster-period variance estimated as exactly 0 (lme4's singular fit).
    """

    beta: np.ndarray
    vcov: np.ndarray
    var_cluster: np.ndarray
    var_cluster_period: np.ndarray
    var_residual: np.ndarray
    ratios: np.ndarray
    icc: np.ndarray
    cac: np.ndarray


def _flatten(sums: PeriodSums) -> FlatSums:
    """The sums with one batch axis ``B`` (cells: clusters x periods)."""
    n_cl, n_per = np.shape(sums.n)[-2:]
    p = sums.n_params
    tails = {"n": (n_cl, n_per), "xsum": (n_cl, n_per, p), "ysum": (n_cl, n_per)}
    tails.update(xtx=(p, p), xty=(p,), yty=())
    arrays = {
        k: np.asarray(getattr(sums, k), dtype=float).reshape(-1, *t) for k, t in tails.items()
    }
    return FlatSums(**arrays, dof=arrays["n"].sum(axis=(1, 2)) - p)


def _validate(flat: FlatSums) -> None:
    """Raise TrialstatsError for data the model cannot be fitted to (any replicate)."""
    p = flat.xtx.shape[-1]
    parts = (flat.xsum, flat.ysum, flat.xtx, flat.xty, flat.yty)
    if not all(np.all(np.isfinite(x)) for x in parts):
        raise TrialstatsError("The cluster-period sums contain non-finite values.")
    if np.any(flat.dof <= 0):
        raise TrialstatsError(f"{p} fixed-effect columns need more than {p} observations.")
    if np.any(rank_deficient(flat.xtx)):
        raise TrialstatsError(
            "The fixed-effects design is rank deficient (a column is all zero or a linear "
            "combination of others, e.g. a period in which no cluster is measured or a "
            "treatment indicator aliased with the periods); drop or merge those columns."
        )
    measured = flat.n > 0
    if np.any(measured.any(axis=2).sum(axis=1) < 2):
        raise TrialstatsError("A random cluster intercept needs at least two clusters.")
    if not np.all((flat.n >= 2).any(axis=(1, 2))):
        raise TrialstatsError(
            "Every cluster-period has a single patient, so the cluster-period and residual "
            "variances cannot be separated."
        )
    if not np.all((measured.sum(axis=2) >= 2).any(axis=1)):
        raise TrialstatsError(
            "Every cluster is measured in a single period, so the cluster and cluster-period "
            "variances cannot be separated."
        )


@dataclass(frozen=True)
class _Base:
    """Criterion pieces at variance ratios ``lam`` of shape (B, G, 2)."""

    u: np.ndarray  # (B, G, J, T)
    e: np.ndarray  # (B, G, J)
    kappa: np.ndarray  # (B, G, J)
    g: np.ndarray  # (B, G, J, p)
    tau: np.ndarray  # (B, G, J)
    a_inv: np.ndarray  # (B, G, p, p)
    beta: np.ndarray  # (B, G, p)
    q: np.ndarray  # (B, G)
    criterion: np.ndarray  # (B, G)


def _base(flat: FlatSums, lam: np.ndarray) -> _Base:
    n_rep, n_pts = lam.shape[:2]
    p = flat.xtx.shape[-1]
    lam_c, lam_p = lam[..., 0, None], lam[..., 1, None, None]  # (B, G, 1), (B, G, 1, 1)
    n = flat.n[:, None]
    u = 1.0 / (1.0 + lam_p * n)
    # sum_it w_it (t_it^2, s_it t_it, s_it s_it') with w = lambda_p u
    w = lam_p[..., 0] * u.reshape(n_rep, n_pts, -1)
    s_all = flat.xsum.reshape(n_rep, 1, -1, p)
    t_all = flat.ysum.reshape(n_rep, 1, -1)
    ws_t = np.swapaxes(w[..., None] * s_all, -1, -2)  # (B, G, p, J*T)
    xx, xy = ws_t @ s_all, (ws_t @ t_all[..., None])[..., 0]
    yy = np.sum(w * t_all**2, axis=-1)
    big_s = np.sum(n * u, axis=-1)
    e = 1.0 / (1.0 + lam_c * big_s)
    kappa = lam_c * e
    g = np.swapaxes(np.swapaxes(u, 1, 2) @ flat.xsum, 1, 2)  # (B, G, J, p)
    tau = np.sum(u * flat.ysum[:, None], axis=-1)
    kg_t = np.swapaxes(kappa[..., None] * g, -1, -2)
    a = flat.xtx[:, None] - xx - kg_t @ g
    c = flat.xty[:, None] - xy - (kg_t @ tau[..., None])[..., 0]
    a_inv = np.linalg.inv(a)
    beta = (a_inv @ c[..., None])[..., 0]
    beta += (a_inv @ (c - (a @ beta[..., None])[..., 0])[..., None])[..., 0]  # one refinement
    q = flat.yty[:, None] - yy - np.sum(kappa * tau**2, axis=-1) - np.sum(c * beta, axis=-1)
    sign, logdet_a = np.linalg.slogdet(a)
    logdet_v = np.log1p(lam_p * n).sum(axis=(-2, -1)) + np.log1p(lam_c * big_s).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crit = flat.dof[:, None] * np.log(q) + logdet_v + np.where(sign > 0, logdet_a, np.nan)
    return _Base(u, e, kappa, g, tau, a_inv, beta, q, np.where(np.isfinite(crit), crit, np.inf))


@dataclass(frozen=True)
class PeriodTerms:
    """Per-cluster blocks and the criterion's gradient and Hessian at one point per replicate.

    The batch dimensions are merged into one leading axis ``B``. Random-effect column 0 of
    :math:`Z_i` is the cluster intercept, columns 1..T the cluster-periods; index ``k`` = 0 / 1
    is the cluster / cluster-period variance (:math:`G_c`, :math:`G_p`). Notation as in the
    module docstring; :math:`E_k = X^\\top W G_k W X`, :math:`E_{kl} = X^\\top W G_k W G_l W X`,
    :math:`r = P y`.
    """

    base: _Base  # criterion pieces, with the point axis squeezed
    dof: np.ndarray  # (B,)  N - p
    a: np.ndarray  # (B, J, T)  a_it = n_it u_it
    f: list  # [F_c (B, J, 1, p), F_p (B, J, T, p)]: the two row blocks of Z_i'W_i X_i
    e_1: list  # [k] (B, p, p)  E_k
    e_2: list  # [k][l] (B, p, p)  E_kl
    tr_wgwg: np.ndarray  # (B, 2, 2)  tr(W G_k W G_l)
    grad: np.ndarray  # (B, 2)
    hess: np.ndarray  # (B, 2, 2)
    r_g_r: np.ndarray  # (B, 2)  r'G_k r
    r_gpg_r: np.ndarray  # (B, 2, 2)  r'G_k P G_l r
    tr_pg: np.ndarray  # (B, 2)
    tr_pgpg: np.ndarray  # (B, 2, 2)


def _m_times(a, e, kappa, big_s, block: int, rows: list) -> list:
    """:math:`M_i` times a column block of rows ``rows`` = [cluster (B,J,1,...), periods
    (B,J,T,...)], using :math:`M_{cc} = S e`, :math:`M_{cp} = e a^\\top`,
    :math:`M_{pp} = \\mathrm{diag}(a) - \\kappa a a^\\top`; returns the two row blocks."""
    extra = rows[0].ndim - 3  # trailing dims of the rows (p, or none for vectors)
    a_, e_, k_, s_ = (x.reshape(x.shape + (1,) * extra) for x in (a, e, kappa, big_s))
    if block == 0:
        first = rows[0][:, :, 0]
        return [(s_ * e_ * first)[:, :, None], a_ * (e_ * first)[:, :, None]]
    weighted = np.sum(a_ * rows[1], axis=2)  # sum_t a_t row_t
    return [(e_ * weighted)[:, :, None], a_ * rows[1] - (k_ * weighted)[:, :, None] * a_]


def _derivatives(flat: FlatSums, lam: np.ndarray) -> PeriodTerms:
    """Gradient and Hessian of the criterion at ``lam`` of shape (B, 2)."""
    b = _base(flat, lam[:, None, :])
    u, e, kappa, g, tau = (x[:, 0] for x in (b.u, b.e, b.kappa, b.g, b.tau))
    a_inv, beta, q = b.a_inv[:, 0], b.beta[:, 0], b.q[:, 0]
    n_rep, n_cl, n_per = flat.n.shape
    p = beta.shape[-1]
    a = flat.n * u
    big_s = a.sum(axis=-1)
    ka = kappa[..., None] * a
    f = [(e[..., None] * g)[:, :, None], u[..., None] * flat.xsum - ka[..., None] * g[:, :, None]]
    fitted = (f[1].reshape(n_rep, -1, p) @ beta[:, :, None]).reshape(n_rep, n_cl, n_per)
    rho = [
        (e * tau - np.sum(f[0][:, :, 0] * beta[:, None], axis=-1))[:, :, None],
        u * flat.ysum - ka * tau[..., None] - fitted,
    ]

    def gram(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Sum over clusters of left_i' right_i: (B, J, r, p), (B, J, r, q) -> (B, p, q)."""
        flat_left = left.reshape(n_rep, -1, left.shape[-1])
        return np.swapaxes(flat_left, 1, 2) @ right.reshape(n_rep, -1, right.shape[-1])

    e_1 = [gram(f[k], f[k]) for k in range(2)]
    h = [gram(f[k], rho[k][..., None])[..., 0] for k in range(2)]
    r_g_r = np.stack([np.sum(rho[k] ** 2, axis=(1, 2)) for k in range(2)], axis=-1)
    a2 = np.sum(a**2, axis=-1)
    tr_w = np.stack([np.sum(big_s * e, axis=-1), np.sum(big_s - kappa * a2, axis=-1)], axis=-1)
    tr_wgwg = np.empty((n_rep, 2, 2))
    tr_wgwg[:, 0, 0] = np.sum((big_s * e) ** 2, axis=-1)
    tr_wgwg[:, 0, 1] = tr_wgwg[:, 1, 0] = np.sum(e**2 * a2, axis=-1)
    tr_wgwg[:, 1, 1] = np.sum(a2 - 2.0 * kappa * np.sum(a**3, axis=-1) + kappa**2 * a2**2, axis=-1)
    e_2 = [[None, None], [None, None]]
    r_gwg_r = np.empty((n_rep, 2, 2))
    for j in range(2):
        mf = _m_times(a, e, kappa, big_s, j, f)
        mr = _m_times(a, e, kappa, big_s, j, rho)
        for k in range(2):
            e_2[k][j] = gram(f[k], mf[k])
            r_gwg_r[:, k, j] = np.sum(rho[k] * mr[k], axis=(1, 2))

    ae = [a_inv @ e_1[k] for k in range(2)]
    ah = [(a_inv @ h[k][..., None])[..., 0] for k in range(2)]
    tr_pg = tr_w - np.stack([np.trace(ae[k], axis1=-2, axis2=-1) for k in range(2)], axis=-1)
    tr_pgpg = np.empty((n_rep, 2, 2))
    r_gpg_r = np.empty((n_rep, 2, 2))
    for k in range(2):
        for j in range(2):
            tr_pgpg[:, k, j] = (
                tr_wgwg[:, k, j]
                - 2.0 * np.trace(a_inv @ e_2[k][j], axis1=-2, axis2=-1)
                + np.sum(ae[k] * np.swapaxes(ae[j], -1, -2), axis=(-2, -1))
            )
            r_gpg_r[:, k, j] = r_gwg_r[:, k, j] - np.sum(h[k] * ah[j], axis=-1)
    dof = flat.dof[:, None]
    grad = tr_pg - dof * r_g_r / q[:, None]
    hess = (
        dof[..., None]
        * (
            2.0 * r_gpg_r / q[:, None, None]
            - r_g_r[:, :, None] * r_g_r[:, None, :] / q[:, None, None] ** 2
        )
        - tr_pgpg
    )
    squeezed = _Base(*(getattr(b, k)[:, 0] for k in _Base.__dataclass_fields__))
    return PeriodTerms(
        squeezed, flat.dof, a, f, e_1, e_2, tr_wgwg, grad, hess, r_g_r, r_gpg_r, tr_pg, tr_pgpg
    )


def _newton_direction(grad: np.ndarray, hess: np.ndarray, fixed: np.ndarray):
    """Newton step on the free coordinates, Hessian eigenvalues made positive; also whether
    the (free) Hessian was positive definite."""
    free = ~fixed
    both = free[:, :, None] & free[:, None, :]
    h = np.where(both, hess, 0.0) + np.eye(2) * fixed[:, None, :]
    values, vectors = np.linalg.eigh(h)
    positive = values[:, 0] > 0
    floor = 1e-8 * np.max(np.abs(values), axis=-1, keepdims=True) + 1e-300
    values = np.maximum(np.abs(values), floor)
    g = np.where(free, grad, 0.0)
    step = -np.einsum("bij,bj,bkj,bk->bi", vectors, 1.0 / values, vectors, g)
    return np.where(free, step, 0.0), positive


def _minimise(flat: FlatSums, start: np.ndarray, xtol: float, max_iter: int):
    """Projected Newton on lambda >= 0 from ``start`` (B, 2); returns lambda and converged."""
    lam = start.copy()
    converged = np.zeros(lam.shape[0], dtype=bool)
    active = np.arange(lam.shape[0])
    sub, sub_index = flat, active
    for _ in range(max_iter):
        if active.size == 0:
            break
        if active.size != sub_index.size:  # the active set only ever shrinks
            sub, sub_index = flat.take(active), active
        x = lam[active]
        d = _derivatives(sub, x)
        fixed = (x == 0) & (d.grad >= 0)
        step, positive = _newton_direction(d.grad, d.hess, fixed)
        decrement = -np.sum(d.grad * step, axis=-1)
        target = np.maximum(x + step, 0.0)
        # quadratic convergence: after a step below sqrt(xtol) the error is below ~xtol
        small = np.all(np.abs(target - x) <= np.sqrt(xtol) * np.maximum(x, target), axis=-1)
        small &= positive
        trusted = positive & (decrement < _DECREMENT_TOL)
        # Armijo backtracking on the projected path for the others
        t = np.ones(active.size)
        accept = trusted | small
        for _ in range(60):
            todo = np.flatnonzero(~accept)
            if todo.size == 0:
                break
            trial = np.maximum(x[todo] + t[todo, None] * step[todo], 0.0)
            value = _base(sub.take(todo), trial[:, None, :]).criterion[:, 0]
            move = np.sum(d.grad[todo] * (trial - x[todo]), axis=-1)
            ok = value <= d.base.criterion[todo] + 1e-4 * np.minimum(move, 0.0)
            accept[todo[ok]] = True
            target[todo[ok]] = trial[ok]
            t[todo[~ok]] *= 0.5
        stuck = ~accept  # no decrease found: at the optimum to rounding level or failing
        lam[active] = np.where(stuck[:, None], x, target)
        done = small | stuck | np.any(lam[active] > _LAMBDA_MAX, axis=-1)
        converged[active[done]] = (small | (stuck & (decrement < 1e-6)))[done]
        converged[active[done]] &= np.all(lam[active[done]] <= _LAMBDA_MAX, axis=-1)
        active = active[~done]
    return lam, converged


def fit_period_reml(
    sums: PeriodSums,
    *,
    start: Any = None,
    xtol: float = 1e-10,
    max_iter: int = 100,
) -> PeriodFit:
    """Fit the cluster + cluster-period random-intercept model by REML, vectorised.

    Parameters
    ----------
    sums : PeriodSums
        Cluster-period sufficient statistics, batch shape ``S``.
    start : array_like, shape (2,), optional
        Extra start :math:`(\\lambda_c, \\lambda_p)` evaluated with the start grid (the best
        point starts the Newton iteration), e.g. the generating values in a simulation.
    xtol : float, default 1e-10
        Relative accuracy of the variance ratios (see the module docstring).
    max_iter : int, default 100
        Iteration limit; replicates that hit it get ``converged=False``.

    Returns
    -------
    PeriodFit
        Arrays of batch shape ``S``.

    Raises
    ------
    TrialstatsError
        If the design is rank deficient, has no more observations than columns, fewer than two
        clusters, or the variance components are not identifiable (see the module docstring).
    """
    batch = sums.batch_shape
    flat = _flatten(sums)
    _validate(flat)
    n_rep = flat.n.shape[0]
    grid = np.stack(np.meshgrid(_START, _START, indexing="ij"), axis=-1).reshape(-1, 2)
    if start is not None:
        extra = np.asarray(start, dtype=float)
        if extra.shape != (2,) or np.any(extra < 0) or not np.all(np.isfinite(extra)):
            raise TrialstatsError("start must be two finite, non-negative variance ratios.")
        grid = np.vstack([extra, grid])
    crit = _base(flat, np.broadcast_to(grid, (n_rep, *grid.shape))).criterion
    lam, converged = _minimise(flat, grid[np.argmin(crit, axis=1)], xtol, max_iter)
    final = _base(flat, lam[:, None, :])
    s = final.q[:, 0] / flat.dof
    total = lam.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cac = lam[:, 0] / total
    dof, crit = flat.dof, final.criterion[:, 0]
    fit = PeriodFit(
        beta=final.beta[:, 0],
        vcov=s[:, None, None] * final.a_inv[:, 0],
        var_cluster=lam[:, 0] * s,
        var_cluster_period=lam[:, 1] * s,
        var_residual=s,
        ratios=lam,
        icc=total / (1.0 + total),
        cac=cac,
        reml_loglik=-0.5 * (crit + dof * (1.0 + np.log(2.0 * np.pi / dof))),
        converged=converged & np.isfinite(crit),
        boundary=lam == 0,
        n_obs=flat.n.sum(axis=(1, 2)).astype(np.int64),
        n_clusters=np.sum(flat.n.sum(axis=2) > 0, axis=1),
    )
    return fit.reshaped(batch)


def period_terms(sums: PeriodSums, ratios: Any) -> PeriodTerms:
    """Gradient, Hessian and per-cluster blocks of the profiled criterion at given ratios.

    Parameters
    ----------
    sums : PeriodSums
        Data, batch shape ``S``.
    ratios : array_like, shape S + (2,)
        :math:`(\\lambda_c, \\lambda_p) \\ge 0`, e.g. ``PeriodFit.ratios``.

    Returns
    -------
    PeriodTerms
        With the batch dimensions merged into one leading axis.
    """
    lam = np.asarray(ratios, dtype=float)
    if lam.shape != (*sums.batch_shape, 2) or np.any(lam < 0) or not np.all(np.isfinite(lam)):
        raise TrialstatsError(f"ratios must be finite, >= 0 and of shape {(*sums.batch_shape, 2)}.")
    return _derivatives(_flatten(sums), lam.reshape(-1, 2))


def profiled_criterion(sums: PeriodSums, ratios: Any) -> np.ndarray:
    """The profiled REML criterion :math:`f(\\lambda)` of the module docstring.

    Parameters
    ----------
    sums : PeriodSums
        Data, batch shape ``S``.
    ratios : array_like, shape S + (G, 2)
        ``G`` points :math:`(\\lambda_c, \\lambda_p)` per replicate.

    Returns
    -------
    ndarray, shape S + (G,)
        :math:`-2\\ell_R` less :math:`(N-p)\\{1 + \\log(2\\pi/(N-p))\\}`; ``inf`` where it
        cannot be evaluated.
    """
    flat = _flatten(sums)
    lam = np.asarray(ratios, dtype=float)
    batch = sums.batch_shape
    if lam.shape[:-2] != batch or lam.shape[-1] != 2 or lam.ndim != len(batch) + 2:
        raise TrialstatsError(f"ratios of shape {lam.shape} do not fit batch shape {batch}.")
    crit = _base(flat, lam.reshape(flat.n.shape[0], -1, 2)).criterion
    return crit.reshape(lam.shape[:-1])
