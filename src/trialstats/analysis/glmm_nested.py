r"""Two-level nested random-intercept GLMM: patients (repeatedly measured) within practices.

Model
-----
For measurement :math:`t` of patient :math:`i` in practice :math:`j`, with standardised random
intercepts :math:`u_j \sim N(0, 1)` (practice) and :math:`v_{ji} \sim N(0, 1)` (patient), all
independent,

.. math::

    \eta_{jit} = x_{jit}^\top\beta + o_{jit} + \sigma_c u_j + \sigma_p v_{ji}, \qquad
    y_{jit} \mid u_j, v_{ji} \sim F(\eta_{jit}),

with :math:`F` Bernoulli-logit (``binomial``) or Poisson-log with offset (``poisson``), the
kernels of :mod:`trialstats.analysis.glmm_likelihood`: ``glmer(y ~ x + (1 | practice/patient))``.
The likelihood is a product over practices of nested integrals,

.. math::

    L_j = \int \phi(u) \prod_i \Bigl[\int \phi(v) \prod_t f(y_{jit} \mid \eta_{jit}(u, v))\,
          dv\Bigr] du .

Adaptive quadrature (Pinheiro & Chao 2006, *J. Comput. Graph. Stat.* 15:58)
---------------------------------------------------------------------------
Each practice's integrand is centred at the joint mode of its random effects and scaled by the
Schur complement :math:`S_j` of its arrowhead curvature matrix; at each of the :math:`K` outer
Gauss-Hermite nodes :math:`u_{jk}` every patient's inner integral is centred at its own
conditional mode and scaled by its curvature, with the same rule (:math:`K^2` nodes per
practice and patient; the formulas and their exact gradient are in
:mod:`trialstats.analysis.glmm_nested_likelihood`). With one node in each dimension this is
exactly the joint Laplace approximation :math:`\log L_j \approx g_j(\hat u_j, \hat v_j) -
\tfrac12 \log\det(-\nabla^2 g_j)` of the log integrand :math:`g_j(u, v) = \sum \ell_{jit} -
u^2/2 - \sum_i v_i^2/2` (since :math:`\det = S_j \prod_i d_{ji}`, :math:`d_{ji}` the patients'
curvatures), which is lme4's ``glmer(nAGQ = 1)`` criterion for the canonical links (lme4
allows no more nodes with nested random effects). With more nodes it converges to the exact
likelihood (tests: brute-force nested ``integrate()`` in R).

Fitting and standard errors
---------------------------
The parameters :math:`\psi = (\beta, \sigma_c, \sigma_p)` are found from the practice-only
fit of :mod:`trialstats.analysis.glmm` by Newton on the Laplace approximation (one node, cheap)
with the exact gradient of the approximate log-likelihood and the Hessian from forward
differences of it, then, with more nodes, by quasi-Newton (BFGS updates started from the
Laplace information), as :func:`~trialstats.analysis.glmm.fit_glmm`.
The likelihood is even in each :math:`\sigma`; a variance is a boundary fit (exactly 0) when
the fit with it fixed at 0 is no worse (:data:`_LOGLIK_TOL`), as in
:mod:`trialstats.analysis.glmm`. ``cov`` is the inverse observed information over the free
parameters (as glmer's ``vcov``: the Hessian over fixed effects and variance parameters jointly;
at a boundary the Hessian is block diagonal in that :math:`\sigma`, which is left out).

Choice of the default ``n_agq``
-------------------------------
The nodes per dimension are ``analysis.quadrature_points`` (default
:data:`~trialstats.analysis.glmm.DEFAULT_N_AGQ` = 15, as the single-level fits), i.e. 225 nodes
per practice and patient. Laplace is not good enough for repeated binary outcomes: with at most
two 0/1 values per patient the patient integrals are far from Gaussian. On the repeated binary
outcome of ``tests/fixtures/binary_repeated`` (10 practices, 235 patients, 410 observations)
the fits, against 30 x 30 nodes, were (measured with ``fit_nested_glmm``, median of 3, 2-core
machine shared with other jobs):

=====================  ============  ============  ============  ============
nodes per dimension    1 (Laplace)   10            15            20
largest rel. change    0.22 (SD),    2e-4          2e-5          6e-6
                       SE 16%
practice SD            0 (boundary)  0.16277       0.162577      0.162572
fit time               0.04 s        0.20 s        0.26 s        0.32 s
=====================  ============  ============  ============  ============

(30 nodes: practice SD 0.162573, patient SD 1.54377, log-likelihood -232.315034; Laplace
-234.3835 at its own optimum, with patient SD 1.211.) The log-likelihood at fixed parameters
is within 3e-5 of 60 nodes at 15 (binary) and 1e-9 (the Poisson outcome). So 15 is the
default: estimates within 2e-5 of the limit, where Laplace moves the patient SD by 22% and
the SEs by 16%; the cost grows with the square of the nodes. Set ``quadrature_points: 1`` for
glmer's Laplace fit. On a trial of realistic size (44 practices of 127 patients, 10,075
observations; ``benchmarks/glmm_repeated.py``, median of 3) a fit took 5.0 s at 15 x 15 nodes
and 0.9 s by Laplace (glmer ``nAGQ = 1``: 5.4 s); with central differences of the
log-likelihood instead of the exact gradient it took 41 s and 7.5 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The outer Newton (step tolerance, iteration cap, line-search halvings) is fit_glmm's.
from trialstats.analysis.glmm import _MAX_HALVINGS, _MAX_ITER, _STEP_TOL, DEFAULT_N_AGQ, fit_glmm
from trialstats.analysis.glmm_likelihood import glmm_data, normal_rule
from trialstats.analysis.glmm_nested_likelihood import (
    NestedData,
    nested_hessian,
    nested_loglik_and_gradient,
)

__all__ = ["NestedFit", "fit_nested_glmm"]

# A parameter beyond this (log odds or rate ratio, or SD) is drifting to infinity (separated
# data): the search stops, not converged.
_DIVERGED = 30.0
# Intermediate node counts between the Laplace fit and the one asked for.
_LADDER = (5,)
# An SD below this is refitted at exactly 0, and kept there when the log-likelihood is no
# worse than the interior fit's by more than _LOGLIK_TOL.
_BOUNDARY_CHECK = 1e-3
_LOGLIK_TOL = 1e-7


@dataclass(frozen=True)
class NestedFit:
    """Maximum-likelihood estimates of the nested GLMM.

    Attributes
    ----------
    beta, se : ndarray, shape (p,)
    sigma_practice, sigma_patient : float
        :math:`\\hat\\sigma_c`, :math:`\\hat\\sigma_p` on the linear-predictor scale.
    cov : ndarray, shape (q, q)
        Inverse observed information over :math:`(\\beta, \\sigma_c, \\sigma_p)`; rows and
        columns of a boundary SD are NaN, all NaN when the information is not positive definite.
    loglik : float
    boundary : tuple of bool
        (practice, patient) SD estimated at exactly 0.
    converged : bool
        The optimiser and the Newton polish met their tolerances and the information is
        positive definite.
    n_agq : int
    family : str
    """

    beta: np.ndarray
    se: np.ndarray
    sigma_practice: float
    sigma_patient: float
    cov: np.ndarray
    loglik: float
    boundary: tuple[bool, bool]
    converged: bool
    n_agq: int
    family: str


def _step(information, gradient):
    """Newton step with the eigenvalues of the information made positive."""
    vals, vecs = np.linalg.eigh(information)
    floor = max(1e-8 * np.max(np.abs(vals)), 1e-300)
    return vecs @ ((vecs.T @ gradient) / np.maximum(np.abs(vals), floor))


def _maximise(data, start, n_agq, free, information=None):
    """Maximise the log-likelihood over the ``free`` parameters; (params, loglik, ok, info).

    Without ``information``: Newton with the Hessian at every step (used with one node, where
    evaluations are cheap). With it (minus a nearby Hessian, e.g. the Laplace one):
    quasi-Newton with BFGS updates, no further Hessians. Eigenvalues of the information are
    made positive and the step halved until the log-likelihood does not decrease. The SDs may
    change sign (the likelihood is even in them); the caller takes absolute values.
    """
    params = start.copy()
    index = np.flatnonzero(free)
    newton = information is None
    loglik, full_grad = nested_loglik_and_gradient(data, params, n_agq)
    grad = full_grad[index]
    converged = False
    for _ in range(_MAX_ITER):
        if newton:
            information = -nested_hessian(data, params, n_agq, free, full_grad)
        step = _step(information, grad)
        size, accepted = 1.0, False
        for _ in range(_MAX_HALVINGS):
            trial = params.copy()
            trial[index] += size * step
            ll, new_full = nested_loglik_and_gradient(data, trial, n_agq)
            if ll >= loglik - 1e-12 * abs(loglik):
                accepted = True
                break
            size /= 2.0
        if not accepted:
            break
        new_grad = new_full[index]
        if not newton:
            information = _bfgs(information, size * step, grad - new_grad)
        params, loglik, grad, full_grad = trial, float(ll), new_grad, new_full
        if np.max(np.abs(size * step) / (1.0 + np.abs(params[index]))) < _STEP_TOL:
            converged = True
            break
        if np.max(np.abs(params)) > _DIVERGED:  # separation: drifting to infinity
            break
    return params, loglik, converged, information


def _bfgs(information, step, change):
    """BFGS update of the information (minus the Hessian) from a step and the change of minus
    the gradient; unchanged where the curvature condition fails."""
    curvature = step @ change
    if curvature <= 0:
        return information
    b_step = information @ step
    return (information + np.outer(change, change) / curvature
            - np.outer(b_step, b_step) / (step @ b_step))


def fit_nested_glmm(data: NestedData, n_agq: int = DEFAULT_N_AGQ) -> NestedFit:
    """Maximum-likelihood fit of the nested random-intercept GLMM (see the module notes).

    Parameters
    ----------
    data : NestedData
        From :func:`~trialstats.analysis.glmm_nested_likelihood.nested_data`.
    n_agq : int, default :data:`~trialstats.analysis.glmm.DEFAULT_N_AGQ`
        Nodes per dimension; 1 is the Laplace approximation (glmer's nAGQ = 1).

    Returns
    -------
    NestedFit
    """
    normal_rule(n_agq)
    p = data.X.shape[1]
    single = fit_glmm(glmm_data(data.y, data.X, data.practice_of_row, data.family,
                                offset=data.offset), 1)
    start = np.r_[single.beta, max(float(single.sigma), 0.1), 0.5]

    def maximise(start, free):
        # Laplace first (cheap evaluations: Newton), then quasi-Newton from its information
        # with a few nodes and then the nodes asked for (each stage starts near its optimum).
        params, loglik, ok, info = _maximise(data, start, 1, free)
        for nodes in [k for k in _LADDER if k < n_agq] + ([n_agq] if n_agq > 1 else []):
            params, loglik, ok, info = _maximise(data, params, nodes, free, info)
        params[p:] = np.abs(params[p:])
        return params, loglik, ok

    everything = np.ones(p + 2, bool)
    params, loglik, ok = maximise(start, everything)
    boundary = [False, False]
    for k in (0, 1):
        if params[p + k] < _BOUNDARY_CHECK:
            fixed = params.copy()
            fixed[p + k] = 0.0
            free = everything.copy()
            free[p:] = [not (b or k == j) for j, b in enumerate(boundary)]
            trial, ll, trial_ok = maximise(fixed, free)
            if ll >= loglik - _LOGLIK_TOL:
                params, loglik, ok, boundary[k] = trial, ll, trial_ok, True
    free = everything.copy()
    free[p:] = [not b for b in boundary]
    _, grad = nested_loglik_and_gradient(data, params, n_agq)
    info = -nested_hessian(data, params, n_agq, free, grad)
    eigen = np.linalg.eigvalsh(info)
    positive = bool(eigen[0] > 1e-12 * eigen[-1])
    cov = np.full((p + 2, p + 2), np.nan)
    if positive:
        cov[np.ix_(free, free)] = np.linalg.inv(info)
    return NestedFit(
        beta=params[:p], se=np.sqrt(np.diagonal(cov)[:p]), sigma_practice=float(params[p]),
        sigma_patient=float(params[p + 1]), cov=cov, loglik=loglik,
        boundary=(boundary[0], boundary[1]), converged=bool(ok and positive),
        n_agq=int(n_agq), family=data.family,
    )
