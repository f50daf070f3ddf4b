r"""Validity of the trial analyses: type I error and confidence-interval coverage by simulation.

Study design
------------
Trials are drawn from the generating model of :mod:`trialstats.simulation.draw` (random
cluster intercepts at baseline and follow-up, correlated patient effects, gamma-distributed
cluster sizes, follow-up missing completely at random), for every combination of

- number of clusters :math:`J \in \{6, 10, 20, 44\}`, randomised 1:1,
- ICC :math:`\rho \in \{0.01, 0.05, 0.1\}`,
- coefficient of variation of cluster size :math:`\mathrm{cv} \in \{0, 0.8\}`,

with the fixed design values of :class:`StudySettings` (by default those of the model SMS
trial: 127 patients recruited per practice, 27% lost to follow-up). Each cell is simulated
twice, on independent random streams: ``reps`` trials with no effect, whose rejection rate at
level :math:`\alpha` is the type I error, and ``reps`` trials with the effect
:math:`\delta` of the settings, whose share of :math:`100(1-\alpha)\%` intervals containing
:math:`\delta`,

.. math:: |\hat\delta - \delta| \le t_{1-\alpha/2,\,\nu}\,\widehat{\mathrm{se}},

is the coverage and whose rejection rate is the power. The mixed model, GEE and CR2 are
invariant to adding :math:`\delta T_j` to the data (arm is a column of their design), so for
them coverage equals one minus the type I error in distribution; estimating both on
independent trials checks that, and the pair's agreement within Monte Carlo error is part of
the evidence. The two-stage cluster-level analysis is not invariant (its first stage leaves
arm out, so the baseline slope absorbs part of a chance baseline imbalance between arms).
Monte Carlo standard errors are :math:`\sqrt{\hat p(1-\hat p)/R}` over the :math:`R`
analysable trials (Morris, White & Crowther 2019, *Stat. Med.* 38:2074).

Analyses
--------
The batch analyses of :mod:`trialstats.simulation.analyse` (:data:`ANALYSES`): the primary
mixed model with every denominator-df method plus the Wald z test, and the two-stage
cluster-level analysis; and its patient-level analyses (:data:`PATIENT_ANALYSES`): GEE with
Mancl-DeRouen or Kauermann-Carroll SEs on J - 2 df and OLS with the CR2 SE and
Bell-McCaffrey df, which need every patient and so run on fewer trials.

Multiple imputation is not covered: each trial would cost imputations x fits, and with the
follow-up missing completely at random and the baseline in the model the complete-case
analysis it would be compared with is already unbiased.

Random numbers
--------------
Cell :math:`i` (in the order of :func:`study_designs`) draws its null trials from scenario
:math:`2i` and its non-null trials from scenario :math:`2i + 1` of
:func:`trialstats.simulation.draw.replicate_rng`, so every trial has its own stream and the
table does not depend on batch sizes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from trialstats.analysis.icc import icc_interval
from trialstats.analysis.reml import ClusterSums
from trialstats.errors import TrialstatsError
from trialstats.simulation.analyse import (
    BatchAnalysis,
    MethodTests,
    PatientAnalysis,
    cluster_level,
    cr2,
    gee,
    mixed_model,
    rejects,
    simulate_patient_tests,
    simulate_tests,
)
from trialstats.simulation.draw import GENERATORS, SimulationDesign, draw_cluster_sizes

__all__ = [
    "ANALYSES",
    "CLUSTERS",
    "COLUMNS",
    "CVS",
    "ICCS",
    "PATIENT_ANALYSES",
    "SIZE_BAND",
    "StudySettings",
    "mc_rate",
    "simulate_icc_coverage",
    "study_designs",
    "validity_study",
]

#: Total numbers of clusters (both arms), ICCs and cluster-size CVs of the study grid.
CLUSTERS = (6, 10, 20, 44)
ICCS = (0.01, 0.05, 0.1)
CVS = (0.0, 0.8)
#: Type I error band a method must stay in at the 5% level to be called valid.
SIZE_BAND = (0.04, 0.06)

#: Columns of the study table, in order.
COLUMNS = (
    "analysis", "method", "n_clusters", "icc", "cv", "cluster_size", "attrition", "rho_s",
    "rho_c", "effect", "alpha", "reps", "n_analysed", "type_i_error", "type_i_error_mc_se",
    "coverage", "coverage_mc_se", "power", "power_mc_se", "median_df", "se_ratio",
    "boundary_share", "n_not_converged", "within_band", "generator", "seed",
)


@dataclass(frozen=True)
class StudySettings:
    """Design values held fixed across the study grid.

    Attributes
    ----------
    cluster_size : float
        Mean recruited patients per cluster (SMS trial: 5,599 patients in 44 practices).
    attrition : float
        Probability that a patient's follow-up score is missing (SMS trial at 12 months: 27%).
    rho_s, rho_c : float
        Subject and cluster baseline-to-follow-up correlations.
    effect : float
        True standardised effect of the non-null trials (coverage and power).
    alpha : float
        Two-sided level of tests and intervals.
    min_cluster_size : int
        Floor on recruited cluster sizes.
    generator : {"sums", "patients"}
        How trials are drawn (:func:`trialstats.simulation.draw.simulate_sums`).
    """

    cluster_size: float = 127.0
    attrition: float = 0.27
    rho_s: float = 0.5
    rho_c: float = 0.7
    effect: float = 0.2
    alpha: float = 0.05
    min_cluster_size: int = 2
    generator: str = "sums"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise TrialstatsError("The significance level alpha must lie in (0, 1).")
        if self.effect == 0:
            raise TrialstatsError(
                "The non-null trials need a non-zero effect (coverage is checked away from 0)."
            )
        if self.generator not in GENERATORS:
            raise TrialstatsError(
                f"Unknown generator {self.generator!r}; choose one of {', '.join(GENERATORS)}."
            )


#: Analyses of batches of simulated cluster sums.
ANALYSES: tuple[BatchAnalysis, ...] = (mixed_model, cluster_level)
#: Analyses of one simulated trial's patients; they need every patient generated, so they run
#: on fewer trials (``patient_reps`` of :func:`validity_study`).
PATIENT_ANALYSES: tuple[PatientAnalysis, ...] = (gee, cr2)


def study_designs(
    settings: StudySettings = StudySettings(), clusters: Sequence[int] = CLUSTERS,
    iccs: Sequence[float] = ICCS, cvs: Sequence[float] = CVS,
) -> list[SimulationDesign]:
    """The null designs of the study grid (clusters slowest, then ICC, then CV).

    Parameters
    ----------
    settings : StudySettings
        Fixed design values.
    clusters : sequence of int
        Total numbers of clusters; each must be even (1:1 randomisation) and at least 4.
    iccs, cvs : sequence of float
        ICCs and cluster-size CVs.

    Returns
    -------
    list of SimulationDesign
        With ``effect = 0``; the non-null trials of a cell use ``settings.effect``.
    """
    odd = [j for j in clusters if j % 2 or j < 4]
    if odd:
        raise TrialstatsError(
            f"Numbers of clusters must be even and at least 4 (1:1 randomisation); got {odd}."
        )
    return [
        SimulationDesign(
            clusters_per_arm=j // 2, cluster_size=settings.cluster_size, icc=icc, effect=0.0,
            cv=cv, attrition=settings.attrition, rho_s=settings.rho_s, rho_c=settings.rho_c,
            min_cluster_size=settings.min_cluster_size,
        )
        for j, icc, cv in itertools.product(clusters, iccs, cvs)
    ]


def mc_rate(hits: np.ndarray) -> tuple[float, float]:
    """Share of True in ``hits`` and its Monte Carlo SE :math:`\\sqrt{\\hat p(1-\\hat p)/R}`
    (NaN for no trials)."""
    if hits.size == 0:
        return math.nan, math.nan
    rate = float(hits.mean())
    return rate, math.sqrt(rate * (1.0 - rate) / hits.size)


def _rejects(tests: MethodTests, effect: float, alpha: float) -> np.ndarray:
    """:func:`~trialstats.simulation.analyse.rejects` over the analysed trials."""
    ok = tests.analysed
    return rejects(tests.estimate[ok], tests.se[ok], tests.df[ok], alpha, effect)


def _summarise(
    null: MethodTests, alternative: MethodTests, effect: float, alpha: float
) -> dict[str, float | int | bool]:
    size, size_se = mc_rate(_rejects(null, 0.0, alpha))
    miss, miss_se = mc_rate(_rejects(alternative, effect, alpha))
    power, power_se = mc_rate(_rejects(alternative, 0.0, alpha))
    ok = null.analysed
    estimates = null.estimate[ok]
    spread = float(estimates.std(ddof=1)) if estimates.size > 1 else math.nan
    return {
        "n_analysed": int(ok.sum()),
        "type_i_error": size,
        "type_i_error_mc_se": size_se,
        "coverage": 1.0 - miss,
        "coverage_mc_se": miss_se,
        "power": power,
        "power_mc_se": power_se,
        "median_df": float(np.median(null.df[ok])) if ok.any() else math.nan,
        "se_ratio": float(np.mean(null.se[ok])) / spread if spread > 0 else math.nan,
        "boundary_share": float(null.boundary[ok].mean()) if ok.any() else math.nan,
        "n_not_converged": int((ok & ~null.converged).sum()),
        "within_band": bool(SIZE_BAND[0] <= size <= SIZE_BAND[1]),
    }


def validity_study(
    *, reps: int, seed: int, patient_reps: int | None = None,
    settings: StudySettings = StudySettings(), clusters: Sequence[int] = CLUSTERS,
    iccs: Sequence[float] = ICCS, cvs: Sequence[float] = CVS,
    analyses: Sequence[BatchAnalysis] = ANALYSES,
    patient_analyses: Sequence[PatientAnalysis] = PATIENT_ANALYSES,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Type I error, coverage and power of every analysis method over the study grid.

    Parameters
    ----------
    reps : int
        Trials per cell and hypothesis for the batch analyses (>= 2): ``reps`` null and
        ``reps`` non-null trials.
    seed : int
        Base seed (see the module docstring).
    patient_reps : int, optional
        The same for the patient-level analyses; default ``min(reps, 2000)``.
    settings : StudySettings
        Fixed design values.
    clusters, iccs, cvs : sequence
        The grid (see :func:`study_designs`).
    analyses : sequence of callable
        Batch analyses (default :data:`ANALYSES`).
    patient_analyses : sequence of callable
        Patient-level analyses (default :data:`PATIENT_ANALYSES`); run on trials of
        :func:`~trialstats.simulation.draw.simulate_patients` from the same streams, which share
        each replicate's cluster sizes and cluster effects with the batch analyses' trials.
    progress : callable, optional
        Called with 1 when a cell of the grid is done.

    Returns
    -------
    pandas.DataFrame
        One row per cell, analysis and method, columns :data:`COLUMNS`: ``analysis`` and
        ``method`` (as in the sensitivity tables), the design (``n_clusters`` in total,
        ``icc``, ``cv``, ``cluster_size``, ``attrition``, ``rho_s``, ``rho_c``, ``effect`` of
        the non-null trials, ``alpha``), ``reps`` (trials simulated per hypothesis),
        ``n_analysed`` (null trials the method could analyse, the denominator of the rates),
        ``type_i_error`` (share of null trials rejecting), ``coverage`` (share of non-null
        trials whose interval contains ``effect``), ``power`` (share of non-null trials
        rejecting), each with its Monte Carlo SE (``*_mc_se``), ``median_df``, ``se_ratio``
        (mean reported SE over the SD of the estimates, null trials), ``boundary_share`` (null
        trials with the cluster variance estimated at 0, or for GEE/CR2 a practice with
        leverage 1), ``n_not_converged`` (null trials), ``within_band`` (type I error inside
        :data:`SIZE_BAND`), ``generator`` (of the batch analyses' trials; ``patients`` for
        the patient-level ones) and ``seed``.
    """
    patient_reps = min(reps, 2000) if patient_reps is None else patient_reps
    if min(reps, patient_reps) < 2:
        raise TrialstatsError("The validity study needs at least two replicates per cell.")
    rows = []
    for cell, design in enumerate(study_designs(settings, clusters, iccs, cvs)):
        shifted = replace(design, effect=settings.effect)
        runs = []
        if analyses:
            runs.append((reps, settings.generator, *(
                simulate_tests(d, analyses, reps=reps, seed=seed, scenario=2 * cell + k,
                                generator=settings.generator)
                for k, d in enumerate((design, shifted)))))
        if patient_analyses:
            runs.append((patient_reps, "patients", *(
                simulate_patient_tests(d, patient_analyses, reps=patient_reps, seed=seed,
                                        scenario=2 * cell + k)
                for k, d in enumerate((design, shifted)))))
        for n_reps, generator, null, alternative in runs:
            for (name, method), tests in null.items():
                rows.append({
                    "analysis": name, "method": method, "n_clusters": design.n_clusters,
                    "icc": design.icc, "cv": design.cv, "cluster_size": design.cluster_size,
                    "attrition": design.attrition, "rho_s": design.rho_s,
                    "rho_c": design.rho_c, "effect": settings.effect, "alpha": settings.alpha,
                    "reps": n_reps, "seed": seed, "generator": generator,
                    **_summarise(tests, alternative[name, method], settings.effect,
                                 settings.alpha),
                })
        if progress is not None:
            progress(1)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def simulate_icc_coverage(
    *, n_clusters: int, cluster_size: int, icc: float, n_reps: int, seed: int, level: float = 0.95,
    cv: float = 0.0,
) -> dict[str, float]:
    """Monte Carlo coverage of :func:`~trialstats.analysis.icc.icc_interval` in a two-arm trial.

    Simulates ``y = arm effect + b_j + e_ij`` with total variance 1 and the given ICC, clusters
    alternately allocated, fits ``y ~ 1 + arm + (1 | cluster)`` by REML and counts intervals
    containing the true ICC.

    Parameters
    ----------
    n_clusters : int
        Clusters per trial (>= 4).
    cluster_size : int
        Mean patients per cluster (>= 2).
    icc : float
        True ICC in [0, 1).
    n_reps : int
        Simulated trials.
    seed : int
        Seed of the ``numpy.random.Generator``.
    level : float, default 0.95
        Confidence level.
    cv : float, default 0
        Coefficient of variation of cluster sizes (gamma-distributed sizes, at least 2 each,
        drawn once per call and shared by all replicates); 0 gives equal sizes.

    Returns
    -------
    dict
        ``coverage``, ``mc_se`` (its binomial Monte Carlo standard error), ``below``
        and ``above`` (shares of intervals wholly below / above the truth), ``boundary``
        (share of fits with ICC estimated at 0), ``mean_width`` and ``n_reps``.
    """
    if n_clusters < 4 or cluster_size < 2 or not 0.0 <= icc < 1.0 or n_reps < 1:
        raise TrialstatsError(
            "Need at least 4 clusters, clusters of 2 or more, 0 <= icc < 1 and n_reps >= 1."
        )
    rng = np.random.default_rng(seed)
    sizes = draw_cluster_sizes(rng, n_clusters, cluster_size, cv, min_size=2)
    codes = np.repeat(np.arange(n_clusters), sizes)
    arm = (np.arange(n_clusters) % 2)[codes].astype(float)
    X = np.column_stack([np.ones(codes.size), arm])
    cluster_effect = rng.normal(0.0, np.sqrt(icc), (n_reps, n_clusters))
    noise = rng.normal(0.0, np.sqrt(1.0 - icc), (n_reps, codes.size))
    y = 0.2 * arm + cluster_effect[:, codes] + noise
    result = icc_interval(ClusterSums.from_data(y, X, codes), level=level)
    below = np.asarray(result.high) < icc
    above = np.asarray(result.low) > icc
    covered = ~below & ~above
    coverage = float(np.mean(covered))
    return {
        "coverage": coverage,
        "mc_se": float(np.sqrt(coverage * (1.0 - coverage) / n_reps)),
        "below": float(np.mean(below)),
        "above": float(np.mean(above)),
        "boundary": float(np.mean(np.asarray(result.estimate) == 0)),
        "mean_width": float(np.mean(np.asarray(result.high) - np.asarray(result.low))),
        "n_reps": n_reps,
    }
