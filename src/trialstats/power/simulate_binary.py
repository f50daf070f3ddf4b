r"""Power for a binary outcome by simulating trials and analysing each with the logistic GLMM.

Generating model
----------------
``k_c`` control and ``k_i`` intervention clusters; cluster *j* recruits
:math:`m_j = \max(\text{min size}, \operatorname{round}(G_j))`, :math:`G_j \sim
\operatorname{Gamma}` with mean *m* and coefficient of variation *cv*
(:func:`~trialstats.simulation.draw.draw_cluster_sizes`), and has events

.. math::

    y_j \sim \operatorname{Binomial}\{m_j, \operatorname{expit}(\beta_0 + \beta_1 T_j + b_j)\},
    \qquad b_j \sim N(0, \sigma_b^2),

with :math:`\beta_0 = \operatorname{logit} p_0`, :math:`\beta_1 = \operatorname{logit} p_1 -
\operatorname{logit} p_0` (``p0``, ``p1`` are the risks of a typical cluster, :math:`b_j = 0`,
so :math:`e^{\beta_1}` is the cluster-specific odds ratio the analysis estimates) and
:math:`\sigma_b^2 = \rho\,(\pi^2/3)/(1 - \rho)` for the latent-scale ICC :math:`\rho` (the
``icc`` the primary analysis of a binary outcome reports).

Analysis
--------
Each trial is analysed as the primary analysis would be (:mod:`trialstats.analysis.glmm_rows`,
without covariates): the random-intercept logistic GLMM by maximum likelihood with adaptive
quadrature, fitted to the exact cluster summaries (size, events) of every replicate in one
vectorised call (:func:`~trialstats.analysis.glmm_likelihood.binary_cluster_data`), and the
Wald test of :math:`\beta_1 = 0` on ``between-within`` (:math:`k_c + k_i - 2`), ``residual``
(patients minus 2) or ``z`` reference distributions. A replicate whose fit did not converge
(e.g. no events in an arm) counts as not rejecting.

Type I error is estimated from the same replicates with :math:`\beta_1 = 0`: the same cluster
sizes, random intercepts and uniform numbers (events by the binomial inverse CDF), fitted in
the same call. Unlike the linear model's, a GLMM's null fits cannot be had by shifting the
estimate, so they are fitted; common random numbers make power minus type I error precise.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from trialstats.analysis.glmm import DEFAULT_N_AGQ, fit_glmm
from trialstats.analysis.glmm_likelihood import binary_cluster_data
from trialstats.contract import GLMM_DF_METHODS
from trialstats.errors import TrialstatsError
from trialstats.simulation.draw import draw_cluster_sizes, replicate_rng

__all__ = ["simulate_binary_power"]


def _draw(p0, p1, k_c, k_i, cluster_size, cv, sigma, min_size, reps, seed):
    """Sizes (R, J) and events under the alternative and the null (R, J) for every replicate."""
    n_clusters = k_c + k_i
    sizes = np.empty((reps, n_clusters), dtype=np.int64)
    draws = np.empty((reps, 2, n_clusters))
    for r in range(reps):
        rng = replicate_rng(seed, 0, r)
        sizes[r] = draw_cluster_sizes(rng, n_clusters, cluster_size, cv, min_size)
        draws[r] = [rng.standard_normal(n_clusters), rng.random(n_clusters)]
    arm = np.r_[np.zeros(k_c), np.ones(k_i)]
    eta0 = special.logit(p0) + sigma * draws[:, 0]
    effect = special.logit(p1) - special.logit(p0)
    alternative = stats.binom.ppf(draws[:, 1], sizes, special.expit(eta0 + effect * arm))
    null = stats.binom.ppf(draws[:, 1], sizes, special.expit(eta0))
    return sizes, alternative, null, arm


def simulate_binary_power(
    *, p0: float, p1: float, clusters_per_arm: int, cluster_size: float, icc: float,
    k_intervention: int | None = None, cv: float = 0.0, reps: int = 1000, seed: int = 1,
    df_method: str = "between-within", alpha: float = 0.05, n_agq: int = DEFAULT_N_AGQ,
    min_cluster_size: int = 2,
) -> dict[str, object]:
    """Simulated power and type I error of the logistic-GLMM analysis of a binary outcome.

    Parameters
    ----------
    p0, p1 : float
        Risks of a typical cluster (random intercept 0) in the control and intervention arms.
    clusters_per_arm : int
        Control clusters (>= 2).
    cluster_size, cv, min_cluster_size
        Mean, coefficient of variation and floor of the recruited cluster sizes.
    icc : float
        Latent-scale ICC in [0, 1).
    k_intervention : int, optional
        Intervention clusters (default ``clusters_per_arm``).
    reps, seed : int
        Simulated trials and base seed (replicate *r* uses
        :func:`~trialstats.simulation.draw.replicate_rng` ``(seed, 0, r)``).
    df_method : {"between-within", "z", "residual"}
        Reference distribution of the Wald test.
    alpha : float
        Two-sided level.
    n_agq : int
        Adaptive quadrature nodes (1 = Laplace).

    Returns
    -------
    dict
        ``method``, the design (``p0``, ``p1``, ``odds_ratio``, ``clusters_per_arm``,
        ``k_intervention``, ``cluster_size``, ``cv``, ``icc``, ``sigma_b``), ``alpha``,
        ``df_method``, ``n_agq``, ``power`` and ``mc_se``, ``type_i_error`` and
        ``type_i_error_mc_se``, ``reps``, ``seed``, ``n_failed`` and ``n_failed_null``
        (fits that did not converge), ``n_boundary`` (cluster variance at 0),
        ``mean_log_or``, ``empirical_se`` and ``mean_se`` of the log odds ratio.
    """
    k_i = clusters_per_arm if k_intervention is None else int(k_intervention)
    problems = []
    if not (0 < p0 < 1 and 0 < p1 < 1):
        problems.append("p0 and p1 must lie in (0, 1)")
    if min(clusters_per_arm, k_i) < 2:
        problems.append("each arm needs at least two clusters")
    if not 0 <= icc < 1:
        problems.append("the ICC must lie in [0, 1)")
    if cluster_size < 1 or cv < 0 or min_cluster_size < 1:
        problems.append("cluster size must be >= 1 and its CV >= 0")
    if reps < 2:
        problems.append("a simulation needs at least two replicates")
    if df_method not in GLMM_DF_METHODS:
        problems.append(f"df method must be one of {', '.join(GLMM_DF_METHODS)} for a GLMM")
    if not 0 < alpha < 1:
        problems.append("alpha must lie in (0, 1)")
    if problems:
        raise TrialstatsError("Binary simulation: " + "; ".join(problems) + ".")
    sigma = math.sqrt(icc * (math.pi**2 / 3) / (1 - icc))
    sizes, alternative, null, arm = _draw(p0, p1, clusters_per_arm, k_i, cluster_size, cv,
                                          sigma, min_cluster_size, reps, seed)
    X = np.column_stack([np.ones_like(arm), arm])
    fit = fit_glmm(binary_cluster_data(np.concatenate([alternative, null]),
                                       np.concatenate([sizes, sizes]), X), n_agq)
    estimate, se = fit.beta[:, 1], fit.se[:, 1]
    if df_method == "z":
        critical = np.full(2 * reps, stats.norm.isf(alpha / 2))
    else:
        df = (X.shape[0] - 2 if df_method == "between-within"
              else np.concatenate([sizes, sizes]).sum(axis=1) - 2)
        critical = np.broadcast_to(stats.t.isf(alpha / 2, df), (2 * reps,))
    with np.errstate(invalid="ignore"):
        reject = fit.converged & (np.abs(estimate / se) > critical)
    power, type1 = float(reject[:reps].mean()), float(reject[reps:].mean())
    ok = fit.converged[:reps]
    return {
        "method": "simulation, random-intercept logistic GLMM "
                  f"({n_agq}-node adaptive quadrature)",
        "p0": p0, "p1": p1, "odds_ratio": float(np.exp(special.logit(p1) - special.logit(p0))),
        "clusters_per_arm": clusters_per_arm, "k_intervention": k_i,
        "cluster_size": cluster_size, "cv": cv, "icc": icc, "sigma_b": sigma, "alpha": alpha,
        "df_method": df_method, "n_agq": n_agq, "power": power,
        "mc_se": math.sqrt(power * (1 - power) / reps), "type_i_error": type1,
        "type_i_error_mc_se": math.sqrt(type1 * (1 - type1) / reps), "reps": reps,
        "seed": seed, "n_failed": int((~ok).sum()),
        "n_failed_null": int((~fit.converged[reps:]).sum()),
        "n_boundary": int(fit.boundary[:reps].sum()),
        "mean_log_or": float(estimate[:reps][ok].mean()),
        "empirical_se": float(estimate[:reps][ok].std(ddof=1)),
        "mean_se": float(se[:reps][ok].mean()),
    }
