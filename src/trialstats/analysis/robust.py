r"""Cluster-robust analyses: GEE with small-sample corrected sandwich variances, and CR2.

Both analyse the primary analysis population (follow-up, baseline and covariates observed)
with the primary mean model :math:`E(y_{ij}) = x_{ij}^\top\beta` (intercept, arm, baseline
score, covariates); only the variance of :math:`\hat\beta` is estimated differently.

GEE with exchangeable working correlation
------------------------------------------
Gaussian family, identity link (Liang & Zeger 1986, *Biometrika* 73:13). For practice *j*
the working covariance is :math:`V_j = \phi\{(1-\alpha) I + \alpha 1 1^\top\}`;
:math:`\hat\beta` solves :math:`\sum_j X_j^\top V_j^{-1}(y_j - X_j\beta) = 0` while
:math:`\phi` and :math:`\alpha` are the moment estimators of ``geepack`` (Halekoh, Højsgaard
& Yan 2006, *J. Stat. Softw.* 15(2)), with :math:`r_{ij} = y_{ij} - x_{ij}^\top\hat\beta`:

.. math::

    \hat\phi = \frac{1}{N}\sum_{ij} r_{ij}^2, \qquad
    \hat\alpha = \frac{\sum_j \sum_{i<k} r_{ij} r_{kj}}{\hat\phi \sum_j n_j(n_j-1)/2}

(statsmodels subtracts *p* from both denominators, so its :math:`\hat\alpha` differs). With
:math:`\gamma = \alpha/(1-\alpha)`, :math:`w_j = \gamma/(1+\gamma n_j)` and
:math:`W_j = I - w_j 1 1^\top \propto V_j^{-1}`, the fit iterates
:math:`\hat\beta = B^{-1}\sum_j X_j^\top W_j y_j`, :math:`B = \sum_j M_j`,
:math:`M_j = X_j^\top W_j X_j`, from per-practice sums only. The sandwich variance is
:math:`B^{-1}(\sum_j \tilde U_j \tilde U_j^\top) B^{-1}` with score :math:`U_j = X_j^\top W_j r_j`
and

- robust (Liang & Zeger): :math:`\tilde U_j = U_j`;
- Mancl & DeRouen (2001, *Biometrics* 57:126): :math:`\tilde U_j = X_j^\top W_j (I - H_{jj})^{-1}
  r_j`;
- Kauermann & Carroll (2001, *JASA* 96:1387): :math:`\tilde U_j = X_j^\top W_j
  (I - H_{jj})^{-1/2} r_j` (principal square root);
- Fay & Graubard (2001, *Biometrics* 57:1198): :math:`\tilde U_j = H_j U_j`,
  :math:`H_j = \operatorname{diag}\{1 - \min(b, [M_j B^{-1}]_{kk})\}^{-1/2}` with the bound
  :math:`b = 0.75` (:data:`FG_BOUND`; theirs, and the default of ``saws`` and ``geesmv``),

where :math:`H_{jj} = X_j B^{-1} X_j^\top W_j` is the practice's block of the hat matrix. The
arm effect is tested with *t* on :math:`J - 2` df (Li & Redden 2015, *Stat. Med.* 34:281) for
Mancl–DeRouen and Kauermann–Carroll, and for Fay–Graubard on their df :math:`\tilde d_H`
(their section 2.3, ``saws(method = "d5")``; :func:`fay_graubard_df`), which estimates the
variance of each practice's contribution from all practices' scores. The same variances serve
the logit/log-link GEE of :mod:`trialstats.analysis.gee_glm` (:func:`sandwich_variances`).

CR2 cluster-robust variance (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018)
-------------------------------------------------------------------------------
For the ordinary least-squares fit of the same mean model (working model: independence,
:math:`W_j = I`, :math:`B = X^\top X`, :math:`r = y - X\hat\beta_{OLS}`),
:math:`\tilde U_j = X_j^\top (I - H_{jj})^{-1/2} r_j` with :math:`H_{jj} = X_j B^{-1}X_j^\top`,
as ``clubSandwich::vcovCR(type = "CR2")``. For a contrast :math:`c` the Bell–McCaffrey
(Satterthwaite) df are those of ``clubSandwich::coef_test(test = "Satterthwaite")``:
with :math:`a_j = (I - H_{jj})^{-1/2} X_j B^{-1} c`,

.. math::

    G_{ik} = \delta_{ik}\, a_i^\top a_i - (X_i^\top a_i)^\top B^{-1} (X_k^\top a_k), \qquad
    \nu = \frac{(\sum_j G_{jj})^2}{\sum_{i,k} G_{ik}^2}.

Closed forms
------------
No :math:`n_j \times n_j` matrix is formed. With :math:`B^{-1} = LL^\top` and
:math:`K_j = L^\top M_j L` (eigenvalues in :math:`[0, 1)`, the practice's leverages),
:math:`X_j^\top W_j (I - H_{jj})^{q} r_j = \{I + M_j L\, g_q(K_j) L^\top\} U_j` with
:math:`g_q(x) = \{(1 - x)^{q} - 1\}/x`, because :math:`W_j^{1/2} H_{jj} W_j^{-1/2} = Q Q^\top`
with :math:`Q = W_j^{1/2} X_j L` and :math:`f(QQ^\top) = I + Q\,g(Q^\top Q)\,Q^\top` for any
:math:`f(1 - x) = 1 + x g(x)`. A leverage of 1 (a practice that alone determines a coefficient)
makes :math:`I - H_{jj}` singular; as in clubSandwich, eigenvalues of :math:`I - H_{jj}` below
:math:`10^{-12}` are then dropped from the (inverse) power, and the row says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from trialstats.analysis.rows import each_outcome_month, join_notes, primary_population, t_row
from trialstats.contract import (
    BELL_MCCAFFREY,
    CLUSTER_DF,
    CR2,
    FAY_GRAUBARD,
    FAY_GRAUBARD_DF,
    KAUERMANN_CARROLL,
    MANCL_DEROUEN,
)
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

__all__ = [
    "FG_BOUND",
    "GEE_METHODS",
    "CR2Test",
    "GeeFit",
    "SandwichFit",
    "Scores",
    "cr2_analysis",
    "cr2_test",
    "fay_graubard_df",
    "fay_graubard_factors",
    "gee_analysis",
    "gee_df_note",
    "gee_exchangeable",
    "gee_tests",
    "sandwich_variances",
]

# clubSandwich (Sym_power) drops eigenvalues of I - H_jj below this from the inverse root.
_SINGULAR_TOL = 1e-12
# Below this eigenvalue of K_j, g_q(x) is evaluated by its Taylor series.
_SERIES_TOL = 1e-6
#: Fay & Graubard's bound b on a practice's leverage (their choice, and saws' and geesmv's
#: default).
FG_BOUND = 0.75


@dataclass(frozen=True)
class Scores:
    """Per-practice pieces of a sandwich: bread inverse :math:`B^{-1}`, :math:`M_j` and
    scores :math:`U_j` (the GLM case: :math:`M_j = D_j^\\top V_j^{-1} D_j`,
    :math:`U_j = D_j^\\top V_j^{-1} r_j`)."""

    bread_inv: np.ndarray  # (p, p)
    m: np.ndarray  # (J, p, p)
    u: np.ndarray  # (J, p)


@dataclass(frozen=True)
class SandwichFit:
    """A GEE fit with its four sandwich variances (this module and
    :mod:`trialstats.analysis.gee_glm`).

    Attributes
    ----------
    beta : ndarray (p,)
        Estimates.
    alpha : float
        Working correlation :math:`\\hat\\alpha`.
    scale : float
        :math:`\\hat\\phi` (geepack's ``gamma``).
    vcov_robust, vcov_mancl_derouen, vcov_kauermann_carroll, vcov_fay_graubard : ndarray (p, p)
        Sandwich variances: uncorrected, Mancl–DeRouen, Kauermann–Carroll, Fay–Graubard
        (bound :data:`FG_BOUND`).
    iterations : int
        Fisher-scoring (Gaussian: GLS) iterations used.
    converged : bool
        Whether successive estimates agreed to the tolerance.
    singular : bool
        Whether a practice had leverage 1, so that the corrections used a pseudo-inverse root.
    scores : Scores
        The per-practice pieces, for :meth:`fay_graubard_df`.
    """

    beta: np.ndarray
    alpha: float
    scale: float
    vcov_robust: np.ndarray
    vcov_mancl_derouen: np.ndarray
    vcov_kauermann_carroll: np.ndarray
    vcov_fay_graubard: np.ndarray
    iterations: int
    converged: bool
    singular: bool
    scores: Scores

    def fay_graubard_df(self, contrast: np.ndarray) -> float:
        """Fay & Graubard's :math:`\\tilde d_H` for :math:`c^\\top\\beta` (see
        :func:`fay_graubard_df`)."""
        s = self.scores
        return float(fay_graubard_df(s.bread_inv, s.m, s.u, np.asarray(contrast, float)))


@dataclass(frozen=True)
class GeeFit(SandwichFit):
    """A GEE fit with exchangeable working correlation (:class:`SandwichFit`): Gaussian
    (:func:`gee_exchangeable`) or logit/log link (:func:`trialstats.analysis.gee_glm.gee_glm`).

    Attributes
    ----------
    alpha_moment : float
        The moment estimate of the working correlation before truncation; it differs from
        ``alpha`` only when it was below the positive-definite bound and independence (0) was
        used instead.
    """

    alpha_moment: float


@dataclass(frozen=True)
class CR2Test:
    """CR2 cluster-robust test of a contrast of an OLS fit (as clubSandwich).

    Attributes
    ----------
    estimate, se, df : float
        :math:`c^\\top\\hat\\beta`, its CR2 standard error and the Bell–McCaffrey df.
    vcov : ndarray (p, p)
        The CR2 variance of :math:`\\hat\\beta`.
    singular : bool
        Whether a practice had leverage 1 (pseudo-inverse root used).
    """

    estimate: float
    se: float
    df: float
    vcov: np.ndarray
    singular: bool


def _indicator(codes: np.ndarray, n_clusters: int) -> sparse.csr_matrix:
    return sparse.csr_matrix(
        (np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_clusters, codes.size)
    )


def _g(x: np.ndarray, power: float) -> tuple[np.ndarray, bool]:
    """:math:`g_q(x) = \\{(1-x)^q - 1\\}/x` on eigenvalues ``x``; pseudo-inverse where
    :math:`1 - x` is below the tolerance. Returns the values and whether that happened."""
    one_minus = 1.0 - x
    singular = one_minus <= _SINGULAR_TOL
    powered = np.where(singular, 0.0, np.where(singular, 1.0, one_minus) ** power)
    small = np.abs(x) < _SERIES_TOL
    safe_x = np.where(small, 1.0, x)
    series = -power + 0.5 * power * (power - 1.0) * x
    return np.where(small, series, (powered - 1.0) / safe_x), bool(np.any(singular))


def _transforms(scores: Scores, power: float) -> tuple[np.ndarray, bool]:
    """:math:`T_j = I + L g_q(K_j) L^\\top M_j` (so that the corrected score is
    :math:`T_j^\\top U_j`), shape (J, p, p), and whether a leverage was 1."""
    chol = np.linalg.cholesky(scores.bread_inv)
    k = np.einsum("ai,jab,bc->jic", chol, scores.m, chol)
    values, vectors = np.linalg.eigh(k)
    g, singular = _g(values, power)
    g_k = np.einsum("jik,jk,jlk->jil", vectors, g, vectors)
    p = scores.bread_inv.shape[0]
    return np.eye(p) + chol @ g_k @ chol.T @ scores.m, singular


def _sandwich(scores: Scores, transforms: np.ndarray | None) -> np.ndarray:
    u = scores.u if transforms is None else np.einsum("jab,ja->jb", transforms, scores.u)
    return scores.bread_inv @ (u.T @ u) @ scores.bread_inv


def fay_graubard_factors(bread_inv: np.ndarray, m: np.ndarray,
                         bound: float = FG_BOUND) -> np.ndarray:
    """Fay–Graubard's :math:`H_j = \\operatorname{diag}\\{1 - \\min(b, [M_j B^{-1}]_{kk})
    \\}^{-1/2}` as an array (..., J, p) of diagonals; leading batch axes allowed."""
    leverage = np.einsum("...jab,...ba->...ja", m, bread_inv)
    return (1.0 - np.minimum(bound, leverage)) ** -0.5


def fay_graubard_df(
    bread_inv: np.ndarray, m: np.ndarray, u: np.ndarray, contrast: np.ndarray,
    bound: float = FG_BOUND,
) -> np.ndarray:
    """Fay & Graubard's (2001, §2.3) :math:`\\tilde d_H` df of :math:`c^\\top\\hat\\beta`
    with the Fay–Graubard variance, as ``saws(..., method = "d5")``; leading batch axes of
    ``bread_inv`` (..., p, p), ``m`` (..., J, p, p) and ``u`` (..., J, p) allowed.

    With :math:`a_l = H_l B^{-1}c`, :math:`b_l = B^{-1}M_l a_l`,
    :math:`S = \\sum_k H_k U_k U_k^\\top H_k`, :math:`w_l = c^\\top\\{(B - M_l)^{-1} -
    B^{-1}\\}c` and :math:`W = \\sum_l w_l`, the :math:`J\\times J` matrix

    .. math::

        C_{lm} = \\delta_{lm} w_l a_l^\\top S a_l - w_l a_l^\\top S b_m
        - w_m b_l^\\top S a_m + W b_l^\\top S b_m

    is :math:`Z^\\top\\tilde\\Psi Z` of saws' ``dfCalc`` (its :math:`\\tilde\\Psi_l =
    w_l S`, :math:`Z` the columns :math:`G^\\top` maps the contrast through), and
    :math:`\\tilde d_H = \\max\\{1, (\\operatorname{tr} C)^2/\\operatorname{tr} C^2\\}`
    (saws floors the df at 1). A practice with leverage 1 makes :math:`B - M_l` singular and
    the df NaN.
    """
    h = fay_graubard_factors(bread_inv, m, bound)
    hu = h * u
    S = np.einsum("...ja,...jb->...ab", hu, hu)
    g = bread_inv @ contrast
    a = h * g[..., None, :]
    b = np.einsum("...ab,...jbc,...jc->...ja", bread_inv, m, a)
    bread = np.linalg.inv(bread_inv)
    with np.errstate(all="ignore"):
        try:
            left_out = np.linalg.inv(bread[..., None, :, :] - m)
        except np.linalg.LinAlgError:
            left_out = np.full(m.shape, np.nan)
    w = np.einsum("a,...jab,b->...j", contrast, left_out, contrast) - (g @ contrast)[..., None]
    sa = np.einsum("...ab,...jb->...ja", S, a)
    ab = np.einsum("...la,...ab,...mb->...lm", a, S, b)
    bb = np.einsum("...la,...ab,...mb->...lm", b, S, b)
    weighted = w[..., :, None] * ab
    C = w.sum(axis=-1)[..., None, None] * bb - weighted - weighted.swapaxes(-1, -2)
    diagonal = np.arange(C.shape[-1])
    C[..., diagonal, diagonal] += w * np.einsum("...ja,...ja->...j", a, sa)
    with np.errstate(all="ignore"):
        return np.maximum(1.0, np.trace(C, axis1=-2, axis2=-1) ** 2
                          / np.sum(C**2, axis=(-2, -1)))


def sandwich_variances(scores: Scores, bound: float = FG_BOUND) -> dict[str, object]:
    """The four sandwich variances of :class:`SandwichFit` from ``scores``, with
    ``singular`` (a leverage of 1 met by the Mancl–DeRouen or Kauermann–Carroll root)."""
    md, singular_md = _transforms(scores, -1.0)
    kc, singular_kc = _transforms(scores, -0.5)
    h = fay_graubard_factors(scores.bread_inv, scores.m, bound)
    hu = h * scores.u
    return {
        "vcov_robust": _sandwich(scores, None), "vcov_mancl_derouen": _sandwich(scores, md),
        "vcov_kauermann_carroll": _sandwich(scores, kc),
        "vcov_fay_graubard": scores.bread_inv @ (hu.T @ hu) @ scores.bread_inv,
        "singular": singular_md or singular_kc, "scores": scores,
    }


def _per_cluster(
    y: np.ndarray, X: np.ndarray, codes: np.ndarray, n_clusters: int
) -> dict[str, np.ndarray]:
    indicator = _indicator(codes, n_clusters)
    return {
        "n": np.bincount(codes, minlength=n_clusters).astype(float),
        "xtx": np.asarray(indicator @ (X[:, :, None] * X[:, None, :]).reshape(len(y), -1))
        .reshape(n_clusters, X.shape[1], X.shape[1]),
        "xsum": np.asarray(indicator @ X),
        "indicator": indicator,
    }


def _check_design(y: np.ndarray, X: np.ndarray, codes: np.ndarray) -> int:
    if y.ndim != 1 or X.ndim != 2 or X.shape[0] != y.size or codes.shape != y.shape:
        raise TrialstatsError("Need y of shape (N,), X of shape (N, p) and codes of shape (N,).")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise TrialstatsError("The fixed-effects design is rank deficient.")
    return int(codes.max()) + 1


def gee_exchangeable(
    y: np.ndarray, X: np.ndarray, cluster_codes: np.ndarray, *, tol: float = 1e-12,
    max_iter: int = 200,
) -> GeeFit:
    """Gaussian GEE with exchangeable working correlation and three sandwich variances.

    Parameters
    ----------
    y : ndarray (N,)
        Outcome.
    X : ndarray (N, p)
        Design matrix with full column rank (intercept included).
    cluster_codes : ndarray of int (N,)
        Cluster of each row, ``0 .. J - 1``, every code used.
    tol : float
        Convergence: largest change of :math:`\\hat\\beta` relative to ``1 + |beta|``.
    max_iter : int
        Iteration limit.

    Returns
    -------
    GeeFit

    Raises
    ------
    TrialstatsError
        When the design is rank deficient, or :math:`\\hat\\alpha \\ge 1`.

    Notes
    -----
    A moment estimate :math:`\\hat\\alpha \\le -1/(n_{max}-1)`, for which the exchangeable
    working correlation of the largest cluster is not positive definite (it happens when the
    true ICC is near 0 and clusters are large), is replaced by 0: the independence working
    correlation, whose estimates stay consistent with sandwich variances. ``alpha_moment``
    keeps the estimate and the analysis row says so.

    See the module docstring; the estimates agree with ``geepack::geeglm(...,
    corstr = "exchangeable")`` run to convergence and the robust variance with its
    ``san.se``.
    """
    n_clusters = _check_design(y, X, cluster_codes)
    sums = _per_cluster(y, X, cluster_codes, n_clusters)
    n, xsum, indicator = sums["n"], sums["xsum"], sums["indicator"]
    xtx_total, xty_total = X.T @ X, X.T @ y
    ysum = indicator @ y
    pairs_total = np.sum(n * (n - 1.0)) / 2.0
    if pairs_total == 0:
        raise TrialstatsError("Every cluster has one observation: no within-cluster pairs.")
    beta = np.linalg.solve(xtx_total, xty_total)
    converged, iterations = False, 0
    while not converged and iterations < max_iter:
        iterations += 1
        residual = y - X @ beta
        scale = float(np.mean(residual**2))
        if scale == 0.0:
            raise TrialstatsError("the model fits every observation exactly (e.g. a constant "
                                  "outcome): no working correlation can be estimated.")
        totals = indicator @ residual
        alpha_moment = float(
            np.sum(totals**2 - indicator @ residual**2) / 2.0 / (scale * pairs_total)
        )
        if alpha_moment >= 1.0:
            raise TrialstatsError(
                f"the estimated exchangeable working correlation {alpha_moment:.4g} is not "
                "below 1: the outcome is (nearly) constant within clusters"
            )
        alpha = alpha_moment if alpha_moment > -1.0 / (n.max() - 1.0) else 0.0
        gamma = alpha / (1.0 - alpha)
        w = gamma / (1.0 + gamma * n)
        bread = xtx_total - np.einsum("j,ja,jb->ab", w, xsum, xsum)
        new = np.linalg.solve(bread, xty_total - xsum.T @ (w * ysum))
        change = np.max(np.abs(new - beta) / (1.0 + np.abs(beta)))
        beta = new
        converged = bool(change <= tol)
    residual = y - X @ beta
    scores = Scores(
        bread_inv=np.linalg.inv(bread),
        m=sums["xtx"] - w[:, None, None] * xsum[:, :, None] * xsum[:, None, :],
        u=np.asarray(indicator @ (X * residual[:, None])) - (w * (indicator @ residual))[:, None]
        * xsum,
    )
    return GeeFit(beta=beta, alpha=alpha, scale=scale, iterations=iterations,
                  converged=converged, alpha_moment=alpha_moment, **sandwich_variances(scores))


def cr2_test(
    y: np.ndarray, X: np.ndarray, cluster_codes: np.ndarray, contrast: np.ndarray
) -> CR2Test:
    """OLS estimate of :math:`c^\\top\\beta` with CR2 SE and Bell–McCaffrey df.

    Parameters
    ----------
    y : ndarray (N,)
    X : ndarray (N, p)
        Full column rank.
    cluster_codes : ndarray of int (N,)
        ``0 .. J - 1``, every code used.
    contrast : ndarray (p,)
        :math:`c`.

    Returns
    -------
    CR2Test
        As ``clubSandwich::coef_test(fit, vcov = vcovCR(fit, cluster, type = "CR2"),
        test = "Satterthwaite")`` for an ``lm`` fit (see the module docstring).
    """
    n_clusters = _check_design(y, X, cluster_codes)
    sums = _per_cluster(y, X, cluster_codes, n_clusters)
    bread_inv = np.linalg.inv(X.T @ X)
    beta = bread_inv @ (X.T @ y)
    residual = y - X @ beta
    scores = Scores(bread_inv=bread_inv, m=sums["xtx"],
                     u=np.asarray(sums["indicator"] @ (X * residual[:, None])))
    transforms, singular = _transforms(scores, -0.5)
    vcov = _sandwich(scores, transforms)
    c = np.asarray(contrast, dtype=float)
    # a_j = X_j z_j with z_j = T_j B^-1 c; b_j = X_j' a_j = M_j z_j
    z = transforms @ (bread_inv @ c)
    b = np.einsum("jab,jb->ja", scores.m, z)
    gram = -(b @ bread_inv @ b.T)
    gram[np.diag_indices(n_clusters)] += np.einsum("ja,ja->j", z, b)
    df = float(np.trace(gram) ** 2 / np.sum(gram**2))
    return CR2Test(estimate=float(c @ beta), se=float(np.sqrt(c @ vcov @ c)), df=df,
                   vcov=vcov, singular=singular)


#: ``analysis`` label -> ``method`` of the GEE rows (continuous, binary and count outcomes).
GEE_METHODS = {MANCL_DEROUEN: CLUSTER_DF, KAUERMANN_CARROLL: CLUSTER_DF,
               FAY_GRAUBARD: FAY_GRAUBARD_DF}


def gee_tests(fit: SandwichFit, arm: int, n_clusters: int) -> list[tuple[str, str, float, float]]:
    """``(analysis, method, se, df)`` of the arm coefficient for each of :data:`GEE_METHODS`:
    the Mancl–DeRouen and Kauermann–Carroll SEs on J − 2 df, the Fay–Graubard SE on its
    :math:`\\tilde d_H` df."""
    contrast = np.eye(len(fit.beta))[arm]
    se = {MANCL_DEROUEN: fit.vcov_mancl_derouen, KAUERMANN_CARROLL: fit.vcov_kauermann_carroll,
          FAY_GRAUBARD: fit.vcov_fay_graubard}
    return [(label, method, float(np.sqrt(se[label][arm, arm])),
             fit.fay_graubard_df(contrast) if method == FAY_GRAUBARD_DF else n_clusters - 2.0)
            for label, method in GEE_METHODS.items()]


def gee_df_note(method: str, df: float) -> str:
    """How a GEE row was tested, for its notes."""
    if method == FAY_GRAUBARD_DF:
        return (f"Fay-Graubard bias-corrected SE (bound {FG_BOUND:g}), t on their df "
                f"{df:.4g}")
    return f"t on J - 2 = {df:.0f} df"


_SINGULAR_NOTE = ("a practice has leverage 1 (it alone determines a coefficient): eigenvalues "
                  "of I - H_jj below 1e-12 dropped from the inverse root, as clubSandwich")


def _outcome_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any], *,
    which: str,
) -> list[dict[str, Any]]:
    population = primary_population(patients, outcome, month, config)
    data, base, exclusions = population.data, population.base, population.exclusions
    problem, analysis = population.problem, config["analysis"]
    methods = GEE_METHODS if which == "gee" else {CR2: BELL_MCCAFFREY}
    arm = data.columns.index(TREATED)
    if not problem:
        try:
            if which == "gee":
                fit = gee_exchangeable(data.y, data.X, data.cluster_codes)
            else:
                contrast = np.zeros(len(data.columns))
                contrast[arm] = 1.0
                test = cr2_test(data.y, data.X, data.cluster_codes, contrast)
        except TrialstatsError as error:
            problem = f"not estimable: {error}"
    if problem:
        return [{**base, "analysis": label, "method": method, "converged": False,
                 "notes": join_notes(problem, exclusions)} for label, method in methods.items()]
    direction = {"alpha": analysis["alpha"], "higher_is_better": outcome["higher_is_better"]}
    if which == "cr2":
        note = ("OLS with CR2 cluster-robust SE (working model: independence) and "
                "Bell-McCaffrey (Satterthwaite) df")
        return [t_row(
            {**base, "analysis": CR2, "method": BELL_MCCAFFREY, "converged": True,
             "notes": join_notes(exclusions, note, _SINGULAR_NOTE if test.singular else "")},
            estimate=test.estimate, se=test.se, df=test.df, **direction,
        )]
    fitted = (f"exchangeable working correlation {fit.alpha:.4g}, scale {fit.scale:.4g}; "
              f"uncorrected robust SE {np.sqrt(fit.vcov_robust[arm, arm]):.4g}")
    truncated = "" if fit.alpha == fit.alpha_moment else (
        f"the moment estimate of the working correlation ({fit.alpha_moment:.4g}) was below "
        "the bound for a positive-definite matrix; independence working correlation used")
    unconverged = "" if fit.converged else (
        f"GEE iteration did not converge in {fit.iterations} steps; estimates are unreliable")
    rows = []
    for label, method, se, df in gee_tests(fit, arm, data.n_clusters):
        notes = join_notes(exclusions, f"{fitted}; {gee_df_note(method, df)}", truncated,
                           unconverged, _SINGULAR_NOTE if fit.singular else "")
        rows.append(t_row(
            {**base, "analysis": label, "method": method, "converged": fit.converged,
             "notes": notes},
            estimate=float(fit.beta[arm]), se=se, df=df, **direction,
        ))
    return rows


def gee_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None
) -> pd.DataFrame:
    """GEE (exchangeable) of every outcome at every follow-up month, small-sample corrected.

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`; per outcome and month
        the rows ``analysis = "GEE (Mancl-DeRouen)"`` and ``"GEE (Kauermann-Carroll)"``
        (the GEE estimate of the arm effect, its corrected SE and *t* on J − 2 df,
        ``method = "J-2"``) and ``"GEE (Fay-Graubard)"`` (Fay–Graubard SE, *t* on their
        :math:`\\tilde d_H` df, ``method = "fay-graubard"``); effect size and verdict as
        the primary analysis; variance components and ICC NaN; ``notes`` give exclusions,
        :math:`\\hat\\alpha`, :math:`\\hat\\phi` and the uncorrected robust SE.
    """
    return each_outcome_month(patients, config, outcomes, partial(_outcome_rows, which="gee"))


def cr2_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None
) -> pd.DataFrame:
    """Baseline-adjusted OLS with CR2 SE and Bell–McCaffrey df, every outcome and month.

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`; one row per outcome
        and month, ``analysis = "CR2 (Bell-McCaffrey)"``, ``method = "bell-mccaffrey"``;
        variance components and ICC NaN.
    """
    return each_outcome_month(patients, config, outcomes, partial(_outcome_rows, which="cr2"))
