r"""GEE for binary (logit) and count (log) outcomes with small-sample corrected sandwich variances.

Model
-----
Marginal mean :math:`g(\mu_{ij}) = x_{ij}^\top\beta + o_{ij}` with the canonical link (logit for
binary, log with offset :math:`o_{ij}` for counts), variance function :math:`v(\mu) = \mu(1-\mu)`
or :math:`\mu`, so :math:`\partial\mu/\partial\eta = v(\mu)`. Practice *j*'s working covariance is
:math:`V_j = \phi A_j^{1/2} R_j(\alpha) A_j^{1/2}`, :math:`A_j = \operatorname{diag} v(\mu_j)`,
:math:`R_j = (1-\alpha)I + \alpha 11^\top` (exchangeable). :math:`\hat\beta` solves
:math:`\sum_j D_j^\top V_j^{-1}(y_j - \mu_j) = 0`, :math:`D_j = A_j X_j`, by Fisher scoring, with
``geepack``'s moment estimators from the Pearson residuals
:math:`e_{ij} = (y_{ij} - \hat\mu_{ij})/\sqrt{v(\hat\mu_{ij})}`:
:math:`\hat\phi = N^{-1}\sum e_{ij}^2` and :math:`\hat\alpha = \sum_j\sum_{i<k} e_{ij}e_{kj} /
\{\hat\phi \sum_j n_j(n_j-1)/2\}` (Halekoh, Højsgaard & Yan 2006). A moment estimate at or below
:math:`-1/(n_{max} - 1)`, for which the working correlation of the largest practice is not
positive definite (small ICC, large practices), is replaced by 0 at that iteration (the
independence working correlation, whose estimates stay consistent), as for continuous outcomes;
without this the iteration oscillates and does not converge.

Variance
--------
With :math:`B = \sum_j M_j`, :math:`M_j = D_j^\top V_j^{-1} D_j`, :math:`r_j = y_j - \hat\mu_j`
and :math:`H_{jj} = D_j B^{-1} D_j^\top V_j^{-1}`, the sandwich :math:`B^{-1}(\sum_j \tilde U_j
\tilde U_j^\top)B^{-1}` takes :math:`\tilde U_j = D_j^\top V_j^{-1}(I - H_{jj})^{q} r_j` with
:math:`q = 0` (robust, Liang & Zeger 1986), :math:`-1` (Mancl & DeRouen 2001) or :math:`-1/2`
(Kauermann & Carroll 2001; the principal root), or :math:`\tilde U_j = H_j U_j`,
:math:`U_j = D_j^\top V_j^{-1} r_j`, :math:`H_j = \operatorname{diag}\{1 - \min(b,
[M_j B^{-1}]_{kk})\}^{-1/2}` with :math:`b = 0.75` (Fay & Graubard 2001, *Biometrics* 57:1198).
They are computed from :math:`B^{-1}`, :math:`M_j` and :math:`U_j` alone by the closed forms of
:mod:`trialstats.analysis.robust` (:func:`~trialstats.analysis.robust.sandwich_variances`),
which hold for any :math:`D_j` and positive-definite :math:`V_j`; :math:`\phi` cancels from all
four. The arm effect is tested with *t* on :math:`J - 2` df (Mancl–DeRouen, Kauermann–Carroll),
as for continuous outcomes, and on Fay & Graubard's :math:`\tilde d_H` df (Fay–Graubard).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from trialstats.analysis.robust import GeeFit, Scores, sandwich_variances
from trialstats.errors import TrialstatsError

__all__ = ["gee_glm"]

_TOL = 1e-10
_MAX_ITER = 100


def _mean(family: str, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if family == "binomial":
        mu = special.expit(eta)
        return mu, mu * (1 - mu)
    mu = np.exp(eta)
    return mu, mu


def gee_glm(
    y: np.ndarray, X: np.ndarray, cluster_codes: np.ndarray, family: str,
    offset: np.ndarray | None = None,
) -> GeeFit:
    """Exchangeable GEE of a binary (``family="binomial"``) or count (``"poisson"``) outcome.

    Parameters
    ----------
    y, X, cluster_codes
        Outcome, full-rank design (intercept included) and practice codes 0..J-1.
    family : {"binomial", "poisson"}
    offset : array_like, optional
        Offset on the linear-predictor scale (log exposure).

    Returns
    -------
    GeeFit
        Estimates, working correlation, scale and the four sandwich variances (see the module
        notes); ``alpha_moment`` is the last moment estimate of the working correlation, which
        differs from ``alpha`` when it was at or below :math:`-1/(n_{max} - 1)` and the
        independence working correlation (0) was used, as
        :func:`~trialstats.analysis.robust.gee_exchangeable` does.
    """
    y, X = np.asarray(y, float), np.asarray(X, float)
    offset = np.zeros(len(y)) if offset is None else np.asarray(offset, float)
    clusters = [np.flatnonzero(cluster_codes == j) for j in np.unique(cluster_codes)]
    if len(clusters) < 3:
        raise TrialstatsError("GEE needs at least three practices.")
    target = (special.logit((y + 0.5) / 2) if family == "binomial" else np.log(y + 0.5))
    pairs = sum(len(i) * (len(i) - 1) / 2 for i in clusters)
    beta = np.linalg.lstsq(X, target - offset, rcond=None)[0]
    alpha, converged, iterations = 0.0, False, 0
    bound = -1.0 / (max(len(i) for i in clusters) - 1.0) if pairs else -np.inf
    while iterations < _MAX_ITER and not converged:
        iterations += 1
        mu, v = _mean(family, X @ beta + offset)
        pearson = (y - mu) / np.sqrt(v)
        scale = float(np.mean(pearson**2))
        cross = sum((pearson[i].sum() ** 2 - np.sum(pearson[i] ** 2)) / 2 for i in clusters)
        alpha_moment = float(cross / (scale * pairs)) if pairs else 0.0
        alpha = alpha_moment if alpha_moment > bound else 0.0
        m, u = _pieces(X, y - mu, v, alpha, clusters)
        step = np.linalg.solve(m.sum(axis=0), u.sum(axis=0))
        beta = beta + step
        converged = bool(np.max(np.abs(step) / (1 + np.abs(beta))) < _TOL)
    mu, v = _mean(family, X @ beta + offset)
    m, u = _pieces(X, y - mu, v, alpha, clusters)
    scores = Scores(bread_inv=np.linalg.inv(m.sum(axis=0)), m=m, u=u)
    return GeeFit(beta=beta, alpha=alpha, scale=float(np.mean((y - mu) ** 2 / v)),
                  converged=converged, iterations=iterations, alpha_moment=alpha_moment,
                  **sandwich_variances(scores))


def _pieces(X, r, v, alpha, clusters) -> tuple[np.ndarray, np.ndarray]:
    """:math:`M_j = D_j^\\top V_j^{-1} D_j` (J, p, p) and :math:`U_j = D_j^\\top V_j^{-1} r_j`
    (J, p), :math:`V_j` over :math:`\\phi`."""
    m, u = [], []
    for i in clusters:
        D, V = _blocks(X[i], v[i], alpha)
        solved = np.linalg.solve(V, np.column_stack([D, r[i]]))
        m.append(D.T @ solved[:, :-1])
        u.append(D.T @ solved[:, -1])
    return np.array(m), np.array(u)


def _blocks(X: np.ndarray, v: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """:math:`D_j = A_j X_j` and the working covariance over :math:`\\phi`."""
    n, sd = len(v), np.sqrt(v)
    R = (1 - alpha) * np.eye(n) + alpha
    return v[:, None] * X, sd[:, None] * R * sd[None, :]
