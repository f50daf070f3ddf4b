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

Computation
-----------
Everything needs only the cross products and practice totals of the completed data, kept
current as columns are re-imputed; the observed-row statistics of :math:`y_k` are the full ones
minus those of the rows missing :math:`y_k`. Missing scores come in few *patterns* (a
questionnaire not returned leaves every score of that month missing), so rows are grouped by
the set of columns they miss and each pattern with at least :math:`q` rows (:math:`q` the
number of columns: intercept, covariates and scores) keeps its own cross products, :math:`q
\times q` per imputation, no more memory than its rows' data. Re-imputing :math:`y_k`
changes row and column *k* of the patterns missing it, :math:`O(n_P q)` each, so a visit costs
:math:`O(n_{mis} q)` instead of the :math:`O(n_{mis} q^2)` of forming the missing rows' cross
products afresh; rows of rarer patterns do the latter (the *direct* path). When patterns are
so many that those of :math:`q` rows or more hold under half the rows, every row takes the
direct path: the saving is then at most twofold and not worth the patterns' memory. The
working data hold the rows of each kept pattern together (sorted by practice), so these
updates, the missing rows' practice totals and their fitted values read the rows in place. The
weights :math:`w_j` depend on a practice only through :math:`n_j`, so :math:`\sum_j w_j s_j
s_j^\top = \sum_n w(n) \sum_{j: n_j = n} s_j s_j^\top` is evaluated on the grid of step 1 over
the distinct observed counts rather than over the practices. Missing values
start as random draws from the observed values (mice's default) and the cycle over
:math:`y_1, \dots, y_K` is repeated ``iterations`` times. Imputed values are neither rounded nor
clipped to the outcome's range: the analysis model is linear, and rounding biases it (Horton,
Lipsitz & Parzen 2003, *Am Stat* 57:229). Patients with a missing covariate are excluded from
imputation and analysis and counted, as in the primary analysis.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from trialstats.analysis.chained_glmm import GLMM_FAMILIES, draw_glmm_column
from trialstats.errors import TrialstatsError

__all__ = ["imputation_batches", "impute_batches", "impute_chained", "impute_missing"]

# mice's ridge penalty (estimice, ridge = 1e-5), as a share of the diagonal of X'X.
_RIDGE = 1e-5
# Grid for the conditional ICC: coarse nodes over [0, 1), then fine cells over the region whose
# log posterior is within _LOG_POST_DROP of the coarse maximum.
_COARSE = 12
_FINE = 32
_LOG_POST_DROP = 12.0
# Working memory of the imputations advancing together (the M x n x columns data with the
# patterns' cross products: _Layout.bytes_each) is capped near this size; larger trials impute
# in batches of imputations.
_BATCH_BYTES = 256 * 2**20
# A pattern keeps its own cross products with at least _PATTERN_ROWS x q rows, if such patterns
# hold at least _PATTERN_SHARE of the rows (module notes).
_PATTERN_ROWS = 1.0
_PATTERN_SHARE = 0.5


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


def impute_chained(values: Any, *args: Any, **options: Any) -> np.ndarray:
    """:func:`impute_batches` returning the completed scores, shape (M, n, K), observed values
    unchanged; it takes the same arguments."""
    y = np.asarray(values, dtype=float)
    draws = impute_missing(y, *args, **options)
    completed = np.array(np.broadcast_to(y, (draws[0].shape[0], *y.shape)))
    for k, column in enumerate(draws):
        completed[:, np.isnan(y[:, k]), k] = column
    return completed


def impute_missing(values: Any, *args: Any, **options: Any) -> list[np.ndarray]:
    """:func:`impute_batches` keeping only the imputed cells of all imputations: column *k*'s
    draws, shape (M, number of missing values of column *k*), in row order (memory grows
    with the missing cells, not with M x n x K); it takes the same arguments."""
    draws: list[np.ndarray] = []
    for batch, part in impute_batches(values, *args, **options):
        if not draws:
            draws = [np.empty((options["imputations"], column.shape[1])) for column in part]
        for k, column in enumerate(part):
            draws[k][batch.start:batch.stop] = column
    return draws


def impute_batches(
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
    offsets: dict[int, np.ndarray] | None = None,
) -> Iterator[tuple[range, list[np.ndarray]]]:
    """Impute every incomplete column of ``values`` by chained two-level Bayesian regressions,
    one batch of imputations at a time.

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
    kinds : sequence of str, optional
        Each column's outcome type: ``binary`` and ``count`` columns are drawn from a
        two-level logistic or Poisson model fitted with ``n_agq`` quadrature nodes
        (:mod:`trialstats.analysis.chained_glmm`; their draws are whole numbers), the others
        as continuous (the default for all).
    n_agq : int
        Quadrature nodes of those fits.
    latent : dict, optional
        Receives for each binary or count column *k* the linear predictors and uniforms of its
        last draw, ``latent[k] = (eta, u)``, (M, missing values of column *k*) each, in row
        order.
    offsets : dict, optional
        Offset (n,) of the imputation model of a count column *k*, ``offsets[k]`` (log
        exposure; :mod:`trialstats.analysis.chained_glmm`); 0 for the columns not given.

    Yields
    ------
    range, list of ndarray
        The imputations of the batch, and column *k*'s draws in them, shape (batch size,
        number of missing values of column *k*), in row order.

    Notes
    -----
    The model, the draws and how they are computed are given in the module docstring.
    Imputations are independent chains: they advance together in batches of about
    ``_BATCH_BYTES`` of working data, at least two at a time (:func:`imputation_batches`;
    all of them at once for an ordinary trial), which changes no value.
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
    targets = [k for k in range(n_cols) if missing[:, k].any()]
    cells = np.pad(missing, ((0, 0), (n_fixed, 0)))  # missing cells of [1, x, y]
    layout = _Layout(cells, codes, int(codes.max()) + 1)
    glmm = {k: GLMM_FAMILIES[kinds[k]] for k in targets
            if kinds is not None and kinds[k] in GLMM_FAMILIES}
    if latent is not None:
        latent.update({k: (np.empty((imputations, int(missing[:, k].sum()))),
                           np.empty((imputations, int(missing[:, k].sum())))) for k in glmm})
    for batch in imputation_batches(imputations, layout.bytes_each):
        chunk = streams[batch.start:batch.stop]
        data = np.empty((len(chunk), n_obs, n_fixed + n_cols))
        for c, column in enumerate([np.ones(n_obs), *x.T, *y.T]):  # centred, working order
            data[0, :, c] = column[layout.order] - shift[c]
        data[1:] = data[0]
        for k in targets:
            observed = y[~missing[:, k], k] - shift[n_fixed + k]
            rows = layout.position[missing[:, k]]
            for m, rng in enumerate(chunk):
                data[m, rows, n_fixed + k] = rng.choice(observed, len(rows))
        # The products are small and many: one BLAS thread is several times faster than two
        # that synchronise on every call (and much faster when other processes share the cores).
        with threadpool_limits(limits=1, user_api="blas"):
            state = _Crossproducts(data, layout, cells)
            for _ in range(iterations):
                for k in targets:
                    if k not in glmm:
                        _draw_column(state, n_fixed + k, ~missing[:, k], chunk)
                        continue
                    # the GLMM draw reads the completed data in row order
                    drawn, *last = draw_glmm_column(
                        data[:, layout.position], codes, n_fixed + k, ~missing[:, k], chunk,
                        family=glmm[k], shift=shift[n_fixed + k], n_agq=n_agq,
                        offset=(offsets or {}).get(k))
                    state.update(n_fixed + k, drawn - shift[n_fixed + k])
                    if latent is not None:
                        for store, value in zip(latent[k], last, strict=True):
                            store[batch.start:batch.stop] = value
                if progress is not None:
                    progress(len(chunk) / imputations)
        part = [data[:, layout.position[missing[:, k]], n_fixed + k] + shift[n_fixed + k]
                for k in range(n_cols)]
        for k in glmm:  # whole numbers again after the centring
            part[k] = np.round(part[k])
        del data, state
        yield batch, part
        del part  # not held while the next batch is imputed


class _Layout:
    """Where the missing cells are, and the row order of the working data.

    Rows are grouped by missingness pattern (the set of columns they miss); patterns of at
    least ``_PATTERN_ROWS`` x q rows are *kept* when they hold at least ``_PATTERN_SHARE`` of
    the rows (module notes). The working data hold the rows of kept pattern 0, 1, ... and
    then the other rows (the *rest*), each group sorted by practice.

    Attributes
    ----------
    order, position : ndarray of int, shape (n,)
        Working row *r* is row ``order[r]``; row *i* is working row ``position[i]``.
    blocks : ndarray of int, shape (P + 1,)
        Kept pattern *p* is working rows ``blocks[p]:blocks[p + 1]``; the rest follow.
    totals : list of (sparse matrix, ndarray)
        Per kept pattern, the matrix summing its rows by practice and those practices.
    columns : dict
        Per incomplete column *c*: ``patterns`` (the kept patterns missing it), ``rest``
        (working rows of the rest missing it), ``rank`` (the *i*-th missing value in working
        order, kept patterns first, is the ``rank[i]``-th in row order) and ``codes`` (their
        practices, in working order).
    """

    def __init__(self, missing: np.ndarray, codes: np.ndarray, n_clusters: int) -> None:
        n_rows, width = missing.shape
        self.n_clusters = n_clusters
        patterns, pattern, counts = np.unique(np.packbits(missing, axis=1), axis=0,
                                              return_inverse=True, return_counts=True)
        kept = counts >= _PATTERN_ROWS * width
        if counts[kept].sum() < _PATTERN_SHARE * n_rows:
            kept[:] = False
        number = np.where(kept, np.cumsum(kept) - 1, kept.sum())
        key = number[pattern.reshape(-1)]  # kept pattern of each row; P for the rest
        self.order = np.lexsort((codes, key))
        self.position = np.empty(n_rows, dtype=np.intp)
        self.position[self.order] = np.arange(n_rows)
        self.codes = codes[self.order]
        self.blocks = np.concatenate([[0], np.cumsum(counts[kept])])
        self.totals = []
        for start, stop in itertools.pairwise(self.blocks):
            first = np.flatnonzero(np.diff(self.codes[start:stop], prepend=-1))
            indicator = sparse.csr_matrix(
                (np.ones(stop - start), np.arange(stop - start), np.append(first, stop - start)),
                shape=(len(first), stop - start))
            self.totals.append((indicator, self.codes[start + first]))
        missed = np.unpackbits(patterns[kept], axis=1, count=width).astype(bool)
        self.columns = {}
        for column in np.flatnonzero(missing.any(axis=0)):
            where = np.sort(self.position[missing[:, column]])
            blocks = np.flatnonzero(missed[:, column])
            rest = where[where >= self.blocks[-1]]
            working = np.concatenate([*(np.arange(self.blocks[p], self.blocks[p + 1])
                                        for p in blocks), rest])
            self.columns[int(column)] = {
                "patterns": blocks, "rest": rest, "codes": self.codes[working],
                "rank": np.searchsorted(np.flatnonzero(missing[:, column]),
                                        self.order[working])}
        most = max((len(c["rank"]) for c in self.columns.values()), default=0)
        #: Working bytes per imputation: the data, the patterns' cross products and the
        #: missing values of a column with their products.
        self.bytes_each = 8 * width * (n_rows + int(kept.sum()) * width) + 32 * most


class _Crossproducts:
    """Completed data (M, n, q), rows in the working order of ``layout``, with the cross
    products and practice totals the draws need kept current.

    ``cross`` (M, q, q) and ``sums`` (M, J, q) are those of all rows; ``patterns`` (M, P, q, q)
    the cross products of each kept pattern and ``rest`` (M, q, q) those of the other rows, so
    that ``cross`` is their sum; ``fixed`` (J, q) the practice totals of the observed cells.
    """

    def __init__(self, data: np.ndarray, layout: _Layout, missing: np.ndarray) -> None:
        self.data, self.layout, self.n_clusters = data, layout, layout.n_clusters
        blocks = layout.blocks
        self.patterns = np.zeros((len(data), len(blocks) - 1, data.shape[2], data.shape[2]))
        for p, (start, stop) in enumerate(itertools.pairwise(blocks)):
            self.patterns[:, p] = np.swapaxes(data[:, start:stop], 1, 2) @ data[:, start:stop]
        rest = data[:, blocks[-1]:]
        self.rest = np.swapaxes(rest, 1, 2) @ rest
        self.cross = self.patterns.sum(axis=1) + self.rest
        self.fixed = np.stack([np.bincount(layout.codes, weights=np.where(
            missing[layout.order, c], 0.0, data[0, :, c]), minlength=self.n_clusters)
            for c in range(data.shape[2])], axis=1)
        self.sums = np.array(np.broadcast_to(self.fixed, (len(data), *self.fixed.shape)))
        for column in layout.columns:
            self.sums[:, :, column] = self._totals(column, self._values(column))

    def _values(self, column: int) -> np.ndarray:
        """The missing values of ``column`` in working order, (M, n_mis)."""
        where, blocks = self.layout.columns[column], self.layout.blocks
        return np.concatenate([*(self.data[:, blocks[p]:blocks[p + 1], column]
                                 for p in where["patterns"]),
                               self.data[:, where["rest"], column]], axis=1)

    def _totals(self, column: int, values: np.ndarray) -> np.ndarray:
        """Practice totals (M, J) of ``column`` with its missing cells set to ``values``."""
        n_imp, n_clusters = len(values), self.n_clusters
        bins = self.layout.columns[column]["codes"] + n_clusters * np.arange(n_imp)[:, None]
        return self.fixed[:, column] + np.bincount(
            bins.ravel(), weights=values.ravel(), minlength=n_imp * n_clusters).reshape(
                n_imp, n_clusters)

    def observed(self, column: int) -> tuple[np.ndarray, np.ndarray]:
        """Cross products (M, q, q) and practice totals (M, J, q) of the rows observing
        ``column``: those of all rows minus those of the rows missing it."""
        where, blocks = self.layout.columns[column], self.layout.blocks
        rest = self.data[:, where["rest"]]
        cross = (self.cross - self.patterns[:, where["patterns"]].sum(axis=1)
                 - np.swapaxes(rest, 1, 2) @ rest)
        sums = self.sums - _cluster_sums(rest, self.layout.codes[where["rest"]],
                                         self.n_clusters)
        n_imp, _, width = self.data.shape
        for p in where["patterns"]:
            indicator, practices = self.layout.totals[p]
            rows = np.swapaxes(self.data[:, blocks[p]:blocks[p + 1]], 0, 1)  # (n_P, M, q)
            totals = indicator @ rows.reshape(len(rows), n_imp * width)
            sums[:, practices] -= np.swapaxes(totals.reshape(-1, n_imp, width), 0, 1)
        return cross, sums

    def predict(self, column: int, coefficients: np.ndarray) -> np.ndarray:
        """``coefficients`` (M, q) times the rows missing ``column``: (M, n_mis) in row order."""
        where, blocks = self.layout.columns[column], self.layout.blocks
        rows = [self.data[:, blocks[p]:blocks[p + 1]] for p in where["patterns"]]
        rows.append(self.data[:, where["rest"]])
        working = np.concatenate([(r @ coefficients[:, :, None])[..., 0] for r in rows], axis=1)
        out = np.empty_like(working)
        out[:, where["rank"]] = working
        return out

    def update(self, column: int, values: np.ndarray) -> None:
        """Set the missing cells of ``column`` to ``values`` (M, n_mis), in row order, and
        bring the statistics up to date."""
        where, blocks = self.layout.columns[column], self.layout.blocks
        working = values[:, where["rank"]]
        offset = 0
        for p in where["patterns"]:
            start, stop = blocks[p], blocks[p + 1]
            part = working[:, offset:offset + stop - start]
            self.data[:, start:stop, column] = part
            products = (part[:, None, :] @ self.data[:, start:stop])[:, 0]
            self.patterns[:, p, column, :] = products
            self.patterns[:, p, :, column] = products
            offset += stop - start
        if offset < working.shape[1]:
            self.data[:, where["rest"], column] = working[:, offset:]
            rest = self.data[:, blocks[-1]:]
            products = (np.swapaxes(rest[:, :, column, None], 1, 2) @ rest)[:, 0]
            self.rest[:, column, :] = products
            self.rest[:, :, column] = products
        total = self.patterns[:, :, column, :].sum(axis=1) + self.rest[:, column, :]
        self.cross[:, column, :] = total
        self.cross[:, :, column] = total
        self.sums[:, :, column] = self._totals(column, working)


def _grouped_outer(sums: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct practice counts ``sizes`` (D,), how many practices have each, and for each the
    sum of the outer products of those practices' totals, :math:`S_g^\top S_g`: (M, D,
    width^2) from ``sums`` (M, J, width)."""
    n_imp, _, width = sums.shape
    sizes, group, multiplicity = np.unique(n, return_inverse=True, return_counts=True)
    ordered = sums[:, np.argsort(group, kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(multiplicity)])
    outer = np.empty((n_imp, len(sizes), width * width))
    single = multiplicity == 1  # a practice of its own count: one product per entry
    alone = ordered[:, bounds[:-1][single]]
    outer[:, single] = (alone[..., :, None] * alone[..., None, :]).reshape(
        n_imp, -1, width * width)
    for g in np.flatnonzero(~single):
        block = ordered[:, bounds[g]:bounds[g + 1]]
        outer[:, g] = (np.swapaxes(block, 1, 2) @ block).reshape(n_imp, width * width)
    return sizes, multiplicity.astype(float), outer


class _Regression:
    """Observed-row sufficient statistics of one target, predictors first and target last.

    ``cross`` (M, p + 1, p + 1) is the cross-product matrix of [X, y] and ``sums`` (M, J, p + 1)
    its practice totals; ``n`` (J,) the observed rows per practice. At a variance ratio the
    Cholesky factor of the augmented matrix :math:`[[A, c], [c^\top, y^\top y - \\sum_j w_j
    t_j^2]]` holds :math:`\\log|A|`, :math:`L^{-1}c` and :math:`\\mathrm{RSS} = L_{p+1,p+1}^2`.
    The factorisation reads the lower triangle only, so only that is formed on the grid.
    """

    def __init__(self, cross: np.ndarray, sums: np.ndarray, n: np.ndarray) -> None:
        width = sums.shape[2]
        self.p = width - 1
        self.n = n
        self.sums = sums
        ridge = _RIDGE * np.einsum("mkk->mk", cross)
        ridge[:, -1] = 0.0
        self.cross = cross + ridge[:, :, None] * np.eye(width)
        self.lower = np.tril_indices(width)
        self.sizes, self.multiplicity, outer = _grouped_outer(sums, n)
        self.outer = outer[:, :, self.lower[0] * width + self.lower[1]]

    def weights(self, gamma: np.ndarray) -> np.ndarray:
        """:math:`w_j = \\gamma / (1 + \\gamma n_j)` for variance ratios ``gamma`` (M,): (M, J)."""
        return gamma[:, None] / (1.0 + gamma[:, None] * self.n)

    def at(self, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log posterior of rho and the augmented Cholesky factor at variance ratios ``gamma``
        (M, G); shapes (M, G) and (M, G, p + 1, p + 1)."""
        width = self.p + 1
        w = gamma[..., None] / (1.0 + gamma[..., None] * self.sizes)
        augmented = np.array(np.broadcast_to(self.cross[:, None], (*gamma.shape, width, width)))
        augmented[..., self.lower[0], self.lower[1]] -= w @ self.outer
        chol = np.linalg.cholesky(augmented)  # the upper triangle is not read
        diagonal = np.maximum(np.diagonal(chol, axis1=-2, axis2=-1), 1e-150)
        dof = self.n.sum() - self.p
        log_post = (-0.5 * (np.log1p(gamma[..., None] * self.sizes) @ self.multiplicity)
                    - np.sum(np.log(diagonal[..., :-1]), axis=-1)
                    - dof * np.log(diagonal[..., -1]))
        return log_post, chol


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

    ``observed`` (n,) marks the rows observing ``target``, in row order. The state is used
    through :meth:`_Crossproducts.observed` (the observed rows' statistics: the full-data ones
    minus the missing rows' own), :meth:`~_Crossproducts.predict` and
    :meth:`~_Crossproducts.update`, which take and give the missing values in row order, so
    that a draw of another kind can stand beside this one.
    """
    n_imp, _, width = state.data.shape
    n_clusters = state.n_clusters
    predictors = np.delete(np.arange(width), target)
    n_pred = len(predictors)
    dof = int(observed.sum()) - n_pred
    if dof < 1:
        raise TrialstatsError(
            f"Too few observed values to impute score column {target}: {int(observed.sum())} "
            f"observed for {n_pred} predictors."
        )
    cross, sums = state.observed(target)
    order = np.append(predictors, target)
    regression = _Regression(
        cross[:, order][:, :, order], sums[:, :, order],
        np.bincount(state.layout.codes[observed[state.layout.order]],
                    minlength=n_clusters).astype(float),
    )
    n_missing = int(observed.size - observed.sum())
    uniforms = np.stack([rng.random(2) for rng in streams])
    chi2 = np.array([rng.chisquare(dof) for rng in streams])
    z = np.stack([rng.standard_normal(n_pred + n_clusters + n_missing) for rng in streams])
    rho = _draw_rho(regression, uniforms)
    gamma = rho / (1.0 - rho)
    chol = regression.at(gamma[:, None])[1][:, 0]
    w = regression.weights(gamma)
    sigma = np.abs(chol[:, -1, -1]) / np.sqrt(chi2)
    # beta* = L^-T (L^-1 c + sigma z): beta-hat plus a N(0, sigma^2 A^-1) draw
    beta = np.linalg.solve(np.swapaxes(chol[:, :-1, :-1], 1, 2),
                           (chol[:, -1, :-1] + sigma[:, None] * z[:, :n_pred])[..., None])[..., 0]
    residual = regression.sums[:, :, -1] - (regression.sums[:, :, :-1] @ beta[:, :, None])[..., 0]
    u = w * residual + sigma[:, None] * np.sqrt(w) * z[:, n_pred:n_pred + n_clusters]
    coefficients = np.zeros((n_imp, width))  # beta at the predictors, 0 at the target
    coefficients[:, predictors] = beta
    where = state.layout.columns[target]
    fitted = state.predict(target, coefficients)
    fitted[:, where["rank"]] += u[:, where["codes"]]
    state.update(target, fitted + sigma[:, None] * z[:, n_pred + n_clusters:])
