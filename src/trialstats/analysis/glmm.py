r"""Random-intercept GLMMs by maximum likelihood with adaptive Gauss-Hermite quadrature.

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

Fitting
-------
Damped Newton on :math:`(\beta, \sigma[, \alpha])` with the Hessian from central differences of the
analytic gradient, eigenvalues made positive away from the optimum and a halving line search on
the log-likelihood, vectorised over leading replicate dimensions. The likelihood is even in
:math:`\sigma`, so :math:`\sigma = 0` is always stationary; it is a local maximum exactly when the
score statistic :math:`S = \sum_j (u_j^2 - w_j)`, with cluster score :math:`u_j = \sum_i \ell'_{ij}`
and curvature :math:`w_j = -\sum_i \ell''_{ij}` of the :math:`\sigma = 0` fit, is not positive
(:math:`\partial^2 \log L / \partial\sigma^2 = S` there; Commenges & Jacqmin-Gadda 1997). The
fit is then the boundary fit itself (the GLM, :math:`\hat\sigma = 0` exactly) unless a separate
interior optimum has a higher likelihood.

Standard errors
---------------
lme4 1.1.x ``vcov.merMod`` uses by default (``use.hessian = TRUE``) twice the inverse of the
finite-difference Hessian of the deviance over :math:`(\theta, \beta)`, :math:`\theta = \sigma`,
keeping the fixed-effect block: the observed information over the fixed effects and the variance
parameter jointly. ``cov`` here is the inverse of the (analytic-gradient, central-difference)
Hessian of :math:`-\log L` over all parameters in the order :math:`(\beta, \sigma[, \alpha])`;
``se`` is from its :math:`\beta` block. At :math:`\hat\sigma = 0` the Hessian is block diagonal
(evenness in :math:`\sigma`), so the SEs are those of the GLM, as lme4's central differences give.
For the negative binomial :math:`\alpha` is included (``glmer.nb``'s ``vcov`` holds
:math:`\vartheta` fixed; :math:`\beta` and :math:`\alpha` are nearly orthogonal).

Choice of the default ``n_agq``
-------------------------------
``DEFAULT_N_AGQ = 15``: on every reference trial of ``tests/test_glmm.py`` (10 to 30 clusters of
2 to 150, prevalences 3% to 45%, Poisson counts) doubling the nodes from 15 to 30 changes no
estimate, SE or :math:`\hat\sigma` by more than :math:`10^{-7}` relative, while the Laplace
approximation (``n_agq = 1``) is off by up to :math:`10^{-3}` in :math:`\hat\sigma` and
:math:`10^{-2}` in SEs; the cost grows linearly in :math:`K` and is small at 15.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from trialstats.errors import TrialstatsError

__all__ = [
    "DEFAULT_N_AGQ",
    "FAMILIES",
    "GlmmData",
    "GlmmFit",
    "binary_cluster_data",
    "fit_glmm",
    "glmm_data",
    "latent_icc",
    "loglik_and_gradient",
    "sigma_profile_interval",
]

FAMILIES = ("binomial", "poisson", "negative-binomial")
DEFAULT_N_AGQ = 15
# Newton on each cluster's mode stops when every step is below this (z is on the N(0, 1) scale)
# and never moves z by more than _MODE_MAX_STEP at once (a guard for far starting points).
_MODE_TOL = 1e-12
_MODE_MAX_STEP = 2.0
_MODE_MAX_ITER = 100
# Outer Newton: convergence on the step, iteration cap, halvings in the line search.
_STEP_TOL = 1e-9
_MAX_ITER = 100
_MAX_HALVINGS = 40
# Relative step of the central differences of the analytic gradient (error ~ step^2).
_FD_STEP = 1e-5
# An interior optimum replaces a locally optimal boundary fit only if better by this much.
_LOGLIK_TOL = 1e-9
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
    X : ndarray, shape (N, p)
        Fixed-effect design (intercept included by the caller).
    offset : ndarray, shape (N,)
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
        return self.X.shape[1] + 1 + (self.family == "negative-binomial")


@dataclass(frozen=True)
class GlmmFit:
    """Maximum-likelihood estimates; arrays have the batch shape of the data (plus trailing dims).

    Attributes
    ----------
    beta, se : ndarray, shape (..., p)
        Fixed effects and their standard errors (joint observed information, as glmer).
    sigma : ndarray, shape (...)
        Cluster SD :math:`\\hat\\sigma` on the linear-predictor scale (``var_cluster = sigma**2``).
    theta : ndarray, shape (...), or None
        Negative binomial :math:`\\hat\\vartheta` (size); None for other families.
    cov : ndarray, shape (..., q, q)
        Inverse observed information over :math:`(\\beta, \\sigma[, \\alpha])`.
    loglik : ndarray, shape (...)
        Maximised log-likelihood (the quadrature approximation), constants included as R's
        ``logLik``.
    boundary : ndarray of bool, shape (...)
        :math:`\\hat\\sigma = 0` exactly.
    converged : ndarray of bool, shape (...)
        Newton met its step tolerance and the information is positive definite.
    n_agq : int
        Quadrature nodes per cluster.
    family : str
    """

    beta: np.ndarray
    se: np.ndarray
    sigma: np.ndarray
    theta: np.ndarray | None
    cov: np.ndarray
    loglik: np.ndarray
    boundary: np.ndarray
    converged: np.ndarray
    n_agq: int
    family: str


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
    X : array_like, shape (N, p)
        Full-rank fixed-effect design, intercept included.
    clusters : array_like, shape (N,)
        Cluster label of each row (any hashable values).
    family : {'binomial', 'poisson', 'negative-binomial'}
    trials : array_like, shape (..., N) or (N,), optional
        Binomial trials per row (default 1: 0/1 outcomes).
    offset : array_like, shape (N,), optional
        Offset on the linear-predictor scale (e.g. ``log(exposure)``); default 0.

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
    if y.ndim < 1 or y.shape[-1] != n or X.ndim != 2 or X.shape[0] != n:
        raise TrialstatsError("y, X and clusters must have one entry (row) per observation.")
    n_trials = np.ones(n) if trials is None else np.asarray(trials, dtype=float)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    if off.shape != (n,) or n_trials.shape[-1] != n:
        raise TrialstatsError("offset and trials must have one entry per observation.")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X)) and np.all(np.isfinite(off))):
        raise TrialstatsError("Outcome, covariates and offset must be finite (no missing values).")
    if np.any(y < 0) or np.any(y != np.round(y)):
        raise TrialstatsError(f"A {family} outcome must hold non-negative whole numbers.")
    if family == "binomial" and (
        np.any(n_trials < 1) or np.any(n_trials != np.round(n_trials)) or np.any(y > n_trials)
    ):
        raise TrialstatsError("Binomial trials must be whole numbers >= 1 and at least the events.")
    codes, _ = _codes(labels)
    order = np.argsort(codes, kind="stable")
    cluster = codes[order]
    if cluster[-1] < 1:
        raise TrialstatsError("A random-intercept model needs at least two clusters.")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise TrialstatsError("The fixed-effect design is rank deficient (collinear columns).")
    return GlmmData(
        y=y[..., order],
        trials=n_trials[..., order],
        X=X[order],
        offset=off[order],
        cluster=cluster,
        starts=np.flatnonzero(np.r_[True, cluster[1:] != cluster[:-1]]),
        family=family,
    )


def _codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(labels, return_inverse=True)
    return codes.reshape(-1), uniques


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
    sizes : array_like, shape (..., J) or (J,)
        Patients per cluster.
    X : array_like, shape (J, p)
        Cluster-level design (intercept, arm, cluster covariates).

    Returns
    -------
    GlmmData
    """
    n_clusters = np.shape(X)[0]
    return glmm_data(events, X, np.arange(n_clusters), "binomial", trials=sizes)


def latent_icc(sigma: np.ndarray) -> np.ndarray:
    """Latent-scale ICC of the logistic model, :math:`\\sigma^2 / (\\sigma^2 + \\pi^2/3)`."""
    var = np.square(sigma)
    return var / (var + np.pi**2 / 3.0)


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


def _rule(n_agq: int) -> tuple[np.ndarray, np.ndarray]:
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
        _evaluate(_take(data, rows), params[rows], n_agq, z_start[rows])
        for rows in np.array_split(np.arange(n_rep), -(-n_rep // chunk))
    ]
    return tuple(np.concatenate(part) for part in zip(*parts, strict=True))


def _evaluate(data, params, n_agq, z0):
    """:func:`loglik_and_gradient` for one chunk of replicates."""
    t, w = _rule(n_agq)
    p = data.X.shape[1]
    y = data.y.reshape(-1, data.y.shape[-1])
    n = np.broadcast_to(data.trials, data.y.shape).reshape(y.shape)
    beta, sigma = params[:, :p], params[:, p]
    nb = data.family == "negative-binomial"
    alpha = params[:, p + 1 : p + 2] if nb else np.zeros((params.shape[0], 1))
    X, csum, spread = data.X, data.cluster_sum, data.spread

    eta0 = beta @ X.T + data.offset
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
    grad_beta = row_weights @ X + np.sum(
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


# -- optimisation ---------------------------------------------------------------------------------


def _flat(data: GlmmData) -> GlmmData:
    """The same data with the batch dimensions merged into one (R, N)."""
    n_rows = data.y.shape[-1]
    y = data.y.reshape(-1, n_rows)
    trials = data.trials if data.trials.ndim == 1 else data.trials.reshape(-1, n_rows)
    return GlmmData(y, trials, data.X, data.offset, data.cluster, data.starts, data.family)


def _take(data: GlmmData, index: np.ndarray) -> GlmmData:
    """Replicates ``index`` of flat data."""
    trials = data.trials if data.trials.ndim == 1 else data.trials[index]
    return GlmmData(
        data.y[index], trials, data.X, data.offset, data.cluster, data.starts, data.family
    )


def _hessian(data, params, n_agq, modes, free, grad=None) -> np.ndarray:
    """Hessian of the log-likelihood over the ``free`` parameters, shape (R, f, f).

    Differences of the analytic gradient, all perturbations in one batched call: forward from
    ``grad`` when it is given (inside Newton), central otherwise (for the information).
    """
    m, f = params.shape[0], int(np.sum(free))
    steps = _FD_STEP * np.maximum(1.0, np.abs(params[:, free]))
    signs = (1.0,) if grad is not None else (1.0, -1.0)
    shifts = np.zeros((len(signs), f, m, params.shape[1]))
    for i, col in enumerate(np.flatnonzero(free)):
        for k, sign in enumerate(signs):
            shifts[k, i, :, col] = sign * steps[:, i]
    trial = (params + shifts).reshape(-1, params.shape[1])
    index = np.tile(np.arange(m), len(signs) * f)
    _, g, _ = loglik_and_gradient(_take(data, index), trial, n_agq, modes[index])
    g = g.reshape(len(signs), f, m, -1)[..., free]
    low, width = (grad[:, free], 1.0) if grad is not None else (g[1], 2.0)
    hess = np.moveaxis((g[0] - low) / (width * steps.T[..., None]), 0, 1)
    return (hess + np.swapaxes(hess, 1, 2)) / 2.0


def _newton(data, params, n_agq, free, information=None):
    """Maximise the log-likelihood over the ``free`` parameters of every replicate of flat data.

    Newton with the finite-difference Hessian, or, when ``information`` (R, f, f; minus a nearby
    Hessian) is given, quasi-Newton from it with BFGS updates and no further differencing.
    Returns the parameters, log-likelihood, converged flag and the last information matrices.
    """
    params = params.copy()
    loglik, grad, modes = loglik_and_gradient(data, params, n_agq)
    done = np.zeros(params.shape[0], dtype=bool)
    quasi = information is not None
    if not quasi:
        information = np.zeros((params.shape[0], int(free.sum()), int(free.sum())))
    information = information.copy()
    for _ in range(_MAX_ITER):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        sub = _take(data, idx)
        if not quasi:
            information[idx] = -_hessian(sub, params[idx], n_agq, modes[idx], free, grad[idx])
        vals, vecs = np.linalg.eigh(information[idx])
        floor = 1e-8 * np.max(np.abs(vals), axis=1, keepdims=True)
        vals = np.maximum(np.abs(vals), floor)
        coef = np.einsum("rji,rj->ri", vecs, grad[idx][:, free]) / vals
        step = np.zeros((idx.size, params.shape[1]))
        step[:, free] = np.einsum("rij,rj->ri", vecs, coef)
        small = np.max(np.abs(step) / (1.0 + np.abs(params[idx])), axis=1) < _STEP_TOL
        done[idx[small]] = True
        todo = np.flatnonzero(~small)
        size = np.ones(todo.size)
        for _ in range(_MAX_HALVINGS):
            if todo.size == 0:
                break
            rows = idx[todo]
            trial = params[rows] + size[:, None] * step[todo]
            ll_t, g_t, z_t = loglik_and_gradient(_take(sub, todo), trial, n_agq, modes[rows])
            ok = np.isfinite(ll_t) & (ll_t >= loglik[rows] - 1e-12 * np.abs(loglik[rows]))
            good = rows[ok]
            if quasi:
                _bfgs(
                    information,
                    good,
                    (trial[ok] - params[good])[:, free],
                    (grad[good] - g_t[ok])[:, free],
                )
            params[good], loglik[good] = trial[ok], ll_t[ok]
            grad[good], modes[good] = g_t[ok], z_t[ok]
            todo, size = todo[~ok], size[~ok] / 2.0
        # A replicate whose line search found no ascent is at the optimum to rounding.
        done[idx[todo]] = True
    return params, loglik, done, information


def _bfgs(information, rows, step, change) -> None:
    """BFGS update, in place, of ``information[rows]`` (minus the Hessian) from a step and the
    change of minus the gradient; skipped where the curvature condition fails."""
    curvature = np.sum(step * change, axis=1)
    keep = curvature > 0
    rows, step, change, curvature = rows[keep], step[keep], change[keep], curvature[keep]
    b_step = np.einsum("rij,rj->ri", information[rows], step)
    information[rows] += (
        change[:, :, None] * change[:, None, :] / curvature[:, None, None]
        - b_step[:, :, None] * b_step[:, None, :] / np.sum(step * b_step, axis=1)[:, None, None]
    )


def _start(data: GlmmData) -> np.ndarray:
    """Least-squares fit of the link of the smoothed outcome: starting fixed effects."""
    y = data.y
    if data.family == "binomial":
        target = special.logit((y + 0.5) / (data.trials + 1.0))
    else:
        target = np.log(y + 0.5)
    coef = np.linalg.lstsq(data.X, (target - data.offset).T, rcond=None)[0]
    return coef.T


def _score_statistic(data: GlmmData, params: np.ndarray) -> np.ndarray:
    """:math:`S = \\sum_j (u_j^2 - w_j)` at a boundary fit: positive iff sigma = 0 is a saddle."""
    p = data.X.shape[1]
    eta = params[:, :p] @ data.X.T + data.offset
    alpha = params[:, p + 1 :] if data.family == "negative-binomial" else 0.0
    n = np.broadcast_to(data.trials, data.y.shape)
    _, l1, l2 = _kernel(data, data.y, n, eta, alpha, 2)
    score, curvature = data.cluster_sum(l1), data.cluster_sum(l2)
    return np.sum(score**2 + curvature, axis=1), np.sum(curvature**2, axis=1)


def fit_glmm(data: GlmmData, n_agq: int = DEFAULT_N_AGQ) -> GlmmFit:
    """Maximum-likelihood fit of the random-intercept GLMM, vectorised over replicates.

    Parameters
    ----------
    data : GlmmData
        From :func:`glmm_data` or :func:`binary_cluster_data`; leading dimensions of ``y`` are
        replicates fitted independently (simulation power).
    n_agq : int, default :data:`DEFAULT_N_AGQ`
        Adaptive Gauss-Hermite nodes per cluster; 1 is the Laplace approximation.

    Returns
    -------
    GlmmFit
        With the batch shape of ``data.y`` (scalars and vectors for one data set).

    Notes
    -----
    The boundary fit (GLM with :math:`\\sigma = 0`) is found first; it starts the interior Newton
    (at :math:`\\sigma_0^2 = S / \\sum_j w_j^2`, the one-step score estimate, within
    [0.05, 3] for :math:`\\sigma_0`) and is kept, exactly, when :math:`S \\le 0` and no better
    interior optimum exists.
    """
    _rule(n_agq)
    flat = _flat(data)
    n_rep, p, q = flat.y.shape[0], data.X.shape[1], data.n_params
    nb = data.family == "negative-binomial"
    start = np.zeros((n_rep, q))
    start[:, :p] = _start(flat)
    without_sigma = np.arange(q) != p
    # At sigma = 0 the integrand is constant in z, so one node is exact.
    boundary, ll_boundary, ok_boundary, _ = _newton(flat, start, 1, without_sigma)
    score, info = _score_statistic(flat, boundary)
    interior = boundary.copy()
    interior[:, p] = np.clip(np.sqrt(np.maximum(score, 0.0) / info), 0.05, 3.0)
    everything = np.ones(q, bool)
    # Laplace first (one node is cheap); its optimum and information start the AGQ polish.
    interior, ll_interior, ok_interior, information = _newton(flat, interior, 1, everything)
    if n_agq > 1:
        interior, ll_interior, ok_interior, _ = _newton(
            flat, interior, n_agq, everything, information
        )
    at_boundary = (ll_interior < ll_boundary) | (
        (score <= 0) & (ll_interior <= ll_boundary + _LOGLIK_TOL)
    )
    params = np.where(at_boundary[:, None], boundary, interior)
    params[:, p] = np.abs(params[:, p])
    loglik = np.where(at_boundary, ll_boundary, ll_interior)
    converged = np.where(at_boundary, ok_boundary, ok_interior)
    _, _, modes = loglik_and_gradient(flat, params, n_agq)
    info_matrix = -_hessian(flat, params, n_agq, modes, everything)
    positive = np.all(np.linalg.eigvalsh(info_matrix) > 0, axis=1)
    cov = np.full_like(info_matrix, np.nan)
    cov[positive] = np.linalg.inv(info_matrix[positive])
    batch = data.batch_shape

    def shaped(values, *tail):
        return values.reshape((*batch, *tail))[()]

    return GlmmFit(
        beta=shaped(params[:, :p], p),
        se=shaped(np.sqrt(np.diagonal(cov, axis1=1, axis2=2)[:, :p]), p),
        sigma=shaped(params[:, p]),
        theta=shaped(np.exp(params[:, p + 1])) if nb else None,
        cov=shaped(cov, q, q),
        loglik=shaped(loglik),
        boundary=shaped(at_boundary),
        converged=shaped(converged & positive),
        n_agq=int(n_agq),
        family=data.family,
    )


def _parameters(fit: GlmmFit) -> np.ndarray:
    """The fit's parameter vector (beta, sigma[, alpha]) as one replicate, shape (1, q)."""
    extra = [] if fit.theta is None else [np.log(np.ravel(fit.theta))]
    return np.concatenate([np.ravel(fit.beta), np.ravel(fit.sigma), *extra])[None, :]


def sigma_profile_interval(
    data: GlmmData, fit: GlmmFit, *, level: float = 0.95
) -> tuple[float, float]:
    """Profile-likelihood confidence interval for the cluster SD :math:`\\sigma` of one fit.

    The interval is :math:`\\{\\sigma \\ge 0 : 2\\{\\ell(\\hat\\psi) - \\max_{\\beta[,\\alpha]}
    \\ell(\\beta, \\sigma[, \\alpha])\\} \\le \\chi^2_1(\\text{level})\\}` on the same quadrature
    approximation as the fit (plain :math:`\\chi^2_1` cut-off, as lme4's ``confint(method =
    "profile")``; the lower limit is 0 when the profile at 0 is within it). Map it to the
    latent-scale ICC with :func:`latent_icc`, which is monotone.

    Returns
    -------
    (low, high) : tuple of float
        ``high`` is ``inf`` if the profile stays within the cut-off up to :math:`\\sigma = 100`.
    """
    if not 0.0 < level < 1.0:
        raise TrialstatsError(f"level must be between 0 and 1, got {level}.")
    if data.batch_shape not in ((), (1,)):
        raise TrialstatsError("sigma_profile_interval takes one data set, not replicates.")
    flat = _flat(data)
    best = _parameters(fit)
    p = data.X.shape[1]
    free = np.arange(best.shape[1]) != p
    cutoff = stats.chi2.ppf(level, df=1) / 2.0
    top = float(np.ravel(fit.loglik)[0])

    def drop(sigma: float) -> float:
        start = best.copy()
        start[0, p] = sigma
        _, loglik, _, _ = _newton(flat, start, fit.n_agq, free)
        return top - float(loglik[0]) - cutoff

    sigma_hat = float(np.ravel(fit.sigma)[0])
    low = 0.0 if drop(0.0) <= 0 else optimize.brentq(drop, 0.0, sigma_hat, xtol=1e-10)
    inner, outer = sigma_hat, max(2.0 * sigma_hat, 0.05)
    while outer <= 100.0:
        if drop(outer) > 0:
            return low, optimize.brentq(drop, inner, outer, xtol=1e-10)
        inner, outer = outer, 2.0 * outer
    return low, np.inf
