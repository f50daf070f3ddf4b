r"""Multilevel chained equations: the imputation engine of
:mod:`trialstats.analysis.imputation`.

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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from trialstats.analysis.chained_glmm import GLMM_FAMILIES, draw_glmm_column
from trialstats.errors import TrialstatsError

__all__ = ["imputation_batches", "impute_chained", "impute_missing"]

# mice's ridge penalty (estimice, ridge = 1e-5), as a share of the diagonal of X'X.
_RIDGE = 1e-5
# Grid for the conditional ICC: coarse nodes over [0, 1), then fine cells over the region whose
# log posterior is within _LOG_POST_DROP of the coarse maximum.
_COARSE = 12
_FINE = 32
_LOG_POST_DROP = 12.0
# Working data of the imputations advancing together (M x n x columns doubles) is capped
# near this size; larger trials impute in batches of imputations.
_BATCH_BYTES = 256 * 2**20


def imputation_batches(imputations: int, bytes_each: int) -> list[range]:
    """Consecutive batches of the imputations ``0 .. M - 1`` that need about ``_BATCH_BYTES``
    at ``bytes_each`` per imputation. Every batch holds at least two imputations: numpy takes
    other paths (other rounding) for a stack of one matrix, and batches of two or more give
    the bytes of one batch of all."""
    count = max(1, imputations // max(2, _BATCH_BYTES // max(bytes_each, 1)))
    return [range(int(part[0]), int(part[-1]) + 1)
            for part in np.array_split(np.arange(imputations), count)]


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
    progress: Callable[[float], None] | None = None,
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
        Called after each cycle through the columns with the share of the imputations that
        cycle advanced (1 in all; less when imputations run in several batches).

    Returns
    -------
    ndarray, shape (M, n, K)
        The completed scores (observed values unchanged).

    Notes
    -----
    The model and the draws are given in the module docstring. Imputations are independent
    chains: they advance together in batches of about ``_BATCH_BYTES`` of working data, at
    least two at a time (:func:`imputation_batches`; all of them at once for an ordinary
    trial), which changes no value.
    """
    y = np.asarray(values, dtype=float)
    completed = np.array(np.broadcast_to(y, (imputations, *y.shape)))
    draws = impute_missing(y, covariates, cluster_codes, imputations=imputations,
                           iterations=iterations, seed=seed, progress=progress)
    for k, column in enumerate(draws):
        completed[:, np.isnan(y[:, k]), k] = column
    return completed


def impute_missing(
    values: Any,
    covariates: Any,
    cluster_codes: Any,
    *,
    imputations: int,
    iterations: int,
    seed: int | np.random.SeedSequence,
    progress: Callable[[float], None] | None = None,
    kinds: Sequence[str] | None = None,
    n_agq: int = 1,
    latent: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[np.ndarray]:
    """:func:`impute_chained` keeping only the imputed cells: column *k*'s draws, shape
    (M, number of missing values of column *k*), in row order (memory grows with the
    missing cells, not with M x n x K).

    ``kinds`` gives each column's outcome type: ``binary`` and ``count`` columns are drawn
    from a two-level logistic or Poisson model fitted with ``n_agq`` quadrature nodes
    (:mod:`trialstats.analysis.chained_glmm`), the others as continuous (the default for
    all). ``latent``, when given, receives for each of those columns the linear predictors
    and uniforms of its last draw, (M, missing values) each."""
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
    targets = [k for k in range(n_cols) if missing[:, k].any()]
    draws = [np.empty((imputations, int(missing[:, k].sum()))) for k in range(n_cols)]
    glmm = {k: GLMM_FAMILIES[kinds[k]] for k in targets
            if kinds is not None and kinds[k] in GLMM_FAMILIES}
    if latent is not None:
        latent.update({k: (np.empty_like(draws[k]), np.empty_like(draws[k])) for k in glmm})
    for batch in imputation_batches(imputations, complete.nbytes):
        chunk = streams[batch.start:batch.stop]
        data = np.array(np.broadcast_to(complete, (len(chunk), *complete.shape)), order="C")
        for k in targets:
            observed = data[0, ~missing[:, k], n_fixed + k]
            for m, rng in enumerate(chunk):
                data[m, missing[:, k], n_fixed + k] = rng.choice(observed, missing[:, k].sum())
        # The products are small and many: one BLAS thread is several times faster than two
        # that synchronise on every call (and much faster when other processes share the cores).
        with threadpool_limits(limits=1, user_api="blas"):
            state = _Crossproducts(data, codes, int(codes.max()) + 1)
            for _ in range(iterations):
                for k in targets:
                    if k not in glmm:
                        _draw_column(state, n_fixed + k, ~missing[:, k], chunk)
                        continue
                    drawn, *last = draw_glmm_column(
                        data, codes, n_fixed + k, ~missing[:, k], chunk, family=glmm[k],
                        shift=shift[n_fixed + k], n_agq=n_agq)
                    state.update(n_fixed + k, np.flatnonzero(missing[:, k]),
                                 drawn - shift[n_fixed + k])
                    if latent is not None:
                        for store, value in zip(latent[k], last, strict=True):
                            store[batch.start:batch.stop] = value
                if progress is not None:
                    progress(len(chunk) / imputations)
        for k in targets:
            draws[k][batch.start:batch.stop] = (data[:, missing[:, k], n_fixed + k]
                                                  + shift[n_fixed + k])
            if k in glmm:  # whole numbers again after the centring
                draws[k][batch.start:batch.stop] = np.round(draws[k][batch.start:batch.stop])
        del data, state
    return draws


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
