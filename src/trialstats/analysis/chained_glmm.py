r"""Two-level logistic and Poisson draws of binary and count columns in the chained equations.

:mod:`trialstats.analysis.chained` imputes continuous scores by two-level Bayesian linear
regressions; a binary (0/1) or count column is imputed here, from the same predictors (the
intercept, the arm, the covariates and every other score of the completed data), by a
random-intercept GLMM.

Imputation model
----------------
For patient *i* in practice *j* and the column being imputed, :math:`y_{ij}`,

.. math::

    g\{E(y_{ij} \mid b_j)\} = x_{ij}^\top \beta + o_{ij} + b_j, \qquad b_j = \sigma z_j,\;
    z_j \sim N(0, 1),

logit link and Bernoulli :math:`y` for a binary column, log link and Poisson :math:`y` for a
count column (no over-dispersion term). :math:`o_{ij}` is 0, except for the follow-up counts
of an outcome with an ``exposure`` column, where it is :math:`\log(\text{exposure}_{ij})`,
the offset of the analysis model (:mod:`trialstats.analysis.glmm_rows`): the imputation model
of a count with an exposure is the two-level Poisson GLMM with that offset (coefficient fixed
at 1), as Stata's ``mi impute poisson ..., exposure(varname)`` includes
:math:`\ln(\text{exposure})` "with coefficient constrained to 1" (StataCorp, *Stata
Multiple-Imputation Reference Manual*, [MI] mi impute poisson) and mice users put an
``offset()`` term into the imputation GLMM, and because the imputation model must hold every term
of the analysis model to be congenial with it (Meng 1994, *Stat Sci* 9:538); a patient
followed for twice as long is imputed twice the expected count. The offset enters every step
below: the fit, the practices' posteriors and the drawn values' linear predictors. The rows
whose exposure is missing are given :math:`o_{ij}` by the caller
(:mod:`trialstats.analysis.imputation`: the mean observed log exposure; those patients'
counts only serve as predictors of the other columns and are not analysed).

The draw (one per imputation and visit) follows mice 3.15's ``mice.impute.2l.bin`` (read from
its source; after Jolani, Debray, Koffijberg, van Buuren & Moons 2015, *Stat Med* 34:1841;
van Buuren 2018, *Flexible Imputation of Missing Data*, 2nd ed., ch. 7) in steps 1–3 and 5,
and departs from it in step 4:

1. fit the GLMM by maximum likelihood to the rows with :math:`y` observed
   (:func:`~trialstats.analysis.glmm.fit_glmm`, adaptive Gauss–Hermite quadrature), giving
   :math:`\hat\beta`, :math:`\hat\sigma`, the inverse observed information :math:`V` of
   :math:`\hat\beta` (glmer's ``vcov``) and the conditional modes :math:`\hat b_j =
   \hat\sigma \hat z_j` (lme4's ``ranef``) of the :math:`J_o` practices with observed rows;
   predictors aliased with others among those rows are dropped (coefficient 0), as ``lm``;
2. :math:`\beta_* = \hat\beta + L e`, :math:`LL^\top = V`, :math:`e \sim N(0, I)`;
3. :math:`\sigma_*^2 = (\sum_j \hat b_j^2 + \hat\sigma^2) / g`, :math:`g \sim \chi^2_{J_o + 1}`
   (mice's ``2l.bin`` draw of the random-effect variance: an inverse Wishart with
   :math:`J_o + 1` df, here one-dimensional);
4. each practice's effect from its posterior given the drawn parameters and its observed rows,
   :math:`p(z_j \mid \cdot) \propto \phi(z_j) \prod_{i\,\mathrm{obs}} f(y_{ij} \mid
   x_{ij}^\top\beta_* + \sigma_* z_j)`, a log-concave density drawn by inverse CDF on
   :data:`_GRID` nodes spanning :math:`\pm` :data:`_SPAN` of its Laplace SD around its mode,
   the density linear between nodes; a practice without observed rows gets :math:`z_j \sim
   N(0, 1)`. mice's ``2l.bin`` draws every :math:`b_j` from :math:`N(0, \sigma_*^2)`,
   ignoring the practice's observed rows, which weakens the association of a practice's
   imputed values with its observed ones; the posterior draw is the one a proper Bayesian
   (Gibbs) imputation makes;
5. for every missing :math:`y_{ij}`: the linear predictor :math:`\eta_{ij} = x_{ij}^\top
   \beta_* + o_{ij} + \sigma_* z_j` and a uniform :math:`u_{ij}`, and :math:`y_{ij} =
   F^{-1}(u_{ij}; \eta_{ij})` (:func:`draw_values`: :math:`I\{u < \mathrm{expit}(\eta)\}`, or
   the Poisson quantile of :math:`e^\eta`).

Keeping :math:`(\eta, u)` of the last visit lets the delta adjustment
(:mod:`trialstats.analysis.delta`) redraw a binary or count follow-up value on the logit or log
scale, :math:`F^{-1}(u; \eta + \delta)` (offset included in :math:`\eta`, so
:math:`\delta` shifts the log rate per unit of exposure), with the same uniforms:
:math:`\delta = 0` gives the MAR values exactly and the values are monotone in
:math:`\delta`.

The *M* imputations have different completed predictors; their fits of step 1 are made in one
vectorised call with one design per imputation (:func:`_fit_models`), vectorised over
imputations, practices and nodes.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, special, stats

from trialstats.analysis.glmm import fit_glmm
from trialstats.analysis.glmm_likelihood import flatten, glmm_data, loglik_and_gradient
from trialstats.errors import TrialstatsError

__all__ = ["GLMM_FAMILIES", "draw_glmm_column", "draw_values"]

#: Outcome type -> GLMM family of its imputation model.
GLMM_FAMILIES = {"binary": "binomial", "count": "poisson"}
# Nodes of the posterior grid of a practice effect and its half-width in Laplace SDs.
_GRID = 241
_SPAN = 12.0
# Pivoted-QR tolerance (relative to the largest diagonal) for aliased predictors.
_ALIAS_TOL = 1e-9


def draw_values(eta: np.ndarray, uniforms: np.ndarray, family: str) -> np.ndarray:
    """Binary or count values :math:`F^{-1}(u; \\eta)` from linear predictors and uniforms.

    ``binomial``: 1 where :math:`u < \\mathrm{expit}(\\eta)`, else 0; ``poisson``: the
    Poisson quantile at :math:`u` of the mean :math:`e^\\eta`. Both are non-decreasing in
    :math:`\\eta`.
    """
    if family == "binomial":
        return (uniforms < special.expit(eta)).astype(float)
    return stats.poisson.ppf(uniforms, np.exp(eta))


def _independent(X: np.ndarray) -> np.ndarray:
    """Columns of ``X`` to keep: a pivoted QR drops those aliased with earlier ones."""
    _, r, pivot = linalg.qr(X, mode="economic", pivoting=True)
    diagonal = np.abs(np.diag(r))
    rank = int(np.sum(diagonal > _ALIAS_TOL * diagonal[0]))
    return np.sort(pivot[:rank])


def _log_kernel(y: np.ndarray, eta: np.ndarray, family: str) -> np.ndarray:
    """The eta-dependent log-likelihood of each row (Bernoulli-logit or Poisson-log)."""
    if family == "binomial":
        return y * eta - np.logaddexp(0.0, eta)
    return y * eta - np.exp(eta)


def _posterior_z(y, eta0, cluster, n_clusters, sigma, family, rng) -> np.ndarray:
    """Draw each practice's standardised effect :math:`z_j` from its posterior (step 4).

    ``y``, ``eta0`` (fixed part of the linear predictor) and ``cluster`` are the observed rows;
    practices without observed rows draw from :math:`N(0, 1)`.
    """
    counts = np.bincount(cluster, minlength=n_clusters)
    z = np.zeros(n_clusters)
    scale = np.ones(n_clusters)
    # Newton for each mode of h(z) = sum_i l(eta0 + sigma z) - z^2/2 (strictly concave).
    for _ in range(100):
        eta = eta0 + sigma * z[cluster]
        if family == "binomial":
            p = special.expit(eta)
            first, second = y - p, p * (1.0 - p)
        else:
            mu = np.exp(eta)
            first, second = y - mu, mu
        curvature = 1.0 + sigma**2 * np.bincount(cluster, second, n_clusters)
        step = (sigma * np.bincount(cluster, first, n_clusters) - z) / curvature
        z += np.clip(step, -2.0, 2.0)
        scale = curvature**-0.5
        if np.max(np.abs(step)) < 1e-10:
            break
    nodes = z[:, None] + scale[:, None] * np.linspace(-_SPAN, _SPAN, _GRID)  # (J, G)
    log_density = np.zeros_like(nodes)
    np.add.at(log_density, cluster,
              _log_kernel(y[:, None], eta0[:, None] + sigma * nodes[cluster], family))
    log_density -= nodes**2 / 2.0
    density = np.exp(log_density - log_density.max(axis=1, keepdims=True))
    left, right = density[:, :-1], density[:, 1:]
    uniforms = rng.random((n_clusters, 2))
    cdf = np.cumsum(left + right, axis=1)
    cell = np.minimum(np.sum(cdf < uniforms[:, :1] * cdf[:, -1:], axis=1), _GRID - 2)
    f_a = np.take_along_axis(left, cell[:, None], axis=1)[:, 0]
    f_b = np.take_along_axis(right, cell[:, None], axis=1)[:, 0]
    u = uniforms[:, 1]
    # inverse CDF of the density f_a + (f_b - f_a) t on [0, 1] (as chained._draw_rho)
    t = u * (f_a + f_b) / (f_a + np.sqrt(f_a**2 + u * (f_b**2 - f_a**2)))
    width = nodes[:, 1] - nodes[:, 0]
    drawn = nodes[np.arange(n_clusters), cell] + width * t
    prior = rng.standard_normal(n_clusters)
    return np.where(counts > 0, drawn, prior)


def _fit_models(designs, y, codes, offset, family, n_agq, target) -> list[tuple]:
    """Step 1 for every imputation: the imputation model fitted to the observed rows.

    ``designs`` (M, observed rows, predictors) are the imputations' completed predictors;
    the imputations whose designs keep the same predictors (:func:`_independent`; usually
    all) are fitted together, one design per replicate, in one vectorised call
    (:func:`~trialstats.analysis.glmm.fit_glmm`). Returns per imputation the kept predictor
    columns, :math:`\\hat\\beta`, its covariance :math:`V`, :math:`\\hat\\sigma` and the
    standardised conditional modes :math:`\\hat z_j`.
    """
    keeps = [_independent(design) for design in designs]
    fits: list[tuple] = [()] * len(designs)
    for keep in {tuple(keep) for keep in keeps}:
        members = [m for m, kept in enumerate(keeps) if tuple(kept) == keep]
        columns = np.array(keep)
        try:
            glmm = glmm_data(np.broadcast_to(y, (len(members), y.size)),
                             designs[members][:, :, columns], codes, family, offset=offset)
            fit = fit_glmm(glmm, n_agq)
        except TrialstatsError as error:
            raise TrialstatsError(
                f"the two-level {family} imputation model of score column {target} cannot be "
                f"fitted: {error}") from error
        cov = fit.cov[:, :columns.size, :columns.size]
        if not np.all(np.isfinite(cov)):
            raise TrialstatsError(
                f"the two-level {family} imputation model of score column {target} has no "
                "positive-definite information matrix (separation: a predictor determines "
                "the outcome among the observed rows)")
        params = np.column_stack([fit.beta, fit.sigma])
        modes = loglik_and_gradient(flatten(glmm), params, n_agq)[2]
        for i, m in enumerate(members):
            fits[m] = (columns, fit.beta[i], cov[i], float(fit.sigma[i]), modes[i])
    return fits


def draw_glmm_column(
    data: np.ndarray,
    codes: np.ndarray,
    target: int,
    observed: np.ndarray,
    streams: list[np.random.Generator],
    *,
    family: str,
    shift: float,
    n_agq: int,
    offset: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One two-level GLMM draw of the missing entries of column ``target`` in every imputation.

    Parameters
    ----------
    data : ndarray, shape (M, n, q)
        The completed data of the chained equations, columns centred (column 0 the intercept);
        every column but ``target`` is a predictor.
    codes : ndarray of int, shape (n,)
        Practice of each row, ``0 .. J - 1``.
    target : int
        The column imputed; its observed values plus ``shift`` are the 0/1 or count values.
    observed : ndarray of bool, shape (n,)
        Rows whose ``target`` value was observed.
    streams : list of Generator
        One stream per imputation.
    family : {"binomial", "poisson"}
    shift : float
        The centring of ``target`` (the stored values are ``y - shift``).
    n_agq : int
        Quadrature nodes of the fit.
    offset : ndarray, shape (n,), optional
        The offset :math:`o_{ij}` of each row (log exposure of a count; module notes);
        default 0.

    Returns
    -------
    values, eta, uniforms : ndarray, shape (M, number of missing rows)
        The drawn values (uncentred), their linear predictors (offset included) and uniforms
        (module notes).

    Raises
    ------
    TrialstatsError
        If the imputation model cannot be fitted (too few rows or practices, or no
        information matrix, e.g. under separation).
    """
    n_clusters = int(codes.max()) + 1
    predictors = np.delete(np.arange(data.shape[2]), target)
    rows, missing = np.flatnonzero(observed), np.flatnonzero(~observed)
    y = np.round(data[0, rows, target] + shift)
    offset = np.zeros(codes.size) if offset is None else offset
    designs = data[:, :, predictors]
    fits = _fit_models(designs[:, rows], y, codes[rows], offset[rows], family, n_agq, target)
    values, eta, uniforms = (np.empty((len(streams), missing.size)) for _ in range(3))
    for m, rng in enumerate(streams):
        keep, beta_hat, cov, sigma_hat, modes = fits[m]
        beta = np.zeros(predictors.size)
        beta[keep] = beta_hat + np.linalg.cholesky(cov) @ rng.standard_normal(keep.size)
        spread = float(np.sum((sigma_hat * modes) ** 2)) + sigma_hat**2
        sigma = np.sqrt(spread / rng.chisquare(modes.size + 1))
        eta_all = designs[m] @ beta + offset
        z = _posterior_z(y, eta_all[rows], codes[rows], n_clusters, sigma, family, rng)
        eta[m] = eta_all[missing] + sigma * z[codes[missing]]
        uniforms[m] = rng.random(missing.size)
        values[m] = draw_values(eta[m], uniforms[m], family)
    return values, eta, uniforms
