r"""The nested random-intercept GLMM log-likelihood by nested adaptive quadrature, and its gradient.

Model and quadrature
--------------------
For measurement :math:`t` of patient :math:`i` in practice :math:`j` (the model of
:mod:`trialstats.analysis.glmm_nested`), with standardised intercepts :math:`u_j, v_{ji} \sim
N(0, 1)` and parameters :math:`\psi = (\beta, \sigma_c, \sigma_p)`,
:math:`\eta_{jit} = x_{jit}^\top\beta + o_{jit} + \sigma_c u_j + \sigma_p v_{ji}` and row
log-likelihood :math:`\ell_{jit}(\eta)` (Bernoulli-logit or Poisson-log, the kernels of
:mod:`trialstats.analysis.glmm_likelihood`, with derivatives :math:`\ell', \ell'', \ell'''`).

First the joint mode :math:`(\hat u_j, \hat v_{j\cdot})` of each practice's log integrand
:math:`g_j(u, v) = \sum \ell_{jit} - u^2/2 - \sum_i v_i^2/2` by Newton; its negative Hessian is an
arrowhead matrix :math:`A_j` with :math:`a_j = 1 - \sigma_c^2 \sum \ell''`, :math:`b_{ji} =
-\sigma_c\sigma_p P''_{ji}`, :math:`d_{ji} = 1 - \sigma_p^2 P''_{ji}` (:math:`P^{(k)}_{ji} =
\sum_t \ell^{(k)}_{jit}`), solved and factorised in :math:`O(n_j)` through the Schur complement
:math:`S_j = a_j - \sum_i b_{ji}^2/d_{ji}`. The outer integral uses the :math:`K`-point
Gauss-Hermite rule :math:`(t_k, \omega_k)` for the standard normal at :math:`u_{jk} = \hat u_j +
S_j^{-1/2} t_k`; at each outer node every patient's inner integral is centred at its own
conditional mode :math:`\hat v_{jik}` (Newton on :math:`\sigma_p P'_{ji} - v = 0` at
:math:`u_{jk}`) and scaled by its curvature :math:`d_{jik}` there, with nodes :math:`v_{jikm} =
\hat v_{jik} + d_{jik}^{-1/2} t_m` (Pinheiro & Chao 2006, *J. Comput. Graph. Stat.* 15:58):

.. math::

    \log L_j \approx -\tfrac12 \log S_j + \log \sum_k \omega_k e^{G_{jk}}, \qquad
    G_{jk} = \sum_i \log I_{jik} - u_{jk}^2/2 + t_k^2/2,

    \log I_{jik} = -\tfrac12 \log d_{jik} + \log \sum_m \omega_m e^{F_{jikm}}, \qquad
    F_{jikm} = \sum_t \ell_{jit}(\eta_{jitkm}) - v_{jikm}^2/2 + t_m^2/2.

With one node in each dimension this is the joint Laplace approximation (lme4's
``glmer(nAGQ = 1)``).

Gradient
--------
The approximation is a smooth function of :math:`\psi` through the nodes, which move with the
modes and curvatures; its exact gradient follows by the chain rule (``D`` a total derivative in
:math:`\psi`, :math:`e_q` the unit vector of parameter :math:`q`; practice index :math:`j`
dropped):

1. Joint mode, by the implicit function theorem on :math:`\nabla g = 0`:
   :math:`D(\hat u, \hat v) = A^{-1} \partial_\psi \nabla g`, with :math:`\partial_\psi g_u =
   \sigma_c \sum \ell'' \partial_\psi\eta + e_{\sigma_c}\sum \ell'` and :math:`\partial_\psi
   g_{v_i} = \sigma_p \sum_t \ell''\partial_\psi\eta + e_{\sigma_p} P'_i`, where
   :math:`\partial_\psi\eta = (x, \hat u, \hat v_i)` at fixed random effects (the same arrowhead
   solve). Then :math:`D\eta = \partial_\psi\eta + \sigma_c D\hat u + \sigma_p D\hat v_i`,
   :math:`DP''_i = \sum_t \ell''' D\eta`, and

   .. math::

       DS = Da - \sum_i \bigl(2 (b_i/d_i) Db_i - (b_i/d_i)^2 Dd_i\bigr),

   :math:`Da = -\sigma_c^2 \sum_i DP''_i - 2\sigma_c e_{\sigma_c} \sum_i P''_i`,
   :math:`Db_i = -\sigma_c\sigma_p DP''_i - (\sigma_p e_{\sigma_c} + \sigma_c e_{\sigma_p}) P''_i`,
   :math:`Dd_i = -\sigma_p^2 DP''_i - 2\sigma_p e_{\sigma_p} P''_i`.
2. Outer nodes: :math:`Du_k = D\hat u - \tfrac12 S^{-3/2} t_k\, DS`.
3. Conditional modes at :math:`u_k`: differentiating :math:`\sigma_p P'_i = v`,
   :math:`D\hat v_{ik} = (e_{\sigma_p} P'_{ik} + \sigma_p \sum_t \ell''\epsilon_{ik}) / d_{ik}`
   with :math:`\epsilon = \epsilon' + e_{\sigma_p} \hat v_{ik}` and :math:`\epsilon' = (x, u_k,
   0) + \sigma_c Du_k` (the moving outer node, the inner one held); :math:`Dd_{ik} = -\sigma_p^2
   \sum_t \ell''' (\epsilon + \sigma_p D\hat v_{ik}) - 2\sigma_p e_{\sigma_p} P''_{ik}`.
4. Inner nodes: :math:`Dv_{ikm} = B_{ik} + C_{ik} t_m` with :math:`B = D\hat v_{ik}`,
   :math:`C = -\tfrac12 d_{ik}^{-3/2} Dd_{ik}`; :math:`D\eta_{tkm} = \epsilon'_{tk} +
   e_{\sigma_p} v_{ikm} + \sigma_p Dv_{ikm}`. With the softmax weights :math:`w_{ikm} \propto
   \omega_m e^{F_{ikm}}`, :math:`\lambda_{tk} = \sum_m w_{ikm} \ell'(\eta_{tkm})` and the
   patient sums :math:`Q_r = \sum_m w_{ikm} P'_{ikm} t_m^r`, :math:`Q_v = \sum_m w_{ikm}
   P'_{ikm} v_{ikm}`, :math:`V_r = \sum_m w_{ikm} v_{ikm} t_m^r` (:math:`r = 0, 1`),

   .. math::

       D \log I_{ik} = -\frac{Dd_{ik}}{2 d_{ik}} + \sum_t \lambda_{tk} \epsilon'_{tk}
           + e_{\sigma_p} Q_v + (\sigma_p Q_0 - V_0) B_{ik} + (\sigma_p Q_1 - V_1) C_{ik},

   so no array carries both the inner nodes and the parameters.
5. Outer: :math:`DG_k = \sum_i D\log I_{ik} - u_k Du_k` and, with :math:`W_k \propto \omega_k
   e^{G_k}`, :math:`D \log L_j = -DS/(2S) + \sum_k W_k DG_k`.

The modes are converged to :data:`_MODE_TOL`, so the gradient is that of the approximation to
rounding (tests: central differences of the log-likelihood at 1, 5 and 15 nodes). The Hessian
used for the standard errors and the Newton steps is forward differences of this gradient
(:func:`nested_hessian`), as :mod:`trialstats.analysis.glmm` does for one level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from trialstats.analysis.glmm_likelihood import _kernel, normal_rule
from trialstats.errors import TrialstatsError

__all__ = ["NestedData", "nested_data", "nested_hessian", "nested_loglik",
           "nested_loglik_and_gradient"]

_FAMILIES = ("binomial", "poisson")
# Inner Newton for the modes: step tolerance, iteration cap, largest step.
_MODE_TOL = 1e-12
_MODE_MAX_ITER = 60
_MODE_MAX_STEP = 4.0
# Relative step of the forward differences of the analytic gradient (as glmm's _FD_STEP).
_FD_STEP = 1e-7
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


def _derivatives(data, y, eta, order=2):
    """The first ``order`` eta-derivatives of each row's log-likelihood."""
    return _kernel(data, y, 1.0, eta, 0.0, order)[1:]


def _log_density(data, y, eta, derivative=False):
    r"""The eta-dependent part of each row's log-likelihood and, with ``derivative``, its first
    eta-derivative: the kernels of :mod:`trialstats.analysis.glmm_likelihood` for 0/1 and
    Poisson rows in the fewest passes (0/1: :math:`\ell = -\log(1 + e^s)` with :math:`s = (1 -
    2y)\eta`, and :math:`\ell' = (1 - 2y)(e^\ell - 1)`)."""
    if data.family == "poisson":
        mu = np.exp(eta)
        return (y * eta - mu, y - mu) if derivative else y * eta - mu
    sign = 1.0 - 2.0 * y
    s = sign * eta
    value = -(np.maximum(s, 0.0) + np.log1p(np.exp(-np.abs(s))))
    return (value, sign * np.expm1(value)) if derivative else value


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


def _eta_partials(X: np.ndarray, u_rows: np.ndarray, v_rows) -> np.ndarray:
    """:math:`\\partial\\eta/\\partial(\\beta, \\sigma_c, \\sigma_p)` at fixed random effects:
    (x, u, v) per row, shape ``u_rows.shape + (q,)`` (``v_rows`` may be 0)."""
    shape = u_rows.shape
    n, p = X.shape
    x = np.broadcast_to(X.reshape(1, n, *(1,) * (len(shape) - 2), p), (*shape, p))
    v = np.broadcast_to(v_rows, shape)
    return np.concatenate([x, u_rows[..., None], v[..., None]], axis=-1)


def _joint_mode_derivatives(data, params, eta0, u_hat, v_hat, d_hat, b_hat, schur):
    """Step 1 of the module notes: :math:`D\\hat u` (R, J, q) and :math:`DS` (R, J, q)."""
    p = data.X.shape[1]
    prac_row, pat = data.practice_of_row, data.patient
    s_c, s_p = params[:, p, None], params[:, p + 1, None]
    sc, sp = s_c[..., None], s_p[..., None]
    eta = eta0 + s_c * u_hat[:, prac_row] + s_p * v_hat[:, pat]
    l1, l2, l3 = _derivatives(data, data.y, eta, 3)
    partial = _eta_partials(data.X, u_hat[:, prac_row], v_hat[:, pat])
    p1, p2 = data.to_patients(l1), data.to_patients(l2)
    curved = data.to_patients(l2[..., None] * partial)
    rhs_v = sp * curved
    rhs_v[..., p + 1] += p1
    rhs_u = sc * data.to_practices(curved)
    rhs_u[..., p] += data.to_practices(p1)
    ratio = (b_hat / d_hat)[..., None]
    du_hat = (rhs_u - data.to_practices(ratio * rhs_v)) / schur[..., None]
    dv_hat = rhs_v / d_hat[..., None] - ratio * du_hat[:, data.practice_of_patient]
    deta = partial + sc * du_hat[:, prac_row] + sp * dv_hat[:, pat]
    dp2 = data.to_patients(l3[..., None] * deta)
    da = -(sc**2) * data.to_practices(dp2)
    da[..., p] -= 2.0 * s_c * data.to_practices(p2)
    db = -sc * sp * dp2
    db[..., p] -= s_p * p2
    db[..., p + 1] -= s_c * p2
    dd = -(sp**2) * dp2
    dd[..., p + 1] -= 2.0 * s_p * p2
    return du_hat, da - data.to_practices(2.0 * ratio * db - ratio**2 * dd)


def _evaluate(data: NestedData, params: np.ndarray, n_agq: int, gradient: bool):
    """Log-likelihood (R,) and, with ``gradient``, its gradient (R, q) for one chunk."""
    t, w = normal_rule(n_agq)
    p = data.X.shape[1]
    beta, s_c, s_p = params[:, :p], params[:, p], params[:, p + 1]
    eta0 = beta @ data.X.T + data.offset
    u_hat, v_hat, d_hat, b_hat, schur = _joint_mode(data, eta0, s_c, s_p)
    prac_row, prac_pat, pat = data.practice_of_row, data.practice_of_patient, data.patient
    scale_u = schur**-0.5
    u = u_hat[..., None] + scale_u[..., None] * t                        # (R, J, K)
    # Inner modes at every outer node, from the joint mode moved along the conditional line.
    v = v_hat[..., None] - (b_hat / d_hat)[..., None] * (u - u_hat[..., None])[:, prac_pat]
    sc, sp = s_c[:, None, None], s_p[:, None, None]
    y = data.y[:, None]
    base = eta0[..., None] + sc * u[:, prac_row]                        # (R, N, K)
    for _ in range(_MODE_MAX_ITER):
        l1, l2 = _derivatives(data, y, base + sp * v[:, pat])
        step = (sp * data.to_patients(l1) - v) / (1.0 - sp**2 * data.to_patients(l2))
        step = np.clip(step, -_MODE_MAX_STEP, _MODE_MAX_STEP)
        v = v + step
        if np.max(np.abs(step), initial=0.0) < _MODE_TOL:
            break
    l1k, l2k, l3k = _derivatives(data, y, base + sp * v[:, pat], 3)
    d = 1.0 - sp**2 * data.to_patients(l2k)                              # (R, P, K)
    nodes = v[..., None] + d[..., None] ** -0.5 * t                      # (R, P, K, M)
    eta = base[..., None] + sp[..., None] * nodes[:, pat]                # (R, N, K, M)
    density = _log_density(data, y[..., None], eta, gradient)
    inner = (data.to_patients(density[0] if gradient else density) - nodes**2 / 2.0
             + t**2 / 2.0 + np.log(w))
    inner_total = _log_sum_exp(inner)
    log_inner = -0.5 * np.log(d) + inner_total                           # (R, P, K)
    outer = data.to_practices(log_inner) - u**2 / 2.0 + t**2 / 2.0 + np.log(w)
    outer_total = _log_sum_exp(outer)
    constant = -np.sum(special.gammaln(data.y + 1.0)) if data.family == "poisson" else 0.0
    loglik = np.sum(np.log(scale_u) + outer_total, axis=1) + constant
    if not gradient:
        return loglik, None

    # Steps 1 and 2: the outer nodes' derivatives (R, J, K, q).
    du_hat, dschur = _joint_mode_derivatives(data, params, eta0, u_hat, v_hat, d_hat, b_hat,
                                             schur)
    du = du_hat[:, :, None] - 0.5 * (scale_u**3)[..., None, None] * dschur[:, :, None] \
        * t[:, None]
    # Step 3: the conditional modes' and curvatures' derivatives (R, P, K, q).
    eps_held = _eta_partials(data.X, u[:, prac_row], 0.0) + sc[..., None] * du[:, prac_row]
    eps = eps_held.copy()
    eps[..., p + 1] += v[:, pat]
    sp4, p2k = sp[..., None], data.to_patients(l2k)
    dv_hat = sp4 * data.to_patients(l2k[..., None] * eps)
    dv_hat[..., p + 1] += data.to_patients(l1k)
    dv_hat /= d[..., None]
    dd = -(sp4**2) * data.to_patients(l3k[..., None] * (eps + sp4 * dv_hat[:, pat]))
    dd[..., p + 1] -= 2.0 * sp * p2k
    # Step 4: the inner sums over the nodes.
    weights = np.exp(inner - inner_total[..., None])                     # (R, P, K, M)
    l1_nodes = density[1]                                                # (R, N, K, M)
    lam = np.einsum("rnkm,rnkm->rnk", weights[:, pat], l1_nodes)
    weighted = weights * data.to_patients(l1_nodes)
    q0, q1, qv = weighted.sum(-1), weighted @ t, np.sum(weighted * nodes, axis=-1)
    v0, v1 = np.sum(weights * nodes, axis=-1), (weights * nodes) @ t
    curve = -0.5 * d[..., None] ** -1.5 * dd
    dlog_inner = (-0.5 * dd / d[..., None] + data.to_patients(lam[..., None] * eps_held)
                  + (sp * q0 - v0)[..., None] * dv_hat + (sp * q1 - v1)[..., None] * curve)
    dlog_inner[..., p + 1] += qv
    # Step 5: the outer sum.
    outer_weights = np.exp(outer - outer_total[..., None])              # (R, J, K)
    dg = data.to_practices(dlog_inner) - u[..., None] * du
    grad = np.einsum("rjk,rjkq->rq", outer_weights, dg) - 0.5 * np.sum(
        dschur / schur[..., None], axis=1)
    return loglik, grad


def _chunked(data, params, n_agq, gradient):
    """:func:`_evaluate` over parameter vectors in chunks of bounded memory."""
    params = np.asarray(params, dtype=float)
    flat = np.atleast_2d(params)
    chunk = max(1, _CHUNK_ELEMENTS // (data.y.size * int(n_agq) ** 2))
    parts = [_evaluate(data, flat[rows], n_agq, gradient)
             for rows in np.array_split(np.arange(flat.shape[0]), -(-flat.shape[0] // chunk))]
    loglik = np.concatenate([part[0] for part in parts])
    grad = np.concatenate([part[1] for part in parts]) if gradient else None
    if params.ndim == 1:
        return loglik[0], (grad[0] if gradient else None)
    return loglik, grad


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
    return _chunked(data, params, n_agq, False)[0]


def nested_loglik_and_gradient(data: NestedData, params: np.ndarray, n_agq: int):
    """:func:`nested_loglik` and its exact gradient (module notes, "Gradient").

    Returns
    -------
    loglik : ndarray, shape (R,) or scalar
    gradient : ndarray, shape (R, q) or (q,)
        Over :math:`(\\beta, \\sigma_c, \\sigma_p)`, the shape of ``params``.
    """
    return _chunked(data, params, n_agq, True)


def nested_hessian(data: NestedData, params: np.ndarray, n_agq: int, free: np.ndarray,
                   grad: np.ndarray) -> np.ndarray:
    """Hessian of the log-likelihood over the ``free`` parameters, shape (f, f).

    Forward differences of the exact gradient from ``grad`` (its value at ``params``), relative
    step :data:`_FD_STEP`, all perturbations in one batched call, symmetrised; the modes are
    re-converged at every perturbed point.
    """
    index = np.flatnonzero(free)
    steps = _FD_STEP * np.maximum(1.0, np.abs(params[index]))
    trial = np.repeat(params[None, :], index.size, axis=0)
    trial[np.arange(index.size), index] += steps
    _, moved = nested_loglik_and_gradient(data, trial, n_agq)
    hess = (moved[:, index] - grad[index]) / steps[:, None]
    return (hess + hess.T) / 2.0
