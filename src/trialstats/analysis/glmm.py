r"""Random-intercept GLMMs by maximum likelihood with adaptive Gauss-Hermite quadrature.

The model (binomial-logit, Poisson-log with offset, negative binomial NB2), its likelihood
:math:`\prod_j \int \prod_i f(y_{ij} \mid x_{ij}^\top\beta + o_{ij} + \sigma z)\,\phi(z)\,dz`
and the adaptive quadrature with its exact gradient are in
:mod:`trialstats.analysis.glmm_likelihood`; this module finds the maximum, its standard errors
and the profile interval of :math:`\sigma`.

Fitting
-------
Newton on :math:`(\beta, \sigma[, \alpha])`, vectorised over leading replicate dimensions, with
the Hessian from forward differences of the analytic gradient (relative step :data:`_FD_STEP`),
eigenvalues made positive away from the optimum and a halving line search on the log-likelihood.
The likelihood is even in :math:`\sigma`, so :math:`\sigma = 0` is always stationary; it is a
local maximum exactly when the score statistic :math:`S = \sum_j (u_j^2 - w_j)`, with cluster
score :math:`u_j = \sum_i \ell'_{ij}` and curvature :math:`w_j = -\sum_i \ell''_{ij}` of the
:math:`\sigma = 0` fit, is not positive (:math:`\partial^2 \log L / \partial\sigma^2 = S` there;
Commenges & Jacqmin-Gadda 1997). So

1. the boundary fit (the GLM, :math:`\sigma = 0`, where one node is exact) comes first;
2. the interior fit starts from it with :math:`\sigma_0^2 = S / \sum_j w_j^2` (the one-step score
   estimate, :math:`\sigma_0` kept within [0.05, 3]) and is run to convergence with one node
   (Laplace, cheap), then polished with ``n_agq`` nodes by quasi-Newton (BFGS updates started
   from the Laplace information; the two optima differ by about :math:`10^{-3}`);
3. the boundary fit is kept, with :math:`\hat\sigma = 0` exactly, when :math:`S \le 0` and the
   interior optimum is no better, and whenever the interior search ends lower than it.

A replicate is ``converged`` when the Newton step fell below :data:`_STEP_TOL` and the
information is positive definite; separated data (all or no events in an arm) drift towards
infinite estimates and are flagged, not hidden.

Standard errors
---------------
lme4 1.1.x ``vcov.merMod`` uses by default (``use.hessian = TRUE``) twice the inverse of the
finite-difference Hessian of the deviance over :math:`(\theta, \beta)`, :math:`\theta = \sigma`,
keeping the fixed-effect block: the observed information over the fixed effects and the variance
parameter jointly. ``cov`` here is the inverse of the Hessian of :math:`-\log L` over all
parameters in the order :math:`(\beta, \sigma[, \alpha])` (differences of the exact gradient);
``se`` is from its :math:`\beta` block. At :math:`\hat\sigma = 0` the Hessian is block diagonal
(evenness in :math:`\sigma`), so the SEs are those of the GLM, as lme4's central differences give.
For the negative binomial :math:`\alpha` is included (``glmer.nb``'s ``vcov`` holds
:math:`\vartheta` fixed; :math:`\beta` and :math:`\alpha` are nearly orthogonal).

Choice of the default ``n_agq``
-------------------------------
``DEFAULT_N_AGQ = 15``. On the reference trials of ``tests/test_glmm.py`` (10 to 30 clusters of
2 to 380 patients, prevalences 3% to 45%, Poisson and negative binomial counts) the largest
relative change of any estimate, SE or :math:`\hat\sigma` when the nodes are doubled is

=========  ==========  ==========  ==========  ==========  ==========
nodes      1 to 2      5 to 10     7 to 14     10 to 20    15 to 30
change     3e-3        9e-5        1.4e-6      2e-8        1e-8
=========  ==========  ==========  ==========  ==========  ==========

(the last is the differencing floor of the SEs; estimates change by 3e-11), so 15 nodes are
exact for every purpose while Laplace is not (it moves :math:`\hat\sigma` and the SEs by up to
0.7%); the cost grows linearly in the nodes and stays small at 15.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from trialstats.analysis.glmm_likelihood import (
    GlmmData,
    boundary_score,
    flatten,
    loglik_and_gradient,
    normal_rule,
    take_replicates,
)
from trialstats.errors import TrialstatsError

__all__ = ["DEFAULT_N_AGQ", "GlmmFit", "fit_glmm", "latent_icc", "sigma_profile_interval"]

DEFAULT_N_AGQ = 15
# Outer Newton: convergence on the step, iteration cap, halvings in the line search.
_STEP_TOL = 1e-9
_MAX_ITER = 100
_MAX_HALVINGS = 40
# Relative step of the forward differences of the analytic gradient.
_FD_STEP = 1e-7
# An interior optimum replaces a locally optimal boundary fit only if better by this much.
_LOGLIK_TOL = 1e-9
# Eigenvalues of the information are floored here (and relative to the largest) in Newton steps;
# an information whose smallest eigenvalue is below _COND_TOL times its largest is singular.
_TINY, _COND_TOL = 1e-300, 1e-12


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
        Inverse observed information over :math:`(\\beta, \\sigma[, \\alpha])`; NaN where the
        information is not positive definite.
    loglik : ndarray, shape (...)
        Maximised log-likelihood (the quadrature approximation) with every constant, as R's
        ``logLik`` of glmer at nAGQ = 1 (at nAGQ > 1 lme4 reports it minus the saturated
        log-likelihood, which is 0 for 0/1 rows).
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


def latent_icc(sigma: np.ndarray) -> np.ndarray:
    """Latent-scale ICC of the logistic model, :math:`\\sigma^2 / (\\sigma^2 + \\pi^2/3)`."""
    var = np.square(sigma)
    return var / (var + np.pi**2 / 3.0)


# -- optimisation ---------------------------------------------------------------------------------


def _hessian(data, params, n_agq, modes, free, grad) -> np.ndarray:
    """Hessian of the log-likelihood over the ``free`` parameters, shape (R, f, f).

    Forward differences of the analytic gradient from ``grad`` (its value at ``params``), all
    perturbations in one batched call. The modes are re-converged at every perturbed point, so
    the gradient is exact to rounding and the small step keeps the truncation error near
    :data:`_FD_STEP` relative.
    """
    m, f = params.shape[0], int(np.sum(free))
    steps = _FD_STEP * np.maximum(1.0, np.abs(params[:, free]))
    shifts = np.zeros((f, m, params.shape[1]))
    for i, col in enumerate(np.flatnonzero(free)):
        shifts[i, :, col] = steps[:, i]
    trial = (params + shifts).reshape(-1, params.shape[1])
    index = np.tile(np.arange(m), f)
    _, g, _ = loglik_and_gradient(take_replicates(data, index), trial, n_agq, modes[index])
    g = g.reshape(f, m, -1)[..., free]
    hess = np.moveaxis((g - grad[:, free]) / steps.T[..., None], 0, 1)
    return (hess + np.swapaxes(hess, 1, 2)) / 2.0


def _newton(data, params, n_agq, free, information=None):
    """Maximise the log-likelihood over the ``free`` parameters of every replicate of flat data.

    Newton with the finite-difference Hessian, or, when ``information`` (R, f, f; minus a nearby
    Hessian) is given, quasi-Newton from it with BFGS updates and no further differencing.
    Returns the parameters, log-likelihood, converged flag (the Newton step fell below
    tolerance) and the last information matrices.
    """
    params = params.copy()
    loglik, grad, modes = loglik_and_gradient(data, params, n_agq)
    converged = np.zeros(params.shape[0], dtype=bool)
    done = converged.copy()
    quasi = information is not None
    if not quasi:
        information = np.zeros((params.shape[0], int(free.sum()), int(free.sum())))
    information = information.copy()
    for _ in range(_MAX_ITER):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        sub = take_replicates(data, idx)
        if not quasi:
            information[idx] = -_hessian(sub, params[idx], n_agq, modes[idx], free, grad[idx])
        vals, vecs = np.linalg.eigh(information[idx])
        floor = np.maximum(1e-8 * np.max(np.abs(vals), axis=1, keepdims=True), _TINY)
        coef = np.einsum("rji,rj->ri", vecs, grad[idx][:, free]) / np.maximum(np.abs(vals), floor)
        step = np.zeros((idx.size, params.shape[1]))
        step[:, free] = np.einsum("rij,rj->ri", vecs, coef)
        small = np.max(np.abs(step) / (1.0 + np.abs(params[idx])), axis=1) < _STEP_TOL
        converged[idx[small]] = done[idx[small]] = True
        todo = np.flatnonzero(~small)
        size = np.ones(todo.size)
        for _ in range(_MAX_HALVINGS):
            if todo.size == 0:
                break
            rows = idx[todo]
            trial = params[rows] + size[:, None] * step[todo]
            part = take_replicates(sub, todo)
            ll_t, g_t, z_t = loglik_and_gradient(part, trial, n_agq, modes[rows])
            ok = np.isfinite(ll_t) & (ll_t >= loglik[rows] - 1e-12 * np.abs(loglik[rows]))
            good = rows[ok]
            if quasi:
                change = (grad[good] - g_t[ok])[:, free]
                _bfgs(information, good, (trial[ok] - params[good])[:, free], change)
            params[good], loglik[good] = trial[ok], ll_t[ok]
            grad[good], modes[good] = g_t[ok], z_t[ok]
            todo, size = todo[~ok], size[~ok] / 2.0
        # No ascent along the step: stop, not converged (estimates drifting to infinity under
        # separation end here or at the iteration cap).
        done[idx[todo]] = True
    return params, loglik, converged, information


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
    if data.X.ndim == 3:  # one design per replicate
        return (np.linalg.pinv(data.X) @ (target - data.offset)[..., None])[..., 0]
    coef = np.linalg.lstsq(data.X, (target - data.offset).T, rcond=None)[0]
    return coef.T


def fit_glmm(data: GlmmData, n_agq: int = DEFAULT_N_AGQ) -> GlmmFit:
    """Maximum-likelihood fit of the random-intercept GLMM, vectorised over replicates.

    Parameters
    ----------
    data : GlmmData
        From :func:`glmm_data` or :func:`binary_cluster_data`; leading dimensions of ``y`` are
        replicates fitted independently (simulation power), with one shared design or one
        design each (the imputation models of the imputations).
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
    normal_rule(n_agq)
    flat = flatten(data)
    n_rep, p, q = flat.y.shape[0], data.X.shape[-1], data.n_params
    nb = data.family == "negative-binomial"
    start = np.zeros((n_rep, q))
    start[:, :p] = _start(flat)
    without_sigma = np.arange(q) != p
    # At sigma = 0 the integrand is constant in z, so one node is exact.
    boundary, ll_boundary, ok_boundary, _ = _newton(flat, start, 1, without_sigma)
    score, info = boundary_score(flat, boundary)
    interior = boundary.copy()
    interior[:, p] = np.clip(np.sqrt(np.maximum(score, 0.0) / np.maximum(info, _TINY)), 0.05, 3.0)
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
    _, grad, modes = loglik_and_gradient(flat, params, n_agq)
    info_matrix = -_hessian(flat, params, n_agq, modes, everything, grad)
    eigen = np.linalg.eigvalsh(info_matrix)
    positive = eigen[:, 0] > _COND_TOL * eigen[:, -1]
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
    flat = flatten(data)
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
