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
First the joint mode :math:`(\hat u_j, \hat v_{j\cdot})` of each practice's log integrand
:math:`g_j(u, v) = \sum \ell_{jit} - u^2/2 - \sum_i v_i^2/2` by Newton; its negative Hessian is an
arrowhead matrix, :math:`a_j = 1 - \sigma_c^2 \sum \ell''`, :math:`b_{ji} = -\sigma_c\sigma_p
\sum_t \ell''_{jit}`, :math:`d_{ji} = 1 - \sigma_p^2 \sum_t \ell''_{jit}`, solved and
factorised in :math:`O(n_j)` through the Schur complement :math:`S_j = a_j - \sum_i
b_{ji}^2/d_{ji}`. The outer integral uses the :math:`K`-point Gauss-Hermite rule
:math:`(t_k, \omega_k)` for the standard normal at :math:`u_{jk} = \hat u_j + S_j^{-1/2} t_k`;
at each outer node every patient's inner integral is centred at its own conditional mode
:math:`\hat v_{ji}(u_{jk})` and scaled by its curvature :math:`d_{ji}(u_{jk})`, with the same
rule:

.. math::

    \log L_j \approx -\tfrac12 \log S_j + \log \sum_k \omega_k \exp\Bigl\{\sum_i \log I_{ji}
        (u_{jk}) - u_{jk}^2/2 + t_k^2/2\Bigr\},

    \log I_{ji}(u) = -\tfrac12 \log d_{ji}(u) + \log \sum_m \omega_m \exp\Bigl\{\sum_t
        \ell_{jit}(v_{jim}) - v_{jim}^2/2 + t_m^2/2\Bigr\}.

With one node in each dimension this is exactly the joint Laplace approximation
:math:`\log L_j \approx g_j(\hat u_j, \hat v_j) - \tfrac12 \log\det(-\nabla^2 g_j)` (since
:math:`\det = S_j \prod_i d_{ji}`), which is lme4's ``glmer(nAGQ = 1)`` criterion for the
canonical links (lme4 allows no more nodes with nested random effects). With more nodes it
converges to the exact likelihood (tests: brute-force nested ``integrate()`` in R).

Fitting and standard errors
---------------------------
The parameters :math:`\psi = (\beta, \sigma_c, \sigma_p)` are found from the practice-only
fit of :mod:`trialstats.analysis.glmm` by Newton on the Laplace approximation (one node, cheap)
with central-difference gradients and Hessians of the (smooth: modes converged to
:data:`_MODE_TOL`) approximate log-likelihood, then, with more nodes, by quasi-Newton (BFGS
updates started from the Laplace information), as :func:`~trialstats.analysis.glmm.fit_glmm`.
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
the fits, against 30 x 30 nodes, were (measured with ``fit_nested_glmm``, 2-core machine shared
with other jobs):

=====================  ============  ============  ============  ============
nodes per dimension    1 (Laplace)   10            15            20
largest rel. change    0.22 (SD),    2e-4          2e-5          6e-6
                       SE 16%
practice SD            0 (boundary)  0.16277       0.162577      0.162572
fit time               1.6 s         13 s          19 s          35 s
=====================  ============  ============  ============  ============

(30 nodes: practice SD 0.162573, patient SD 1.54377, log-likelihood -232.315034; Laplace
-234.3835 at its own optimum, with patient SD 1.211.) The log-likelihood at fixed parameters
is within 3e-5 of 60 nodes at 15 (binary) and 1e-9 (the Poisson outcome). So 15 is the
default: estimates within 2e-5 of the limit, where Laplace moves the patient SD by 22% and
the SEs by 16%; the cost grows with the square of the nodes. Set ``quadrature_points: 1`` for
glmer's Laplace fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

# The outer Newton (step tolerance, iteration cap, line-search halvings) is fit_glmm's.
from trialstats.analysis.glmm import _MAX_HALVINGS, _MAX_ITER, _STEP_TOL, DEFAULT_N_AGQ, fit_glmm
from trialstats.analysis.glmm_likelihood import _kernel, glmm_data, normal_rule
from trialstats.errors import TrialstatsError

__all__ = ["NestedData", "NestedFit", "fit_nested_glmm", "nested_data", "nested_loglik"]

_FAMILIES = ("binomial", "poisson")
# Inner Newton for the modes: step tolerance, iteration cap, largest step.
_MODE_TOL = 1e-12
_MODE_MAX_ITER = 60
_MODE_MAX_STEP = 4.0
# Central-difference steps (relative) for the gradient and the Hessian of the log-likelihood.
_GRAD_STEP = 1e-5
_HESS_STEP = 1e-4
# A parameter beyond this (log odds or rate ratio, or SD) is drifting to infinity (separated
# data): the search stops, not converged.
_DIVERGED = 30.0
# Intermediate node counts between the Laplace fit and the one asked for.
_LADDER = (5,)
# An SD below this is refitted at exactly 0, and kept there when the log-likelihood is no
# worse than the interior fit's by more than _LOGLIK_TOL.
_BOUNDARY_CHECK = 1e-3
_LOGLIK_TOL = 1e-7
# Elements of the largest node array evaluated at once (replicates are chunked to this).
_CHUNK_ELEMENTS = 200_000


@dataclass(frozen=True)
class NestedData:
    """Rows sorted by practice, then patient.

    Attributes
    ----------
    y, offset : ndarray, shape (N,)
    X : ndarray, shape (N, p)
    patient : ndarray of int, shape (N,)
        Patient index 0..P-1 of each row (non-decreasing).
    patient_starts : ndarray of int, shape (P,)
        First row of each patient.
    practice_of_patient : ndarray of int, shape (P,)
        Practice index 0..J-1 of each patient (non-decreasing).
    practice_starts : ndarray of int, shape (J,)
        First patient of each practice.
    family : str
    """

    y: np.ndarray
    X: np.ndarray
    offset: np.ndarray
    patient: np.ndarray
    patient_starts: np.ndarray
    practice_of_patient: np.ndarray
    practice_starts: np.ndarray
    family: str

    @property
    def n_params(self) -> int:
        """Length of :math:`(\\beta, \\sigma_c, \\sigma_p)`."""
        return self.X.shape[1] + 2

    def to_patients(self, a: np.ndarray) -> np.ndarray:
        """Sum rows (axis 1) by patient."""
        return np.add.reduceat(a, self.patient_starts, axis=1)

    def to_practices(self, a: np.ndarray) -> np.ndarray:
        """Sum patients (axis 1) by practice."""
        return np.add.reduceat(a, self.practice_starts, axis=1)

    @property
    def practice_of_row(self) -> np.ndarray:
        """Practice index of each row."""
        return self.practice_of_patient[self.patient]


def nested_data(y, X, practices, patients, family: str, *, offset=None) -> NestedData:
    """Check the inputs of a nested GLMM fit and sort the rows by practice and patient.

    Parameters
    ----------
    y : array_like, shape (N,)
        0/1 outcomes (``binomial``) or counts (``poisson``).
    X : array_like, shape (N, p)
        Full-rank fixed-effect design, intercept included.
    practices, patients : array_like, shape (N,)
        Practice and patient label of each row; a patient belongs to one practice.
    family : {'binomial', 'poisson'}
    offset : array_like, shape (N,), optional
        Log exposure (default 0).
    """
    if family not in _FAMILIES:
        raise TrialstatsError(f"The nested GLMM handles {' and '.join(_FAMILIES)} outcomes, "
                              f"not {family!r}.")
    y, X = np.asarray(y, dtype=float), np.asarray(X, dtype=float)
    n = y.shape[0]
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float)
    if y.ndim != 1 or X.shape[0] != n or len(practices) != n or len(patients) != n \
            or off.shape != (n,):
        raise TrialstatsError("y, X, practices, patients and offset need one entry per row.")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X)) and np.all(np.isfinite(off))):
        raise TrialstatsError("Outcome, covariates and offset must be finite (no missing values).")
    if np.any(y < 0) or np.any(y != np.round(y)) or (family == "binomial" and np.any(y > 1)):
        raise TrialstatsError(f"A {family} outcome must hold "
                              f"{'0/1 values' if family == 'binomial' else 'whole numbers >= 0'}.")
    practice_code = np.unique(np.asarray(practices), return_inverse=True)[1].reshape(-1)
    patient_code = np.unique(np.asarray(patients), return_inverse=True)[1].reshape(-1)
    pairs = np.unique(np.c_[patient_code, practice_code], axis=0)
    if np.unique(pairs[:, 0]).size != pairs.shape[0]:
        raise TrialstatsError("A patient appears in more than one practice.")
    if np.unique(practice_code).size < 2:
        raise TrialstatsError("A random-intercept model needs at least two practices.")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise TrialstatsError("The fixed-effect design is rank deficient (collinear columns).")
    order = np.lexsort((patient_code, practice_code))
    # patients relabelled in practice order, so that both levels are contiguous
    first = np.flatnonzero(np.r_[True, np.diff(patient_code[order]) != 0])
    patient = np.cumsum(np.r_[0, np.diff(patient_code[order]) != 0])
    practice_of_patient = practice_code[order][first]
    return NestedData(
        y=y[order], X=X[order], offset=off[order], patient=patient, patient_starts=first,
        practice_of_patient=practice_of_patient,
        practice_starts=np.flatnonzero(np.r_[True, np.diff(practice_of_patient) != 0]),
        family=family,
    )


def _derivatives(data, y, eta):
    """First two eta-derivatives of each row's log-likelihood."""
    _, l1, l2 = _kernel(data, y, 1.0, eta, 0.0, 2)
    return l1, l2


def _log_density(data, y, eta):
    """The eta-dependent part of each row's log-likelihood (one pass; the kernels of
    :mod:`trialstats.analysis.glmm_likelihood` for 0/1 and Poisson rows)."""
    if data.family == "binomial":
        return -np.logaddexp(0.0, (1.0 - 2.0 * y) * eta)
    return y * eta - np.exp(eta)


def _joint_mode(data, eta0, s_c, s_p):
    """Joint modes (u (R, J), v (R, P)) and the arrowhead terms d (R, P), b (R, P), S (R, J)."""
    n_rep = eta0.shape[0]
    u = np.zeros((n_rep, data.practice_starts.size))
    v = np.zeros((n_rep, data.patient_starts.size))
    prac_row, prac_pat = data.practice_of_row, data.practice_of_patient
    sc, sp = s_c[:, None], s_p[:, None]
    for _ in range(_MODE_MAX_ITER):
        eta = eta0 + sc * u[:, prac_row] + sp * v[:, data.patient]
        l1, l2 = _derivatives(data, data.y, eta)
        p1, p2 = data.to_patients(l1), data.to_patients(l2)
        g_v, d = sp * p1 - v, 1.0 - sp**2 * p2
        b = -sc * sp * p2
        g_u = sc * data.to_practices(p1) - u
        schur = 1.0 - sc**2 * data.to_practices(p2) - data.to_practices(b**2 / d)
        du = (g_u - data.to_practices(b * g_v / d)) / schur
        dv = (g_v - b * du[:, prac_pat]) / d
        du = np.clip(du, -_MODE_MAX_STEP, _MODE_MAX_STEP)
        dv = np.clip(dv, -_MODE_MAX_STEP, _MODE_MAX_STEP)
        u, v = u + du, v + dv
        if max(np.max(np.abs(du), initial=0), np.max(np.abs(dv), initial=0)) < _MODE_TOL:
            break
    eta = eta0 + sc * u[:, prac_row] + sp * v[:, data.patient]
    _, l2 = _derivatives(data, data.y, eta)
    p2 = data.to_patients(l2)
    d, b = 1.0 - sp**2 * p2, -sc * sp * p2
    schur = 1.0 - sc**2 * data.to_practices(p2) - data.to_practices(b**2 / d)
    return u, v, d, b, schur


def _log_sum_exp(a: np.ndarray) -> np.ndarray:
    """:math:`\\log\\sum e^a` over the last axis (finite entries)."""
    top = a.max(axis=-1)
    return top + np.log(np.exp(a - top[..., None]).sum(axis=-1))


def _evaluate(data: NestedData, params: np.ndarray, n_agq: int) -> np.ndarray:
    """:func:`nested_loglik` for one chunk of parameter vectors."""
    t, w = normal_rule(n_agq)
    p = data.X.shape[1]
    beta, s_c, s_p = params[:, :p], params[:, p], params[:, p + 1]
    eta0 = beta @ data.X.T + data.offset
    u_hat, v_hat, d_hat, b_hat, schur = _joint_mode(data, eta0, s_c, s_p)
    prac_row, prac_pat = data.practice_of_row, data.practice_of_patient
    scale_u = schur**-0.5
    u = u_hat[..., None] + scale_u[..., None] * t                        # (R, J, K)
    # Inner modes at every outer node, from the joint mode moved along the conditional line.
    v = v_hat[..., None] - (b_hat / d_hat)[..., None] * (u - u_hat[..., None])[:, prac_pat]
    sc, sp = s_c[:, None, None], s_p[:, None, None]
    y = data.y[:, None]
    base = eta0[..., None] + sc * u[:, prac_row]                        # (R, N, K)
    for _ in range(_MODE_MAX_ITER):
        l1, l2 = _derivatives(data, y, base + sp * v[:, data.patient])
        step = (sp * data.to_patients(l1) - v) / (1.0 - sp**2 * data.to_patients(l2))
        step = np.clip(step, -_MODE_MAX_STEP, _MODE_MAX_STEP)
        v = v + step
        if np.max(np.abs(step), initial=0.0) < _MODE_TOL:
            break
    _, l2 = _derivatives(data, y, base + sp * v[:, data.patient])
    d = 1.0 - sp**2 * data.to_patients(l2)                               # (R, P, K)
    nodes = v[..., None] + d[..., None] ** -0.5 * t                      # (R, P, K, M)
    eta = base[..., None] + sp[..., None] * nodes[:, data.patient]       # (R, N, K, M)
    values = _log_density(data, y[..., None], eta)
    inner = data.to_patients(values) - nodes**2 / 2.0 + t**2 / 2.0 + np.log(w)
    log_inner = -0.5 * np.log(d) + _log_sum_exp(inner)                   # (R, P, K)
    outer = data.to_practices(log_inner) - u**2 / 2.0 + t**2 / 2.0 + np.log(w)
    log_practice = np.log(scale_u) + _log_sum_exp(outer)                 # (R, J)
    constant = -np.sum(special.gammaln(data.y + 1.0)) if data.family == "poisson" else 0.0
    return log_practice.sum(axis=1) + constant


def nested_loglik(data: NestedData, params: np.ndarray, n_agq: int) -> np.ndarray:
    """Adaptive-quadrature log-likelihood (see the module notes) for parameter vectors.

    Parameters
    ----------
    data : NestedData
    params : array_like, shape (R, q) or (q,)
        :math:`(\\beta, \\sigma_c, \\sigma_p)` per row (the signs of the SDs do not matter).
    n_agq : int
        Nodes per dimension, outer and inner (1: the Laplace approximation).

    Returns
    -------
    ndarray, shape (R,) or scalar
        With every constant (``log y!`` for Poisson), as R's ``logLik`` of glmer at nAGQ = 1.
    """
    params = np.asarray(params, dtype=float)
    flat = np.atleast_2d(params)
    chunk = max(1, _CHUNK_ELEMENTS // (data.y.size * int(n_agq) ** 2))
    parts = [_evaluate(data, flat[rows], n_agq)
             for rows in np.array_split(np.arange(flat.shape[0]), -(-flat.shape[0] // chunk))]
    out = np.concatenate(parts)
    return out if params.ndim == 2 else out[0]


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


def _gradient(data, params, n_agq, free):
    """Central-difference gradient of the log-likelihood over the ``free`` parameters."""
    index = np.flatnonzero(free)
    steps = _GRAD_STEP * np.maximum(1.0, np.abs(params[index]))
    trial = np.repeat(params[None, :], 2 * index.size, axis=0)
    trial[np.arange(index.size), index] += steps
    trial[index.size + np.arange(index.size), index] -= steps
    values = nested_loglik(data, trial, n_agq)
    return (values[: index.size] - values[index.size :]) / (2.0 * steps)


def _hessian(data, params, n_agq, free):
    """Central-difference Hessian of the log-likelihood over the ``free`` parameters."""
    index = np.flatnonzero(free)
    f = index.size
    h = _HESS_STEP * np.maximum(1.0, np.abs(params[index]))
    trials, signs = [params], []
    for a in range(f):
        for b in range(a, f):
            for sa, sb in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                point = params.copy()
                point[index[a]] += sa * h[a]
                point[index[b]] += sb * h[b]
                trials.append(point)
            signs.append((a, b))
    values = nested_loglik(data, np.array(trials), n_agq)
    hess = np.zeros((f, f))
    for k, (a, b) in enumerate(signs):
        pp, pm, mp, mm = values[1 + 4 * k : 5 + 4 * k]
        hess[a, b] = hess[b, a] = (pp - pm - mp + mm) / (4.0 * h[a] * h[b])
    return hess


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
    loglik = float(nested_loglik(data, params, n_agq))
    grad = _gradient(data, params, n_agq, free)
    converged = False
    for _ in range(_MAX_ITER):
        if newton:
            information = -_hessian(data, params, n_agq, free)
        step = _step(information, grad)
        size, accepted = 1.0, False
        for _ in range(_MAX_HALVINGS):
            trial = params.copy()
            trial[index] += size * step
            ll = float(nested_loglik(data, trial, n_agq))
            if ll >= loglik - 1e-12 * abs(loglik):
                accepted = True
                break
            size /= 2.0
        if not accepted:
            break
        new_grad = _gradient(data, trial, n_agq, free)
        if not newton:
            information = _bfgs(information, size * step, grad - new_grad)
        params, loglik, grad = trial, ll, new_grad
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
        From :func:`nested_data`.
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
    info = -_hessian(data, params, n_agq, free)
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
