"""Analytic power for any sequence x period design (:mod:`trialstats.power.designs`).

Model
-----
Cluster ``i`` of sequence ``s(i)`` has ``m_it`` patients measured in period ``t``. The mean of
their outcomes follows the linear mixed model with period fixed effects

    ybar_it = beta_t + theta X_{s(i)t} + C_it + (1/m_it) sum_k (Z_ik + e_itk),

    Cov(C_is, C_it) = tau2 r^|s-t| + gamma2 [s = t],   Var(Z_ik) = zeta2,   Var(e_itk) = sigma2,

so that each cluster's vector of period means has covariance

    V_i[s, t] = tau2 r^|s-t| + [s = t] (gamma2 + (zeta2 + sigma2) / m_is)
                + [s != t] zeta2 / m_i.

``tau2`` is the cluster variance, ``gamma2`` the cluster-period variance, ``r`` the decay of
the cluster correlation per period (``r = 1``: no decay), ``zeta2`` a patient's persistent
effect (0 for cross-sectional sampling; a closed cohort measures the same ``m_i`` patients in
every period) and ``sigma2`` the residual. The GLS estimator of ``theta`` has variance

    Var(theta_hat) = [ (sum_i X_i' V_i^-1 X_i)^-1 ]_{theta theta},

``X_i`` the cluster's period indicators and treatment column over its measured periods. This
single formula covers exchangeable correlation (Hussey & Hughes 2007, ``gamma2 = 0``, ``r = 1``),
nested exchangeable correlation (Hooper et al. 2016; Girling & Hemming 2016, ``gamma2 > 0``),
exponential decay (Kasza et al. 2019, ``r < 1``), closed cohorts, unequal cluster-period sizes
and incomplete designs.

Parameterisation. With ``s2`` the total variance of one patient's outcome, the ICC ``R``, the
cluster autocorrelation ``CAC`` and the individual autocorrelation ``IAC`` give

    tau2 = R CAC s2,   gamma2 = R (1 - CAC) s2,   zeta2 = IAC (1 - R) s2,
    sigma2 = (1 - IAC) (1 - R) s2,

and ``--decay r`` multiplies the between-period cluster correlation ``CAC`` by ``r^|s-t|``.
Continuous effects are in total-SD units (``s2 = 1``). For a binary outcome with proportions
``p0``, ``p1`` the within-cluster variance is ``w = pbar (1 - pbar)``, ``pbar = (p0 + p1) / 2``
(Hussey & Hughes 2007; swCRTdesign), and ``tau2 + gamma2 = w R / (1 - R)``, so that
``R = (tau2 + gamma2) / (w + tau2 + gamma2)``; ``binary_variance="arm"`` instead gives each
cell the variance of its own arm, ``p (1 - p)``, as SteppedPower does.

How the peers map onto these components (the tests check each):

* swCRTdesign ``swPwr(tau, gamma, zeta, sigma, eta = 0)``: ``tau2 = tau^2``,
  ``gamma2 = gamma^2``, ``zeta2 = zeta^2``, ``sigma2 = sigma^2`` — its ``sigma`` is the
  within-cluster SD ``sqrt(1 - R) S``, not the total SD ``S``; its ``icc``/``cac`` arguments
  are our ``R`` and ``CAC``. Binomial: ``sigma2 = pbar (1 - pbar)``, as here (with its ``iac``
  it adds ``zeta2`` on top of ``pbar (1 - pbar)``; here the two share it). Hence the issue's
  0.7862 (swCRTdesign, our default) vs 0.7893 (SteppedPower, ``binary_variance="arm"``) for
  Hussey & Hughes' example.
* SteppedPower ``glsPower(sigma, tau, gamma, psi, AR)``: the same with ``zeta2 = psi^2`` and
  ``r = AR[1]`` (a scalar ``AR`` also decays ``psi``; here patient effects do not decay);
  ``alpha_0_1_2 = (R, R CAC, R CAC + IAC (1 - R))``. Binomial: the arm-specific variance.

Power is that of the two-sided Wald test of ``theta = 0`` with noncentrality
``lambda = |theta| / sqrt(Var)``: ``df_method="z"`` the normal (swCRTdesign);
``"between-within"`` a central t, shifted by ``lambda``, on ``J - p`` df, ``J`` clusters and
``p`` the rank of the fixed effects (periods and treatment) (SteppedPower's scaled Wald test);
``"t"`` a noncentral t on the same ``J - p`` df — for a one-period parallel trial
``J - 2``, the df of :mod:`trialstats.power.analytic`. (SteppedPower falls back to the normal
when ``J - p < 3``; here fewer than 1 df is an error.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

from trialstats.errors import TrialstatsError
from trialstats.power.designs import Design, standard_design
from trialstats.power.solving import two_sided_power

DF_METHODS = ("z", "t", "between-within")
UNKNOWNS = ("power", "clusters_per_sequence", "cluster_size", "effect")
BINARY_VARIANCES = ("mean", "arm")
_MAX_CLUSTERS = 2**20
_HUGE = 1e12  # cluster-period size standing in for "infinitely large"


@dataclasses.dataclass(frozen=True)
class Components:
    """Variance components of one patient's outcome (see the module docstring).

    ``cluster`` is ``tau2``, ``cluster_period`` ``gamma2``, ``individual`` ``zeta2`` (closed
    cohort; 0 cross-sectional), ``residual`` ``sigma2`` and ``decay`` ``r``.
    """

    cluster: float
    cluster_period: float
    individual: float
    residual: float
    decay: float = 1.0

    @property
    def total(self) -> float:
        """Total variance of one patient's outcome."""
        return self.cluster + self.cluster_period + self.individual + self.residual


def components_from_correlations(
    icc: float,
    cluster_autocorr: float = 1.0,
    *,
    decay: float = 1.0,
    individual_autocorr: float = 0.0,
    within: float | None = None,
) -> Components:
    """Variance components from the ICC, CAC, decay and IAC.

    Parameters
    ----------
    icc, cluster_autocorr, individual_autocorr : float
        ``R`` in [0, 1), ``CAC`` and ``IAC`` in [0, 1].
    decay : float, default 1
        ``r`` in (0, 1].
    within : float, optional
        The within-cluster variance ``zeta2 + sigma2`` (binary: ``pbar (1 - pbar)``); by
        default the total variance is 1 and ``within = 1 - R``.

    Returns
    -------
    Components
    """
    for value, what in ((cluster_autocorr, "cluster autocorrelation"),
                        (individual_autocorr, "individual autocorrelation")):
        if not 0 <= value <= 1:
            raise TrialstatsError(f"The {what} must lie in [0, 1], not {value:g}.")
    if not 0 <= icc < 1:
        raise TrialstatsError(f"The ICC must lie in [0, 1), not {icc:g}.")
    if not 0 < decay <= 1:
        raise TrialstatsError(f"The decay must lie in (0, 1], not {decay:g}.")
    between = icc if within is None else within * icc / (1 - icc)
    within = 1 - icc if within is None else within
    return Components(
        cluster=between * cluster_autocorr,
        cluster_period=between * (1 - cluster_autocorr),
        individual=within * individual_autocorr,
        residual=within * (1 - individual_autocorr),
        decay=decay,
    )


def treatment_variance(
    design: Design,
    components: Components,
    cluster_size: ArrayLike,
    *,
    residual: ArrayLike | None = None,
) -> float:
    """GLS variance of the treatment effect (the formula of the module docstring).

    Parameters
    ----------
    design : Design
    components : Components
    cluster_size : array_like
        Patients per cluster-period ``m``: a scalar, an ``(S, T)`` array (per sequence and
        period) or a ``(J, T)`` array (per cluster, clusters listed in sequence order).
        A size of 0 means the cluster-period is not measured.
    residual : array_like, optional
        Residual variance ``sigma2`` per sequence and period, ``(S, T)``, overriding
        ``components.residual`` (binary outcomes with arm-specific variances).

    Returns
    -------
    float
        ``Var(theta_hat)`` in the units of the components.
    """
    info, _ = _information(design, components, cluster_size, residual)
    return _invert(info)


def _cluster_rows(design: Design, sizes: ArrayLike, residual: ArrayLike | None):
    """Distinct clusters as (count, treatment row, size row, residual row)."""
    s, t = design.treatment.shape
    m = np.asarray(sizes, dtype=float)
    sig = np.full((s, t), np.nan) if residual is None else np.broadcast_to(
        np.asarray(residual, dtype=float), (s, t))
    if m.ndim == 0:
        m = np.full((s, t), float(m))
    if m.shape == (s, t):
        return [(float(design.clusters[g]), design.treatment[g], m[g], sig[g])
                for g in range(s) if design.clusters[g] > 0]
    seq = np.repeat(np.arange(s), design.clusters.astype(int))
    if m.shape != (len(seq), t):
        raise TrialstatsError(
            f"Cluster sizes of shape {m.shape} fit neither the {s} sequences nor the "
            f"{len(seq)} clusters of the {t}-period design."
        )
    return [(1.0, design.treatment[g], m[j], sig[g]) for j, g in enumerate(seq)]


def _information(
    design: Design, c: Components, sizes: ArrayLike, residual: ArrayLike | None
) -> tuple[np.ndarray, int]:
    """Fisher information for (period effects, theta) and the rank of the fixed effects."""
    t = design.treatment.shape[1]
    info = np.zeros((t + 1, t + 1))
    lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
    decay = c.decay ** lag
    measured = np.zeros(t, dtype=bool)
    for count, x, m, sig in _cluster_rows(design, sizes, residual):
        if np.any(m < 0) or np.any(np.isnan(m)):
            raise TrialstatsError("Cluster-period sizes must be non-negative numbers.")
        o = ~np.isnan(x) & (m > 0)
        if not o.any():
            continue
        measured |= o
        mo = m[o]
        if c.individual > 0 and np.ptp(mo) > 0:
            raise TrialstatsError(
                "A closed cohort measures the same patients in every period: each cluster "
                "needs one size across its measured periods."
            )
        sigma2 = np.where(np.isnan(sig[o]), c.residual, sig[o])
        v = c.cluster * decay[np.ix_(o, o)] + np.diag(c.cluster_period + sigma2 / mo)
        v += c.individual / mo[0]
        xo = np.column_stack([np.eye(t)[o], x[o]])
        info += count * xo.T @ np.linalg.solve(v, xo)
    keep = np.append(measured, True)
    return info[np.ix_(keep, keep)], int(keep.sum())


def _invert(info: np.ndarray) -> float:
    """``[info^-1]_{theta theta}``, or an error if the treatment effect is not estimable."""
    scale = np.sqrt(np.diag(info))
    if np.any(scale == 0) or np.linalg.cond(info / np.outer(scale, scale)) > 1e12:
        raise TrialstatsError(
            "The treatment effect cannot be estimated in this design: treatment is confounded "
            "with period (every measured period has all clusters in the same condition)."
        )
    return float(np.linalg.inv(info)[-1, -1])


def wald_power(noncentrality: float, alpha: float, df: float, df_method: str) -> float:
    """Two-sided power of the Wald test (see the module docstring for ``df_method``)."""
    lam = abs(noncentrality)
    if df_method == "z":
        z = stats.norm.isf(alpha / 2)
        return float(stats.norm.sf(z - lam) + stats.norm.cdf(-z - lam))
    if df < 1:
        raise TrialstatsError(
            f"The design leaves {df:g} degrees of freedom (clusters minus fixed effects) for a "
            f"{df_method} test; add clusters or use --df z."
        )
    if df_method == "between-within":
        crit = stats.t.isf(alpha / 2, df)
        return float(stats.t.cdf(lam - crit, df) + stats.t.cdf(-lam - crit, df))
    return float(two_sided_power(lam, alpha, df)[()])


def design_power(
    design: Design,
    *,
    cluster_size: ArrayLike,
    icc: float,
    cluster_autocorr: float = 1.0,
    decay: float = 1.0,
    individual_autocorr: float = 0.0,
    effect: float | None = None,
    p0: float | None = None,
    p1: float | None = None,
    df_method: str = "z",
    alpha: float = 0.05,
    binary_variance: str = "mean",
) -> dict[str, Any]:
    """Power of a design for a continuous (``effect``) or binary (``p0``, ``p1``) outcome.

    Parameters
    ----------
    design : Design
    cluster_size : array_like
        Patients per cluster-period, as in :func:`treatment_variance`.
    icc, cluster_autocorr, decay, individual_autocorr : float
        ``R``, ``CAC``, ``r`` and ``IAC`` (module docstring).
    effect : float, optional
        Difference in means in total-SD units (continuous outcome).
    p0, p1 : float, optional
        Control and intervention proportions (binary outcome), instead of ``effect``.
    df_method : {"z", "t", "between-within"}, default "z"
    alpha : float, default 0.05
        Two-sided significance level.
    binary_variance : {"mean", "arm"}, default "mean"
        Binary within-cluster variance ``pbar (1 - pbar)`` or each arm's ``p (1 - p)``.

    Returns
    -------
    dict
        ``power``, ``variance`` (of the estimated difference; continuous: in total-variance
        units), ``se``, ``noncentrality``, ``df``, ``difference`` (``effect`` or
        ``p1 - p0``), ``effect`` (difference / total SD), ``design_effect`` (variance over that
        of an individually randomised trial of the same patients, split equally),
        ``relative_efficiency`` (variance of the parallel design with the same clusters,
        periods and mean cluster-period size, over this design's) and ``method``.
    """
    _check_choice(df_method, DF_METHODS, "df method")
    _check_choice(binary_variance, BINARY_VARIANCES, "binary variance")
    if not 0 < alpha < 1:
        raise TrialstatsError("The significance level alpha must lie in (0, 1).")
    if (effect is None) == (p0 is None or p1 is None):
        raise TrialstatsError("Give either a continuous effect or both proportions p0 and p1.")
    residual = None
    if effect is not None:
        c = components_from_correlations(icc, cluster_autocorr, decay=decay,
                                         individual_autocorr=individual_autocorr)
        difference = float(effect)
    else:
        for p in (p0, p1):
            if not 0 < p < 1:
                raise TrialstatsError(f"Proportions must lie in (0, 1), not {p:g}.")
        pbar = (p0 + p1) / 2
        c = components_from_correlations(icc, cluster_autocorr, decay=decay,
                                         individual_autocorr=individual_autocorr,
                                         within=pbar * (1 - pbar))
        if binary_variance == "arm":
            p = np.where(design.treatment == 1, p1, p0)
            residual = p * (1 - p) * (1 - individual_autocorr)
        difference = float(p1 - p0)
    info, rank = _information(design, c, cluster_size, residual)
    variance = _invert(info)
    df = design.n_clusters - rank
    ncp = abs(difference) / math.sqrt(variance)
    m = _mean_size(design, cluster_size)
    patients = _measured_cells(design, cluster_size)
    individual = 4 * c.total / patients
    parallel = standard_design("parallel", periods=len(design.periods))
    parallel = dataclasses.replace(parallel, clusters=np.full(2, design.n_clusters / 2))
    return {
        "power": wald_power(ncp, alpha, df, df_method),
        "variance": variance,
        "se": math.sqrt(variance),
        "noncentrality": ncp,
        "df": math.inf if df_method == "z" else float(df),
        "difference": difference,
        "effect": difference / math.sqrt(c.total),
        "design_effect": variance / individual,
        "relative_efficiency": _invert(_information(parallel, c, m, None)[0]) / variance,
        "method": method_label(c, df_method, closed_cohort=individual_autocorr > 0),
    }


def _mean_size(design: Design, sizes: ArrayLike) -> float:
    """Mean patients per measured cluster-period."""
    return _measured_cells(design, sizes) / _measured_cells(design, 1.0)


def _measured_cells(design: Design, sizes: ArrayLike) -> float:
    """Total patients measured (with ``sizes = 1``: the number of measured cluster-periods)."""
    total = 0.0
    for count, x, m, _ in _cluster_rows(design, sizes, None):
        total += count * float(np.sum(np.where(np.isnan(x), 0.0, m)))
    return total


def method_label(c: Components, df_method: str, *, closed_cohort: bool) -> str:
    """The formula used, named for the JSON ``method`` field."""
    if c.decay < 1:
        structure = "exponential decay correlation (Kasza et al. 2019)"
    elif c.cluster_period > 0:
        structure = "nested exchangeable correlation (Hooper et al. 2016)"
    else:
        structure = "exchangeable correlation (Hussey & Hughes 2007)"
    sampling = "closed cohort" if closed_cohort else "cross-sectional"
    test = {
        "z": "Wald z test",
        "t": "noncentral t test on clusters minus fixed effects df",
        "between-within": "central t (scaled Wald) test on between-within df",
    }[df_method]
    return (f"GLS variance of the treatment effect on cluster-period means with period fixed "
            f"effects, {structure}, {sampling}; two-sided {test}")


def solve_design(
    unknown: str,
    design: Design,
    *,
    target_power: float = 0.8,
    cluster_size: float | None = None,
    effect: float | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Solve for clusters per sequence, cluster-period size or detectable effect.

    Parameters
    ----------
    unknown : {"power", "clusters_per_sequence", "cluster_size", "effect"}
        ``power`` just computes it; otherwise the smallest whole number of clusters per
        sequence, the smallest cluster-period size (exact, and rounded up) or the smallest
        effect (continuous outcomes) whose power reaches ``target_power``.
    design : Design
        For ``clusters_per_sequence`` its cluster counts are replaced.
    target_power : float, default 0.8
    cluster_size, effect : float, optional
        As in :func:`design_power`; the unknown one is left as ``None``.
    **options
        The other keyword arguments of :func:`design_power`.

    Returns
    -------
    dict
        The :func:`design_power` result at the solution plus ``unknown``, ``target_power``,
        ``clusters_per_sequence`` (NaN if sequences differ), ``clusters``, ``cluster_size``
        and ``cluster_size_exact``.
    """
    _check_choice(unknown, UNKNOWNS, "unknown")
    if unknown != "power" and not options.get("alpha", 0.05) < target_power < 1:
        raise TrialstatsError("The target power must lie between alpha and 1.")

    def power(d: Design, m: float | None, e: float | None) -> dict[str, Any]:
        return design_power(d, cluster_size=m, effect=e, **options)

    m_exact = cluster_size
    if unknown == "clusters_per_sequence":
        k = _smallest_integer(lambda k: _reaches(lambda: power(design.with_clusters(k),
                                                               cluster_size, effect),
                                                 target_power))
        design = design.with_clusters(k)
    elif unknown == "cluster_size":
        limit = power(design, _HUGE, effect)["power"]
        if limit <= target_power:
            raise TrialstatsError(
                f"No cluster-period size reaches power {target_power:g}: as clusters grow the "
                f"power only approaches {limit:.4f}. Add clusters or accept a larger effect."
            )
        m_exact = _root(lambda m: power(design, m, effect)["power"] - target_power, 1e-6)
        cluster_size = float(math.ceil(m_exact - 1e-9))
    elif unknown == "effect":
        if options.get("p0") is not None:
            raise TrialstatsError("Solve for a detectable effect with a continuous outcome.")
        effect = _root(lambda e: power(design, cluster_size, e)["power"] - target_power, 0.0)
    row = power(design, cluster_size, effect)
    k = design.clusters
    row.update(
        unknown=unknown,
        target_power=target_power if unknown != "power" else math.nan,
        clusters_per_sequence=float(k[0]) if np.all(k == k[0]) else math.nan,
        clusters=design.n_clusters,
        cluster_size=cluster_size if np.ndim(cluster_size) == 0 else _mean_size(design,
                                                                              cluster_size),
        cluster_size_exact=m_exact if np.ndim(m_exact) == 0 else math.nan,
    )
    return row


def _reaches(compute: Callable[[], dict[str, Any]], target: float) -> bool:
    """Whether the power reaches ``target``; too few df counts as not reaching it."""
    try:
        return compute()["power"] >= target
    except TrialstatsError:
        return False


def _smallest_integer(ok: Callable[[int], bool]) -> int:
    """Smallest ``k >= 1`` with ``ok(k)``, for ``ok`` monotone in ``k``."""
    hi = 1
    while not ok(hi):
        hi *= 2
        if hi > _MAX_CLUSTERS:
            raise TrialstatsError("No number of clusters up to 2^20 per sequence reaches "
                                  "the target power.")
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def _root(fn: Callable[[float], float], lo: float) -> float:
    """Root of an increasing ``fn`` above ``lo`` by bracketing and Brent's method."""
    hi = max(2 * lo, 1.0)
    while fn(hi) < 0:
        hi *= 2
        if hi > 1e12:
            raise TrialstatsError("No value up to 1e12 reaches the target power.")
    return float(optimize.brentq(fn, lo, hi, xtol=1e-12, rtol=4 * np.finfo(float).eps))


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise TrialstatsError(f"Unknown {what} {value!r}; choose one of {', '.join(choices)}.")
