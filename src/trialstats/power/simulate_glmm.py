r"""Power for binary and count outcomes by simulating trials and analysing each with a GLMM.

Generating models
-----------------
``k_c`` control and ``k_i`` intervention clusters; cluster *j* recruits
:math:`m_j = \max(\text{min size}, \operatorname{round}(G_j))`, :math:`G_j \sim
\operatorname{Gamma}` with mean *m* and coefficient of variation *cv*, and has a random
intercept :math:`b_j = \sigma_b z_j`, :math:`z_j \sim N(0, 1)`
(:func:`~trialstats.simulation.draw.draw_glmm_replicates`).

*Binary* (:func:`simulate_binary_power`):

.. math::

    y_j \sim \operatorname{Binomial}\{m_j, \operatorname{expit}(\beta_0 + \beta_1 T_j + b_j)\},

with :math:`\beta_0 = \operatorname{logit} p_0`, :math:`\beta_1 = \operatorname{logit} p_1 -
\operatorname{logit} p_0` (``p0``, ``p1`` are the risks of a typical cluster, :math:`b_j = 0`,
so :math:`e^{\beta_1}` is the cluster-specific odds ratio the analysis estimates) and
:math:`\sigma_b^2 = \rho\,(\pi^2/3)/(1 - \rho)` for the latent-scale ICC :math:`\rho` (the
``icc`` the primary analysis of a binary outcome reports).

*Counts* (:func:`simulate_count_power`): each patient is followed for one unit of
person-time and has, given the cluster's intercept, a count with mean
:math:`\mu_j = \exp(\beta_0 + \beta_1 T_j + b_j)`, Poisson or, with ``dispersion``
:math:`k > 0`, negative binomial with :math:`\operatorname{Var} = \mu_j + k\mu_j^2` (NB2,
size :math:`\vartheta = 1/k`), independently. The cluster rates :math:`e^{\beta_0 + b_j}` are
log-normal; the words are those of Hayes & Bennett (1999) and
:func:`~trialstats.power.rates.power_rates`: ``rate0`` is the *mean* control rate over clusters
and ``cv_between`` :math:`c_v` the coefficient of variation of the true cluster rates, so
:math:`\sigma_b^2 = \log(1 + c_v^2)` and :math:`\beta_0 = \log \lambda_0 - \sigma_b^2/2`;
:math:`\beta_1 = \log R` is the rate ratio (cluster-specific and marginal alike under the log
link). clusterPower's ``cps.count(c1, sigma_b_sq)`` is ``rate0 = c1 * exp(sigma_b_sq / 2)``,
``cv_between = sqrt(exp(sigma_b_sq) - 1)``.

Analysis
--------
Each trial is analysed as the primary analysis would be (:mod:`trialstats.analysis.glmm_rows`,
without covariates), by maximum likelihood with adaptive quadrature, every replicate in one
vectorised call of :func:`~trialstats.analysis.glmm.fit_glmm`, and the Wald test of
:math:`\beta_1 = 0` on ``between-within`` (:math:`k_c + k_i - 2`), ``residual`` (patients
minus 2) or ``z`` reference distributions. A replicate whose fit did not converge (e.g. no
events in an arm) counts as not rejecting.

* Binary outcomes: the logistic GLMM fitted to each cluster's (size, events), which is exact
  (:func:`~trialstats.analysis.glmm_likelihood.binary_cluster_data`).
* Counts: the Poisson GLMM fitted to each cluster's (person-time, total count) with the log
  person-time as offset. Exact: given :math:`b_j`, the patients' counts are independent
  Poisson and their likelihood is that of the total, :math:`\operatorname{Poisson}(m_j\mu_j)`,
  times a multinomial factor free of the parameters, so estimates and SEs equal those of the
  patient-level fit and the cost is :math:`O(J)`. With ``dispersion = 0`` this is the whole
  analysis (the primary analysis's negative binomial alternative is not fitted: it needs the
  patients' counts, and Poisson data rarely pass its test).
* Negative binomial counts (``dispersion > 0``) are analysed by the primary analysis's rule
  (:mod:`trialstats.analysis.glmm_rows`): the Poisson GLMM as above and the negative binomial
  GLMM on the patients' rows, the latter kept where it converged and the likelihood-ratio test
  of over-dispersion has *p* < 0.05. The total alone does not suffice for the negative
  binomial: the likelihood depends on :math:`\eta_j` only through the total (the kernel
  :math:`\sum_i \{y_{ij}\eta_j - (y_{ij} + \vartheta)\log(\vartheta + e^{\eta_j})\}` involves
  :math:`\sum_i y_{ij}` and :math:`m_j` alone), but the information on :math:`\vartheta`
  within clusters is in :math:`\sum_i \log\Gamma(y_{ij} + \vartheta)`, which needs every
  count. Replicates with the same cluster sizes share one design and are fitted in one call
  (all of them when ``cv = 0``); the cost is :math:`O(N)`, and with ``cv > 0`` each replicate
  is a call of its own.

Type I error is estimated from the same replicates with :math:`\beta_1 = 0`: the same sizes,
random intercepts and uniform numbers (outcomes by the inverse CDF,
:func:`~trialstats.simulation.draw.binary_events`,
:func:`~trialstats.simulation.draw.count_events`), fitted in the same call. Unlike the linear
model's, a GLMM's null fits cannot be had by shifting the estimate, so they are fitted; common
random numbers make power minus type I error precise.

References
----------
Hayes RJ, Bennett S (1999) Simple sample size calculation for cluster-randomized trials.
Int J Epidemiol 28:319-326.
Li P, Redden DT (2015) Comparing denominator degrees of freedom approximations for the
generalized linear mixed model in analyzing binary outcome in small sample
cluster-randomized trials. BMC Med Res Methodol 15:38.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from trialstats.analysis.glmm import DEFAULT_N_AGQ, GlmmFit, fit_glmm
from trialstats.analysis.glmm_likelihood import binary_cluster_data, glmm_data
from trialstats.analysis.glmm_rows import OVERDISPERSION_ALPHA, overdispersion_p_value
from trialstats.contract import GLMM_DF_METHODS
from trialstats.errors import TrialstatsError
from trialstats.simulation.draw import binary_events, draw_count_trials, draw_glmm_replicates

__all__ = ["fit_count_replicates", "simulate_binary_power", "simulate_count_power"]


def _common_problems(clusters_per_arm, k_i, cluster_size, cv, min_cluster_size, reps,
                     df_method, alpha) -> list[str]:
    """Messages for the design and test settings shared by the binary and count simulations."""
    problems = []
    if min(clusters_per_arm, k_i) < 2:
        problems.append("each arm needs at least two clusters")
    if cluster_size < 1 or cv < 0 or min_cluster_size < 1:
        problems.append("cluster size must be >= 1 and its CV >= 0")
    if reps < 2:
        problems.append("a simulation needs at least two replicates")
    if df_method not in GLMM_DF_METHODS:
        problems.append(f"df method must be one of {', '.join(GLMM_DF_METHODS)} for a GLMM")
    if not 0 < alpha < 1:
        problems.append("alpha must lie in (0, 1)")
    return problems


def _summary(estimate: np.ndarray, se: np.ndarray, converged: np.ndarray, boundary: np.ndarray,
             patients: np.ndarray, n_clusters: int, reps: int, seed: int, df_method: str,
             alpha: float, estimate_name: str) -> dict[str, object]:
    """Power and type I error of the Wald test of the arm from the fits of ``2 * reps``
    replicates (the alternatives, then the nulls): the arm's estimate, its SE, whether the fit
    converged and whether it is at the boundary, and the patients of each replicate."""
    if df_method == "z":
        critical = np.full(2 * reps, stats.norm.isf(alpha / 2))
    else:
        df = n_clusters - 2 if df_method == "between-within" else patients - 2
        critical = np.broadcast_to(stats.t.isf(alpha / 2, df), (2 * reps,))
    with np.errstate(invalid="ignore"):
        reject = converged & (np.abs(estimate / se) > critical)
    power, type1 = float(reject[:reps].mean()), float(reject[reps:].mean())
    ok = converged[:reps]
    return {
        "power": power, "mc_se": math.sqrt(power * (1 - power) / reps),
        "type_i_error": type1, "type_i_error_mc_se": math.sqrt(type1 * (1 - type1) / reps),
        "reps": reps, "seed": seed, "n_failed": int((~ok).sum()),
        "n_failed_null": int((~converged[reps:]).sum()),
        "n_boundary": int(boundary[:reps].sum()),
        f"mean_{estimate_name}": float(estimate[:reps][ok].mean()),
        "empirical_se": float(estimate[:reps][ok].std(ddof=1)),
        "mean_se": float(se[:reps][ok].mean()),
    }


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
    problems = _common_problems(clusters_per_arm, k_i, cluster_size, cv, min_cluster_size,
                                reps, df_method, alpha)
    if not (0 < p0 < 1 and 0 < p1 < 1):
        problems.insert(0, "p0 and p1 must lie in (0, 1)")
    if not 0 <= icc < 1:
        problems.append("the ICC must lie in [0, 1)")
    if problems:
        raise TrialstatsError("Binary simulation: " + "; ".join(problems) + ".")
    sigma = math.sqrt(icc * (math.pi**2 / 3) / (1 - icc))
    n_clusters = clusters_per_arm + k_i
    sizes, z, uniforms = draw_glmm_replicates(seed, reps, n_clusters, cluster_size, cv,
                                              min_cluster_size)
    arm = np.r_[np.zeros(clusters_per_arm), np.ones(k_i)]
    eta0 = special.logit(p0) + sigma * z
    effect = special.logit(p1) - special.logit(p0)
    events = np.concatenate([binary_events(uniforms, sizes, special.expit(eta0 + effect * arm)),
                             binary_events(uniforms, sizes, special.expit(eta0))])
    both = np.concatenate([sizes, sizes])
    X = np.column_stack([np.ones_like(arm), arm])
    fit = fit_glmm(binary_cluster_data(events, both, X), n_agq)
    return {
        "method": "simulation, random-intercept logistic GLMM "
                  f"({n_agq}-node adaptive quadrature)",
        "p0": p0, "p1": p1, "odds_ratio": float(np.exp(effect)),
        "clusters_per_arm": clusters_per_arm, "k_intervention": k_i,
        "cluster_size": cluster_size, "cv": cv, "icc": icc, "sigma_b": sigma, "alpha": alpha,
        "df_method": df_method, "n_agq": n_agq,
        **_summary(fit.beta[:, 1], fit.se[:, 1], fit.converged, fit.boundary,
                   both.sum(axis=1), n_clusters, reps, seed, df_method, alpha, "log_or"),
    }


def fit_count_replicates(
    counts: np.ndarray | list[np.ndarray], sizes: np.ndarray, arm: np.ndarray, n_agq: int
) -> tuple[GlmmFit, GlmmFit | None, np.ndarray]:
    """Fit the count GLMM to every replicate, as the primary analysis chooses its family.

    Parameters
    ----------
    counts : ndarray (R, J), or list of R arrays
        Poisson data: each cluster's total count. Otherwise each replicate's patients' counts,
        clusters in order (``sizes[r].sum()`` each).
    sizes : ndarray of int, shape (R, J)
        Patients per cluster, each with one unit of person-time.
    arm : ndarray, shape (J,)
        0 control, 1 intervention.
    n_agq : int
        Adaptive quadrature nodes.

    Returns
    -------
    poisson : GlmmFit
        The Poisson GLMM of every replicate, flat (``beta`` (R, 2) and so on).
    negbin : GlmmFit or None
        The negative binomial GLMM of every replicate (None for cluster totals).
    use_negbin : ndarray of bool, shape (R,)
        Replicates the rule analyses by the negative binomial GLMM.

    Notes
    -----
    Cluster totals are fitted by the Poisson GLMM with offset :math:`\\log m_j` (exact, see the
    module docstring). Patients' counts are fitted by both: Poisson to their totals and the
    negative binomial to the patients' rows (replicates with the same cluster sizes in one
    call, all of them when the sizes do not vary); the negative binomial is kept where its fit
    converged and the likelihood-ratio test of over-dispersion has
    :math:`p <` :data:`~trialstats.analysis.glmm_rows.OVERDISPERSION_ALPHA`
    (:func:`~trialstats.analysis.glmm_rows.overdispersion_p_value`), the primary analysis's
    rule. The Poisson log-likelihood of the patients' rows is that of the totals plus
    :math:`\\sum_j (\\log S_j! - \\sum_i \\log y_{ij}! - S_j \\log m_j)`.
    """
    X = np.column_stack([np.ones_like(arm), arm])
    patient_rows = isinstance(counts, list)
    totals = np.stack([np.add.reduceat(y, np.cumsum(m) - m)
                       for y, m in zip(counts, sizes, strict=True)]) if patient_rows else counts
    poisson = fit_glmm(glmm_data(totals, X, np.arange(arm.size), "poisson",
                                 offset=np.log(sizes)), n_agq)
    if not patient_rows:
        return poisson, None, np.zeros(totals.shape[0], dtype=bool)
    negbin = _fit_negbin(counts, sizes, X, n_agq)
    constant = np.array([special.gammaln(s + 1).sum() - special.gammaln(y + 1).sum()
                         - (s * np.log(m)).sum() for y, s, m in zip(counts, totals, sizes,
                                                                     strict=True)])
    use = negbin.converged & (
        overdispersion_p_value(negbin.loglik, poisson.loglik + constant) < OVERDISPERSION_ALPHA)
    return poisson, negbin, use


def _fit_negbin(counts: list[np.ndarray], sizes: np.ndarray, X: np.ndarray,
                n_agq: int) -> GlmmFit:
    """The negative binomial GLMM on the patients' rows, replicates sharing their cluster sizes
    in one call; fields in replicate order (``theta`` and ``cov`` as the groups give them)."""
    shapes, group = np.unique(sizes, axis=0, return_inverse=True)
    group = group.reshape(-1)
    parts, rows = [], []
    for g, shape in enumerate(shapes):
        members = np.flatnonzero(group == g)
        clusters = np.repeat(np.arange(X.shape[0]), shape)
        y = np.stack([counts[r] for r in members])
        # theta drifts to infinity (overflow) where the counts show no over-dispersion; such
        # fits end not converged and the Poisson fit is used
        with np.errstate(over="ignore", invalid="ignore"):
            parts.append(fit_glmm(glmm_data(y, X[clusters], clusters, "negative-binomial"),
                                  n_agq))
        rows.append(members)
    order = np.argsort(np.concatenate(rows), kind="stable")
    fields = {name: np.concatenate([getattr(part, name) for part in parts])[order]
              for name in ("beta", "se", "sigma", "theta", "cov", "loglik", "boundary",
                           "converged")}
    return GlmmFit(**fields, n_agq=n_agq, family="negative-binomial")


def simulate_count_power(
    *, rate0: float, rate_ratio: float, clusters_per_arm: int, cluster_size: float,
    cv_between: float, dispersion: float = 0.0, k_intervention: int | None = None,
    cv: float = 0.0, reps: int = 1000, seed: int = 1, df_method: str = "between-within",
    alpha: float = 0.05, n_agq: int = DEFAULT_N_AGQ, min_cluster_size: int = 2,
) -> dict[str, object]:
    """Simulated power and type I error of the Poisson or negative binomial GLMM analysis of
    a count outcome.

    Parameters
    ----------
    rate0 : float
        Mean control event rate over clusters, per patient (one unit of person-time each).
    rate_ratio : float
        Intervention / control rate ratio (> 0).
    clusters_per_arm : int
        Control clusters (>= 2).
    cluster_size, cv, min_cluster_size
        Mean, coefficient of variation and floor of the recruited cluster sizes (patients).
    cv_between : float
        Coefficient of variation of the true cluster rates (>= 0); the cluster variance on the
        log scale is :math:`\\log(1 + c_v^2)`.
    dispersion : float, default 0
        0: Poisson counts and the Poisson GLMM; :math:`k > 0`: negative binomial counts,
        :math:`\\operatorname{Var} = \\mu + k\\mu^2`, and the negative binomial GLMM.
    k_intervention, reps, seed, df_method, alpha, n_agq
        As :func:`simulate_binary_power`.

    Returns
    -------
    dict
        ``method``, the design (``rate0``, ``rate1``, ``rate_ratio``, ``clusters_per_arm``,
        ``k_intervention``, ``cluster_size``, ``cv``, ``cv_between``, ``sigma_b``,
        ``dispersion``), ``alpha``, ``df_method``, ``n_agq``, ``power`` and ``mc_se``,
        ``type_i_error`` and ``type_i_error_mc_se``, ``reps``, ``seed``, ``n_failed`` and
        ``n_failed_null`` (fits that did not converge), ``n_boundary`` (cluster variance at
        0), ``mean_log_rr``, ``empirical_se`` and ``mean_se`` of the log rate ratio,
        ``n_negative_binomial`` and ``n_negative_binomial_null`` (replicates analysed by the
        negative binomial GLMM; 0 when ``dispersion`` is 0).
    """
    k_i = clusters_per_arm if k_intervention is None else int(k_intervention)
    problems = _common_problems(clusters_per_arm, k_i, cluster_size, cv, min_cluster_size,
                                reps, df_method, alpha)
    for name, value, low in (("the control rate (--rate0)", rate0, None),
                             ("the rate ratio (--rate-ratio)", rate_ratio, None),
                             ("the between-cluster CV (--cv-between)", cv_between, 0.0),
                             ("the dispersion (--dispersion)", dispersion, 0.0)):
        if not (math.isfinite(value) and (value > 0 if low is None else value >= low)):
            problems.append(f"{name} must be {'> 0' if low is None else '>= 0'}, got {value:g}")
    if problems:
        raise TrialstatsError("Count simulation: " + "; ".join(problems) + ".")
    sigma = math.sqrt(math.log1p(cv_between**2))
    arm = np.r_[np.zeros(clusters_per_arm), np.ones(k_i)]
    sizes, (alternative, null) = draw_count_trials(
        seed, reps, arm, cluster_size, cv, min_cluster_size, sigma=sigma,
        log_rate=math.log(rate0) - sigma**2 / 2, log_rate_ratio=math.log(rate_ratio),
        dispersion=dispersion)
    both = np.concatenate([sizes, sizes])
    counts = alternative + null if dispersion > 0 else np.concatenate([alternative, null])
    poisson, negbin, use = fit_count_replicates(counts, both, arm, n_agq)
    fits = [poisson] if negbin is None else [negbin, poisson]

    def chosen(values) -> np.ndarray:
        return values[0] if negbin is None else np.where(use, *values)

    estimate = chosen([fit.beta[:, 1] for fit in fits])
    se = chosen([fit.se[:, 1] for fit in fits])
    converged = chosen([fit.converged for fit in fits])
    boundary = chosen([fit.boundary for fit in fits])
    family = ("Poisson GLMM on cluster totals with log person-time offset" if negbin is None
              else "Poisson or negative binomial GLMM (likelihood-ratio test of "
              "over-dispersion, as the primary analysis)")
    return {
        "method": f"simulation, random-intercept {family} ({n_agq}-node adaptive quadrature)",
        "rate0": rate0, "rate1": rate0 * rate_ratio, "rate_ratio": rate_ratio,
        "clusters_per_arm": clusters_per_arm, "k_intervention": k_i,
        "cluster_size": cluster_size, "cv": cv, "cv_between": cv_between, "sigma_b": sigma,
        "dispersion": dispersion, "alpha": alpha, "df_method": df_method, "n_agq": n_agq,
        **_summary(estimate, se, converged, boundary, both.sum(axis=1), arm.size, reps, seed,
                   df_method, alpha, "log_rr"),
        "n_negative_binomial": int(use[:reps].sum()),
        "n_negative_binomial_null": int(use[reps:].sum()),
    }
