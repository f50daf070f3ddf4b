r"""Simulation power of cross-sectional stepped-wedge and cluster-crossover trials.

Generating model
----------------
A design is a sequence x period treatment matrix :math:`X_{st} \in \{0, 1\}` (NaN = not
measured); :math:`K` clusters follow each sequence and :math:`m_{it}` patients are measured in
cluster-period :math:`(i, t)`. With total variance 1 (so ``effect`` is in total SDs),

.. math::

    y_{itk} = \delta X_{s(i)t} + u_i + v_{it} + e_{itk}, \quad
    u_i \sim N(0, \rho\, \mathrm{CAC}), \quad v_{it} \sim N(0, \rho (1 - \mathrm{CAC})), \quad
    e_{itk} \sim N(0, 1 - \rho),

:math:`\rho` the ICC, as in DESIGN's power vocabulary (Hooper et al. 2016). Period effects are
0: the analysis has period fixed effects, so its estimates do not depend on them.

Trials are drawn as their cluster-period sufficient statistics, exactly: the cluster-period
mean is :math:`\delta X + u_i + v_{it} + \bar e_{it}`, :math:`\bar e_{it} \sim N(0, (1-\rho)/
m_{it})`, independent of the pooled within-cluster-period sum of squares
:math:`(1 - \rho)\chi^2_{N - C}` (:math:`C` measured cluster-periods), which is all
:math:`y^\top y` needs when every column of the design is constant within cluster-periods.

Analysis
--------
``lmer(y ~ treat + factor(period) + (1 | cluster) + (1 | cluster:period))`` by the exact REML
kernel of :mod:`trialstats.analysis.reml_periods`, vectorised over replicates (the generating
variance ratios join the kernel's start grid), and a two-sided
t test of the treatment effect with Satterthwaite, Kenward-Roger or between-within df
(:math:`J - p`, clusters minus the rank of intercept, periods and treatment, as SteppedPower).
Type I error comes from the same fits: the treatment indicator is a column of the design, so
:math:`y - \delta X` changes only the estimate, by :math:`-\delta`.

Random numbers
--------------
Replicate ``r`` of scenario ``s`` draws from
:func:`trialstats.simulation.draw.replicate_rng` ``(seed, s, r)``: results do not depend on the
batch size, and chunks of a grid use independent streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trialstats.analysis.period_inference import kenward_roger_periods, satterthwaite_periods
from trialstats.analysis.reml_periods import PeriodSums, fit_period_reml
from trialstats.errors import TrialstatsError
from trialstats.simulation.draw import replicate_rng

__all__ = [
    "PERIOD_DF_METHODS",
    "exposure_time_columns",
    "period_design",
    "simulate_period_patients",
    "simulate_period_power",
    "simulate_period_sums",
    "stepped_wedge_treatment",
]

PERIOD_DF_METHODS = ("satterthwaite", "kenward-roger", "between-within")


def stepped_wedge_treatment(n_sequences: int) -> np.ndarray:
    """Standard stepped wedge: ``S`` sequences, ``S + 1`` periods, sequence ``s`` (1-based)
    treated from period ``s + 1``.

    Returns
    -------
    ndarray, shape (S, S + 1)
        0/1 treatment matrix.
    """
    if n_sequences < 1:
        raise TrialstatsError("A stepped wedge needs at least one sequence.")
    periods = np.arange(n_sequences + 1)
    return (periods[None, :] > np.arange(n_sequences)[:, None]).astype(float)


def exposure_time_columns(treatment: Any, max_exposure: int | None = None) -> np.ndarray:
    """Time-on-treatment (exposure-time) indicators for a sequence x period design.

    Parameters
    ----------
    treatment : array_like, shape (S, T)
        1 where sequence ``s`` is under the intervention in period ``t``, 0 under control;
        NaN marks a period in which the sequence is not measured. A sequence may not return
        to control once treated.
    max_exposure : int, optional
        Pool exposure times at or beyond this one into one column (default: one column per
        exposure time that occurs).

    Returns
    -------
    ndarray, shape (S, T, E)
        Column ``k`` is 1 in the cluster-periods that are the ``k + 1``-th since the switch.
        They replace the treatment indicator in ``X``; the mean of their coefficients is the
        time-averaged treatment effect (Hughes et al. 2015, *Contemp. Clin. Trials* 45:55;
        Kenny et al. 2022, *Stat. Med.* 41:4289).

    Raises
    ------
    TrialstatsError
        If entries are not 0/1/NaN, or a sequence switches back to control.
    """
    design = np.asarray(treatment, dtype=float)
    measured = np.isfinite(design)
    if design.ndim != 2 or not np.all(np.isin(design[measured], (0.0, 1.0))):
        raise TrialstatsError("The treatment matrix must be sequences x periods of 0, 1 or blank.")
    on = np.where(measured, design, 0.0)
    started = np.maximum.accumulate(on, axis=1)
    if np.any(measured & (started > on)):
        raise TrialstatsError(
            "A sequence returns to control after the intervention started; exposure time "
            "is defined only for one-way (stepped-wedge type) designs."
        )
    exposure = np.where(measured, np.cumsum(started, axis=1), 0).astype(int)
    top = int(exposure.max()) if max_exposure is None else int(max_exposure)
    if top < 1:
        raise TrialstatsError("No cluster-period is under the intervention.")
    return (np.minimum(exposure, top)[..., None] == np.arange(1, top + 1)).astype(float)


def period_design(treatment: Any, *, exposure_time: bool = False) -> np.ndarray:
    """Fixed-effects row of every sequence-period cell: intercept, periods 2..T, treatment.

    Parameters
    ----------
    treatment : array_like, shape (S, T)
        0/1 treatment matrix (NaN = not measured; those cells get the row all the same and
        must be given no patients).
    exposure_time : bool, default False
        Replace the treatment indicator by :func:`exposure_time_columns`.

    Returns
    -------
    ndarray, shape (S, T, p)
        The columns of lme4's ``model.matrix(~ treat + factor(period))`` in the order
        intercept, treatment (or exposure times 1..E), periods 2..T.
    """
    design = np.asarray(treatment, dtype=float)
    if design.ndim != 2:
        raise TrialstatsError("The treatment matrix must be sequences x periods.")
    n_seq, n_per = design.shape
    effect = exposure_time_columns(design) if exposure_time else np.nan_to_num(design)[..., None]
    periods = np.broadcast_to(np.eye(n_per)[:, 1:], (n_seq, n_per, n_per - 1))
    return np.concatenate([np.ones((n_seq, n_per, 1)), effect, periods], axis=-1)


def _scenario(
    treatment: Any, clusters_per_sequence: int, cluster_size: Any, icc: float, cac: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The generating model of the module docstring, checked.

    Returns the treatment matrix (S, T); patients per cluster-period (J, T), 0 where the
    sequence is not measured; the treatment of each cluster-period (J, T; 0 where not
    measured); and the SDs of :math:`u_i`, :math:`v_{it}` and :math:`e_{itk}`.
    """
    design = np.asarray(treatment, dtype=float)
    if not (0.0 <= icc < 1.0 and 0.0 <= cac <= 1.0):
        raise TrialstatsError("Need 0 <= ICC < 1 and 0 <= CAC <= 1.")
    if clusters_per_sequence < 1:
        raise TrialstatsError("Need at least one cluster per sequence.")
    n_seq, n_per = design.shape
    n_cl = n_seq * clusters_per_sequence
    sizes = np.broadcast_to(np.asarray(cluster_size, dtype=float), (n_cl, n_per))
    if np.any(sizes < 0) or np.any(sizes != np.round(sizes)):
        raise TrialstatsError("Cluster-period sizes must be non-negative whole numbers.")
    measured = np.repeat(np.isfinite(design), clusters_per_sequence, axis=0)
    treat = np.repeat(np.nan_to_num(design), clusters_per_sequence, axis=0)
    sd = np.sqrt([icc * cac, icc * (1.0 - cac), 1.0 - icc])
    return design, np.where(measured, sizes, 0.0), treat, sd


def simulate_period_sums(treatment: Any, clusters_per_sequence: int, cluster_size: Any, *,
                         icc: float, cac: float, effect: float, seed: int, replicates: Any,
                         scenario: int = 0) -> PeriodSums:
    """Draw simulated trials as cluster-period sufficient statistics (see module docstring).

    Parameters
    ----------
    treatment : array_like, shape (S, T)
        0/1 treatment matrix (NaN = not measured), e.g. :func:`stepped_wedge_treatment`.
    clusters_per_sequence : int
        ``K``; cluster ``i`` follows sequence ``i // K``.
    cluster_size : int or array_like, shape (J, T)
        Patients per cluster-period.
    icc, cac : float
        ICC in [0, 1) and cluster autocorrelation in [0, 1].
    effect : float
        Treatment effect in total SDs.
    seed : int
        Base seed.
    replicates : iterable of int
        Replicate numbers to draw (their streams are ``replicate_rng(seed, scenario, r)``).
    scenario : int, default 0

    Returns
    -------
    PeriodSums
        Batch shape ``(len(replicates),)``, columns of :func:`period_design`.
    """
    design, n, treat, sd = _scenario(treatment, clusters_per_sequence, cluster_size, icc, cac)
    x = np.repeat(period_design(design), clusters_per_sequence, axis=0)  # (J, T, p)
    n_cl, n_per = n.shape
    measured = n > 0
    safe_n = np.where(measured, n, 1.0)
    within_df = n.sum() - measured.sum()
    reps = list(replicates)
    means = np.empty((len(reps), n_cl, n_per))
    within = np.empty(len(reps))
    for k, r in enumerate(reps):
        rng = replicate_rng(seed, scenario, r)
        u = sd[0] * rng.standard_normal(n_cl)
        v = sd[1] * rng.standard_normal((n_cl, n_per))
        noise = sd[2] * rng.standard_normal((n_cl, n_per)) / np.sqrt(safe_n)
        means[k] = effect * treat + u[:, None] + v + noise
        within[k] = sd[2] ** 2 * rng.chisquare(within_df) if within_df > 0 else 0.0
    means = np.where(measured, means, 0.0)
    ysum = n * means
    xsum = n[..., None] * x
    return PeriodSums(
        n=np.broadcast_to(n, means.shape).copy(),
        xsum=np.broadcast_to(xsum, (len(reps), *xsum.shape)).copy(),
        ysum=ysum,
        xtx=np.broadcast_to(
            np.einsum("jt,jtp,jtq->pq", n, x, x), (len(reps), x.shape[-1], x.shape[-1])
        ).copy(),
        xty=np.einsum("rjt,jtp->rp", ysum, x),
        yty=np.sum(n * means**2, axis=(1, 2)) + within,
    )


def simulate_period_patients(treatment: Any, clusters_per_sequence: int, cluster_size: Any, *,
                             icc: float, cac: float, effect: float, rng: np.random.Generator
                             ) -> pd.DataFrame:
    """One simulated trial at patient level, from the model of the module docstring.

    Parameters
    ----------
    treatment, clusters_per_sequence, cluster_size, icc, cac, effect
        As :func:`simulate_period_sums`.
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    pandas.DataFrame
        One row per patient: ``cluster`` (0-based), ``sequence`` and ``period`` (1-based),
        ``treat`` (0/1) and ``y``; cluster-periods that are not measured have no rows.
    """
    _, n, treat, sd = _scenario(treatment, clusters_per_sequence, cluster_size, icc, cac)
    n = n.astype(int)
    n_cl, n_per = n.shape
    u = sd[0] * rng.standard_normal(n_cl)
    v = sd[1] * rng.standard_normal((n_cl, n_per))
    cluster, period = np.divmod(np.repeat(np.arange(n.size), n.ravel()), n_per)
    treat = treat[cluster, period]
    y = effect * treat + u[cluster] + v[cluster, period] + sd[2] * rng.standard_normal(n.sum())
    return pd.DataFrame(
        {
            "cluster": cluster,
            "sequence": cluster // clusters_per_sequence + 1,
            "period": period + 1,
            "treat": treat,
            "y": y,
        }
    )


def simulate_period_power(treatment: Any, clusters_per_sequence: int, cluster_size: Any, *,
                          icc: float, cac: float, effect: float, reps: int, seed: int,
                          df_method: str = "satterthwaite", alpha: float = 0.05, scenario: int = 0,
                          batch_size: int = 500) -> dict[str, object]:
    """Simulated power and type I error of a stepped-wedge / crossover design.

    Parameters
    ----------
    treatment, clusters_per_sequence, cluster_size, icc, cac, effect
        The scenario, as :func:`simulate_period_sums`.
    reps : int
        Simulated trials (>= 2).
    seed : int
        Base seed.
    df_method : {"satterthwaite", "kenward-roger", "between-within"}
        Denominator df of the t test (``kenward-roger`` also uses its adjusted SE).
    alpha : float, default 0.05
        Two-sided level.
    scenario : int, default 0
    batch_size : int, default 500
        Replicates drawn and fitted at once; results do not depend on it.

    Returns
    -------
    dict
        ``power`` (share rejecting), ``mc_se``, ``type_i_error`` and its ``type_i_error_mc_se``
        (same fits, see the module docstring), ``mean_estimate``, ``empirical_se``,
        ``mean_se``, ``mean_df``, ``n_failed`` (not converged; counted as non-rejections),
        ``n_boundary_cluster`` and ``n_boundary_cluster_period`` (variances estimated at 0),
        and the scenario: ``sequences``, ``periods``, ``clusters_per_sequence``, ``icc``,
        ``cac``, ``effect``, ``df_method``, ``alpha``, ``reps``, ``seed``.
    """
    if df_method not in PERIOD_DF_METHODS:
        raise TrialstatsError(
            f"Unknown df method {df_method!r}; choose one of {', '.join(PERIOD_DF_METHODS)}."
        )
    if reps < 2 or not 0.0 < alpha < 1.0 or batch_size < 1:
        raise TrialstatsError("Need reps >= 2, 0 < alpha < 1 and batch_size >= 1.")
    design = np.asarray(treatment, dtype=float)
    generating = np.array([icc * cac, icc * (1.0 - cac)]) / (1.0 - icc)  # (lambda_c, lambda_p)
    kept = np.empty((reps, 3))  # estimate, se, df
    flags = np.empty((reps, 3), dtype=bool)  # converged, boundary cluster, boundary period
    for start in range(0, reps, batch_size):
        batch = range(start, min(start + batch_size, reps))
        sums = simulate_period_sums(design, clusters_per_sequence, cluster_size, icc=icc,
                                    cac=cac, effect=effect, seed=seed, replicates=batch,
                                    scenario=scenario)
        fit = fit_period_reml(sums, start=generating)
        L = np.eye(sums.n_params)[1]
        se = np.sqrt(fit.vcov[:, 1, 1])
        if df_method == "satterthwaite":
            df = satterthwaite_periods(sums, fit, L)
        elif df_method == "kenward-roger":
            kr = kenward_roger_periods(sums, fit, L)
            df, se = kr.df, kr.se
        else:
            df = (fit.n_clusters - sums.n_params).astype(float)
        kept[batch.start : batch.stop] = np.column_stack([fit.beta[:, 1], se, df])
        flags[batch.start : batch.stop] = np.column_stack([fit.converged, fit.boundary])
    estimate, se, df = kept.T
    ok = flags[:, 0]
    critical = stats.t.ppf(1.0 - alpha / 2.0, df)
    reject = ok & (np.abs(estimate) / se > critical)
    reject_null = ok & (np.abs(estimate - effect) / se > critical)
    power, type1 = float(reject.mean()), float(reject_null.mean())
    return {
        "method": "simulation",
        "sequences": design.shape[0],
        "periods": design.shape[1],
        "clusters_per_sequence": clusters_per_sequence,
        "icc": icc,
        "cac": cac,
        "effect": effect,
        "df_method": df_method,
        "alpha": alpha,
        "reps": reps,
        "seed": seed,
        "power": power,
        "mc_se": float(np.sqrt(power * (1.0 - power) / reps)),
        "type_i_error": type1,
        "type_i_error_mc_se": float(np.sqrt(type1 * (1.0 - type1) / reps)),
        "mean_estimate": float(estimate[ok].mean()),
        "empirical_se": float(estimate[ok].std(ddof=1)),
        "mean_se": float(se[ok].mean()),
        "mean_df": float(df[ok].mean()),
        "n_failed": int((~ok).sum()),
        "n_boundary_cluster": int(flags[:, 1].sum()),
        "n_boundary_cluster_period": int(flags[:, 2].sum()),
    }
