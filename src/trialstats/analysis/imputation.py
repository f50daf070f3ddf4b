r"""Multilevel multiple imputation by chained equations, pooled by Rubin's rules.

Imputation model
----------------
Let :math:`Y = (y_1, \dots, y_K)` be every configured outcome at every measured month (baseline
and all follow-up months together; :math:`K = 27` for nine outcomes at months 0, 6, 12), for
patient *i* in practice :math:`j = c(i)`, :math:`T_j` the arm and :math:`x_i` the covariate
columns of the primary model (text covariates as treatment-coded dummies). Each incomplete
:math:`y_k` is imputed in turn from its fully conditional two-level model (FCS; van Buuren
2018, *Flexible Imputation of Missing Data*, 2nd ed., ch. 4 and 7)

.. math::

    y_{ik} = \beta_{0k} + \beta_{1k} T_j + x_i^\top \gamma_k + \sum_{l \ne k} \beta_{kl}\,
        y_{il} + u_{jk} + \varepsilon_{ik}, \qquad u_{jk} \sim N(0, \tau_k^2), \;
        \varepsilon_{ik} \sim N(0, \sigma_k^2),

a random practice intercept: every other outcome-month score is a predictor (mice's default
"inclusive" predictor matrix), and so are the arm and the covariates. Ignoring the clustering
in the imputation model biases the ICC down and the treatment effect's variance down; practice
as a *fixed* effect (dummies) errs the other way, overstating the between-practice variance of
the completed data and so the variance of the treatment effect, most when clusters are small
and the ICC low (Andridge 2011, *Biom J* 53:57). This module started with fixed effects and
measured 98% coverage of nominal 95% intervals for 20 practices of 40 patients (see
``benchmarks/imputation_validity.py``); the random intercept removes that over-coverage.

Each visit draws the parameters exactly (not by a Gibbs chain) from their posterior given the
patients with :math:`y_k` observed, under a flat prior on :math:`\beta`, :math:`p(\sigma^2)
\propto \sigma^{-2}` and a uniform prior on the conditional ICC :math:`\rho = \tau^2 / (\tau^2
+ \sigma^2)` — the multilevel analogue of mice's ``norm`` (Rubin 1987, *Multiple Imputation for
Nonresponse in Surveys*, p. 167; van Buuren 2018, algorithm 3.1). With :math:`\gamma = \rho /
(1 - \rho)`, :math:`w_j = \gamma / (1 + \gamma n_j)`, :math:`A(\gamma) = X^\top X - \sum_j w_j
s_j s_j^\top`, :math:`c(\gamma) = X^\top y - \sum_j w_j s_j t_j` (:math:`s_j, t_j` practice
totals of the predictors and the target over observed rows, :math:`n_o` rows, :math:`p`
predictors):

1. :math:`\rho` from :math:`p(\rho \mid y) \propto \prod_j (1 + \gamma n_j)^{-1/2}
   |A(\gamma)|^{-1/2}\, \mathrm{RSS}(\gamma)^{-(n_o - p)/2}` (the REML likelihood), by
   inverse CDF on a grid: a coarse grid over :math:`[0, 1)`, then a fine one over the region
   within :math:`e^{-12}` of its maximum, linear interpolation of the density in between;
2. :math:`\sigma_*^2 = \mathrm{RSS}(\gamma) / g`, :math:`g \sim \chi^2_{n_o - p}`;
3. :math:`\beta_* = \hat\beta(\gamma) + \sigma_* L^{-\top} z`, :math:`LL^\top = A(\gamma) +
   \kappa D`, :math:`\hat\beta(\gamma) = (A + \kappa D)^{-1} c`, with mice's ridge
   :math:`\kappa = 10^{-5}` on :math:`D = \mathrm{diag}(X^\top X)` so that collinear scores
   cannot stop the run;
4. :math:`u_{j*} \sim N(w_j r_j,\; \sigma_*^2 w_j)` with :math:`r_j = t_j - s_j^\top\beta_*`
   (a practice with no observed :math:`y_k` gets :math:`N(0, \gamma\sigma_*^2)`);
5. :math:`y_{ik} = x_{ik}^\top \beta_* + u_{c(i)*} + \sigma_* \epsilon_i` for the missing
   :math:`y_{ik}`, :math:`\epsilon_i \sim N(0, 1)`.

Everything needs only the cross products and practice totals of the completed data, kept
current as columns are re-imputed, so a visit costs :math:`O(n_{mis} p^2)`. Missing values
start as random draws from the observed values (mice's default) and the cycle over
:math:`y_1, \dots, y_K` is repeated ``iterations`` times. Imputed values are neither rounded nor
clipped to the outcome's range: the analysis model is linear, and rounding biases it (Horton,
Lipsitz & Parzen 2003, *Am Stat* 57:229). Patients with a missing covariate are excluded from
imputation and analysis and counted, as in the primary analysis.

Analysis and pooling
--------------------
Each completed dataset is analysed with the primary model
(:func:`trialstats.analysis.primary.analyse_outcome`: follow-up ~ treated + baseline +
covariates + (1 | practice), exact REML) using the primary df method, all imputations in one
batched fit. With per-imputation estimates :math:`\hat Q_m`, variances :math:`U_m` (squared
standard errors, Kenward–Roger adjusted for that method) and complete-data df
:math:`\nu_{com}` (the mean of the per-imputation df), Rubin's rules give
:math:`\bar Q = \frac1M\sum_m \hat Q_m`, :math:`\bar U = \frac1M\sum_m U_m`,
:math:`B = \frac{1}{M-1}\sum_m (\hat Q_m - \bar Q)^2`, :math:`T = \bar U + (1 + 1/M) B`; the
relative increase in variance :math:`r = (1 + 1/M) B / \bar U`, :math:`\lambda = (1 + 1/M)B/T`
(floored at :math:`10^{-4}` as mice does) and the Barnard & Rubin (1999, *Biometrika* 86:948)
degrees of freedom

.. math::

    \nu = \frac{\nu_{old}\,\nu_{obs}}{\nu_{old} + \nu_{obs}}, \quad
    \nu_{old} = \frac{M - 1}{\lambda^2}, \quad
    \nu_{obs} = \frac{\nu_{com} + 1}{\nu_{com} + 3}\,\nu_{com}(1 - \lambda),

and the fraction of missing information :math:`\mathrm{FMI} = (r + 2/(\nu + 3)) / (r + 1)`, as
``mice::pool.scalar``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats
from threadpoolctl import threadpool_limits

from trialstats.analysis.design import ModelData, model_data
from trialstats.analysis.effects import mcid_verdict
from trialstats.analysis.inference import contrast_test
from trialstats.analysis.reml import ClusterSums, fit_reml
from trialstats.analysis.rows import (
    arms_problem,
    chosen_outcomes,
    clusters_per_arm,
    outcome_scale,
    scale_note,
)
from trialstats.contract import COLUMNS, imputation_label
from trialstats.data.validate import TREATED, outcome_column, outcome_months
from trialstats.errors import TrialstatsError

__all__ = [
    "IMPUTATION_COLUMNS",
    "ImputedTrial",
    "PooledEstimate",
    "impute_chained",
    "impute_trial",
    "multiple_imputation",
    "pooled_row",
    "rubin_pool",
]

#: Columns of the multiple-imputation rows: the primary columns, ``analysis``, ``fmi``, ``riv``.
IMPUTATION_COLUMNS = (*COLUMNS, "analysis", "fmi", "riv")
#: Cycles of the chained equations by default.
ITERATIONS = 10
# mice's ridge penalty (estimice, ridge = 1e-5), as a share of the diagonal of X'X.
_RIDGE = 1e-5
# mice's floor on lambda in barnard.rubin.
_LAMBDA_FLOOR = 1e-4
# Pooled df below this make no interval worth reporting (a t on 0.001 df has a 95% quantile
# of 1e3000): such a pooled result comes from a degenerate fit and is not estimable.
_MIN_DF = 1.0
# Grid for the conditional ICC: coarse nodes over [0, 1), then fine cells over the region whose
# log posterior is within _LOG_POST_DROP of the coarse maximum.
_COARSE = 12
_FINE = 32
_LOG_POST_DROP = 12.0


@dataclass(frozen=True)
class PooledEstimate:
    """Rubin's rules for one scalar; every field has the leading (batch) shape of the input.

    Attributes
    ----------
    estimate : :math:`\\bar Q`.
    within, between, total : :math:`\\bar U`, :math:`B`, :math:`T`.
    se : :math:`\\sqrt T`.
    df : Barnard–Rubin degrees of freedom.
    riv : relative increase in variance :math:`r`.
    lambda_ : :math:`\\lambda = (1 + 1/M) B / T` (before mice's floor).
    fmi : fraction of missing information.
    """

    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    se: np.ndarray
    df: np.ndarray
    riv: np.ndarray
    lambda_: np.ndarray
    fmi: np.ndarray


def rubin_pool(estimates: Any, variances: Any, df_complete: Any = np.inf) -> PooledEstimate:
    """Pool per-imputation estimates with Rubin's rules and Barnard–Rubin df.

    Parameters
    ----------
    estimates, variances : array_like, shape (..., M)
        :math:`\\hat Q_m` and :math:`U_m` (squared standard errors), imputations last;
        :math:`M \\ge 2`.
    df_complete : float or array_like, shape (...)
        Complete-data degrees of freedom :math:`\\nu_{com}` (``inf`` gives Rubin's 1987 df).

    Returns
    -------
    PooledEstimate
        As ``mice::pool.scalar(Q, U, n = df_complete + 1, k = 1)`` (see the module notes).
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.shape != u.shape or q.ndim < 1 or q.shape[-1] < 2:
        raise TrialstatsError(
            f"Pooling needs estimates and variances of the same shape with at least two "
            f"imputations; got {q.shape} and {u.shape}."
        )
    m = q.shape[-1]
    qbar, ubar = q.mean(axis=-1), u.mean(axis=-1)
    b = q.var(axis=-1, ddof=1)
    t = ubar + (1.0 + 1.0 / m) * b
    riv = (1.0 + 1.0 / m) * b / ubar
    lam = (1.0 + 1.0 / m) * b / t
    floored = np.maximum(lam, _LAMBDA_FLOOR)
    df_old = (m - 1) / floored**2
    dfcom = np.broadcast_to(np.asarray(df_complete, dtype=float), qbar.shape)
    with np.errstate(invalid="ignore"):
        df_obs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - floored)
        df = np.where(np.isinf(dfcom), df_old, df_old * df_obs / (df_old + df_obs))
    fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
    return PooledEstimate(
        estimate=qbar[()], within=ubar[()], between=b[()], total=t[()], se=np.sqrt(t)[()],
        df=df[()], riv=riv[()], lambda_=lam[()], fmi=fmi[()],
    )


def _cluster_sums(values: np.ndarray, codes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Totals by cluster: values (M, n, q) -> (M, J, q)."""
    n_imp, n_rows, width = values.shape
    indicator = sparse.csr_matrix(
        (np.ones(n_rows), (codes, np.arange(n_rows))), shape=(n_clusters, n_rows))
    flat = np.moveaxis(values, 1, 0).reshape(n_rows, n_imp * width)
    totals = (indicator @ flat).reshape(n_clusters, n_imp, width)
    return np.ascontiguousarray(np.moveaxis(totals, 0, 1))


def impute_chained(
    values: Any,
    covariates: Any,
    cluster_codes: Any,
    *,
    imputations: int,
    iterations: int,
    seed: int | np.random.SeedSequence,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Impute every incomplete column of ``values`` by chained two-level Bayesian regressions.

    Parameters
    ----------
    values : array_like, shape (n, K)
        Scores, NaN where missing; every column is a predictor of every other.
    covariates : array_like, shape (n, c)
        Complete predictor columns besides the intercept (arm, covariates; may have c = 0).
    cluster_codes : array_like of int, shape (n,)
        Practice of each row, coded ``0 .. J - 1``.
    imputations, iterations : int
        Number of completed datasets M and of cycles through the columns.
    seed : int or SeedSequence
        Imputation *m* uses the *m*-th stream of ``SeedSequence(seed).spawn(imputations)``, so
        it does not depend on how many imputations are requested.
    progress : callable, optional
        Called with 1 after each cycle through the columns.

    Returns
    -------
    ndarray, shape (M, n, K)
        The completed scores (observed values unchanged).

    Notes
    -----
    The model and the draws are given in the module docstring; all imputations advance
    together as a batch.
    """
    y = np.asarray(values, dtype=float)
    codes = np.asarray(cluster_codes, dtype=np.intp)
    n_obs, n_cols = y.shape
    if imputations < 2 or iterations < 1:
        raise TrialstatsError("Multiple imputation needs at least 2 imputations and 1 iteration.")
    x = np.asarray(covariates, dtype=float).reshape(n_obs, -1)
    n_fixed = x.shape[1] + 1
    missing = np.isnan(y)
    empty = np.flatnonzero(missing.all(axis=0))
    if empty.size:
        raise TrialstatsError(f"Cannot impute score column(s) {empty.tolist()}: no observed value.")
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    streams = [np.random.default_rng(s) for s in sequence.spawn(imputations)]
    # Columns centred at their observed means (better conditioned cross products; the
    # intercept absorbs the shift), restored on return.
    shift = np.concatenate([[0.0], x.mean(axis=0), np.nanmean(y, axis=0)])
    complete = np.concatenate([np.ones((n_obs, 1)), x, y], axis=1) - shift
    data = np.array(np.broadcast_to(complete, (imputations, *complete.shape)), order="C")
    targets = [k for k in range(n_cols) if missing[:, k].any()]
    for k in targets:
        observed = data[0, ~missing[:, k], n_fixed + k]
        for m, rng in enumerate(streams):
            data[m, missing[:, k], n_fixed + k] = rng.choice(observed, missing[:, k].sum())
    # The products are small and many: one BLAS thread is several times faster than two that
    # synchronise on every call (and much faster when other processes share the cores).
    with threadpool_limits(limits=1, user_api="blas"):
        state = _Crossproducts(data, codes, int(codes.max()) + 1)
        for _ in range(iterations):
            for k in targets:
                _draw_column(state, n_fixed + k, ~missing[:, k], streams)
            if progress is not None:
                progress(1)
    return np.where(missing, data[:, :, n_fixed:] + shift[n_fixed:], y)


class _Crossproducts:
    """Completed data (M, n, q) with its cross products and practice totals kept current."""

    def __init__(self, data: np.ndarray, codes: np.ndarray, n_clusters: int) -> None:
        self.data, self.codes, self.n_clusters = data, codes, n_clusters
        self.cross = np.swapaxes(data, 1, 2) @ data  # (M, q, q)
        self.sums = _cluster_sums(data, codes, n_clusters)  # (M, J, q)

    def update(self, column: int, rows: np.ndarray, values: np.ndarray) -> None:
        """Set ``data[:, rows, column] = values`` and refresh that column's sums."""
        self.data[:, rows, column] = values
        current = self.data[:, None, :, column]
        products = (current @ self.data)[:, 0, :]
        self.cross[:, column, :] = products
        self.cross[:, :, column] = products
        self.sums[:, :, column] = _cluster_sums(
            np.swapaxes(current, 1, 2), self.codes, self.n_clusters)[:, :, 0]


class _Regression:
    """Observed-row sufficient statistics of one target, predictors first and target last.

    ``cross`` (M, p + 1, p + 1) is the cross-product matrix of [X, y] and ``sums`` (M, J, p + 1)
    its practice totals; ``n`` (J,) the observed rows per practice. At a variance ratio the
    Cholesky factor of the augmented matrix :math:`[[A, c], [c^\top, y^\top y - \\sum_j w_j
    t_j^2]]` holds :math:`\\log|A|`, :math:`L^{-1}c` and :math:`\\mathrm{RSS} = L_{p+1,p+1}^2`.
    """

    def __init__(self, cross: np.ndarray, sums: np.ndarray, n: np.ndarray) -> None:
        n_imp, n_clusters, width = sums.shape
        self.p = width - 1
        self.n = n
        self.sums = sums
        ridge = _RIDGE * np.einsum("mkk->mk", cross)
        ridge[:, -1] = 0.0
        self.cross = cross + ridge[:, :, None] * np.eye(width)
        self.outer = (sums[:, :, :, None] * sums[:, :, None, :]).reshape(
            n_imp, n_clusters, width * width)

    def at(self, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log posterior of rho, the augmented Cholesky factor and the weights :math:`w_j` at
        variance ratios ``gamma`` (M, G); shapes (M, G), (M, G, p + 1, p + 1), (M, G, J)."""
        width = self.p + 1
        w = np.ascontiguousarray(gamma[..., None] / (1.0 + gamma[..., None] * self.n))
        augmented = self.cross[:, None] - (w @ self.outer).reshape(*gamma.shape, width, width)
        chol = np.linalg.cholesky(augmented)
        diagonal = np.maximum(np.diagonal(chol, axis1=-2, axis2=-1), 1e-150)
        dof = self.n.sum() - self.p
        log_post = (-0.5 * np.sum(np.log1p(gamma[..., None] * self.n), axis=-1)
                    - np.sum(np.log(diagonal[..., :-1]), axis=-1)
                    - dof * np.log(diagonal[..., -1]))
        return log_post, chol, w


def _draw_rho(stats_: _Regression, uniforms: np.ndarray) -> np.ndarray:
    """One draw of the conditional ICC rho per imputation by inverse CDF on a two-stage grid.

    Coarse nodes locate the region where the log posterior is within ``_LOG_POST_DROP`` of its
    maximum; the density is then interpolated linearly between ``_FINE + 1`` equally spaced
    nodes (in the cube root of rho) over that region and one coarse node beyond it on each
    side, a cell is chosen with probability proportional to its trapezoid and the draw is
    exact within the trapezoid.
    """
    # grids are equally spaced in v = rho^(1/3), dense near 0 where ICCs live; the density of
    # v is p(rho | y) * 3 v^2
    coarse = np.arange(_COARSE) / _COARSE
    rho = coarse**3
    log_post = stats_.at(np.tile(rho / (1.0 - rho), (len(uniforms), 1)))[0]
    keep = log_post >= log_post.max(axis=1, keepdims=True) - _LOG_POST_DROP
    first = np.maximum(np.argmax(keep, axis=1) - 1, 0)
    last = np.minimum(_COARSE - np.argmax(keep[:, ::-1], axis=1), _COARSE - 1)
    low, high = coarse[first], coarse[last]
    width = (high - low) / _FINE
    nodes = low[:, None] + width[:, None] * np.arange(_FINE + 1)
    rho = nodes**3
    log_fine = stats_.at(rho / (1.0 - rho))[0] + 2.0 * np.log(np.maximum(nodes, 1e-300))
    density = np.exp(log_fine - log_fine.max(axis=1, keepdims=True))
    left, right = density[:, :-1], density[:, 1:]
    cdf = np.cumsum(left + right, axis=1)
    cell = np.minimum(np.sum(cdf < uniforms[:, 0, None] * cdf[:, -1:], axis=1), _FINE - 1)
    f_a = np.take_along_axis(left, cell[:, None], axis=1)[:, 0]
    f_b = np.take_along_axis(right, cell[:, None], axis=1)[:, 0]
    u = uniforms[:, 1]
    # inverse CDF of the density f_a + (f_b - f_a) t on [0, 1], in a cancellation-free form
    t = u * (f_a + f_b) / (f_a + np.sqrt(f_a**2 + u * (f_b**2 - f_a**2)))
    return (low + width * (cell + t)) ** 3


def _draw_column(
    state: _Crossproducts,
    target: int,
    observed: np.ndarray,
    streams: list[np.random.Generator],
) -> None:
    """One two-level Bayesian-regression draw of the missing entries of ``target``, in place.

    The observed-row cross products are the full-data ones minus the missing rows' own.
    """
    width = state.data.shape[2]
    n_clusters = state.n_clusters
    predictors = np.delete(np.arange(width), target)
    n_pred = len(predictors)
    unobserved = np.flatnonzero(~observed)
    miss_rows = state.data[:, unobserved, :]
    miss_codes = state.codes[unobserved]
    sums = state.sums - _cluster_sums(miss_rows, miss_codes, n_clusters)
    cross = state.cross - np.swapaxes(miss_rows, 1, 2) @ miss_rows
    dof = int(observed.sum()) - n_pred
    if dof < 1:
        raise TrialstatsError(
            f"Too few observed values to impute score column {target}: {int(observed.sum())} "
            f"observed for {n_pred} predictors."
        )
    order = np.append(predictors, target)
    regression = _Regression(
        cross[:, order][:, :, order], sums[:, :, order],
        np.bincount(state.codes[observed], minlength=n_clusters).astype(float),
    )
    uniforms = np.stack([rng.random(2) for rng in streams])
    chi2 = np.array([rng.chisquare(dof) for rng in streams])
    z = np.stack([rng.standard_normal(n_pred + n_clusters + unobserved.size) for rng in streams])
    rho = _draw_rho(regression, uniforms)
    _, chol, w = (v[:, 0] for v in regression.at((rho / (1.0 - rho))[:, None]))
    sigma = np.abs(chol[:, -1, -1]) / np.sqrt(chi2)
    # beta* = L^-T (L^-1 c + sigma z): beta-hat plus a N(0, sigma^2 A^-1) draw
    beta = np.linalg.solve(np.swapaxes(chol[:, :-1, :-1], 1, 2),
                           (chol[:, -1, :-1] + sigma[:, None] * z[:, :n_pred])[..., None])[..., 0]
    residual = regression.sums[:, :, -1] - (regression.sums[:, :, :-1] @ beta[:, :, None])[..., 0]
    u = w * residual + sigma[:, None] * np.sqrt(w) * z[:, n_pred:n_pred + n_clusters]
    fitted = u[:, miss_codes] + (miss_rows[:, :, predictors] @ beta[:, :, None])[..., 0]
    state.update(target, unobserved, fitted + sigma[:, None] * z[:, n_pred + n_clusters:])


@dataclass(frozen=True)
class ImputedTrial:
    """The completed datasets of one multiple imputation, ready to be analysed.

    Attributes
    ----------
    imputed : ndarray, shape (M, n, K)
        Completed scores of the analysed patients (complete covariates), columns
        ``score_columns``.
    missing : ndarray of bool, shape (n, K)
        True where the score was missing, i.e. imputed.
    score_columns : list of str
        Every outcome at every month, in configuration order.
    frame : ModelData
        The primary design of those patients without a baseline column (each outcome's
        imputed baseline is put in as the third column when it is analysed).
    scales : dict
        (outcome name, month) → ``{"sd_baseline", "mcid"}`` on the raw scale, as the primary
        analysis (:func:`trialstats.analysis.rows.outcome_scale`).
    note : str
        How the data were imputed, for the rows' ``notes``.
    """

    imputed: np.ndarray
    missing: np.ndarray
    score_columns: list[str]
    frame: ModelData
    scales: dict[tuple[str, int], dict[str, float]]
    note: str

    @property
    def treated(self) -> np.ndarray:
        """The intervention indicator of each analysed patient, shape (n,)."""
        return self.frame.X[:, self.frame.columns.index(TREATED)]


def impute_trial(
    patients: pd.DataFrame,
    config: dict[str, Any],
    *,
    imputations: int = 20,
    seed: int,
    iterations: int = ITERATIONS,
    progress: Callable[[int], None] | None = None,
) -> ImputedTrial:
    """Impute every configured outcome at every month (the model of the module docstring).

    Parameters are those of :func:`multiple_imputation`; the imputation does not depend on
    which outcomes are later analysed.
    """
    design, analysis = config["design"], config["analysis"]
    covariates = list(analysis["covariates"])
    known = [o["name"] for o in config["outcomes"]]
    months = sorted({m for o in config["outcomes"] for m in outcome_months(o, design)})
    score_columns = [outcome_column(o["name"], m) for o in config["outcomes"]
                     for m in outcome_months(o, design)]

    # The primary design with every score present, so only missing covariates exclude.
    placeholder = patients.copy()
    placeholder[score_columns] = 0.0
    frame = model_data(placeholder, known[0], design["followup_months"][0],
                       cluster=design["cluster"], baseline_month=None, covariates=covariates)
    kept = pd.Series(True, index=patients.index)
    for name in covariates:
        kept &= patients[name].notna()
    values = patients.loc[kept, score_columns].to_numpy(dtype=float)
    imputed = impute_chained(
        values, np.delete(frame.X, [0], axis=1), frame.cluster_codes,
        imputations=imputations, iterations=iterations, seed=seed, progress=progress,
    )
    scales = {(o["name"], month): outcome_scale(patients, o, design, month)
              for o in config["outcomes"] for month in design["followup_months"]}
    note = (f"chained-equations imputation (two-level Bayesian linear regression, "
            f"random practice intercept) of all {len(known)} outcomes at months "
            f"{', '.join(str(m) for m in months)}, {iterations} iterations")
    return ImputedTrial(imputed=imputed, missing=np.isnan(values), score_columns=score_columns,
                        frame=frame, scales=scales, note=note)


def pooled_row(
    trial: ImputedTrial,
    config: dict[str, Any],
    outcome: dict[str, Any],
    month: int,
    offset: np.ndarray | None = None,
) -> dict[str, Any]:
    """The primary model fitted to every completed dataset and pooled: one result row.

    Parameters
    ----------
    trial : ImputedTrial
        From :func:`impute_trial`.
    config : dict
        The validated configuration (``design``, ``analysis``).
    outcome : dict
        The configured outcome entry.
    month : int
        Follow-up month.
    offset : ndarray, shape (n,), optional
        Added to the completed follow-up score of every imputation before the fit (e.g. a
        delta adjustment of imputed values); None fits the completed data as they are.

    Returns
    -------
    dict
        The row described in :func:`multiple_imputation`.
    """
    design, analysis = config["design"], config["analysis"]
    alpha, method = float(analysis["alpha"]), analysis["df_method"][0]
    frame, name = trial.frame, outcome["name"]
    imputations = trial.imputed.shape[0]
    scale = trial.scales[(name, month)]
    sd0, mcid = scale["sd_baseline"], scale["mcid"]
    base = {"outcome": name, "month": month, "method": method, "n_patients": len(frame.y),
            "n_clusters": frame.n_clusters, "sd_baseline": sd0, "mcid": mcid,
            "analysis": imputation_label(imputations)}
    column = trial.score_columns.index(outcome_column(name, month))
    observed = ~trial.missing[:, column]
    problem = arms_problem(clusters_per_arm(trial.treated[observed],
                                            frame.cluster_codes[observed]))
    if problem:  # an arm's scores would come from the other arm's model alone
        return {**base, "notes": f"{problem} with an observed month-{month} score; "
                f"imputation cannot stand in for an arm's outcome"}
    if np.linalg.matrix_rank(frame.X) < frame.X.shape[1]:
        return {**base, "notes": "not estimable: the fixed-effects design is rank deficient "
                "(a covariate aliased with arm, or a covariate level with no patients)"}
    X = np.array(np.broadcast_to(frame.X, (imputations, *frame.X.shape)), order="C")
    if outcome.get("baseline", True):  # the imputed baseline after intercept and arm
        base_index = trial.score_columns.index(outcome_column(name, design["baseline_month"]))
        X = np.insert(X, 2, trial.imputed[:, :, base_index], axis=2)
    contrast = np.zeros(X.shape[2])
    contrast[frame.columns.index(TREATED)] = 1.0
    response = trial.imputed[:, :, column]
    if offset is not None:
        response = response + offset
    notes = [trial.note]
    sums = ClusterSums.from_data(response, X, frame.cluster_codes, frame.n_clusters)
    try:
        fit = fit_reml(sums)
        test = contrast_test(sums, fit, contrast, method)
    except TrialstatsError as error:  # e.g. a constant outcome: say why, without batch words
        why = re.sub(r"^\d+ replicate\(s\), first at batch index \([^)]*\): ", "", str(error))
        return {**base, "notes": f"not estimable: in the imputed datasets, {why}"}
    pooled = rubin_pool(test.estimate, np.asarray(test.se) ** 2, np.mean(test.df))
    estimate, se, df = float(pooled.estimate), float(pooled.se), float(pooled.df)
    if not (np.isfinite(estimate) and np.isfinite(se) and se > 0 and df >= _MIN_DF):
        return {**base, "notes": f"not estimable: the pooled fit is degenerate (estimate "
                f"{estimate:.4g}, SE {se:.4g} on {df:.4g} df)"}
    half = stats.t.ppf(1 - alpha / 2, df) * se
    low, high = estimate - half, estimate + half
    var_cluster = np.asarray(fit.var_cluster)
    var_residual = np.asarray(fit.var_residual)
    notes.append(f"FMI {float(pooled.fmi):.3f}, relative increase in variance "
                 f"{float(pooled.riv):.3f}")
    notes.append("variance components and ICC averaged over imputations; "
                 "ICC CI not computed")
    boundary = int(np.sum(fit.boundary))
    if boundary:
        notes.append(f"practice variance at 0 in {boundary} of {imputations} "
                     "imputed datasets")
    if not np.all(fit.converged):
        notes.append(f"REML did not converge in {int(np.sum(~fit.converged))} of "
                     f"{imputations} imputed datasets; estimates are unreliable")
    notes += [n for n in (frame.exclusion_note(), scale_note(outcome, design, month)) if n]
    return {
        **base, "estimate": estimate, "se": se, "df": df,
        "ci_low": low, "ci_high": high,
        "p_value": float(2 * stats.t.sf(abs(estimate) / se, df)),
        "var_cluster": float(var_cluster.mean()),
        "var_residual": float(var_residual.mean()),
        "icc": float(np.mean(var_cluster / (var_cluster + var_residual))),
        "icc_ci_low": np.nan, "icc_ci_high": np.nan,
        "effect_size": estimate / sd0, "es_ci_low": low / sd0, "es_ci_high": high / sd0,
        "mcid_verdict": mcid_verdict(low, high, mcid, outcome["higher_is_better"]),
        "converged": bool(np.all(fit.converged)), "notes": "; ".join(notes),
        "fmi": float(pooled.fmi),
        "riv": float(pooled.riv),
    }

def multiple_imputation(
    patients: pd.DataFrame,
    config: dict[str, Any],
    *,
    imputations: int = 20,
    seed: int,
    outcomes: list[str] | None = None,
    iterations: int = ITERATIONS,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Primary analysis after multilevel multiple imputation, pooled by Rubin's rules.

    Parameters
    ----------
    patients : DataFrame
        Validated patients (see :class:`trialstats.data.validate.Trial`).
    config : dict
        The validated configuration: ``design``, ``outcomes``, ``analysis`` (covariates, the
        primary df method = the first of ``df_method``, ``alpha``).
    imputations : int
        Number of imputed datasets M (at least 2).
    seed : int
        Seed of the imputation streams; reruns are identical.
    outcomes : list of str, optional
        Outcomes to report (default all). The imputation model always uses every configured
        outcome, so an outcome's result does not depend on which others are reported.
    iterations : int
        Cycles of the chained equations.
    progress : callable, optional
        Called with 1 after each cycle (:func:`impute_chained`).

    Returns
    -------
    DataFrame
        One row per outcome × follow-up month with the columns of
        :data:`IMPUTATION_COLUMNS`: those of :data:`trialstats.contract.COLUMNS`
        (``estimate`` = pooled adjusted difference :math:`\\bar Q`, ``se`` = :math:`\\sqrt T`,
        ``df`` Barnard–Rubin, ``ci_*``/``p_value`` from the t distribution on that df,
        ``var_cluster``/``var_residual``/``icc`` averaged over the imputations with
        ``icc_ci_*`` NaN, ``n_patients`` every patient with complete covariates, ``sd_baseline``
        the observed-data baseline SD, ``effect_size``/``es_ci_*``/``mcid``/``mcid_verdict`` as
        in the primary analysis, ``converged`` true when every imputed-data fit converged),
        ``analysis`` (``"multiple imputation (m=M)"``), ``fmi`` (fraction of missing
        information) and ``riv`` (relative increase in variance due to nonresponse).

    Notes
    -----
    The imputation model, the draws and the pooling are stated in the module docstring
    (van Buuren 2018; Rubin 1987; Barnard & Rubin 1999; Andridge 2011).
    """
    chosen = chosen_outcomes(config, outcomes)
    trial = impute_trial(patients, config, imputations=imputations, seed=seed,
                         iterations=iterations, progress=progress)
    out = [pooled_row(trial, config, outcome, month) for outcome in chosen
           for month in config["design"]["followup_months"]]
    return pd.DataFrame(out, columns=list(IMPUTATION_COLUMNS))
