r"""Exact REML for the random-intercept linear mixed model, from per-cluster sums.

Model
-----
For patient :math:`i` in cluster :math:`j = 1, \dots, J` (cluster size :math:`n_j`)

.. math::

    y_{ij} = x_{ij}^\top \beta + b_j + e_{ij}, \qquad
    b_j \sim N(0, \sigma_b^2), \quad e_{ij} \sim N(0, \sigma_e^2),

all independent, so the outcome vector of cluster :math:`j` has the compound-symmetric covariance
:math:`V_j = \sigma_e^2 (I_{n_j} + \gamma\, 1 1^\top)` with variance ratio
:math:`\gamma = \sigma_b^2 / \sigma_e^2 \ge 0`.

Closed forms
------------
With :math:`h_j = 1 + \gamma n_j` and :math:`w_j = \gamma / h_j`,
:math:`V_j^{-1} = \sigma_e^{-2} (I - w_j 1 1^\top)` and :math:`|V_j| = \sigma_e^{2 n_j} h_j`
(Searle, Casella & McCulloch 1992, *Variance Components*, ch. 3). Everything the likelihood needs is
then a weighted sum of the per-cluster sufficient statistics
:math:`X_j^\top X_j, X_j^\top y_j, y_j^\top y_j, s_j = X_j^\top 1, t_j = y_j^\top 1`:

.. math::

    A(\gamma) = \sum_j (X_j^\top X_j - w_j s_j s_j^\top), \quad
    c(\gamma) = \sum_j (X_j^\top y_j - w_j s_j t_j), \quad
    \hat\beta(\gamma) = A^{-1} c, \quad
    \mathrm{RSS}(\gamma) = \sum_j (y_j^\top y_j - w_j t_j^2) - c^\top \hat\beta .

Profiling :math:`\sigma_e^2 = \mathrm{RSS}/(N - p)` out of the REML log-likelihood leaves one
dimension; with :math:`N = \sum_j n_j` and :math:`p = \operatorname{rank} X`,

.. math::

    -2 \ell_R(\gamma) = \sum_j \log h_j + \log |A(\gamma)|
        + (N - p)\,\{1 + \log(2\pi\, \mathrm{RSS}(\gamma) / (N - p))\},

which is exactly lme4's REML deviance with :math:`\theta = \sqrt\gamma` (Bates et al. 2015,
*J. Stat. Softw.* 67(1), section 3: ``ldL2 = sum log h``, ``ldRX2 = log|A|``), so ``reml_loglik`` is
comparable with ``logLik()`` of an ``lmer`` REML fit.

Derivatives are analytic: :math:`dw_j/d\gamma = h_j^{-2}`, :math:`d^2 w_j/d\gamma^2 = -2 n_j
h_j^{-3}`, and by the envelope theorem :math:`d\,\mathrm{RSS}/d\gamma = -\sum_j h_j^{-2} r_j^2`
with cluster residual totals :math:`r_j = t_j - s_j^\top \hat\beta`.

Optimisation
------------
The criterion is evaluated (with its derivative) on a fixed grid, :math:`\gamma = 0` plus
:math:`[10^{-6}, 10^{4}]` log-spaced, for every replicate at once; the sign change of the
derivative next to the lowest grid value brackets the optimum, which is then polished by a
bracketed Newton iteration on the analytic derivative (bisection whenever Newton would leave the
bracket) to rounding level in :math:`\gamma`. The boundary :math:`\gamma = 0` is the solution when
the derivative there is non-negative and no interior stationary point has a lower criterion.
Everything is vectorised over leading "batch" (replicate) dimensions; no :math:`N \times N`
matrix is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from trialstats.analysis.batched import CellSums, FitDiagnostics, FlatSums, rank_deficient
from trialstats.analysis.roots import bracketed_newton
from trialstats.errors import TrialstatsError

__all__ = [
    "ClusterSums",
    "ProfileTerms",
    "RemlFit",
    "fit_reml",
    "profile_terms",
]

# Grid for bracketing the optimum of the profiled criterion: gamma = 0 plus one point a decade.
_GRID = np.concatenate([[0.0], np.logspace(-6.0, 4.0, 11)])
# Least-squares residual sum of squares below this share of y'y counts as an exact fit.
_EXACT_FIT_TOL = 1e-13



@dataclass(frozen=True)
class ClusterSums(CellSums):
    """Per-cluster sufficient statistics of a linear model with a random cluster intercept.

    All arrays may carry the same leading batch dimensions ``...`` (for example simulation
    replicates). ``J`` is the number of cluster slots and ``p`` the number of columns of ``X``.

    Attributes
    ----------
    n : ndarray, shape (..., J)
        Observations per cluster; 0 is allowed (an empty cluster contributes nothing).
    xtx : ndarray, shape (..., J, p, p)
        :math:`X_j^\\top X_j`.
    xty : ndarray, shape (..., J, p)
        :math:`X_j^\\top y_j`.
    yty : ndarray, shape (..., J)
        :math:`y_j^\\top y_j`.
    xsum : ndarray, shape (..., J, p)
        Column totals :math:`X_j^\\top 1`.
    ysum : ndarray, shape (..., J)
        Outcome totals :math:`y_j^\\top 1`.
    """

    n: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yty: np.ndarray
    xsum: np.ndarray
    ysum: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.n)
        if n.ndim < 1:
            raise TrialstatsError("ClusterSums.n must have a cluster dimension.")
        batch, n_slots = n.shape[:-1], n.shape[-1]
        p = np.shape(self.xsum)[-1]
        expected = {
            "xtx": (*batch, n_slots, p, p),
            "xty": (*batch, n_slots, p),
            "yty": (*batch, n_slots),
            "xsum": (*batch, n_slots, p),
            "ysum": (*batch, n_slots),
        }
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise TrialstatsError(
                    f"ClusterSums.{name} has shape {np.shape(getattr(self, name))}, "
                    f"expected {shape} to match n {n.shape} and p = {p}."
                )
        if np.any(n < 0):
            raise TrialstatsError("ClusterSums.n has a negative cluster size.")

    @classmethod
    def from_data(cls, y: np.ndarray, X: np.ndarray, cluster_codes: np.ndarray,
                  n_clusters: int | None = None) -> ClusterSums:
        """Compute the sums from patient-level data.

        Parameters
        ----------
        y : array_like, shape (N,) or (..., N)
            Outcome. Leading dimensions are replicates that share ``cluster_codes``.
        X : array_like, shape (N, p) or (..., N, p)
            Fixed-effects design (include the intercept column yourself); broadcast against ``y``.
        cluster_codes : array_like of int, shape (N,)
            Cluster of each row, coded ``0 .. n_clusters - 1``.
        n_clusters : int, optional
            Number of cluster slots ``J``; defaults to ``max(cluster_codes) + 1``. Slots with no
            rows get ``n = 0``.

        Returns
        -------
        ClusterSums
            With batch shape equal to the broadcast leading shape of ``y`` and ``X``.
        """
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        codes = np.asarray(cluster_codes)
        if codes.ndim != 1 or y.ndim < 1 or X.ndim < 2:
            raise TrialstatsError("Need y of shape (..., N), X of shape (..., N, p), codes (N,).")
        n_obs = codes.shape[0]
        if y.shape[-1] != n_obs or X.shape[-2] != n_obs:
            raise TrialstatsError(
                f"y has {y.shape[-1]} rows, X has {X.shape[-2]} and cluster_codes {n_obs}."
            )
        if not np.issubdtype(codes.dtype, np.integer):
            raise TrialstatsError("cluster_codes must be integers 0 .. n_clusters - 1.")
        if n_obs and codes.min() < 0:
            raise TrialstatsError("cluster_codes must be non-negative.")
        n_slots = int(codes.max()) + 1 if n_obs else 0
        if n_clusters is not None:
            if n_clusters < n_slots:
                raise TrialstatsError(
                    f"n_clusters = {n_clusters} but cluster_codes go up to {n_slots - 1}."
                )
            n_slots = int(n_clusters)
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
            raise TrialstatsError("y and X must be finite (drop incomplete rows before fitting).")

        batch = np.broadcast_shapes(y.shape[:-1], X.shape[:-2])
        indicator = sparse.csr_matrix(
            (np.ones(n_obs), (codes, np.arange(n_obs))), shape=(n_slots, n_obs)
        )

        def cluster_total(values: np.ndarray, lead: int) -> np.ndarray:
            # values (*lead dims, N, *tail) -> (*batch, J, *tail), summing rows of each cluster;
            # sums that depend on X alone are formed once and broadcast over y's replicates
            tail = values.shape[lead + 1 :]
            moved = np.moveaxis(values, lead, 0).reshape(n_obs, -1)
            totals = np.asarray(indicator @ moved).reshape(n_slots, *values.shape[:lead], *tail)
            totals = np.moveaxis(totals, 0, lead)
            return np.array(np.broadcast_to(totals, (*batch, n_slots, *tail)))

        x_lead, y_lead = X.ndim - 2, y.ndim - 1
        xy = X * y[..., None]
        n = np.bincount(codes, minlength=n_slots).astype(float)
        return cls(
            n=np.array(np.broadcast_to(n, (*batch, n_slots))),
            xtx=cluster_total(X[..., :, :, None] * X[..., :, None, :], x_lead),
            xty=cluster_total(xy, xy.ndim - 2),
            yty=cluster_total(y * y, y_lead),
            xsum=cluster_total(X, x_lead),
            ysum=cluster_total(y, y_lead),
        )


@dataclass(frozen=True)
class RemlFit(FitDiagnostics):
    """REML estimates and the :class:`~trialstats.analysis.batched.FitDiagnostics` of the fit;
    every array has the batch shape of the input sums (plus trailing dims).

    Attributes
    ----------
    beta : ndarray, shape (..., p)
        Fixed effects (generalised least squares at the REML variance components).
    vcov : ndarray, shape (..., p, p)
        Model-based covariance :math:`\\hat\\sigma_e^2 A(\\hat\\gamma)^{-1}` (lme4's ``vcov``).
    var_cluster, var_residual : ndarray, shape (...)
        :math:`\\hat\\sigma_b^2` and :math:`\\hat\\sigma_e^2`.
    gamma : ndarray, shape (...)
        :math:`\\hat\\gamma = \\hat\\sigma_b^2 / \\hat\\sigma_e^2`.
    boundary : ndarray of bool, shape (...)
        True when :math:`\\hat\\sigma_b^2 = 0` (lme4's singular fit).
    """

    beta: np.ndarray
    vcov: np.ndarray
    var_cluster: np.ndarray
    var_residual: np.ndarray
    gamma: np.ndarray


@dataclass(frozen=True)
class _Flat(FlatSums):
    """:class:`~trialstats.analysis.batched.FlatSums` over clusters (cells ``J``), with
    ``stacked`` (B, J, 1 + p + p*p): :math:`t_j^2`, :math:`s_j t_j`, :math:`s_j s_j'` side by
    side."""

    stacked: np.ndarray


def _flatten(sums: ClusterSums) -> _Flat:
    n_slots, p = np.shape(sums.n)[-1], sums.n_params
    n = np.asarray(sums.n, dtype=float).reshape(-1, n_slots)
    xsum = np.asarray(sums.xsum, dtype=float).reshape(-1, n_slots, p)
    ysum = np.asarray(sums.ysum, dtype=float).reshape(-1, n_slots)
    return _Flat(
        n=n,
        xsum=xsum,
        ysum=ysum,
        stacked=np.concatenate(
            [
                ysum[:, :, None] ** 2,
                xsum * ysum[:, :, None],
                (xsum[:, :, :, None] * xsum[:, :, None, :]).reshape(-1, n_slots, p * p),
            ],
            axis=-1,
        ),
        xtx=np.asarray(sums.xtx, dtype=float).reshape(-1, n_slots, p, p).sum(axis=1),
        xty=np.asarray(sums.xty, dtype=float).reshape(-1, n_slots, p).sum(axis=1),
        yty=np.asarray(sums.yty, dtype=float).reshape(-1, n_slots).sum(axis=1),
        dof=n.sum(axis=1) - p,
    )


def _replicate_label(index: np.ndarray, batch_shape: tuple[int, ...]) -> str:
    if not batch_shape:
        return "the data"
    first = np.unravel_index(int(index[0]), batch_shape)
    return f"{index.size} replicate(s), first at batch index {tuple(int(i) for i in first)}"


def _validate(flat: _Flat, batch_shape: tuple[int, ...]) -> None:
    """Raise TrialstatsError for data the model cannot be fitted to."""
    p = flat.xtx.shape[-1]
    if not (np.all(np.isfinite(flat.xtx)) and np.all(np.isfinite(flat.stacked))):
        raise TrialstatsError("The cluster sums contain non-finite values.")
    bad = np.flatnonzero(flat.dof <= 0)
    if bad.size:
        raise TrialstatsError(
            f"{_replicate_label(bad, batch_shape)}: {p} fixed-effect columns need more than "
            f"{p} observations."
        )
    bad = np.flatnonzero(rank_deficient(flat.xtx))
    if bad.size:
        raise TrialstatsError(
            f"The fixed-effects design is rank deficient in {_replicate_label(bad, batch_shape)} "
            "(a column is all zero or a linear combination of others, e.g. a covariate level "
            "with no patients or a cluster-level covariate aliased with arm); drop or merge "
            "the offending columns."
        )
    ols = np.linalg.solve(flat.xtx, flat.xty[:, :, None])[:, :, 0]
    ols_rss = flat.yty - np.sum(flat.xty * ols, axis=-1)
    bad = np.flatnonzero(ols_rss <= _EXACT_FIT_TOL * flat.yty)
    if bad.size:
        raise TrialstatsError(
            f"{_replicate_label(bad, batch_shape)}: the outcome is an exact linear function of "
            "the covariates (no residual variation), so no variance can be estimated."
        )
    bad = np.flatnonzero(np.sum(flat.n > 0, axis=-1) < 2)
    if bad.size:
        raise TrialstatsError(
            f"{_replicate_label(bad, batch_shape)}: a random cluster intercept needs at least "
            "two non-empty clusters."
        )
    bad = np.flatnonzero(~np.any(flat.n >= 2, axis=-1))
    if bad.size:
        raise TrialstatsError(
            f"{_replicate_label(bad, batch_shape)}: every cluster has a single observation, so "
            "the cluster and residual variances cannot be separated."
        )


@dataclass(frozen=True)
class ProfileTerms:
    """Pieces of the REML likelihood at given variance ratios, with analytic derivatives.

    Arrays have shape ``gamma.shape`` (the batch shape of the sums, optionally followed by a grid
    axis). ``d_`` / ``d2_`` prefixes are first / second derivatives with respect to ``gamma``.

    Attributes
    ----------
    gamma : ndarray
        The variance ratios evaluated.
    dof : ndarray
        :math:`N - p`.
    rss, d_rss, d2_rss : ndarray
        :math:`\\mathrm{RSS}(\\gamma)` (generalised residual sum of squares, in units of
        :math:`\\sigma_e^2`) and derivatives.
    logdet_a, d_logdet_a, d2_logdet_a : ndarray
        :math:`\\log|A(\\gamma)|` and derivatives.
    sum_log_h, sum_n_h, sum_n2_h2 : ndarray
        :math:`\\sum_j \\log h_j`, its first derivative :math:`\\sum_j n_j/h_j` and minus its
        second derivative :math:`\\sum_j n_j^2/h_j^2`.
    beta : ndarray, shape (..., p)
        :math:`\\hat\\beta(\\gamma)`.
    a_inv : ndarray, shape (..., p, p)
        :math:`A(\\gamma)^{-1}`.
    d_a : ndarray, shape (..., p, p)
        :math:`dA/d\\gamma = -\\sum_j h_j^{-2} s_j s_j^\\top`.
    """

    gamma: np.ndarray
    dof: np.ndarray
    rss: np.ndarray
    d_rss: np.ndarray
    d2_rss: np.ndarray
    logdet_a: np.ndarray
    d_logdet_a: np.ndarray
    d2_logdet_a: np.ndarray
    sum_log_h: np.ndarray
    sum_n_h: np.ndarray
    sum_n2_h2: np.ndarray
    beta: np.ndarray
    a_inv: np.ndarray
    d_a: np.ndarray

    def criterion(self) -> np.ndarray:
        """Profiled criterion :math:`(N-p)\\log\\mathrm{RSS} + \\sum\\log h_j + \\log|A|`.

        Equals :math:`-2\\ell_R(\\gamma) - (N-p)\\{1 + \\log(2\\pi/(N-p))\\}`.
        """
        return self.dof * np.log(self.rss) + self.sum_log_h + self.logdet_a

    def d_criterion(self) -> np.ndarray:
        """First derivative of :meth:`criterion` with respect to ``gamma``."""
        return self.dof * self.d_rss / self.rss + self.sum_n_h + self.d_logdet_a

    def d2_criterion(self) -> np.ndarray:
        """Second derivative of :meth:`criterion` with respect to ``gamma``."""
        ratio = self.d_rss / self.rss
        return (
            self.dof * (self.d2_rss / self.rss - ratio**2) - self.sum_n2_h2 + self.d2_logdet_a
        )

    def reml_loglik(self) -> np.ndarray:
        """REML log-likelihood with :math:`\\sigma_e^2` profiled out (lme4's scale)."""
        return -0.5 * (self.criterion() + self.dof * (1.0 + np.log(2.0 * np.pi / self.dof)))


def _weighted_sums(
    flat: _Flat, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sum_j weight_j (t_j^2, s_j t_j, s_j s_j')`` for weights of shape (B, G, J)."""
    n_rep, n_pts, _ = weights.shape
    p = flat.xtx.shape[-1]
    total = weights @ flat.stacked
    return total[..., 0], total[..., 1 : 1 + p], total[..., 1 + p :].reshape(n_rep, n_pts, p, p)


def _quadratic(vector: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``v' M v`` over leading dimensions."""
    return np.sum((matrix @ vector[..., None])[..., 0] * vector, axis=-1)


def _evaluate(flat: _Flat, gamma: np.ndarray, order: int = 2) -> ProfileTerms:
    """Evaluate the profile pieces; ``gamma`` has shape (B, G) for B replicates, G points.

    Every sum over clusters is a weighted sum of the stacked statistics ``(t_j^2, s_j t_j,
    s_j s_j')`` with weights :math:`w_j` and its derivatives, so the cost per point is one small
    matrix product plus :math:`O(p^3)`. With ``order=1`` the second derivatives are NaN.
    """
    n = flat.n[:, None, :]
    g = gamma[:, :, None]
    h = 1.0 + g * n  # (B, G, J)
    # weights w_j, dw_j/dgamma and (order 2) d2w_j/dgamma2, summed in one matrix product
    weights = [g / h, 1.0 / h**2] + ([-2.0 * n / h**3] if order >= 2 else [])
    sums = _weighted_sums(flat, np.concatenate(weights, axis=1))
    n_pts = gamma.shape[1]
    (yy0, xy0, xx0), (yy1, xy1, xx1) = (
        tuple(part[:, k * n_pts : (k + 1) * n_pts] for part in sums) for k in range(2)
    )

    a = flat.xtx[:, None] - xx0
    c = flat.xty[:, None] - xy0
    a_inv = np.linalg.inv(a)
    beta = (a_inv @ c[..., None])[..., 0]
    beta += (a_inv @ (c - (a @ beta[..., None])[..., 0])[..., None])[..., 0]  # one refinement
    rss = flat.yty[:, None] - yy0 - np.sum(c * beta, axis=-1)
    sign, logdet_a = np.linalg.slogdet(a)
    logdet_a = np.where(sign > 0, logdet_a, np.nan)

    # sum_j wp_j r_j^2 with cluster residual totals r_j = t_j - s_j' beta
    d_rss = -(yy1 - 2.0 * np.sum(beta * xy1, axis=-1) + _quadratic(beta, xx1))
    ainv_xx1 = a_inv @ xx1
    d_logdet_a = -np.trace(ainv_xx1, axis1=-2, axis2=-1)

    if order >= 2:
        yy2, xy2, xx2 = (part[:, 2 * n_pts :] for part in sums)
        grad = xy1 - (xx1 @ beta[..., None])[..., 0]  # sum_j wp_j r_j s_j
        d2_rss = -(yy2 - 2.0 * np.sum(beta * xy2, axis=-1) + _quadratic(beta, xx2))
        d2_rss -= 2.0 * _quadratic(grad, a_inv)
        d2_logdet_a = -np.trace(a_inv @ xx2, axis1=-2, axis2=-1) - np.sum(
            ainv_xx1 * np.swapaxes(ainv_xx1, -1, -2), axis=(-2, -1)
        )
    else:
        d2_rss = d2_logdet_a = np.full(gamma.shape, np.nan)
    n_h = n / h
    return ProfileTerms(
        gamma=gamma,
        dof=np.broadcast_to(flat.dof[:, None], gamma.shape),
        rss=rss,
        d_rss=d_rss,
        d2_rss=d2_rss,
        logdet_a=logdet_a,
        d_logdet_a=d_logdet_a,
        d2_logdet_a=d2_logdet_a,
        sum_log_h=np.log1p(g * n).sum(axis=-1),
        sum_n_h=n_h.sum(axis=-1),
        sum_n2_h2=(n_h**2).sum(axis=-1),
        beta=beta,
        a_inv=a_inv,
        d_a=-xx1,
    )


def _unflatten_terms(terms: ProfileTerms, batch_shape: tuple[int, ...]) -> ProfileTerms:
    def reshape(name: str) -> np.ndarray:
        value = getattr(terms, name)
        return value.reshape((*batch_shape, *value.shape[1:]))

    return ProfileTerms(**{name: reshape(name) for name in ProfileTerms.__dataclass_fields__})


def profile_terms(sums: ClusterSums, gamma: np.ndarray) -> ProfileTerms:
    """Profiled REML pieces and their analytic derivatives at given variance ratios.

    Parameters
    ----------
    sums : ClusterSums
        Data, batch shape ``S``.
    gamma : array_like
        Variance ratios :math:`\\sigma_b^2/\\sigma_e^2 \\ge 0`, of shape ``S`` or ``S + (G,)``.

    Returns
    -------
    ProfileTerms
        Arrays shaped like ``gamma`` (plus trailing ``p`` / ``(p, p)`` for ``beta`` / ``a_inv``).
    """
    batch = sums.batch_shape
    gamma = np.asarray(gamma, dtype=float)
    if gamma.shape[: len(batch)] != batch or gamma.ndim not in (len(batch), len(batch) + 1):
        raise TrialstatsError(f"gamma of shape {gamma.shape} does not fit batch shape {batch}.")
    if np.any(gamma < 0) or not np.all(np.isfinite(gamma)):
        raise TrialstatsError("gamma must be finite and non-negative.")
    flat = _flatten(sums)
    _validate(flat, batch)
    has_grid = gamma.ndim == len(batch) + 1
    grid = gamma.reshape(flat.n.shape[0], -1)
    terms = _evaluate(flat, grid)
    if has_grid:
        return _unflatten_terms(terms, batch)
    squeezed = ProfileTerms(
        **{
            name: np.take(getattr(terms, name), 0, axis=1)
            for name in ProfileTerms.__dataclass_fields__
        }
    )
    return _unflatten_terms(squeezed, batch)


def fit_reml(sums: ClusterSums, *, xtol: float = 1e-10, max_iter: int = 200) -> RemlFit:
    """Fit the random-intercept model by REML, vectorised over the batch dimensions.

    Parameters
    ----------
    sums : ClusterSums
        Per-cluster sufficient statistics, batch shape ``S``.
    xtol : float, default 1e-10
        Relative size of the last step of the Newton polish on :math:`\\gamma` (the returned
        value is then accurate to rounding level, see
        :func:`~trialstats.analysis.roots.bracketed_newton`).
    max_iter : int, default 200
        Iteration limit of the polish; replicates that hit it get ``converged=False``.

    Returns
    -------
    RemlFit
        Arrays of batch shape ``S``.

    Raises
    ------
    TrialstatsError
        If the design is rank deficient, there are no more observations than columns, fewer
        than two non-empty clusters, or no cluster with two or more observations (in any
        replicate).

    Notes
    -----
    Maximises the profiled REML log-likelihood described in the module docstring over
    :math:`\\gamma \\in [0, 10^4]` (ICC up to 0.9999). A fit whose derivative has not changed sign
    by the top of that range is returned with ``converged=False``.
    """
    batch = sums.batch_shape
    flat = _flatten(sums)
    _validate(flat, batch)
    n_rep = flat.n.shape[0]

    grid = np.broadcast_to(_GRID, (n_rep, _GRID.size))
    on_grid = _evaluate(flat, grid, order=1)
    crit, slope = on_grid.criterion(), on_grid.d_criterion()
    crit = np.where(np.isfinite(crit), crit, np.inf)

    # Interior candidates: intervals where the derivative turns from negative to non-negative.
    turns = (slope[:, :-1] < 0) & (slope[:, 1:] >= 0)
    interval_value = np.where(turns, np.minimum(crit[:, :-1], crit[:, 1:]), np.inf)
    best = np.argmin(interval_value, axis=1)
    rows = np.arange(n_rep)
    has_interior = np.isfinite(interval_value[rows, best])
    at_zero_ok = slope[:, 0] >= 0

    # Without a stationary point or a valid boundary the grid minimum is reported, not converged.
    gamma = np.where(at_zero_ok, 0.0, grid[rows, np.argmin(crit, axis=1)])
    converged = at_zero_ok.copy()
    interior = np.flatnonzero(has_interior)
    if interior.size:
        sub = flat.take(interior)
        cache = {"index": np.arange(interior.size), "flat": sub}

        def score(x: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if index.size != cache["index"].size:  # the active set only ever shrinks
                cache["flat"] = sub.take(index)
                cache["index"] = index
            terms = _evaluate(cache["flat"], x[:, None])
            return terms.d_criterion()[:, 0], terms.d2_criterion()[:, 0]

        root, ok = bracketed_newton(
            score,
            grid[interior, best[interior]],
            grid[interior, best[interior] + 1],
            slope[interior, best[interior]],
            slope[interior, best[interior] + 1],
            xtol=xtol,
            max_iter=max_iter,
        )
        # Where gamma = 0 is also a local optimum, keep the better of the two.
        take_root = ~at_zero_ok[interior]
        both = np.flatnonzero(~take_root)
        if both.size:
            root_crit = _evaluate(sub.take(both), root[both, None], order=1).criterion()[:, 0]
            take_root[both] = root_crit < crit[interior[both], 0]
        gamma[interior] = np.where(take_root, root, 0.0)
        converged[interior] = np.where(take_root, ok, True)

    final = _evaluate(flat, gamma[:, None])
    var_residual = final.rss[:, 0] / flat.dof
    fit = RemlFit(
        beta=final.beta[:, 0],
        vcov=var_residual[:, None, None] * final.a_inv[:, 0],
        var_cluster=gamma * var_residual,
        var_residual=var_residual,
        gamma=gamma,
        reml_loglik=final.reml_loglik()[:, 0],
        converged=converged & np.isfinite(final.criterion()[:, 0]),
        boundary=gamma == 0,
        n_obs=flat.n.sum(axis=1).astype(np.int64),
        n_clusters=np.sum(flat.n > 0, axis=1),
    )
    return fit.reshaped(batch)
