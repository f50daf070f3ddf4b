r"""Validity of the analyses of a binary outcome: type I error and coverage by simulation.

Generating model
----------------
As :mod:`trialstats.power.simulate_binary`: :math:`J` clusters randomised 1:1 (the first
:math:`J/2` control), cluster *j* recruits :math:`m_j = \max(2, \operatorname{round}(G_j))`,
:math:`G_j \sim \operatorname{Gamma}` with mean *m* and coefficient of variation *cv*, and has

.. math::

    y_j \sim \operatorname{Binomial}\{m_j, \operatorname{expit}(\beta_0 + \beta_1 T_j + b_j)\},
    \qquad b_j \sim N(0, \sigma_b^2), \qquad \sigma_b^2 = \frac{\rho\,\pi^2/3}{1 - \rho},

events, with :math:`\beta_0 = \operatorname{logit} p_0` (``prevalence``: the control risk of a
typical cluster, :math:`b_j = 0`) and :math:`\rho` the latent-scale ICC. Without patient
covariates a cluster is summarised exactly by :math:`(m_j, y_j)`, so every analysis below works on
cluster summaries, vectorised over replicates. Trials without an effect (:math:`\beta_1 = 0`)
give the type I error; trials with :math:`\beta_1 = \log \mathrm{OR}` give the coverage, each
interval judged against the parameter its method estimates:

- the GLMM: the cluster-specific log odds ratio :math:`\beta_1`;
- GEE: the population-averaged log odds ratio :math:`\operatorname{logit} P_1 -
  \operatorname{logit} P_0`, :math:`P_a = E\{\operatorname{expit}(\beta_0 + \beta_1 a + b)\}`
  (by 200-node Gauss–Hermite quadrature);
- the t test of practice proportions: the risk difference :math:`P_1 - P_0` (each practice's
  proportion is unbiased for its arm's :math:`P_a` whatever its size);
- the Hayes–Moulton ratio (log of observed over expected events, expected from the pooled risk,
  which is the stage-1 logistic regression without covariates): its target
  :math:`E\log(y_j/m_j)` depends on the cluster sizes and is undefined when a practice has no
  events, so only its type I error is estimated (coverage NaN).

Null and non-null trials of a cell come from independent random streams: cell *i* (in the
order of :func:`binary_designs`) draws its null trials from scenario :math:`2i` and its
non-null trials from :math:`2i + 1` of :func:`trialstats.simulation.draw.replicate_rng`, one
stream per trial. Monte Carlo standard errors are :math:`\sqrt{\hat p(1 - \hat p)/R}` over the
:math:`R` trials a method could analyse (Morris, White & Crowther 2019).

Analyses
--------
- ``logistic GLMM``: the primary analysis (:func:`trialstats.analysis.glmm.fit_glmm`, maximum
  likelihood, :data:`~trialstats.analysis.glmm.DEFAULT_N_AGQ`-node adaptive quadrature), Wald
  test on ``between-within`` (:math:`J - 2`), ``residual`` (patients minus 2) df or ``z``; a
  fit that did not converge is not analysed.
- GEE with exchangeable working correlation and logit link (:func:`gee_summaries`, the
  estimator of :func:`trialstats.analysis.gee_glm.gee_glm` on cluster summaries): the
  Mancl–DeRouen, Kauermann–Carroll and Fay–Graubard SEs, each with *t* on :math:`J - 2` (the
  clusters minus the two parameters) and ``z``, and Fay–Graubard also on its own df
  :math:`\tilde d_H`. Not analysed when the iteration did not converge (e.g. an arm without
  events). As in ``gee_glm``, a moment estimate of the working correlation at or below
  :math:`-1/(n_{max} - 1)` is replaced by 0 (independence).
- The cluster-level analyses of :mod:`trialstats.analysis.binary_sensitivity` without
  covariates: the pooled-variance *t* test (:math:`J - 2` df) of practice proportions (risk
  difference) and of :math:`\log(O_j/E_j)` (Hayes & Moulton), the latter not analysed when a
  practice has no events.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from trialstats.analysis.glmm import DEFAULT_N_AGQ, fit_glmm
from trialstats.analysis.glmm_likelihood import binary_cluster_data
from trialstats.analysis.robust import FG_BOUND, fay_graubard_df, fay_graubard_factors
from trialstats.contract import (
    ADJUSTED,
    CLUSTER_DF,
    FAY_GRAUBARD,
    FAY_GRAUBARD_DF,
    KAUERMANN_CARROLL,
    MANCL_DEROUEN,
    UNADJUSTED,
)
from trialstats.errors import TrialstatsError
from trialstats.simulation.analyse import MethodTests, rejects
from trialstats.simulation.draw import binary_events, draw_glmm_replicates
from trialstats.simulation.validity import SIZE_BAND, mc_rate

__all__ = [
    "BINARY_COLUMNS",
    "CLUSTERS",
    "GLMM",
    "ICCS",
    "PREVALENCES",
    "BinaryDesign",
    "BinarySettings",
    "GeeSummaryFit",
    "binary_designs",
    "binary_validity_study",
    "draw_binary_trials",
    "gee_summaries",
    "marginal_risks",
    "method_tests",
]

#: Total numbers of clusters, control prevalences and latent-scale ICCs of the grid.
CLUSTERS = (6, 10, 20, 40)
PREVALENCES = (0.05, 0.1, 0.3)
ICCS = (0.01, 0.05)
#: ``analysis`` label of the primary logistic GLMM in the study table.
GLMM = "logistic GLMM"

#: Columns of the study table, in order.
BINARY_COLUMNS = (
    "analysis", "method", "estimand", "n_clusters", "prevalence", "icc", "cv", "cluster_size",
    "odds_ratio", "target", "alpha", "reps", "n_analysed", "type_i_error",
    "type_i_error_mc_se", "n_analysed_coverage", "coverage", "coverage_mc_se", "median_df",
    "se_ratio", "boundary_share", "n_not_converged", "within_band", "seed",
)

# as trialstats.analysis.gee_glm: Fisher steps and relative step tolerance
_GEE_MAX_ITER = 100
_GEE_TOL = 1e-10


@dataclass(frozen=True)
class BinarySettings:
    """Design values held fixed across the grid.

    Attributes
    ----------
    cluster_size : float
        Mean recruited patients per cluster.
    cv : float
        Coefficient of variation of cluster sizes.
    odds_ratio : float
        Cluster-specific odds ratio of the non-null trials.
    alpha : float
        Two-sided level.
    n_agq : int
        Quadrature nodes of the GLMM fits.
    """

    cluster_size: float = 50.0
    cv: float = 0.6
    odds_ratio: float = 1.5
    alpha: float = 0.05
    n_agq: int = DEFAULT_N_AGQ

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise TrialstatsError("The significance level alpha must lie in (0, 1).")
        if self.odds_ratio <= 0 or self.odds_ratio == 1:
            raise TrialstatsError("The non-null trials need an odds ratio > 0 other than 1.")
        if self.cluster_size < 2 or self.cv < 0:
            raise TrialstatsError("Mean cluster size must be at least 2 and its CV >= 0.")


@dataclass(frozen=True)
class BinaryDesign:
    """One cell: total clusters (1:1), control prevalence, latent ICC, log odds ratio."""

    n_clusters: int
    prevalence: float
    icc: float
    log_or: float = 0.0

    @property
    def sigma(self) -> float:
        """Cluster SD on the logit scale, :math:`\\sqrt{\\rho(\\pi^2/3)/(1-\\rho)}`."""
        return math.sqrt(self.icc * (math.pi**2 / 3) / (1 - self.icc))

    @property
    def arm(self) -> np.ndarray:
        """Arm of each cluster: the first half control (0), the rest intervention (1)."""
        return np.repeat([0.0, 1.0], self.n_clusters // 2)


def binary_designs(
    clusters: Sequence[int] = CLUSTERS, prevalences: Sequence[float] = PREVALENCES,
    iccs: Sequence[float] = ICCS,
) -> list[BinaryDesign]:
    """The null cells of the grid (clusters slowest, then prevalence, then ICC)."""
    odd = [j for j in clusters if j % 2 or j < 4]
    bad = [p for p in prevalences if not 0 < p < 1] + [r for r in iccs if not 0 <= r < 1]
    if odd or bad:
        raise TrialstatsError(
            "Numbers of clusters must be even and at least 4, prevalences in (0, 1) and ICCs "
            f"in [0, 1); got clusters {list(clusters)}, prevalences {list(prevalences)}, "
            f"ICCs {list(iccs)}."
        )
    return [BinaryDesign(j, p, icc) for j, p, icc in itertools.product(clusters, prevalences,
                                                                        iccs)]


def draw_binary_trials(
    design: BinaryDesign, settings: BinarySettings, *, reps: int, seed: int, scenario: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Events and cluster sizes (both ``(reps, J)``), the first two arguments of
    :func:`method_tests`; trial *r* from :func:`~trialstats.simulation.draw.replicate_rng`
    ``(seed, scenario, r)``."""
    sizes, normal, uniform = draw_glmm_replicates(
        seed, reps, design.n_clusters, settings.cluster_size, settings.cv, 2, scenario=scenario)
    eta = special.logit(design.prevalence) + design.log_or * design.arm + design.sigma * normal
    return binary_events(uniform, sizes, special.expit(eta)), sizes


def marginal_risks(design: BinaryDesign, nodes: int = 200) -> tuple[float, float]:
    """:math:`P_0, P_1`: the arms' population-averaged risks, by Gauss–Hermite quadrature."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    base = special.logit(design.prevalence) + design.sigma * z
    return float(w @ special.expit(base)), float(w @ special.expit(base + design.log_or))


@dataclass(frozen=True)
class GeeSummaryFit:
    """Batch GEE fits from cluster summaries; arrays (R, ...) over replicates."""

    beta: np.ndarray  # (R, p)
    alpha: np.ndarray  # (R,)
    vcov: dict[str, np.ndarray]  # label -> (R, p, p)
    fg_df: np.ndarray  # (R,) Fay-Graubard df of the arm coefficient
    analysed: np.ndarray  # (R,) bool
    converged: np.ndarray  # (R,) bool


def gee_summaries(events: np.ndarray, sizes: np.ndarray, X: np.ndarray) -> GeeSummaryFit:
    r"""Exchangeable logit-link GEE of 0/1 outcomes with cluster-level covariates only.

    When :math:`x_{ij} = x_j` within cluster *j*, :func:`trialstats.analysis.gee_glm.gee_glm`
    reduces to cluster summaries :math:`(n_j, O_j)`: with :math:`v_j = \mu_j(1 - \mu_j)` and
    :math:`d_j = 1 + (n_j - 1)\alpha`, the Pearson sums are :math:`\sum_i e_{ij} = (O_j -
    n_j\mu_j)/\sqrt{v_j}` and :math:`\sum_i e_{ij}^2 = \{O_j(1-\mu_j)^2 + (n_j - O_j)\mu_j^2\}/v_j`,
    and :math:`M_j = (v_j n_j/d_j)\,x_j x_j^\top`, :math:`U_j = x_j(O_j - n_j\mu_j)/d_j`. The
    practice's hat matrix :math:`H_{jj} = (v_j x_j^\top B^{-1}x_j/d_j)\,11^\top` has the one
    non-zero eigenvalue :math:`\lambda_j = \operatorname{tr}(M_j B^{-1})` on :math:`1`, so
    the Mancl–DeRouen and Kauermann–Carroll scores are :math:`(1 - \lambda_j)^{-1}U_j` and
    :math:`(1 - \lambda_j)^{-1/2}U_j`; Fay–Graubard scales :math:`U_j` coordinatewise
    (:func:`~trialstats.analysis.robust.fay_graubard_factors`, bound
    :data:`~trialstats.analysis.robust.FG_BOUND`).

    Parameters
    ----------
    events, sizes : ndarray (R, J)
        Events and patients per cluster.
    X : ndarray (J, p)
        Cluster-level design, full rank; column 1 is the tested coefficient (arm).

    Returns
    -------
    GeeSummaryFit
        ``vcov`` keyed by :data:`~trialstats.contract.MANCL_DEROUEN`,
        :data:`~trialstats.contract.KAUERMANN_CARROLL` and
        :data:`~trialstats.contract.FAY_GRAUBARD`. A replicate is not analysed when a fitted
        risk reaches 0 or 1 or a :math:`d_j \le 0`; NaN there.
    """
    y, n = np.asarray(events, float), np.asarray(sizes, float)
    R, p = y.shape[0], X.shape[1]
    # gee_glm's start: least squares of logit((y + 0.5) / 2) on the patients' rows, which for
    # cluster-constant rows is least squares of the cluster means weighted by n_j
    target = special.logit(0.75) * (2 * y / n - 1)
    weighted = np.einsum("rj,ja,jb->rab", n, X, X)
    beta = np.linalg.solve(weighted, np.einsum("rj,rj,ja->ra", n, target, X)[..., None])[..., 0]
    pairs = np.sum(n * (n - 1), axis=1) / 2
    bound = -1.0 / (n.max(axis=1) - 1.0)
    converged = np.zeros(R, bool)
    with np.errstate(all="ignore"):
        for _ in range(_GEE_MAX_ITER):
            mu, v, d, alpha = _moments(beta, y, n, X, pairs, bound)
            m, u = _pieces(X, mu, v, d, y, n)
            step = np.linalg.solve(_safe(m.sum(axis=1)), u.sum(axis=1)[..., None])[..., 0]
            beta = beta + step
            converged = np.max(np.abs(step) / (1 + np.abs(beta)), axis=1) < _GEE_TOL
            if converged.all() or not np.isfinite(step[~converged]).any():
                break
        mu, v, d, alpha = _moments(beta, y, n, X, pairs, bound)
        m, u = _pieces(X, mu, v, d, y, n)
        analysed = (converged & np.all(d > 0, axis=1) & np.all((mu > 0) & (mu < 1), axis=1)
                    & np.isfinite(beta).all(axis=1))
        bread_inv = np.linalg.inv(_safe(m.sum(axis=1)))
        leverage = np.einsum("rjab,rba->rj", m, bread_inv)
        sandwich = {}
        for label, scaled in (
            (MANCL_DEROUEN, u / (1 - leverage)[..., None]),
            (KAUERMANN_CARROLL, u / np.sqrt(1 - leverage)[..., None]),
            (FAY_GRAUBARD, fay_graubard_factors(bread_inv, m, FG_BOUND) * u),
        ):
            meat = np.einsum("rja,rjb->rab", scaled, scaled)
            sandwich[label] = np.where(analysed[:, None, None],
                                       bread_inv @ meat @ bread_inv, np.nan)
        contrast = np.eye(p)[1]
        fg_df = np.full(R, np.nan)
        if analysed.any():
            fg_df[analysed] = fay_graubard_df(bread_inv[analysed], m[analysed], u[analysed],
                                              contrast, FG_BOUND)
    return GeeSummaryFit(beta=np.where(analysed[:, None], beta, np.nan), alpha=alpha,
                         vcov=sandwich, fg_df=fg_df, analysed=analysed, converged=converged)


def _safe(matrix: np.ndarray) -> np.ndarray:
    """Replace batch entries that are not finite and positive definite by the identity, so
    that batched solves do not fail (those replicates are not analysed)."""
    finite = np.isfinite(matrix).all(axis=(-2, -1))
    bad = ~finite
    values = np.linalg.eigvalsh(matrix[finite])
    bad[finite] = values[..., 0] <= 1e-12 * np.abs(values[..., -1])
    if bad.any():
        matrix = matrix.copy()
        matrix[bad] = np.eye(matrix.shape[-1])
    return matrix


def _moments(beta, y, n, X, pairs, bound):
    """Fitted risks, variances, :math:`d_j` and geepack's moment :math:`\\hat\\alpha`, 0 where
    it is at or below ``bound`` (as :func:`~trialstats.analysis.gee_glm.gee_glm`)."""
    mu = special.expit(beta @ X.T)
    v = mu * (1 - mu)
    root = np.sqrt(v)
    total = (y - n * mu) / root
    squares = (y * (1 - mu) ** 2 + (n - y) * mu**2) / v
    scale = squares.sum(axis=1) / n.sum(axis=1)
    alpha = np.sum(total**2 - squares, axis=1) / 2 / (scale * pairs)
    alpha = np.where(alpha > bound, alpha, 0.0)
    return mu, v, 1 + (n - 1) * alpha[:, None], alpha


def _pieces(X, mu, v, d, y, n):
    """:math:`M_j` (R, J, p, p) and :math:`U_j` (R, J, p) from cluster summaries."""
    outer = X[:, :, None] * X[:, None, :]
    m = (v * n / d)[..., None, None] * outer
    u = ((y - n * mu) / d)[..., None] * X
    return m, u


def _tests(estimate, se, df, analysed, converged, boundary) -> MethodTests:
    """:class:`~trialstats.simulation.analyse.MethodTests` over the ``analysed`` trials with a
    finite estimate and a finite positive SE; NaN elsewhere."""
    ok = analysed & np.isfinite(estimate) & np.isfinite(se) & (se > 0)
    return MethodTests(estimate=np.where(ok, estimate, np.nan), se=np.where(ok, se, np.nan),
                       df=np.where(ok, df, np.nan), analysed=ok, converged=converged & ok,
                       boundary=boundary & ok)


def method_tests(
    events: np.ndarray, sizes: np.ndarray, arm: np.ndarray, n_agq: int = DEFAULT_N_AGQ,
) -> dict[tuple[str, str], tuple[MethodTests, str]]:
    """Every method's test of the arm effect in a batch of trials.

    Parameters
    ----------
    events, sizes : ndarray (R, J)
    arm : ndarray (J,)
        0 control, 1 intervention.
    n_agq : int
        GLMM quadrature nodes.

    Returns
    -------
    dict
        ``(analysis, method)`` -> (:class:`~trialstats.simulation.analyse.MethodTests`,
        estimand), estimand one of ``"conditional log OR"``, ``"marginal log OR"``, ``"risk
        difference"``, ``"log ratio"``.
    """
    R, J = events.shape
    X = np.column_stack([np.ones(J), arm])
    yes = np.ones(R, bool)
    out: dict[tuple[str, str], tuple[MethodTests, str]] = {}
    fit = fit_glmm(binary_cluster_data(events, sizes, X), n_agq)
    glmm_df = {"between-within": np.full(R, J - 2.0), "residual": sizes.sum(axis=1) - 2.0,
               "z": np.full(R, np.inf)}
    for method, df in glmm_df.items():
        out[GLMM, method] = (_tests(fit.beta[:, 1], fit.se[:, 1], df, yes, fit.converged,
                                    fit.boundary), "conditional log OR")
    gee = gee_summaries(events, sizes, X)
    for label, vcov in gee.vcov.items():
        se = np.sqrt(vcov[:, 1, 1])
        dfs = {CLUSTER_DF: np.full(R, J - 2.0), "z": np.full(R, np.inf)}
        if label == FAY_GRAUBARD:
            dfs[FAY_GRAUBARD_DF] = gee.fg_df
        for method, df in dfs.items():
            out[label, method] = (_tests(gee.beta[:, 1], se, df, gee.analysed, gee.converged,
                                         gee.alpha == 0), "marginal log OR")
    treated = arm == 1
    props = events / sizes
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = events.sum(axis=1, keepdims=True) / sizes.sum(axis=1, keepdims=True)
        log_ratio = np.log(props / pooled)
        for label, values, estimand in ((UNADJUSTED, props, "risk difference"),
                                        (ADJUSTED, log_ratio, "log ratio")):
            one, zero = values[:, treated], values[:, ~treated]
            df = J - 2.0
            pooled_var = (np.sum((one - one.mean(1, keepdims=True)) ** 2, axis=1)
                          + np.sum((zero - zero.mean(1, keepdims=True)) ** 2, axis=1)) / df
            se = np.sqrt(pooled_var * (1 / one.shape[1] + 1 / zero.shape[1]))
            ok = np.isfinite(values).all(axis=1)
            out[label, CLUSTER_DF] = (_tests(one.mean(1) - zero.mean(1), se, np.full(R, df),
                                             ok, yes, ~yes), estimand)
    return out


def _targets(design: BinaryDesign) -> dict[str, float]:
    """The parameter each estimand's interval should contain in a non-null cell."""
    p0, p1 = marginal_risks(design)
    return {"conditional log OR": design.log_or,
            "marginal log OR": float(special.logit(p1) - special.logit(p0)),
            "risk difference": p1 - p0, "log ratio": math.nan}


def binary_validity_study(
    *, reps: int, seed: int, settings: BinarySettings = BinarySettings(),
    clusters: Sequence[int] = CLUSTERS, prevalences: Sequence[float] = PREVALENCES,
    iccs: Sequence[float] = ICCS, progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Type I error and coverage of every binary-outcome analysis over the grid.

    Parameters
    ----------
    reps : int
        Trials per cell and hypothesis (>= 2).
    seed : int
        Base seed (see the module docstring).
    settings : BinarySettings
        Fixed design values.
    clusters, prevalences, iccs : sequence
        The grid (:func:`binary_designs`).
    progress : callable, optional
        Called with 1 when a cell is done.

    Returns
    -------
    pandas.DataFrame
        One row per cell, analysis and method, columns :data:`BINARY_COLUMNS`: the design
        (``n_clusters``, ``prevalence``, ``icc``, ``cv``, ``cluster_size``, ``odds_ratio`` of
        the non-null trials), ``estimand`` and its true value ``target`` in the non-null
        trials, ``alpha``, ``reps``, ``n_analysed`` (null trials analysed: the denominator of
        ``type_i_error``), ``type_i_error`` and its Monte Carlo SE, ``n_analysed_coverage``
        (non-null trials analysed), ``coverage`` and its Monte Carlo SE (NaN where the
        estimand has no exact target), ``median_df``, ``se_ratio`` (mean SE over the SD of the
        estimates, null trials), ``boundary_share`` (GLMM: cluster variance 0; GEE: independence
        working correlation used), ``n_not_converged``, ``within_band`` (type I error inside
        :data:`~trialstats.simulation.validity.SIZE_BAND`) and ``seed``.
    """
    if reps < 2:
        raise TrialstatsError("The validity study needs at least two replicates per cell.")
    log_or = math.log(settings.odds_ratio)
    rows = []
    for cell, design in enumerate(binary_designs(clusters, prevalences, iccs)):
        shifted = BinaryDesign(design.n_clusters, design.prevalence, design.icc, log_or)
        null, alternative = (
            method_tests(*draw_binary_trials(d, settings, reps=reps, seed=seed,
                                             scenario=2 * cell + k), d.arm, settings.n_agq)
            for k, d in enumerate((design, shifted)))
        targets = _targets(shifted)
        for key, (tests, estimand) in null.items():
            rows.append({
                "analysis": key[0], "method": key[1], "estimand": estimand,
                "n_clusters": design.n_clusters, "prevalence": design.prevalence,
                "icc": design.icc, "cv": settings.cv, "cluster_size": settings.cluster_size,
                "odds_ratio": settings.odds_ratio, "target": targets[estimand],
                "alpha": settings.alpha, "reps": reps, "seed": seed,
                **_summarise(tests, alternative[key][0], targets[estimand], settings.alpha),
            })
        if progress is not None:
            progress(1)
    return pd.DataFrame(rows, columns=list(BINARY_COLUMNS))


def _summarise(null: MethodTests, alternative: MethodTests, target: float,
               alpha: float) -> dict[str, float | int | bool]:
    ok = null.analysed
    size, size_se = mc_rate(rejects(null.estimate[ok], null.se[ok], null.df[ok], alpha))
    done = alternative.analysed
    if math.isnan(target):
        coverage, coverage_se = math.nan, math.nan
    else:
        miss, coverage_se = mc_rate(rejects(alternative.estimate[done], alternative.se[done],
                                          alternative.df[done], alpha, target))
        coverage = 1.0 - miss
    estimates = null.estimate[ok]
    spread = float(estimates.std(ddof=1)) if estimates.size > 1 else math.nan
    return {
        "n_analysed": int(ok.sum()), "type_i_error": size, "type_i_error_mc_se": size_se,
        "n_analysed_coverage": int(done.sum()), "coverage": coverage,
        "coverage_mc_se": coverage_se,
        "median_df": float(np.median(null.df[ok])) if ok.any() else math.nan,
        "se_ratio": float(np.mean(null.se[ok])) / spread if spread > 0 else math.nan,
        "boundary_share": float(null.boundary[ok].mean()) if ok.any() else math.nan,
        "n_not_converged": int((~null.converged & ok).sum()),
        "within_band": bool(SIZE_BAND[0] <= size <= SIZE_BAND[1]),
    }
