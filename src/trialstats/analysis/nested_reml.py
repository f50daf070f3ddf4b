r"""Exact REML for the nested random-intercept model (patients within practices), from sums.

The model is that of :mod:`trialstats.analysis.repeated`: for occasion *t* of patient *i* in
practice *j*, :math:`y_{jit} = x_{jit}^\top\beta + c_j + p_{ji} + e_{jit}` with
:math:`c_j \sim N(0, \sigma_c^2)`, :math:`p_{ji} \sim N(0, \sigma_p^2)` and
:math:`e_{jit} \sim N(0, \sigma_e^2)` independent (``lmer(y ~ X + (1 | practice/patient))``).
This module is its likelihood kernel, beside :mod:`trialstats.analysis.reml` (one random
intercept).

Exact REML from patient sums
----------------------------
Write :math:`\gamma_p = \sigma_p^2/\sigma_e^2`, :math:`\gamma_c = \sigma_c^2/\sigma_e^2` and
let patient *i* have :math:`m_i` occasions. Practice *j*'s covariance is
:math:`\sigma_e^2 V_j`, :math:`V_j = B_j + \gamma_c 1 1^\top`,
:math:`B_j = I + \gamma_p\,\mathrm{blockdiag}(1_{m_i} 1_{m_i}^\top)`. With
:math:`u_i = 1/(1 + \gamma_p m_i)`, :math:`S_j = \sum_{i \in j} m_i u_i` and
:math:`\kappa_j = \gamma_c / (1 + \gamma_c S_j)` (inverting the patient blocks, then a rank-one
update per practice; Searle, Casella & McCulloch 1992, ch. 3),

.. math::

    V_j^{-1} = B_j^{-1} - \kappa_j B_j^{-1} 1 1^\top B_j^{-1}, \quad
    B_j^{-1} = \mathrm{blockdiag}(I - \gamma_p u_i 1 1^\top), \quad
    |V_j| = (1 + \gamma_c S_j) \prod_{i \in j} (1 + \gamma_p m_i).

So with patient totals :math:`s_i = X_i^\top 1`, :math:`t_i = y_i^\top 1` and practice totals
:math:`g_j = \sum_{i\in j} u_i s_i`, :math:`\tau_j = \sum_{i\in j} u_i t_i`,

.. math::

    A = X^\top X - \sum_i \gamma_p u_i s_i s_i^\top - \sum_j \kappa_j g_j g_j^\top, \quad
    c = X^\top y - \sum_i \gamma_p u_i s_i t_i - \sum_j \kappa_j g_j \tau_j,

:math:`\hat\beta = A^{-1}c`, :math:`\mathrm{RSS} = y^\top V^{-1} y - c^\top\hat\beta` and the
profiled criterion (lme4's REML deviance up to a constant, Bates et al. 2015, *J. Stat.
Softw.* 67(1), section 3) is

.. math:: (N - p)\log\mathrm{RSS} + \sum_j \log|V_j| + \log|A|.

As :math:`u_i` takes one value per number of occasions, every sum above is a weighted sum of
totals per (practice, number of occasions): an evaluation costs :math:`O(J M p^2 + p^3)`.
Derivatives are analytic: with :math:`W = V^{-1}` and :math:`r = y - X\hat\beta`,
:math:`\partial \mathrm{RSS}/\partial\gamma_k = -\sum_b (1_b^\top W r)^2`,
:math:`\partial \log|V|/\partial\gamma_k = \sum_b 1_b^\top W 1_b` and
:math:`\partial A/\partial\gamma_k = -\sum_b (X^\top W 1_b)(X^\top W 1_b)^\top`, the blocks *b*
being patients for :math:`\gamma_p` and practices for :math:`\gamma_c`, where
:math:`1_i^\top W = u_i 1_i^\top - \kappa_j m_i u_i (B_j^{-1}1)^\top` and
:math:`1_j^\top W = (1 + \gamma_c S_j)^{-1} (B_j^{-1}1)^\top`.

The criterion is minimised over :math:`\gamma = (\gamma_p, \gamma_c) \ge 0` (boundaries
allowed; :math:`\theta = \sqrt\gamma` are lme4's relative covariance factors) by SLSQP
with the analytic gradient from several starts, then polished by Newton steps with a Hessian
from central differences of the analytic gradient. (Searching in :math:`\theta` instead would
meet a false stationary point at every :math:`\theta_k = 0`, where the gradient in
:math:`\theta` vanishes whatever the data.)

Degrees of freedom
------------------
Satterthwaite as lmerTest (Kuznetsova, Brockhoff & Christensen 2017, *J. Stat. Softw.*
82(13)): :math:`\nu = 2 (L^\top\Phi L)^2 / (g^\top W_\theta g)` with
:math:`\Phi = \sigma_e^2 A^{-1}`, :math:`g` the gradient of :math:`L^\top\Phi L` in
:math:`(\theta_p, \theta_c, \sigma_e)` (analytic) and :math:`W_\theta = 2H^{-1}`, *H* the
Hessian of the REML deviance :math:`D = \log|V| + \log|A| + \mathrm{RSS}/\sigma_e^2 +
(N-p)\log(2\pi\sigma_e^2)` in those parameters (central differences of its analytic gradient;
lmerTest uses ``numDeriv``); eigenvalues of *H* below 1e-8 are dropped from the inverse, as in
lmerTest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from trialstats.errors import TrialstatsError

__all__ = ["NestedFit", "NestedSums", "fit_nested_reml", "nested_satterthwaite_df"]

# Starting values of gamma = (patient, practice) variance ratios for the optimiser.
_STARTS = ((1.0, 0.1), (0.25, 0.01), (4.0, 1.0), (0.04, 0.0004))
# lmerTest drops Hessian eigenvalues below this from the inverse (as_lmerModLT, tol = 1e-8).
_LMERTEST_EIGEN_TOL = 1e-8
# Gradient accepted as zero at the optimum, per residual degree of freedom (criterion units).
_GRADIENT_TOL = 1e-8
# A variance ratio gamma below this is set to 0 when the boundary is optimal there.
_BOUNDARY_SNAP = 1e-6


@dataclass(frozen=True)
class NestedSums:
    """Sufficient statistics of the nested random-intercept model.

    Patients are grouped by their number of occasions ``m`` (``occasions``, shape (G,)).

    Attributes
    ----------
    occasions : ndarray (G,)
        The distinct numbers of occasions per patient.
    n_patients_g : ndarray (G,)
        Patients with each number of occasions.
    ss, st, tt : ndarray (G, p, p), (G, p), (G,)
        :math:`\\sum s_i s_i^\\top`, :math:`\\sum s_i t_i`, :math:`\\sum t_i^2` over patients
        with that number of occasions.
    count, gsum, tsum : ndarray (J, G), (J, G, p), (J, G)
        Per practice and number of occasions: patients, :math:`\\sum s_i`, :math:`\\sum t_i`.
    xtx, xty, yty : ndarray (p, p), (p,), float
        Whole-data :math:`X^\\top X`, :math:`X^\\top y`, :math:`y^\\top y`.
    n_obs : int
        Observations :math:`N`.
    """

    occasions: np.ndarray
    n_patients_g: np.ndarray
    ss: np.ndarray
    st: np.ndarray
    tt: np.ndarray
    count: np.ndarray
    gsum: np.ndarray
    tsum: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    n_obs: int

    @property
    def n_params(self) -> int:
        """Columns of the fixed-effects design."""
        return self.xtx.shape[0]

    @classmethod
    def from_data(
        cls, y: np.ndarray, X: np.ndarray, patient_codes: np.ndarray, practice_codes: np.ndarray
    ) -> NestedSums:
        """Sums from observation-level data.

        Parameters
        ----------
        y : ndarray (N,)
        X : ndarray (N, p)
        patient_codes : ndarray of int (N,)
            Patient of each observation, ``0 .. P - 1``, every code used.
        practice_codes : ndarray of int (N,)
            Practice of each observation, ``0 .. J - 1``; constant within a patient.

        Raises
        ------
        TrialstatsError
            If a patient's observations are in more than one practice.
        """
        n_patients = int(patient_codes.max()) + 1
        n_practices = int(practice_codes.max()) + 1
        practice_of = np.full(n_patients, -1)
        practice_of[patient_codes] = practice_codes
        if np.any(practice_of[patient_codes] != practice_codes):
            raise TrialstatsError("A patient's observations lie in more than one practice.")
        m = np.bincount(patient_codes, minlength=n_patients)
        s = np.zeros((n_patients, X.shape[1]))
        np.add.at(s, patient_codes, X)
        t = np.bincount(patient_codes, y, minlength=n_patients)
        occasions, group = np.unique(m, return_inverse=True)
        n_groups = occasions.size
        cell = practice_of * n_groups + group

        def by_group(values: np.ndarray) -> np.ndarray:
            out = np.zeros((n_groups, *values.shape[1:]))
            np.add.at(out, group, values)
            return out

        def by_cell(values: np.ndarray) -> np.ndarray:
            out = np.zeros((n_practices * n_groups, *values.shape[1:]))
            np.add.at(out, cell, values)
            return out.reshape(n_practices, n_groups, *values.shape[1:])

        return cls(
            occasions=occasions.astype(float),
            n_patients_g=np.bincount(group, minlength=n_groups).astype(float),
            ss=by_group(s[:, :, None] * s[:, None, :]),
            st=by_group(s * t[:, None]),
            tt=by_group(t**2),
            count=by_cell(np.ones(n_patients)),
            gsum=by_cell(s),
            tsum=by_cell(t),
            xtx=X.T @ X,
            xty=X.T @ y,
            yty=float(y @ y),
            n_obs=y.size,
        )


@dataclass(frozen=True)
class _Terms:
    """The profiled criterion's pieces at one :math:`(\\gamma_p, \\gamma_c)`."""

    rss: float
    logdet_v: float
    logdet_a: float
    beta: np.ndarray
    a_inv: np.ndarray
    d_rss: np.ndarray  # (2,) w.r.t. (gamma_p, gamma_c)
    d_logdet_v: np.ndarray  # (2,)
    d_a: np.ndarray  # (2, p, p)

    def d_logdet_a(self) -> np.ndarray:
        return np.einsum("ab,kba->k", self.a_inv, self.d_a)


def _evaluate(sums: NestedSums, gamma_p: float, gamma_c: float) -> _Terms:
    m = sums.occasions
    u = 1.0 / (1.0 + gamma_p * m)  # (G,)
    a = gamma_p * u
    size = sums.count @ (m * u)  # S_j
    h_c = 1.0 + gamma_c * size
    kappa = gamma_c / h_c
    g = np.einsum("g,jgk->jk", u, sums.gsum)
    tau = sums.tsum @ u
    A = sums.xtx - np.einsum("g,gkl->kl", a, sums.ss) - np.einsum("j,jk,jl->kl", kappa, g, g)
    c = sums.xty - a @ sums.st - (kappa * tau) @ g
    q = sums.yty - a @ sums.tt - np.sum(kappa * tau**2)
    a_inv = np.linalg.inv(A)
    beta = a_inv @ c
    beta += a_inv @ (c - A @ beta)  # one refinement step
    rss = float(q - c @ beta)
    sign, logdet_a = np.linalg.slogdet(A)
    logdet_v = float(sums.n_patients_g @ np.log1p(gamma_p * m) + np.sum(np.log(h_c)))

    # residual totals by (practice, occasions) and patient-level sums of squares by occasions
    r_cell = sums.tsum - sums.gsum @ beta  # (J, G)
    r2_group = sums.tt - 2.0 * sums.st @ beta + np.einsum("k,gkl,l->g", beta, sums.ss, beta)
    rho = r_cell @ u  # sum_{i in j} u_i r_i
    u2 = u**2
    e_r = r_cell @ (m * u2)  # sum_{i in j} m_i u_i^2 r_i
    f = sums.count @ (m**2 * u2)  # sum_{i in j} m_i^2 u_i^2
    e_s = np.einsum("g,jgk->jk", m * u2, sums.gsum)  # sum_{i in j} m_i u_i^2 s_i
    d_rss_p = -(u2 @ r2_group - 2.0 * np.sum(kappa * rho * e_r) + np.sum(kappa**2 * rho**2 * f))
    d_rss_c = -np.sum(rho**2 / h_c**2)
    cross = np.einsum("j,jk,jl->kl", kappa, e_s, g)
    d_a_p = -(np.einsum("g,gkl->kl", u2, sums.ss) - cross - cross.T
              + np.einsum("j,jk,jl->kl", kappa**2 * f, g, g))
    d_a_c = -np.einsum("j,jk,jl->kl", 1.0 / h_c**2, g, g)
    return _Terms(
        rss=rss,
        logdet_v=logdet_v,
        logdet_a=float(logdet_a) if sign > 0 else np.nan,
        beta=beta,
        a_inv=a_inv,
        d_rss=np.array([d_rss_p, d_rss_c]),
        d_logdet_v=np.array([sums.n_patients_g @ (m * u) - np.sum(kappa * f),
                             np.sum(size / h_c)]),
        d_a=np.stack([d_a_p, d_a_c]),
    )


@dataclass(frozen=True)
class NestedFit:
    """REML fit of the nested random-intercept model.

    Attributes
    ----------
    beta : ndarray (p,)
        Fixed effects (GLS at the REML variance components).
    vcov : ndarray (p, p)
        :math:`\\hat\\sigma_e^2 A^{-1}` (lme4's ``vcov``).
    var_practice, var_patient, var_residual : float
        :math:`\\hat\\sigma_c^2`, :math:`\\hat\\sigma_p^2`, :math:`\\hat\\sigma_e^2`.
    theta : ndarray (2,)
        :math:`(\\hat\\sigma_p, \\hat\\sigma_c) / \\hat\\sigma_e`.
    reml_loglik : float
        Maximised REML log-likelihood, on lme4's scale (``logLik`` of the ``lmer`` fit).
    converged : bool
        Whether the projected gradient vanished at the reported optimum.
    boundary : ndarray of bool (2,)
        Whether the patient / practice variance is estimated at 0.
    """

    beta: np.ndarray
    vcov: np.ndarray
    var_practice: float
    var_patient: float
    var_residual: float
    theta: np.ndarray
    reml_loglik: float
    converged: bool
    boundary: np.ndarray


def _validate(sums: NestedSums) -> None:
    p = sums.n_params
    if sums.n_obs <= p:
        raise TrialstatsError(f"{p} fixed-effect columns need more than {p} observations.")
    scale = np.sqrt(np.diag(sums.xtx))
    if np.any(scale == 0) or np.linalg.eigvalsh(sums.xtx / np.outer(scale, scale))[0] < 1e-12:
        raise TrialstatsError(
            "the fixed-effects design is rank deficient (e.g. a month or covariate level with "
            "no patients in an arm)")
    if np.sum(sums.count.sum(axis=1) > 0) < 2:
        raise TrialstatsError("a random practice intercept needs at least two practices.")
    if sums.occasions.max() < 2:
        raise TrialstatsError(
            "no patient has two follow-up scores, so the patient and residual variances "
            "cannot be separated")


def _profile(sums: NestedSums, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """Profiled criterion at :math:`\\gamma = \\theta^2` and its gradient in :math:`\\gamma`."""
    terms = _evaluate(sums, theta[0] ** 2, theta[1] ** 2)
    dof = sums.n_obs - sums.n_params
    value = dof * np.log(terms.rss) + terms.logdet_v + terms.logdet_a
    if not np.isfinite(value):
        return np.inf, np.zeros(2)
    return float(value), dof * terms.d_rss / terms.rss + terms.d_logdet_v + terms.d_logdet_a()


def _jacobian(fun, x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of the vector function ``fun`` at ``x``, symmetrised."""
    steps = 1e-4 * np.maximum(np.abs(x), 1e-2)
    columns = []
    for k, step in enumerate(steps):
        shift = np.zeros_like(x)
        shift[k] = step
        columns.append((fun(x + shift) - fun(x - shift)) / (2.0 * step))
    jac = np.column_stack(columns)
    return (jac + jac.T) / 2.0


def _in_gamma(sums: NestedSums, gamma: np.ndarray) -> tuple[float, np.ndarray]:
    return _profile(sums, np.sqrt(np.maximum(gamma, 0.0)))


def _minimise(sums: NestedSums, start: np.ndarray) -> np.ndarray:
    """SLSQP over :math:`\\gamma \\ge 0` with the analytic gradient; tiny ratios at which the
    boundary is optimal (non-negative derivative) are set to exactly 0."""
    result = optimize.minimize(
        lambda x: _in_gamma(sums, x), np.asarray(start, dtype=float), jac=True,
        method="SLSQP", bounds=[(0.0, None)] * 2, options={"ftol": 1e-15, "maxiter": 500},
    )
    gamma = np.maximum(np.asarray(result.x, dtype=float), 0.0)
    for k in np.flatnonzero((gamma > 0) & (gamma < _BOUNDARY_SNAP)):
        zeroed = gamma.copy()
        zeroed[k] = 0.0
        if _in_gamma(sums, zeroed)[1][k] >= 0:
            gamma = zeroed
    return gamma


def _polish(sums: NestedSums, gamma: np.ndarray, max_iter: int = 20) -> np.ndarray:
    """Newton steps on the interior coordinates while they lower the criterion."""
    value, grad = _in_gamma(sums, gamma)
    for _ in range(max_iter):
        free = gamma > 0
        if not free.any():
            break
        hessian = _jacobian(lambda x: _in_gamma(sums, x)[1], gamma)[np.ix_(free, free)]
        try:
            step = -np.linalg.solve(hessian, grad[free])
        except np.linalg.LinAlgError:
            break
        new = gamma.copy()
        new[free] = np.maximum(gamma[free] + step, 0.0)
        new_value, new_grad = _in_gamma(sums, new)
        if not new_value <= value + 1e-13 * abs(value):
            break
        small = np.all(np.abs(new - gamma) <= 1e-12 * (1.0 + gamma))
        gamma, value, grad = new, new_value, new_grad
        if small:
            break
    return gamma


def _optimal(sums: NestedSums, gamma: np.ndarray) -> bool:
    """First-order conditions: zero derivative in the interior coordinates, non-negative at
    the boundary ones (relative to the residual df)."""
    value, grad = _in_gamma(sums, gamma)
    tol = _GRADIENT_TOL * max(1.0, sums.n_obs - sums.n_params)
    interior = gamma > 0
    return bool(np.isfinite(value) and np.all(np.abs(grad[interior]) <= tol)
                and np.all(grad[~interior] >= -tol))


def fit_nested_reml(sums: NestedSums) -> NestedFit:
    """Fit the nested (practice / patient) random-intercept model by REML.

    Parameters
    ----------
    sums : NestedSums

    Returns
    -------
    NestedFit

    Raises
    ------
    TrialstatsError
        Rank-deficient design, no more observations than columns, fewer than two practices,
        or no patient with two occasions.

    Notes
    -----
    SLSQP over :math:`\\gamma \\ge 0` with the analytic gradient from each of a few starts,
    the best optimum polished by Newton steps (see the module docstring). The search is in
    :math:`\\gamma`, not lme4's :math:`\\theta = \\sqrt\\gamma`: the gradient in
    :math:`\\theta` vanishes at :math:`\\theta_k = 0` whatever the data, a false stationary
    point that traps a bounded optimiser next to small positive variances.
    """
    _validate(sums)
    candidates = [_minimise(sums, np.array(start)) for start in _STARTS]
    gamma = _polish(sums, min(candidates, key=lambda x: _in_gamma(sums, x)[0]))
    value, _ = _in_gamma(sums, gamma)
    if not np.isfinite(value):
        raise TrialstatsError("the REML criterion could not be evaluated at any start.")
    terms = _evaluate(sums, gamma[0], gamma[1])
    dof = sums.n_obs - sums.n_params
    var_residual = terms.rss / dof
    return NestedFit(
        beta=terms.beta,
        vcov=var_residual * terms.a_inv,
        var_practice=float(gamma[1] * var_residual),
        var_patient=float(gamma[0] * var_residual),
        var_residual=float(var_residual),
        theta=np.sqrt(gamma),
        reml_loglik=float(-0.5 * (value + dof * (1.0 + np.log(2.0 * np.pi / dof)))),
        converged=_optimal(sums, gamma),
        boundary=gamma == 0,
    )


def nested_satterthwaite_df(sums: NestedSums, fit: NestedFit, contrasts: np.ndarray) -> np.ndarray:
    """Satterthwaite df of each contrast :math:`L^\\top\\beta`, as lmerTest.

    Parameters
    ----------
    sums : NestedSums
        The data ``fit`` was fitted to.
    fit : NestedFit
    contrasts : ndarray (k, p)
        One contrast per row.

    Returns
    -------
    ndarray (k,)
        Denominator df (see the module docstring).
    """
    dof = sums.n_obs - sums.n_params

    def deviance_gradient(x: np.ndarray) -> np.ndarray:
        theta, sigma = x[:2], x[2]
        s = sigma**2
        terms = _evaluate(sums, theta[0] ** 2, theta[1] ** 2)
        d_gamma = terms.d_logdet_v + terms.d_logdet_a() + terms.d_rss / s
        return np.append(2.0 * theta * d_gamma, 2.0 * sigma * (dof / s - terms.rss / s**2))

    s = fit.var_residual
    sigma = np.sqrt(s)
    hessian = _jacobian(deviance_gradient, np.append(fit.theta, sigma))
    values, vectors = np.linalg.eigh(hessian)
    keep = values > _LMERTEST_EIGEN_TOL
    vcov_varpar = 2.0 * (vectors[:, keep] / values[keep]) @ vectors[:, keep].T

    terms = _evaluate(sums, fit.theta[0] ** 2, fit.theta[1] ** 2)
    L = np.atleast_2d(np.asarray(contrasts, dtype=float))
    u = L @ terms.a_inv  # (k, p)
    quad = np.sum(u * L, axis=1)
    grad = np.column_stack([
        2.0 * fit.theta[0] * s * -np.einsum("ka,ab,kb->k", u, terms.d_a[0], u),
        2.0 * fit.theta[1] * s * -np.einsum("ka,ab,kb->k", u, terms.d_a[1], u),
        2.0 * sigma * quad,
    ])
    return 2.0 * (s * quad) ** 2 / np.einsum("ka,ab,kb->k", grad, vcov_varpar, grad)
