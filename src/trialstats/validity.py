r"""Validity of the trial analyses: type I error and confidence-interval coverage by simulation.

Study design
------------
Trials are drawn from the generating model of :mod:`trialstats.power.simulate` (random
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
A batch analysis maps a batch of simulated per-cluster sums to one :class:`MethodTests` per
``(analysis, method)`` it reports (:data:`ANALYSES`); a patient-level analysis maps one trial's
patients to estimates, SEs and df (:data:`PATIENT_ANALYSES`). Registered:

- the primary analysis (:func:`mixed_model`): REML random-intercept ANCOVA of the follow-up on
  arm and baseline, fitted once per trial by :func:`trialstats.analysis.reml.fit_reml` and
  tested with every denominator-df method of
  :func:`trialstats.analysis.inference.contrast_test` (Kenward-Roger, Satterthwaite,
  between-within, residual) plus the Wald z test;
- the two-stage cluster-level analysis (:func:`cluster_level`, Hayes & Moulton), exact from
  the sums;
- GEE with exchangeable working correlation and Mancl-DeRouen or Kauermann-Carroll SEs on
  J - 2 df (:func:`gee`), and OLS with the CR2 SE and Bell-McCaffrey df (:func:`cr2`), which
  need every patient and so run on fewer trials.

Multiple imputation is not covered: each trial would cost imputations x fits, and with the
follow-up missing completely at random and the baseline in the model the complete-case
analysis it would be compared with is already unbiased.

Random numbers
--------------
Cell :math:`i` (in the order of :func:`study_designs`) draws its null trials from scenario
:math:`2i` and its non-null trials from scenario :math:`2i + 1` of
:func:`trialstats.power.simulate.replicate_rng`, so every trial has its own stream and the
table does not depend on batch sizes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from trialstats.analysis.cluster_level import practice_t_test
from trialstats.analysis.inference import contrast_test
from trialstats.analysis.reml import fit_reml
from trialstats.analysis.robust import cr2_test, gee_exchangeable
from trialstats.contract import (
    ADJUSTED,
    BELL_MCCAFFREY,
    CLUSTER_DF,
    CR2,
    KAUERMANN_CARROLL,
    MANCL_DEROUEN,
    SIMULATION_DF_METHODS,
)
from trialstats.errors import TrialstatsError
from trialstats.power.simulate import (
    GENERATORS,
    SimulatedSums,
    SimulationDesign,
    batch_size_for,
    cluster_sums,
    simulate_patients,
    simulate_sums,
)

__all__ = [
    "ANALYSES",
    "CLUSTERS",
    "COLUMNS",
    "CVS",
    "ICCS",
    "MIXED_MODEL",
    "MIXED_MODEL_METHODS",
    "PATIENT_ANALYSES",
    "SIZE_BAND",
    "MethodTests",
    "StudySettings",
    "cluster_level",
    "cr2",
    "gee",
    "mixed_model",
    "study_designs",
    "validity_figure",
    "validity_study",
]

#: Total numbers of clusters (both arms), ICCs and cluster-size CVs of the study grid.
CLUSTERS = (6, 10, 20, 44)
ICCS = (0.01, 0.05, 0.1)
CVS = (0.0, 0.8)
#: Type I error band a method must stay in at the 5% level to be called valid.
SIZE_BAND = (0.04, 0.06)
#: Label of the primary analysis in the study table.
MIXED_MODEL = "mixed model"
#: Denominator-df methods of the mixed model, in the order reported.
MIXED_MODEL_METHODS = SIMULATION_DF_METHODS
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
        How trials are drawn (:func:`trialstats.power.simulate.simulate_sums`).
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


@dataclass(frozen=True)
class MethodTests:
    """One method's test of the arm effect in a batch of ``B`` trials.

    Attributes
    ----------
    estimate, se, df : ndarray, shape (B,)
        Estimated effect, its standard error and the denominator df (``inf`` for a z test);
        NaN where the trial could not be analysed.
    analysed : ndarray of bool, shape (B,)
        Trials the method could analyse.
    converged : ndarray of bool, shape (B,)
        Trials whose fit converged (False where not analysed).
    boundary : ndarray of bool, shape (B,)
        Trials with a variance component estimated at its boundary (e.g. cluster variance 0).
    """

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    analysed: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray


#: ``(analysis, method)``: the labels of a row of the study table.
Key = tuple[str, str]
#: A batch analysis maps simulated per-cluster sums (and their design) to tests by key.
BatchAnalysis = Callable[[SimulatedSums, SimulationDesign], dict[Key, MethodTests]]
#: A patient-level analysis maps one trial's ``(y, X, cluster_codes)`` (``X`` = intercept, arm,
#: baseline; clusters coded ``0 .. J - 1``, all non-empty) to ``(estimate, se, df, converged,
#: boundary)`` by key, or raises :class:`TrialstatsError` when it cannot analyse the trial.
PatientAnalysis = Callable[
    [np.ndarray, np.ndarray, np.ndarray], dict[Key, tuple[float, float, float, bool, bool]]
]


def _analysable(sums: SimulatedSums, n_params: int) -> np.ndarray:
    """Trials the random-intercept model can be fitted to: two clusters with patients in each
    arm, a cluster with two or more patients and more patients than fixed effects."""
    filled = sums.n > 0
    treated = sums.arm > 0
    return (
        (np.sum(filled & treated, axis=-1) >= 2)
        & (np.sum(filled & ~treated, axis=-1) >= 2)
        & np.any(sums.n >= 2, axis=-1)
        & (sums.n.sum(axis=-1) > n_params)
    )


def mixed_model(sums: SimulatedSums, design: SimulationDesign) -> dict[Key, MethodTests]:
    """The primary analysis of each simulated trial with every df method.

    Parameters
    ----------
    sums : SimulatedSums
        A batch of ``B`` trials.
    design : SimulationDesign
        Their design (``baseline`` selects ANCOVA, change score or follow-up only).

    Returns
    -------
    dict of (str, str) to MethodTests
        Keys ``("mixed model", method)`` for :data:`MIXED_MODEL_METHODS`. The model is fitted
        once per trial; Kenward-Roger reports its adjusted SE, the others the model-based SE;
        ``z`` has infinite df.
    """
    contrast = np.array([0.0, 1.0, 0.0] if design.baseline == "ancova" else [0.0, 1.0])
    n_reps = sums.n.shape[0]
    ok = _analysable(sums, contrast.size)
    index = np.flatnonzero(ok)
    converged = np.zeros(n_reps, dtype=bool)
    boundary = np.zeros(n_reps, dtype=bool)
    results: dict[Key, MethodTests] = {}
    if index.size:
        sub = SimulatedSums(
            **{name: getattr(sums, name)[index] for name in SimulatedSums.__dataclass_fields__}
        )
        data = cluster_sums(sub, design.baseline)
        fit = fit_reml(data)
        converged[index] = fit.converged
        boundary[index] = fit.boundary
    for method in MIXED_MODEL_METHODS:
        values = {name: np.full(n_reps, np.nan) for name in ("estimate", "se", "df")}
        if index.size:
            test = contrast_test(data, fit, contrast, "residual" if method == "z" else method)
            values["estimate"][index] = test.estimate
            values["se"][index] = test.se
            values["df"][index] = np.inf if method == "z" else test.df
        results[MIXED_MODEL, method] = MethodTests(
            **values, analysed=ok, converged=converged, boundary=boundary
        )
    return results


def cluster_level(sums: SimulatedSums, design: SimulationDesign) -> dict[Key, MethodTests]:
    """Two-stage cluster-level analysis of each simulated trial (Hayes & Moulton).

    Stage 1 regresses the follow-up on the baseline score by OLS over all analysed patients
    of a trial (arm left out), from the trial's totals; stage 2 is
    :func:`trialstats.analysis.cluster_level.practice_t_test` of the practice means of the
    residuals, as :func:`~trialstats.analysis.cluster_level.cluster_level_analysis` does.

    Returns
    -------
    dict of (str, str) to MethodTests
        Key ``("cluster-level (Hayes & Moulton)", "J-2")``, the labels of the sensitivity
        table; ``design`` is not used (the model has no choice of baseline handling).
    """
    n_reps = sums.n.shape[0]
    n = sums.n.sum(axis=-1)
    s0, s1 = sums.s0.sum(axis=-1), sums.s1.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (sums.s01.sum(axis=-1) - s0 * s1 / n) / (sums.s00.sum(axis=-1) - s0 * s0 / n)
        intercept = (s1 - slope * s0) / n
        means = (sums.s1 - intercept[:, None] * sums.n - slope[:, None] * sums.s0) / sums.n
    ok = _analysable(sums, 2) & np.isfinite(slope)
    values = {name: np.full(n_reps, np.nan) for name in ("estimate", "se", "df")}
    for r in np.flatnonzero(ok):
        filled = sums.n[r] > 0
        values["estimate"][r], values["se"][r], values["df"][r] = practice_t_test(
            means[r, filled], sums.arm[r, filled])
    flags = np.zeros(n_reps, dtype=bool)
    return {(ADJUSTED, CLUSTER_DF): MethodTests(**values, analysed=ok, converged=ok,
                                                boundary=flags)}


def gee(y: np.ndarray, X: np.ndarray, codes: np.ndarray) -> dict[Key, tuple]:
    """GEE with exchangeable working correlation, Mancl-DeRouen and Kauermann-Carroll SEs,
    t on J - 2 df (:func:`trialstats.analysis.robust.gee_exchangeable`, as ``gee_analysis``);
    ``boundary`` flags a practice with leverage 1."""
    fit = gee_exchangeable(y, X, codes)
    df = float(codes.max() + 1 - 2)
    return {
        (label, CLUSTER_DF): (float(fit.beta[1]), float(np.sqrt(vcov[1, 1])), df,
                              fit.converged, fit.singular)
        for label, vcov in ((MANCL_DEROUEN, fit.vcov_mancl_derouen),
                            (KAUERMANN_CARROLL, fit.vcov_kauermann_carroll))
    }


def cr2(y: np.ndarray, X: np.ndarray, codes: np.ndarray) -> dict[Key, tuple]:
    """OLS with the CR2 SE and Bell-McCaffrey df (:func:`trialstats.analysis.robust.cr2_test`,
    as ``cr2_analysis``); ``boundary`` flags a practice with leverage 1."""
    test = cr2_test(y, X, codes, np.array([0.0, 1.0, 0.0]))
    return {(CR2, BELL_MCCAFFREY): (test.estimate, test.se, test.df, True, test.singular)}


#: Analyses of batches of simulated cluster sums.
ANALYSES: tuple[BatchAnalysis, ...] = (mixed_model, cluster_level)
#: Analyses of one simulated trial's patients; they need every patient generated, so they run
#: on fewer trials (``patient_reps`` of :func:`validity_study`).
PATIENT_ANALYSES: tuple[PatientAnalysis, ...] = (gee, cr2)


def study_designs(
    settings: StudySettings = StudySettings(),
    clusters: Sequence[int] = CLUSTERS,
    iccs: Sequence[float] = ICCS,
    cvs: Sequence[float] = CVS,
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


def _concatenate(parts: dict[Key, list[MethodTests]]) -> dict[Key, MethodTests]:
    return {
        key: MethodTests(**{
            field: np.concatenate([getattr(b, field) for b in batches])
            for field in MethodTests.__dataclass_fields__
        })
        for key, batches in parts.items()
    }


def _simulate_tests(
    design: SimulationDesign,
    analyses: Sequence[BatchAnalysis],
    *,
    reps: int,
    seed: int,
    scenario: int,
    generator: str,
) -> dict[Key, MethodTests]:
    """Every batch analysis's tests on ``reps`` trials of ``design``, batch by batch."""
    step = batch_size_for(design)
    parts: dict[Key, list[MethodTests]] = {}
    for start in range(0, reps, step):
        sums = simulate_sums(design, seed, range(start, min(start + step, reps)), scenario,
                             generator)
        for analysis in analyses:
            for key, tests in analysis(sums, design).items():
                parts.setdefault(key, []).append(tests)
    return _concatenate(parts)


def _simulate_patient_tests(
    design: SimulationDesign,
    analyses: Sequence[PatientAnalysis],
    *,
    reps: int,
    seed: int,
    scenario: int,
) -> dict[Key, MethodTests]:
    """Every patient-level analysis's tests on ``reps`` trials of ``design``, one by one.

    The trials are :func:`~trialstats.power.simulate.simulate_patients` replicates; a trial
    with fewer than two clusters of analysed patients in an arm, or one an analysis rejects
    with :class:`TrialstatsError`, is not analysed by it. A key no trial produced is absent.
    """
    store: dict[Key, np.ndarray] = {}
    for replicate in range(reps):
        trial = simulate_patients(design, seed, replicate, scenario)
        clusters, codes = np.unique(trial["cluster"].to_numpy(), return_inverse=True)
        arm = design.arm[clusters]
        if min(np.sum(arm == 1), np.sum(arm == 0)) < 2:
            continue
        y = trial["y1"].to_numpy()
        X = np.column_stack([np.ones(len(trial)), trial["arm"], trial["y0"]]).astype(float)
        for analysis in analyses:
            try:
                results = analysis(y, X, codes)
            except TrialstatsError:
                continue
            for key, values in results.items():
                # columns: estimate, se, df, converged, boundary, analysed
                store.setdefault(key, np.full((reps, 6), np.nan))[replicate] = (*values, True)
    return {
        key: MethodTests(estimate=table[:, 0], se=table[:, 1], df=table[:, 2],
                         converged=table[:, 3] == 1, boundary=table[:, 4] == 1,
                         analysed=table[:, 5] == 1)
        for key, table in store.items()
    }


def _rejects(tests: MethodTests, effect: float, alpha: float) -> np.ndarray:
    """``|estimate - effect| / se`` beyond the t critical value, for the analysed trials."""
    ok = tests.analysed
    crit = stats.t.isf(alpha / 2.0, tests.df[ok])
    return np.abs(tests.estimate[ok] - effect) > crit * tests.se[ok]


def _rate(hits: np.ndarray) -> tuple[float, float]:
    if hits.size == 0:
        return math.nan, math.nan
    rate = float(hits.mean())
    return rate, math.sqrt(rate * (1.0 - rate) / hits.size)


def _summarise(
    null: MethodTests, alternative: MethodTests, effect: float, alpha: float
) -> dict[str, float | int | bool]:
    size, size_se = _rate(_rejects(null, 0.0, alpha))
    miss, miss_se = _rate(_rejects(alternative, effect, alpha))
    power, power_se = _rate(_rejects(alternative, 0.0, alpha))
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
    *,
    reps: int,
    seed: int,
    patient_reps: int | None = None,
    settings: StudySettings = StudySettings(),
    clusters: Sequence[int] = CLUSTERS,
    iccs: Sequence[float] = ICCS,
    cvs: Sequence[float] = CVS,
    analyses: Sequence[BatchAnalysis] = ANALYSES,
    patient_analyses: Sequence[PatientAnalysis] = PATIENT_ANALYSES,
    progress: Callable[[SimulationDesign], None] | None = None,
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
        :func:`~trialstats.power.simulate.simulate_patients` from the same streams, which share
        each replicate's cluster sizes and cluster effects with the batch analyses' trials.
    progress : callable, optional
        Called with each cell's null design when the cell is done.

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
                _simulate_tests(d, analyses, reps=reps, seed=seed, scenario=2 * cell + k,
                                generator=settings.generator)
                for k, d in enumerate((design, shifted)))))
        if patient_analyses:
            runs.append((patient_reps, "patients", *(
                _simulate_patient_tests(d, patient_analyses, reps=patient_reps, seed=seed,
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
            progress(design)
    return pd.DataFrame(rows, columns=list(COLUMNS))


_INK = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000",
        "#882255", "#999933")


def validity_figure(table: pd.DataFrame) -> Figure:
    """Type I error (top row) and coverage (bottom row) against the number of clusters.

    One column per ICC; one colour per analysis method; solid lines for equal cluster sizes,
    dashed for the largest CV. Bars are 95% Monte Carlo intervals (``± 1.96 mc_se``); the
    grey bands are :data:`SIZE_BAND` and its mirror around the nominal coverage.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`validity_study`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    iccs = sorted(table["icc"].unique())
    cvs = sorted(table["cv"].unique())
    keyed = table.assign(label=[
        m if a == MIXED_MODEL else a
        for a, m in zip(table["analysis"], table["method"], strict=True)
    ])
    labels = list(dict.fromkeys(keyed["label"]))
    alpha = float(table["alpha"].iloc[0])
    figure = Figure(figsize=(10.0, 6.0))
    axes = figure.subplots(2, len(iccs), sharex=True, sharey="row", squeeze=False)
    styles = {cv: ("-" if i == 0 else "--", "o" if i == 0 else "s") for i, cv in enumerate(cvs)}
    rows = (("type_i_error", "type I error", SIZE_BAND),
            ("coverage", "coverage", (1.0 - SIZE_BAND[1], 1.0 - SIZE_BAND[0])))
    offsets = np.linspace(-0.04, 0.04, len(labels)) if len(labels) > 1 else np.zeros(1)
    for r, (column, name, band) in enumerate(rows):
        for c, icc in enumerate(iccs):
            ax = axes[r, c]
            ax.axhspan(*band, color="#dddddd", zorder=0)
            ax.axhline(alpha if r == 0 else 1.0 - alpha, color="#777777", lw=0.8, zorder=1)
            for k, label in enumerate(labels):
                for cv in cvs:
                    part = keyed[(keyed["icc"] == icc) & (keyed["cv"] == cv)
                                 & (keyed["label"] == label)].sort_values("n_clusters")
                    line, marker = styles[cv]
                    ax.errorbar(
                        part["n_clusters"] * np.exp(offsets[k]), part[column],
                        yerr=1.96 * part[f"{column}_mc_se"], color=_INK[k % len(_INK)],
                        ls=line, marker=marker, ms=3, lw=1.0, capsize=1.5,
                        label=f"{label}, CV {cv:g}" if r == 0 and c == 0 else None,
                    )
            ax.set_xscale("log")
            ticks = sorted(table["n_clusters"].unique())
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            if r == 0:
                ax.set_title(f"ICC {icc:g}", fontsize=9)
            else:
                ax.set_xlabel("clusters (both arms)")
            if c == 0:
                ax.set_ylabel(name)
    first = table.iloc[0]
    figure.suptitle(
        f"Validity of the primary analysis: {int(first['reps']):,} trials per cell and "
        f"hypothesis; mean cluster size {first['cluster_size']:g}, attrition "
        f"{first['attrition']:g}, effect {first['effect']:g} SD for coverage",
        fontsize=9,
    )
    figure.legend(loc="lower center", ncol=min(len(labels), 5), fontsize=7, frameon=False)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.2, wspace=0.08, hspace=0.12)
    return figure
