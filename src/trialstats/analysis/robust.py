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
  (I - H_{jj})^{-1/2} r_j` (principal square root),

where :math:`H_{jj} = X_j B^{-1} X_j^\top W_j` is the practice's block of the hat matrix. The
arm effect is tested with *t* on :math:`J - 2` df (Li & Redden 2015, *Stat. Med.* 34:281).

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
    KAUERMANN_CARROLL,
    MANCL_DEROUEN,
)
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

__all__ = [
    "CR2Test",
    "GeeFit",
    "cr2_analysis",
    "cr2_test",
    "gee_analysis",
    "gee_exchangeable",
]

# clubSandwich (Sym_power) drops eigenvalues of I - H_jj below this from the inverse root.
_SINGULAR_TOL = 1e-12
# Below this eigenvalue of K_j, g_q(x) is evaluated by its Taylor series.
_SERIES_TOL = 1e-6


@dataclass(frozen=True)
class GeeFit:
    """A Gaussian GEE fit with exchangeable working correlation.

    Attributes
    ----------
    beta : ndarray (p,)
        Estimates.
    alpha : float
        Working correlation :math:`\\hat\\alpha`.
    scale : float
        :math:`\\hat\\phi` (geepack's ``gamma``).
    vcov_robust, vcov_mancl_derouen, vcov_kauermann_carroll : ndarray (p, p)
        Sandwich variances: uncorrected, Mancl–DeRouen, Kauermann–Carroll.
    iterations : int
        Fisher-scoring (here: GLS) iterations used.
    converged : bool
        Whether successive estimates agreed to the tolerance.
    singular : bool
        Whether a practice had leverage 1, so that the corrections used a pseudo-inverse root.
    alpha_moment : float
        The moment estimate of the working correlation before truncation; it differs from
        ``alpha`` only when it was below the positive-definite bound and independence (0) was
        used instead.
    """

    beta: np.ndarray
    alpha: float
    scale: float
    vcov_robust: np.ndarray
    vcov_mancl_derouen: np.ndarray
    vcov_kauermann_carroll: np.ndarray
    iterations: int
    converged: bool
    singular: bool
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


@dataclass(frozen=True)
class _Scores:
    """Per-practice pieces of a sandwich: bread inverse, ``M_j`` and scores ``U_j``."""

    bread_inv: np.ndarray  # (p, p)
    m: np.ndarray  # (J, p, p)
    u: np.ndarray  # (J, p)


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


def _transforms(scores: _Scores, power: float) -> tuple[np.ndarray, bool]:
    """:math:`T_j = I + L g_q(K_j) L^\\top M_j` (so that the corrected score is
    :math:`T_j^\\top U_j`), shape (J, p, p), and whether a leverage was 1."""
    chol = np.linalg.cholesky(scores.bread_inv)
    k = np.einsum("ai,jab,bc->jic", chol, scores.m, chol)
    values, vectors = np.linalg.eigh(k)
    g, singular = _g(values, power)
    g_k = np.einsum("jik,jk,jlk->jil", vectors, g, vectors)
    p = scores.bread_inv.shape[0]
    return np.eye(p) + chol @ g_k @ chol.T @ scores.m, singular


def _sandwich(scores: _Scores, transforms: np.ndarray | None) -> np.ndarray:
    u = scores.u if transforms is None else np.einsum("jab,ja->jb", transforms, scores.u)
    return scores.bread_inv @ (u.T @ u) @ scores.bread_inv


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
    scores = _Scores(
        bread_inv=np.linalg.inv(bread),
        m=sums["xtx"] - w[:, None, None] * xsum[:, :, None] * xsum[:, None, :],
        u=np.asarray(indicator @ (X * residual[:, None])) - (w * (indicator @ residual))[:, None]
        * xsum,
    )
    md, singular_md = _transforms(scores, -1.0)
    kc, singular_kc = _transforms(scores, -0.5)
    return GeeFit(
        beta=beta, alpha=alpha, scale=scale, vcov_robust=_sandwich(scores, None),
        vcov_mancl_derouen=_sandwich(scores, md), vcov_kauermann_carroll=_sandwich(scores, kc),
        iterations=iterations, converged=converged, singular=singular_md or singular_kc,
        alpha_moment=alpha_moment,
    )


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
    scores = _Scores(bread_inv=bread_inv, m=sums["xtx"],
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


_SINGULAR_NOTE = ("a practice has leverage 1 (it alone determines a coefficient): eigenvalues "
                  "of I - H_jj below 1e-12 dropped from the inverse root, as clubSandwich")


def _outcome_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any], *,
    which: str,
) -> list[dict[str, Any]]:
    population = primary_population(patients, outcome, month, config)
    data, base, exclusions = population.data, population.base, population.exclusions
    problem, analysis = population.problem, config["analysis"]
    labels = (MANCL_DEROUEN, KAUERMANN_CARROLL) if which == "gee" else (CR2,)
    method = CLUSTER_DF if which == "gee" else BELL_MCCAFFREY
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
                 "notes": join_notes(problem, exclusions)} for label in labels]
    direction = {"alpha": analysis["alpha"], "higher_is_better": outcome["higher_is_better"]}
    if which == "cr2":
        note = ("OLS with CR2 cluster-robust SE (working model: independence) and "
                "Bell-McCaffrey (Satterthwaite) df")
        return [t_row(
            {**base, "analysis": CR2, "method": method, "converged": True,
             "notes": join_notes(exclusions, note, _SINGULAR_NOTE if test.singular else "")},
            estimate=test.estimate, se=test.se, df=test.df, **direction,
        )]
    df = data.n_clusters - 2.0
    fitted = (f"exchangeable working correlation {fit.alpha:.4g}, scale {fit.scale:.4g}; "
              f"uncorrected robust SE {np.sqrt(fit.vcov_robust[arm, arm]):.4g}; "
              f"t on J - 2 = {df:.0f} df")
    truncated = "" if fit.alpha == fit.alpha_moment else (
        f"the moment estimate of the working correlation ({fit.alpha_moment:.4g}) was below "
        "the bound for a positive-definite matrix; independence working correlation used")
    unconverged = "" if fit.converged else (
        f"GEE iteration did not converge in {fit.iterations} steps; estimates are unreliable")
    rows = []
    for label, vcov in [(MANCL_DEROUEN, fit.vcov_mancl_derouen),
                        (KAUERMANN_CARROLL, fit.vcov_kauermann_carroll)]:
        notes = join_notes(exclusions, fitted, truncated, unconverged,
                           _SINGULAR_NOTE if fit.singular else "")
        rows.append(t_row(
            {**base, "analysis": label, "method": method, "converged": fit.converged,
             "notes": notes},
            estimate=float(fit.beta[arm]), se=float(np.sqrt(vcov[arm, arm])), df=df,
            **direction,
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
        the rows ``analysis = "GEE (Mancl-DeRouen)"`` and ``"GEE (Kauermann-Carroll)"``:
        the GEE estimate of the arm effect, its corrected SE and *t* on J − 2 df
        (``method = "J-2"``); effect size and verdict as the primary analysis; variance
        components and ICC NaN; ``notes`` give exclusions, :math:`\\hat\\alpha`,
        :math:`\\hat\\phi` and the uncorrected robust SE.
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
