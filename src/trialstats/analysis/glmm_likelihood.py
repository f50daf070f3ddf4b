r"""The random-intercept GLMM log-likelihood by adaptive Gauss-Hermite quadrature and its gradient.

Model
-----
For row :math:`i` of cluster :math:`j = 1, \dots, J`, with covariates :math:`x_{ij}`, offset
:math:`o_{ij}` and a standardised random intercept :math:`z_j \sim N(0, 1)`,

.. math::

    \eta_{ij} = x_{ij}^\top \beta + o_{ij} + \sigma z_j, \qquad
    y_{ij} \mid z_j \sim F(\eta_{ij}) \text{ independently},

with the families

* ``binomial`` (logit link): :math:`y_{ij}` events of :math:`n_{ij}` trials (0/1 rows have
  :math:`n_{ij} = 1`), :math:`\ell = \log\binom{n}{y} + y\eta - n \log(1 + e^\eta)`;
* ``poisson`` (log link, offset e.g. log exposure): :math:`\ell = y\eta - e^\eta - \log y!`;
* ``negative-binomial`` (NB2, log link, :math:`\operatorname{Var} = \mu + \mu^2/\vartheta`,
  :math:`\vartheta` estimated as :math:`\alpha = \log\vartheta`):
  :math:`\ell = \log\Gamma(y + \vartheta) - \log\Gamma(\vartheta) - \log y! + \vartheta\alpha
  + y\eta - (y + \vartheta)\log(\vartheta + e^\eta)`.

The cluster variance on the linear-predictor scale is :math:`\sigma^2`. The marginal likelihood is a
product of one-dimensional integrals, :math:`L = \prod_j \int e^{g_j(z)} dz` with
:math:`g_j(z) = \sum_i \ell_{ij}(\eta_{ij}(z)) - z^2/2 - \tfrac12 \log 2\pi`.

Adaptive quadrature
-------------------
Each cluster's integrand is centred at its mode :math:`\hat z_j` (Newton on :math:`g_j'`, which is
strictly decreasing because every :math:`\ell` above is concave in :math:`\eta`) and scaled by its
curvature :math:`c_j = -g_j''(\hat z_j) = 1 - \sigma^2 \sum_i \ell_{ij}''`; with the
:math:`K`-point Gauss-Hermite rule :math:`(t_k, \omega_k)` for the standard normal density and
:math:`s_j = c_j^{-1/2}`, :math:`z_{jk} = \hat z_j + s_j t_k`,

.. math::

    \log L_j \approx \log s_j + \log \sum_k \omega_k
        \exp\{\textstyle\sum_i \ell_{ij}(\eta_{ij}(z_{jk})) - z_{jk}^2/2 + t_k^2/2\},

Liu & Pierce (1994, *Biometrika* 81:624); :math:`K = 1` is the Laplace approximation. This is
lme4's ``glmer(nAGQ = K)`` criterion (Bates et al. 2015; for the canonical binomial and Poisson
links its PIRLS weights are the observed curvature used here). The gradient is analytic and exact
for the approximation itself: besides the direct terms it carries the dependence of
:math:`\hat z_j` and :math:`s_j` on the parameters (implicit function theorem,
:math:`d\hat z_j/d\psi = \partial_\psi g_j'(\hat z_j) / c_j`, which needs :math:`\ell'''`).

The fitting (:mod:`trialstats.analysis.glmm`) and the marginal effects
(:mod:`trialstats.analysis.marginal`) build on this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from trialstats.errors import TrialstatsError

__all__ = [
    "FAMILIES",
    "GlmmData",
    "binary_cluster_data",
    "boundary_score",
    "flatten",
    "glmm_data",
    "loglik_and_gradient",
    "normal_rule",
    "take_replicates",
]

FAMILIES = ("binomial", "poisson", "negative-binomial")
# Newton on each cluster's mode stops when every step is below this (z is on the N(0, 1) scale)
# and never moves z by more than _MODE_MAX_STEP at once (a guard for far starting points).
_MODE_TOL = 1e-12
_MODE_MAX_STEP = 2.0
_MODE_MAX_ITER = 100
# Largest replicates x rows x nodes array evaluated at once.
_CHUNK_ELEMENTS = 400_000


@dataclass(frozen=True)
class GlmmData:
    """Rows sorted by cluster; ``y`` carries the replicate (batch) dimensions in front.

    Attributes
    ----------
    y : ndarray, shape (..., N)
        Outcome: events (binomial) or counts.
    trials : ndarray, shape (..., N) or (N,)
        Binomial trials per row (1 for 0/1 rows); ones for counts.
    X : ndarray, shape (N, p) or (..., N, p)
        Fixed-effect design (intercept included by the caller), shared by the replicates or
        one per replicate (leading dimensions those of ``y``).
    offset : ndarray, shape (..., N) or (N,)
        Offset on the linear-predictor scale (log exposure for counts).
    cluster : ndarray of int, shape (N,)
        Cluster index 0..J-1 of each row, non-decreasing.
    starts : ndarray of int, shape (J,)
        First row of each cluster.
    family : str
        One of :data:`FAMILIES`.
    """

    y: np.ndarray
    trials: np.ndarray
    X: np.ndarray
    offset: np.ndarray
    cluster: np.ndarray
    starts: np.ndarray
    family: str

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Replicate dimensions of ``y``."""
        return self.y.shape[:-1]

    def cluster_sum(self, a: np.ndarray) -> np.ndarray:
        """Sum over the rows of each cluster along axis 1: (R, N, ...) to (R, J, ...)."""
        if self.starts.size == self.cluster.size:  # one row per cluster
            return a
        return np.add.reduceat(a, self.starts, axis=1)

    def spread(self, a: np.ndarray) -> np.ndarray:
        """Each cluster's value on its rows along axis 1: (R, J, ...) to (R, N, ...)."""
        return a if self.starts.size == self.cluster.size else a[:, self.cluster]

    @property
    def n_params(self) -> int:
        """Length of the parameter vector :math:`(\\beta, \\sigma[, \\alpha])`."""
        return self.X.shape[-1] + 1 + (self.family == "negative-binomial")

    def linear(self, beta: np.ndarray) -> np.ndarray:
        """:math:`X\\beta` of each replicate of flat data: ``beta`` (R, p) to (R, N)."""
        if self.X.ndim == 2:
            return beta @ self.X.T
        return (self.X @ beta[:, :, None])[..., 0]

    def transposed(self, weights: np.ndarray) -> np.ndarray:
        """:math:`X^\\top w` of each replicate of flat data: ``weights`` (R, N) to (R, p)."""
        if self.X.ndim == 2:
            return weights @ self.X
        return (weights[:, None, :] @ self.X)[:, 0]


def glmm_data(
    y: np.ndarray,
    X: np.ndarray,
    clusters: np.ndarray,
    family: str,
    *,
    trials: np.ndarray | None = None,
    offset: np.ndarray | None = None,
) -> GlmmData:
    """Check the inputs of a GLMM fit and sort the rows by cluster.

    Parameters
    ----------
    y : array_like, shape (..., N)
        Outcome per row; leading dimensions are replicates sharing the design.
    X : array_like, shape (N, p) or (..., N, p)
        Full-rank fixed-effect design, intercept included; with leading dimensions (those of
        ``y``) one design per replicate, e.g. the completed predictors of each imputation.
    clusters : array_like, shape (N,)
        Cluster label of each row (any hashable values).
    family : {'binomial', 'poisson', 'negative-binomial'}
    trials : array_like, shape (..., N) or (N,), optional
        Binomial trials per row (default 1: 0/1 outcomes).
    offset : array_like, shape (..., N) or (N,), optional
        Offset on the linear-predictor scale (e.g. ``log(exposure)``); default 0. Leading
        dimensions, if any, are those of ``y`` (replicates with their own exposures).

    Returns
    -------
    GlmmData
    """
    if family not in FAMILIES:
        raise TrialstatsError(f"Unknown GLMM family {family!r}; use one of {', '.join(FAMILIES)}.")
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    labels = np.asarray(clusters)
    n = labels.shape[0] if labels.ndim == 1 else -1
    if (y.ndim < 1 or y.shape[-1] != n or X.shape[-2:-1] != (n,)
            or X.shape[:-2] not in ((), y.shape[:-1])):
        raise TrialstatsError("y, X and clusters must have one entry (row) per observation.")
    n_trials = np.ones(n) if trials is None else np.asarray(trials, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    if off.shape not in ((n,), y.shape) or n_trials.shape[-1] != n:
        raise TrialstatsError("offset and trials must have one entry per observation.")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X)) and np.all(np.isfinite(off))):
        raise TrialstatsError("Outcome, covariates and offset must be finite (no missing values).")
    if np.any(y < 0) or np.any(y != np.round(y)):
        raise TrialstatsError(f"A {family} outcome must hold non-negative whole numbers.")
    if family == "binomial" and (
        np.any(n_trials < 1) or np.any(n_trials != np.round(n_trials)) or np.any(y > n_trials)
    ):
        raise TrialstatsError("Binomial trials must be whole numbers >= 1 and at least the events.")
    codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    order = np.argsort(codes, kind="stable")
    cluster = codes[order]
    if cluster[-1] < 1:
        raise TrialstatsError("A random-intercept model needs at least two clusters.")
    if np.any(np.linalg.matrix_rank(X) < X.shape[-1]):
        raise TrialstatsError("The fixed-effect design is rank deficient (collinear columns).")
    return GlmmData(
        y=y[..., order],
        trials=n_trials[..., order],
        X=X[..., order, :],
        offset=off[..., order],
        cluster=cluster,
        starts=np.flatnonzero(np.r_[True, cluster[1:] != cluster[:-1]]),
        family=family,
    )


def binary_cluster_data(events: np.ndarray, sizes: np.ndarray, X: np.ndarray) -> GlmmData:
    """Binary trials summarised exactly by cluster: one binomial row (events of size) per cluster.

    Without patient-level covariates the likelihood of 0/1 outcomes depends on a cluster only
    through its size and number of events, so a fit costs :math:`O(J)` rather than :math:`O(N)`.
    Estimates and SEs equal those of the patient-level fit; the log-likelihood differs by the
    constant :math:`\\sum_j \\log\\binom{n_j}{y_j}`.

    Parameters
    ----------
    events : array_like, shape (..., J)
        Events per cluster; leading dimensions are replicates.
    sizes : array_like, shape of ``events`` or (J,)
        Patients per cluster.
    X : array_like, shape (J, p)
        Cluster-level design (intercept, arm, cluster covariates).

    Returns
    -------
    GlmmData
    """
    n_clusters = np.shape(X)[0]
    return glmm_data(events, X, np.arange(n_clusters), "binomial", trials=sizes)


# -- family terms -------------------------------------------------------------------------------


def _kernel(data: GlmmData, y, n, eta, alpha, order: int) -> list[np.ndarray]:
    """The eta-dependent part of each row's log-likelihood and its first ``order`` derivatives.

    For the negative binomial the kernel is :math:`y\\eta - (y + \\vartheta)\\log(\\vartheta +
    e^\\eta)`, a binomial kernel in :math:`\\eta - \\alpha` with :math:`y + \\vartheta` trials.
    """
    if data.family == "poisson":
        mu = np.exp(eta)
        return [y * eta - mu, y - mu, -mu, -mu][: order + 1]
    if data.family == "binomial":
        size, shifted = n, eta
    else:
        size, shifted = y + np.exp(alpha), eta - alpha
    # One exponential for both the softplus and the logistic function.
    e = np.exp(-np.abs(shifted))
    softplus = np.maximum(shifted, 0.0) + np.log1p(e)
    p = np.where(shifted >= 0, 1.0, e) / (1.0 + e)
    if data.family == "binomial":
        out = [y * eta - n * softplus]
    else:
        out = [y * eta - size * (alpha + softplus)]
    out.append(y - size * p)
    if order >= 2:
        v = size * p * (1.0 - p)
        out += [-v, -v * (1.0 - 2.0 * p)]
    return out[: order + 1]


def _nb_alpha_terms(y, eta, alpha) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Derivatives in alpha of the NB kernel, of its eta-derivative and of its second one."""
    theta = np.exp(alpha)
    r = special.expit(eta - alpha)
    size = y + theta
    v = r * (1.0 - r)
    return (
        -theta * np.logaddexp(alpha, eta) - size * (1.0 - r),
        -theta * r + size * v,
        -theta * v + size * v * (1.0 - 2.0 * r),
    )


def _constant(data: GlmmData, y, n, alpha) -> tuple[np.ndarray, np.ndarray]:
    """The eta-free part of each row's log-likelihood and its alpha-derivative."""
    if data.family == "binomial":
        const = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
        return const, np.zeros_like(const)
    if data.family == "poisson":
        const = -special.gammaln(y + 1)
        return const, np.zeros_like(const)
    theta = np.exp(alpha)
    const = (
        special.gammaln(y + theta) - special.gammaln(theta) - special.gammaln(y + 1) + theta * alpha
    )
    return const, theta * (special.digamma(y + theta) - special.digamma(theta) + alpha + 1.0)


# -- the approximate log-likelihood and its exact gradient ----------------------------------------


def normal_rule(n_agq: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal density."""
    if not 1 <= int(n_agq) <= 100:
        raise TrialstatsError(f"quadrature points must be between 1 and 100, got {n_agq}.")
    t, w = np.polynomial.hermite_e.hermegauss(int(n_agq))
    return t, w / np.sqrt(2.0 * np.pi)


def _mode(data, y, n, eta0, sigma, alpha, z):
    """Each cluster's mode of :math:`g_j`, by safeguarded Newton from ``z``; shape (R, J)."""
    s = sigma[:, None]
    for _ in range(_MODE_MAX_ITER):
        eta = eta0 + s * data.spread(z)
        _, l1, l2 = _kernel(data, y, n, eta, alpha, 2)
        grad = s * data.cluster_sum(l1) - z
        curv = s**2 * data.cluster_sum(l2) - 1.0
        step = np.clip(grad / curv, -_MODE_MAX_STEP, _MODE_MAX_STEP)
        z = z - step
        if np.max(np.abs(step), initial=0.0) < _MODE_TOL:
            break
    return z


def loglik_and_gradient(
    data: GlmmData, params: np.ndarray, n_agq: int, z_start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGQ log-likelihood and its exact gradient for a flat batch of parameter vectors.

    Parameters
    ----------
    data : GlmmData
        With one batch dimension of length R (or none when R = 1).
    params : ndarray, shape (R, q)
        :math:`(\\beta, \\sigma[, \\alpha])` per replicate.
    n_agq : int
        Quadrature nodes (1 = Laplace).
    z_start : ndarray, shape (R, J), optional
        Starting values of the cluster modes.

    Returns
    -------
    loglik : ndarray, shape (R,)
    gradient : ndarray, shape (R, q)
    modes : ndarray, shape (R, J)
    """
    n_rep = params.shape[0]
    z_start = np.zeros((n_rep, data.starts.size)) if z_start is None else z_start
    # Replicates in chunks whose node arrays stay small (memory traffic, not flops, limits).
    chunk = max(1, _CHUNK_ELEMENTS // (data.y.shape[-1] * int(n_agq)))
    if n_rep <= chunk:
        return _evaluate(data, params, n_agq, z_start)
    parts = [
        _evaluate(take_replicates(data, rows), params[rows], n_agq, z_start[rows])
        for rows in np.array_split(np.arange(n_rep), -(-n_rep // chunk))
    ]
    return tuple(np.concatenate(part) for part in zip(*parts, strict=True))


def _evaluate(data, params, n_agq, z0):
    """:func:`loglik_and_gradient` for one chunk of replicates."""
    t, w = normal_rule(n_agq)
    p = data.X.shape[-1]
    y = data.y.reshape(-1, data.y.shape[-1])
    n = np.broadcast_to(data.trials, data.y.shape).reshape(y.shape)
    beta, sigma = params[:, :p], params[:, p]
    nb = data.family == "negative-binomial"
    alpha = params[:, p + 1 : p + 2] if nb else np.zeros((params.shape[0], 1))
    X, csum, spread = data.X, data.cluster_sum, data.spread

    eta0 = data.linear(beta) + data.offset
    zhat = _mode(data, y, n, eta0, sigma, alpha, z0)
    s_ = sigma[:, None]
    _, l1m, l2m, l3m = _kernel(data, y, n, eta0 + s_ * spread(zhat), alpha, 3)
    s1, s2, s3 = csum(l1m), csum(l2m), csum(l3m)
    c = 1.0 - s_**2 * s2
    scale = c**-0.5

    # Quadrature at z_jk = zhat_j + s_j t_k.
    zk = zhat[..., None] + scale[..., None] * t
    eta_k = eta0[..., None] + s_[..., None] * spread(zk)
    a3 = alpha[..., None]
    lk, l1k = _kernel(data, y[..., None], n[..., None], eta_k, a3, 1)
    lsum, l1sum = csum(lk), csum(l1k)
    log_terms = np.log(w) + lsum - zk**2 / 2.0 + t**2 / 2.0
    top = log_terms.max(axis=-1, keepdims=True)
    terms = np.exp(log_terms - top)
    total = terms.sum(axis=-1)
    weights = terms / total[..., None]
    const, dconst = _constant(data, y, n, alpha)
    loglik = np.sum(np.log(scale) + top[..., 0] + np.log(total), axis=1) + const.sum(axis=1)

    # Direct partial derivatives, then the chain through zhat and the scale.
    gz = s_[..., None] * l1sum - zk
    f_m = np.sum(weights * gz, axis=-1)
    f_s = 1.0 / scale + np.sum(weights * gz * t, axis=-1)
    row_weights = np.einsum("rnk,rnk->rn", spread(weights), l1k)
    dz_beta = s_[..., None] * csum(l2m[..., None] * X) / c[..., None]
    dz_sigma = (s1 + s_ * zhat * s2) / c
    dc_beta = -(s_**2)[..., None] * (csum(l3m[..., None] * X) + (s_ * s3)[..., None] * dz_beta)
    dc_sigma = -2.0 * s_ * s2 - s_**2 * s3 * (zhat + s_ * dz_sigma)
    half_s3 = -0.5 * scale**3
    grad_beta = data.transposed(row_weights) + np.sum(
        f_m[..., None] * dz_beta + (f_s * half_s3)[..., None] * dc_beta, axis=1
    )
    grad_sigma = np.sum(
        np.sum(weights * zk * l1sum, axis=-1) + f_m * dz_sigma + f_s * half_s3 * dc_sigma, axis=1
    )
    grads = [grad_beta, grad_sigma[:, None]]
    if nb:
        la_k, _, _ = _nb_alpha_terms(y[..., None], eta_k, a3)
        _, l1a, l2a = _nb_alpha_terms(y, eta0 + s_ * spread(zhat), alpha)
        dz_alpha = s_ * csum(l1a) / c
        dc_alpha = -(s_**2) * (csum(l2a) + s_ * s3 * dz_alpha)
        direct = np.sum(weights * csum(la_k), axis=-1) + csum(dconst)
        grads.append(np.sum(direct + f_m * dz_alpha + f_s * half_s3 * dc_alpha, axis=1)[:, None])
    return loglik, np.concatenate(grads, axis=1), zhat


def flatten(data: GlmmData) -> GlmmData:
    """The same data with the batch dimensions of ``y`` (``trials``, ``offset``) merged into one."""
    n_rows = data.y.shape[-1]
    y = data.y.reshape(-1, n_rows)
    trials = data.trials if data.trials.ndim == 1 else data.trials.reshape(-1, n_rows)
    offset = data.offset if data.offset.ndim == 1 else data.offset.reshape(-1, n_rows)
    X = data.X if data.X.ndim == 2 else data.X.reshape(-1, *data.X.shape[-2:])
    return GlmmData(y, trials, X, offset, data.cluster, data.starts, data.family)


def take_replicates(data: GlmmData, index: np.ndarray) -> GlmmData:
    """The replicates ``index`` (integer array) of flat data."""
    trials = data.trials if data.trials.ndim == 1 else data.trials[index]
    offset = data.offset if data.offset.ndim == 1 else data.offset[index]
    X = data.X if data.X.ndim == 2 else data.X[index]
    return GlmmData(data.y[index], trials, X, offset, data.cluster, data.starts, data.family)


def boundary_score(data: GlmmData, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Score statistic for the cluster variance at :math:`\\sigma = 0`, per replicate.

    Parameters
    ----------
    data : GlmmData
        Flat data (one batch dimension R).
    params : ndarray, shape (R, q)
        A fit with :math:`\\sigma = 0` (its sigma entry is ignored).

    Returns
    -------
    score : ndarray, shape (R,)
        :math:`S = \\sum_j (u_j^2 - w_j)` with :math:`u_j = \\sum_i \\ell'_{ij}` and
        :math:`w_j = -\\sum_i \\ell''_{ij}`: :math:`\\partial^2 \\log L / \\partial \\sigma^2` at
        :math:`\\sigma = 0`, positive exactly when :math:`\\sigma = 0` is a saddle point.
    information : ndarray, shape (R,)
        :math:`\\sum_j w_j^2`, twice the approximate information on :math:`\\sigma^2` there.
    """
    p = data.X.shape[-1]
    eta = data.linear(params[:, :p]) + data.offset
    alpha = params[:, p + 1 :] if data.family == "negative-binomial" else 0.0
    n = np.broadcast_to(data.trials, data.y.shape)
    _, l1, l2 = _kernel(data, data.y, n, eta, alpha, 2)
    score, curvature = data.cluster_sum(l1), data.cluster_sum(l2)
    return np.sum(score**2 + curvature, axis=1), np.sum(curvature**2, axis=1)
