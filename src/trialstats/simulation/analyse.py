r"""Analysing simulated trials in batches: one fit and test per trial, every method at once.

A batch of ``B`` trials drawn by :mod:`trialstats.simulation.draw` arrives as per-cluster sums
(:class:`~trialstats.simulation.draw.SimulatedSums`, arrays of shape ``(B, J)``). A *batch
analysis* maps it to one :class:`MethodTests` per ``(analysis, method)`` key; a
*patient-level analysis* maps one trial's patients ``(y, X, cluster_codes)`` to estimates, SEs
and df by key. Each trial is analysed as the real analysis would analyse it:

- the primary analysis (:func:`fit_mixed_model`, :func:`mixed_model`): REML random-intercept
  model of the follow-up on arm and, by ``baseline``, the baseline score
  (:func:`trialstats.simulation.draw.cluster_sums`), fitted once per trial by
  :func:`trialstats.analysis.reml.fit_reml` and tested with every denominator-df method of
  :func:`trialstats.analysis.inference.contrast_test` plus the Wald z test;
- the two-stage cluster-level analysis (:func:`cluster_level`, Hayes & Moulton), exact from
  the sums;
- GEE with exchangeable working correlation (:func:`gee`) and OLS with the CR2 SE
  (:func:`cr2`), which need every patient.

A trial is analysable under the one rule of the real analysis
(:func:`trialstats.analysis.rows.arms_comparable`: at least two practices with analysed
patients in each arm), plus a practice with two or more patients and more patients than fixed
effects; the others are reported as not analysed (NaN estimates, never rejecting).
A test rejects :math:`\delta = \delta_0` at level :math:`\alpha` when
:math:`|\hat\delta - \delta_0| / \widehat{\mathrm{se}} > t_{1-\alpha/2,\,\nu}` (:func:`rejects`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from trialstats import contract
from trialstats.analysis.cluster_level import practice_t_test
from trialstats.analysis.inference import contrast_test
from trialstats.analysis.reml import fit_reml
from trialstats.analysis.robust import cr2_test, gee_exchangeable
from trialstats.analysis.rows import arms_comparable
from trialstats.errors import TrialstatsError
from trialstats.simulation.draw import (
    SimulatedSums,
    SimulationDesign,
    cluster_sums,
    simulate_batches,
    simulate_patients,
)

__all__ = [
    "MIXED_MODEL",
    "BatchAnalysis",
    "Key",
    "MethodTests",
    "MixedModelFits",
    "PatientAnalysis",
    "analysable",
    "cluster_level",
    "cr2",
    "fit_mixed_model",
    "gee",
    "mixed_model",
    "rejects",
    "simulate_patient_tests",
    "simulate_tests",
]

#: ``analysis`` label of the primary mixed model in tables of simulated trials.
MIXED_MODEL = "mixed model"


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


@dataclass(frozen=True)
class MixedModelFits:
    """The primary model fitted once to each trial of a batch, tested by several methods.

    Attributes
    ----------
    analysable : ndarray of bool, shape (B,)
        Trials the model was fitted to (:func:`analysable`).
    var_cluster, var_residual, reml_loglik : ndarray, shape (B,)
        REML variance components and log-likelihood; NaN where not analysable.
    converged, boundary : ndarray of bool, shape (B,)
        Convergence and cluster variance at 0 (False where not analysable).
    tests : dict of str to MethodTests
        The arm test by df method.
    """

    analysable: np.ndarray
    var_cluster: np.ndarray
    var_residual: np.ndarray
    reml_loglik: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray
    tests: dict[str, MethodTests]


#: ``(analysis, method)``: the labels of a row of a table of simulated trials.
Key = tuple[str, str]
#: A batch analysis maps simulated per-cluster sums (and their design) to tests by key.
BatchAnalysis = Callable[[SimulatedSums, SimulationDesign], dict[Key, MethodTests]]
#: A patient-level analysis maps one trial's ``(y, X, cluster_codes)`` (``X`` = intercept, arm,
#: baseline; clusters coded ``0 .. J - 1``, all non-empty) to ``(estimate, se, df, converged,
#: boundary)`` by key, or raises :class:`TrialstatsError` when it cannot analyse the trial.
PatientAnalysis = Callable[
    [np.ndarray, np.ndarray, np.ndarray], dict[Key, tuple[float, float, float, bool, bool]]
]


def analysable(sums: SimulatedSums, n_params: int) -> np.ndarray:
    """Trials a model with ``n_params`` fixed effects can be fitted to: the arms comparable
    as in the real analysis, a cluster with two or more patients, more patients than fixed
    effects."""
    filled = sums.n > 0
    treated = sums.arm > 0
    return (
        arms_comparable(np.sum(filled & treated, axis=-1), np.sum(filled & ~treated, axis=-1))
        & np.any(sums.n >= 2, axis=-1)
        & (sums.n.sum(axis=-1) > n_params)
    )


def fit_mixed_model(
    sums: SimulatedSums, baseline: str, methods: Sequence[str] = contract.SIMULATION_DF_METHODS,
    covariate: np.ndarray | None = None,
) -> MixedModelFits:
    """The primary analysis of each analysable trial of a batch, tested with ``methods``.

    Parameters
    ----------
    sums : SimulatedSums
        A batch of ``B`` trials.
    baseline : {"ancova", "none", "change"}
        The analysis model (:func:`trialstats.simulation.draw.cluster_sums`).
    methods : sequence of str
        Df methods among :data:`~trialstats.contract.SIMULATION_DF_METHODS`; Kenward-Roger
        reports its adjusted SE, the others the model-based SE; ``z`` has infinite df.
    covariate : ndarray (B, J), optional
        A cluster-level covariate the model also adjusts for
        (:func:`trialstats.simulation.draw.cluster_sums`).

    Returns
    -------
    MixedModelFits
    """
    unknown = [m for m in methods if m not in contract.SIMULATION_DF_METHODS]
    if unknown:
        raise TrialstatsError(f"Unknown df method {unknown[0]!r}; choose one of "
                              f"{', '.join(contract.SIMULATION_DF_METHODS)}.")
    contrast = np.array([0.0, 1.0, 0.0] if baseline == "ancova" else [0.0, 1.0])
    if covariate is not None:
        contrast = np.append(contrast, 0.0)
    n_reps = sums.n.shape[0]
    ok = analysable(sums, contrast.size)
    index = np.flatnonzero(ok)
    fitted = {name: np.full(n_reps, np.nan) for name in ("var_cluster", "var_residual",
                                                         "reml_loglik")}
    flags = {name: np.zeros(n_reps, dtype=bool) for name in ("converged", "boundary")}
    if index.size:
        sub = SimulatedSums(
            **{name: getattr(sums, name)[index] for name in SimulatedSums.__dataclass_fields__}
        )
        data = cluster_sums(sub, baseline, None if covariate is None else covariate[index])
        fit = fit_reml(data)
        for name, values in (*fitted.items(), *flags.items()):
            values[index] = getattr(fit, name)
    tests = {}
    for method in methods:
        values = {name: np.full(n_reps, np.nan) for name in ("estimate", "se", "df")}
        if index.size:
            test = contrast_test(data, fit, contrast, "residual" if method == "z" else method)
            values["estimate"][index] = test.estimate
            values["se"][index] = test.se
            values["df"][index] = np.inf if method == "z" else test.df
        tests[method] = MethodTests(**values, analysed=ok, **flags)
    return MixedModelFits(analysable=ok, **fitted, **flags, tests=tests)


def mixed_model(sums: SimulatedSums, design: SimulationDesign) -> dict[Key, MethodTests]:
    """:func:`fit_mixed_model` with every df method, keyed ``("mixed model", method)``."""
    fits = fit_mixed_model(sums, design.baseline)
    return {(MIXED_MODEL, method): tests for method, tests in fits.tests.items()}


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
    ok = analysable(sums, 2) & np.isfinite(slope)
    values = {name: np.full(n_reps, np.nan) for name in ("estimate", "se", "df")}
    for r in np.flatnonzero(ok):
        filled = sums.n[r] > 0
        values["estimate"][r], values["se"][r], values["df"][r] = practice_t_test(
            means[r, filled], sums.arm[r, filled])
    flags = np.zeros(n_reps, dtype=bool)
    key = (contract.ADJUSTED, contract.CLUSTER_DF)
    return {key: MethodTests(**values, analysed=ok, converged=ok, boundary=flags)}


def gee(y: np.ndarray, X: np.ndarray, codes: np.ndarray) -> dict[Key, tuple]:
    """GEE with exchangeable working correlation, Mancl-DeRouen and Kauermann-Carroll SEs,
    t on J - 2 df (:func:`trialstats.analysis.robust.gee_exchangeable`, as ``gee_analysis``);
    ``boundary`` flags a practice with leverage 1."""
    fit = gee_exchangeable(y, X, codes)
    df = float(codes.max() + 1 - 2)
    return {
        (label, contract.CLUSTER_DF): (float(fit.beta[1]), float(np.sqrt(vcov[1, 1])), df,
                              fit.converged, fit.singular)
        for label, vcov in ((contract.MANCL_DEROUEN, fit.vcov_mancl_derouen),
                            (contract.KAUERMANN_CARROLL, fit.vcov_kauermann_carroll))
    }


def cr2(y: np.ndarray, X: np.ndarray, codes: np.ndarray) -> dict[Key, tuple]:
    """OLS with the CR2 SE and Bell-McCaffrey df (:func:`trialstats.analysis.robust.cr2_test`,
    as ``cr2_analysis``); ``boundary`` flags a practice with leverage 1."""
    test = cr2_test(y, X, codes, np.array([0.0, 1.0, 0.0]))
    key = (contract.CR2, contract.BELL_MCCAFFREY)
    return {key: (test.estimate, test.se, test.df, True, test.singular)}


def rejects(
    estimate: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float, value: float = 0.0
) -> np.ndarray:
    """Two-sided t tests of ``effect = value``: ``|estimate - value| / se`` beyond
    :math:`t_{1-\\alpha/2,\\,df}`; False where the trial was not analysed (NaN)."""
    with np.errstate(invalid="ignore"):
        return np.abs((estimate - value) / se) > stats.t.isf(alpha / 2.0, df)


def simulate_tests(
    design: SimulationDesign, analyses: Sequence[BatchAnalysis], *, reps: int, seed: int,
    scenario: int, generator: str,
) -> dict[Key, MethodTests]:
    """Every batch analysis's tests on ``reps`` trials of ``design``, batch by batch."""
    parts: dict[Key, list[MethodTests]] = {}
    for _, sums in simulate_batches(design, seed, reps, scenario=scenario, generator=generator):
        for analysis in analyses:
            for key, tests in analysis(sums, design).items():
                parts.setdefault(key, []).append(tests)
    return {
        key: MethodTests(**{
            field: np.concatenate([getattr(b, field) for b in batches])
            for field in MethodTests.__dataclass_fields__
        })
        for key, batches in parts.items()
    }


def simulate_patient_tests(
    design: SimulationDesign, analyses: Sequence[PatientAnalysis], *, reps: int, seed: int,
    scenario: int,
) -> dict[Key, MethodTests]:
    """Every patient-level analysis's tests on ``reps`` trials of ``design``, one by one.

    The trials are :func:`~trialstats.simulation.draw.simulate_patients` replicates; a trial
    whose arms are not comparable (:func:`~trialstats.analysis.rows.arms_comparable`), or one
    an analysis rejects with :class:`TrialstatsError`, is not analysed by it. A key no trial
    produced is absent.
    """
    store: dict[Key, np.ndarray] = {}
    for replicate in range(reps):
        trial = simulate_patients(design, seed, replicate, scenario)
        clusters, codes = np.unique(trial["cluster"].to_numpy(), return_inverse=True)
        arm = design.arm[clusters]
        if not arms_comparable(np.sum(arm == 1), np.sum(arm == 0)):
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
