r"""Power of a cluster-randomised trial by simulation, vectorised over replicates.

Trials are drawn from the generating model of :mod:`trialstats.simulation.draw` and
analysed by :mod:`trialstats.simulation.analyse`.

Analysis
--------
Each trial is analysed as the primary analysis would be: complete cases (patients with a
follow-up score) in the random-intercept model

.. math:: y^{(1)}_{ij} = \beta_0 + \beta_1 T_j + \beta_2 y^{(0)}_{ij} + b_j + \varepsilon_{ij},
    \qquad b_j \sim N(0, \sigma_b^2),\ \varepsilon_{ij} \sim N(0, \sigma_e^2),

fitted by REML (``baseline="ancova"``; ``"none"`` drops ``y0``, ``"change"`` analyses
``y1 - y0`` on ``T``) with the exact profiled-REML kernel of
:mod:`trialstats.analysis.reml` applied to per-cluster sufficient statistics carrying a
leading replicate axis, in batches that bound memory. The test of ``beta_1 = 0`` is a t test
with the chosen denominator degrees of freedom.

Type I error comes free with every run: the arm indicator is a column of the design, so
subtracting ``delta T_j`` from the data changes neither the residuals, the REML variance
components, the standard error nor the degrees of freedom, only shifts the estimate by
``delta``. The same trials with ``delta = 0`` therefore reject when
``|beta_1_hat - delta| / SE > t_crit``, and both rates are estimated from one set of fits.

References
----------
Teerenstra S, Eldridge S, Graff M, de Hoop E, Borm GF (2012) A simple sample size formula for
analysis of covariance in cluster randomized trials. Stat Med 31:2169-2178.
Eldridge SM, Ashby D, Kerry S (2006) Sample size for cluster randomized trials: effect of
coefficient of variation of cluster size and analysis method. Int J Epidemiol 35:1292-1300.
Bartlett MS (1933) On the theory of statistical regression. Proc R Soc Edinburgh 53:260-283
(the Wishart decomposition).
Morris TP, White IR, Crowther MJ (2019) Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-2102 (Monte Carlo standard errors).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from trialstats.errors import TrialstatsError
from trialstats.power.design_effect import design_effect
from trialstats.simulation.analyse import fit_mixed_model, rejects
from trialstats.simulation.constrained import (
    ANALYSES,
    ConstrainedBatch,
    Constraint,
    constrained_batches,
    permutation_tests,
)
from trialstats.simulation.draw import (
    SimulatedSums,
    SimulationDesign,
    simulate_batches,
    simulate_sums,
)

__all__ = ["analyse_replicates", "simulate_power", "solve_clusters"]

_REPLICATE_COLUMNS = (
    "replicate", "estimate", "se", "df", "p_value", "reject", "reject_null", "var_cluster",
    "var_residual", "reml_loglik", "converged", "boundary", "estimable", "n_obs", "n_clusters",
    "recruited",
)


def analyse_replicates(
    design: SimulationDesign, seed: int, replicates: range, *, scenario: int = 0,
    df_method: str = "between-within", alpha: float = 0.05, generator: str = "patients",
) -> pd.DataFrame:
    """Simulate and analyse a batch of trials; one row per replicate.

    Parameters
    ----------
    design, seed, replicates, scenario
        The scenario, base seed, replicate numbers (each its own stream) and scenario number
        within a grid, as in :func:`~trialstats.simulation.draw.simulate_sums`.
    df_method : {"between-within", "satterthwaite", "kenward-roger", "residual", "z"}
        Denominator degrees of freedom, as the primary analysis computes them
        (:func:`trialstats.analysis.inference.contrast_test`): clusters with data minus 2
        (the between-cluster parameters, intercept and arm), Satterthwaite's approximation
        (as lmerTest), Kenward-Roger (as pbkrtest, which also adjusts the SE), analysed
        patients minus the number of fixed effects, or infinity (Wald z).
    alpha : float, default 0.05
        Two-sided significance level.
    generator : {"patients", "sums"}, default "patients"
        How trials are drawn (as in :func:`~trialstats.simulation.draw.simulate_sums`).

    Returns
    -------
    pandas.DataFrame
        Columns ``replicate``, ``estimate`` (``beta_1``), ``se`` (model-based; Kenward-Roger
        adjusted for that method), ``df``,
        ``p_value``, ``reject`` (at ``alpha``), ``reject_null`` (the same trial with
        ``delta = 0``: ``|estimate - delta| / se`` beyond the critical value),
        ``var_cluster``, ``var_residual``, ``reml_loglik``, ``converged``, ``boundary``,
        ``estimable`` (False when the trial is not analysable,
        :func:`trialstats.simulation.analyse.analysable`: fewer than two clusters with
        analysed patients in an arm, as the real analysis requires, or too few patients;
        such replicates have missing estimates and count as non-rejections),
        ``n_obs``, ``n_clusters`` (with analysed patients), ``recruited`` (patients
        recruited).
    """
    sums = simulate_sums(design, seed, replicates, scenario, generator)
    return _analyse(sums, design, df_method=df_method, alpha=alpha).assign(
        replicate=np.asarray(replicates, dtype=np.int64)
    )[list(_REPLICATE_COLUMNS)]


def _analyse(
    sums: SimulatedSums, design: SimulationDesign, *, df_method: str, alpha: float,
    covariate: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per replicate of the batch ``sums`` (the columns of :func:`analyse_replicates`
    but ``replicate``); the model also adjusts for ``covariate`` when given."""
    fits = fit_mixed_model(sums, design.baseline, (df_method,), covariate)
    test = fits.tests[df_method]
    with np.errstate(invalid="ignore"):
        p_value = 2.0 * stats.t.sf(np.abs(test.estimate / test.se), test.df)
    return pd.DataFrame({
        "estimate": test.estimate, "se": test.se, "df": test.df, "p_value": p_value,
        "var_cluster": fits.var_cluster, "var_residual": fits.var_residual,
        "reml_loglik": fits.reml_loglik, "reject": rejects(test.estimate, test.se, test.df, alpha),
        "reject_null": rejects(test.estimate, test.se, test.df, alpha, design.effect),
        "converged": fits.converged, "boundary": fits.boundary, "estimable": fits.analysable,
        "n_obs": sums.n.sum(axis=-1).astype(np.int64),
        "n_clusters": np.sum(sums.n > 0, axis=-1).astype(np.int64),
        "recruited": sums.recruited.sum(axis=-1),
    })


def _permutation_rows(batch: ConstrainedBatch, design: SimulationDesign, alpha: float
                      ) -> pd.DataFrame:
    """The columns of :func:`_analyse` for the permutation test (no SE, df or variances)."""
    tests = permutation_tests(batch, design.baseline, design.effect, alpha)
    missing = np.full(len(tests["estimate"]), np.nan)
    return pd.DataFrame({
        **{k: tests[k] for k in ("estimate", "p_value", "reject", "reject_null", "estimable")},
        "se": missing, "df": missing, "converged": tests["estimable"],
        "boundary": np.zeros(len(missing), dtype=bool),
    })


def _batches(design, seed, reps, *, scenario, generator, batch_size, constraint, analysis,
             df_method, alpha):
    """``(replicates, sums, rows)`` of each batch, unconstrained or constrained."""
    if constraint is None:
        for batch, sums in simulate_batches(design, seed, reps, scenario=scenario,
                                            generator=generator, batch_size=batch_size):
            yield batch, sums, _analyse(sums, design, df_method=df_method, alpha=alpha)
        return
    for batch, drawn in constrained_batches(design, constraint, seed, reps, scenario=scenario,
                                            generator=generator, batch_size=batch_size):
        rows = (_permutation_rows(drawn, design, alpha) if analysis == "permutation"
                else _analyse(drawn.sums, design, df_method=df_method, alpha=alpha,
                              covariate=drawn.covariate if analysis.endswith("adjusted")
                              else None))
        yield batch, drawn.sums, rows


def simulate_power(
    design: SimulationDesign, *, reps: int, seed: int, df_method: str = "between-within",
    alpha: float = 0.05, scenario: int = 0, batch_size: int | None = None,
    progress: Callable[[int], None] | None = None, generator: str = "patients",
    constraint: Constraint | None = None, analysis: str = "mixed-model",
) -> dict[str, object]:
    """Simulated power of one scenario, with its Monte Carlo SE and the type I error.

    Parameters
    ----------
    design : SimulationDesign
        The scenario.
    reps : int
        Number of simulated trials (>= 2).
    seed : int
        Base seed; replicate ``r`` uses ``SeedSequence(seed, spawn_key=(scenario, r))``.
    df_method : str, default "between-within"
        One of :data:`~trialstats.contract.SIMULATION_DF_METHODS`:
        denominator df of the t test (see :func:`analyse_replicates`).
    alpha : float, default 0.05
        Two-sided significance level.
    scenario : int, default 0
        Scenario number within a grid.
    batch_size : int, optional
        Replicates simulated and fitted at once; by default as many as fit in
        :data:`~trialstats.simulation.draw.BATCH_BYTES`. Results do not depend on it.
    progress : callable, optional
        Called with the number of replicates finished after each batch.
    generator : {"patients", "sums"}, default "patients"
        How trials are drawn (as in :func:`~trialstats.simulation.draw.simulate_sums`).
    constraint : Constraint, optional
        Allocate each trial by constrained randomisation on a covariate explaining part of
        the cluster variance (:mod:`trialstats.simulation.constrained`); ``cutoff = 1`` is
        the same trials allocated without constraint.
    analysis : {"mixed-model", "mixed-model-adjusted", "permutation"}, default "mixed-model"
        With a constraint, analyse by the primary mixed model, not adjusted or adjusted for
        the balancing covariate, or by the clustered permutation test over each trial's
        accepted allocations, adjusted for the covariate (its ``se``, ``df`` and variance
        summaries are NaN and ``df_method`` is ``"permutation"``).

    Returns
    -------
    dict
        ``method`` ("simulation"), ``scenario``, the design (``clusters_per_arm``,
        ``k_intervention``, ``allocation_ratio``, ``cluster_size``, ``cv``, ``icc``, ``effect``,
        ``attrition``, ``rho_s``, ``rho_c``, ``baseline``, ``alpha``), ``power`` (share of
        trials rejecting), ``mc_se`` (``sqrt(power (1 - power) / reps)``), ``type_i_error``
        and ``type_i_error_mc_se`` (the same trials at ``delta = 0``, see the module
        docstring), ``design_effect`` (Eldridge's at the nominal analysed size
        ``m (1 - F)``), ``df_method``, ``generator``, ``mean_df``, ``reps``, ``seed``, ``n_failed``
        (replicates not estimable or not converged; not estimable ones count as
        non-rejections), ``n_boundary`` (cluster variance estimated at 0),
        ``mean_estimate``, ``empirical_se`` (SD of the estimates), ``mean_se`` (mean model
        SE), ``cluster_size_realised`` and ``cv_realised`` (mean and CV of the recruited
        cluster sizes drawn) and ``cluster_size_analysed_realised`` (mean completers per
        cluster); with a constraint also ``allocation`` (``"constrained"`` or, at cut-off 1,
        ``"unconstrained"``), ``constrain_cutoff``, ``covariate_share`` and ``analysis``.
    """
    if analysis not in ANALYSES or (analysis == "permutation" and constraint is None):
        raise TrialstatsError(f"The analysis must be one of {', '.join(ANALYSES)}; the "
                              "permutation test needs a constraint (its allocation set).")
    if reps < 2:
        raise TrialstatsError("A simulation needs at least two replicates.")
    if not 0 < alpha < 1:
        raise TrialstatsError("The significance level alpha must lie in (0, 1).")
    # Per-replicate results (a few numbers each) are kept and reduced once at the end, so
    # the summaries are bit-identical whatever the batch size; integer totals are exact.
    kept = {name: np.empty(reps) for name in ("estimate", "se", "df")}
    flags = {name: np.empty(reps, dtype=bool)
             for name in ("reject", "reject_null", "ok", "boundary", "estimable")}
    size_total = size_squares = analysed_total = 0
    for batch, sums, rows in _batches(
            design, seed, reps, scenario=scenario, generator=generator, batch_size=batch_size,
            constraint=constraint, analysis=analysis, df_method=df_method, alpha=alpha):
        where = slice(batch.start, batch.stop)
        for name in kept:
            kept[name][where] = rows[name].to_numpy()
        for name in ("reject", "reject_null", "boundary", "estimable"):
            flags[name][where] = rows[name].to_numpy()
        flags["ok"][where] = rows["estimable"].to_numpy() & rows["converged"].to_numpy()
        size_total += int(sums.recruited.sum())
        size_squares += int((sums.recruited**2).sum())
        analysed_total += int(sums.n.sum())
        if progress is not None:
            progress(len(batch))
    power = float(flags["reject"].mean())
    type1 = float(flags["reject_null"].mean())
    fitted = flags["estimable"]
    estimates = kept["estimate"][fitted]
    n_sizes = reps * design.n_clusters
    mean_size = size_total / n_sizes
    analysed_m = design.cluster_size * (1.0 - design.attrition)

    def mean_of(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else math.nan

    extra = {} if constraint is None else {
        "allocation": "constrained" if constraint.cutoff < 1 else "unconstrained",
        "constrain_cutoff": constraint.cutoff, "covariate_share": constraint.covariate_share,
        "analysis": analysis,
    }
    if analysis == "permutation":
        df_method = "permutation"
    return {
        "method": "simulation", "scenario": scenario, "clusters_per_arm": design.clusters_per_arm,
        "k_intervention": design.n_intervention,
        "allocation_ratio": design.n_intervention / design.clusters_per_arm,
        "cluster_size": design.cluster_size, "cv": design.cv, "icc": design.icc,
        "effect": design.effect, "attrition": design.attrition, "rho_s": design.rho_s,
        "rho_c": design.rho_c, "baseline": design.baseline, "alpha": alpha, "power": power,
        "mc_se": math.sqrt(power * (1.0 - power) / reps), "type_i_error": type1,
        "type_i_error_mc_se": math.sqrt(type1 * (1.0 - type1) / reps),
        "design_effect": float(design_effect(analysed_m, design.icc, design.cv)),
        "df_method": df_method, "generator": generator, "mean_df": mean_of(kept["df"][fitted]),
        "reps": reps, "seed": seed, "n_failed": int((~flags["ok"]).sum()),
        "n_boundary": int(flags["boundary"].sum()), "mean_estimate": mean_of(estimates),
        "empirical_se": float(estimates.std(ddof=1)) if estimates.size > 1 else math.nan,
        "mean_se": mean_of(kept["se"][fitted]), "cluster_size_realised": mean_size,
        "cv_realised": math.sqrt(max(size_squares / n_sizes - mean_size**2, 0.0)) / mean_size,
        "cluster_size_analysed_realised": analysed_total / n_sizes, **extra,
    }


def solve_clusters(
    design_for: Callable[[int], SimulationDesign], *, target_power: float, reps: int, seed: int,
    df_method: str = "between-within", alpha: float = 0.05, start: int = 2,
    max_clusters: int = 10_000, batch_size: int | None = None,
    progress: Callable[[int], None] | None = None, generator: str = "patients",
) -> pd.DataFrame:
    """Smallest clusters per arm whose simulated power reaches a target, by integer bisection.

    Parameters
    ----------
    design_for : callable
        ``design_for(k)`` returns the design with ``k`` control clusters (and whatever
        intervention clusters the allocation implies).
    target_power : float
        Power to reach, in (alpha, 1).
    reps, seed, df_method, alpha, batch_size, progress, generator
        As in :func:`simulate_power`; every size is simulated with the same seed (common
        random numbers), which makes the simulated power curve smoother in ``k``.
    start : int, default 2
        First size tried (e.g. the analytic answer); the search halves below or doubles
        above it to bracket the target, then bisects.
    max_clusters : int, default 10000
        Give up above this many control clusters.

    Returns
    -------
    pandas.DataFrame
        One row per size simulated (the columns of :func:`simulate_power`), sorted by
        ``clusters_per_arm``, plus ``target_power`` and ``solution`` (True on the smallest
        size found whose power reaches the target with the next smaller size simulated
        below it). Monte Carlo error makes the answer uncertain by about one cluster near
        the target; check ``power`` and ``mc_se`` of the neighbouring rows.

    Raises
    ------
    TrialstatsError
        If the target is outside (alpha, 1) or not reached by ``max_clusters``.
    """
    if not alpha < target_power < 1:
        raise TrialstatsError(f"The target power must lie in ({alpha:g}, 1).")
    results: dict[int, dict[str, object]] = {}

    def reaches(k: int) -> bool:
        if k not in results:
            results[k] = simulate_power(
                design_for(k), reps=reps, seed=seed, df_method=df_method, alpha=alpha,
                batch_size=batch_size, progress=progress, generator=generator,
            )
        return float(results[k]["power"]) >= target_power

    k = max(2, int(start))
    if reaches(k):
        low, high = 1, k
        while high > 2:
            trial = max(2, high // 2)
            if not reaches(trial):
                low = trial
                break
            high = trial
    else:
        low, high = k, 2 * k
        while not reaches(high):
            if high >= max_clusters:
                raise TrialstatsError(
                    f"Simulated power stays below {target_power:g} up to {high} clusters per arm."
                )
            low, high = high, min(2 * high, max_clusters)
    while high - low > 1:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    table = pd.DataFrame([results[k] for k in sorted(results)])
    table["target_power"] = target_power
    table["solution"] = table["clusters_per_arm"] == high
    return table
