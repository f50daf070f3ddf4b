r"""Multilevel multiple imputation by chained equations, pooled by Rubin's rules.

Imputation model
----------------
Every configured outcome at every measured month is imputed by chained equations of
two-level Bayesian linear regressions with a random practice intercept; the model and its
exact draws are stated in :mod:`trialstats.analysis.chained` (van Buuren 2018; Rubin 1987;
Andridge 2011). Imputed values are neither rounded nor clipped to the outcome's range. Binary
and count columns are drawn from two-level GLMMs (:mod:`trialstats.analysis.chained_glmm`),
the follow-up counts of an outcome with an ``exposure`` column with offset log(exposure)
(:func:`exposure_offset` for patients whose exposure is missing).

Analysis and pooling
--------------------
Each completed dataset is analysed with the primary model
(:func:`trialstats.analysis.primary.analyse_outcome`: follow-up ~ treated + baseline +
covariates + (1 | practice), exact REML) using the primary df method, each batch of
imputations in one batched fit as it is made (the draws of all imputations are never held at
once, and a fit does not depend on the others in its batch). With per-imputation
estimates :math:`\hat Q_m`, variances :math:`U_m` (squared standard errors, Kenward–Roger
adjusted for that method) and complete-data df
:math:`\nu_{com}` (the mean of the per-imputation df), Rubin's rules give
:math:`\bar Q = \frac1M\sum_m \hat Q_m`, :math:`\bar U = \frac1M\sum_m U_m`,
:math:`B = \frac{1}{M-1}\sum_m (\hat Q_m - \bar Q)^2`, :math:`T = \bar U + (1 + 1/M) B`; the
relative increase in variance :math:`r = (1 + 1/M) B / \bar U`, :math:`\lambda = (1 + 1/M)B/T`
(floored at :math:`10^{-4}` as mice does) and the Barnard & Rubin (1999, *Biometrika* 86:948)
degrees of freedom

.. math::

    \nu = \frac{\nu_{old}\,\nu_{obs}}{\nu_{old} + \nu_{obs}}, \quad
    \nu_{old} = \frac{M - 1}{\lambda^2}, \quad
    \nu_{obs} = \frac{\nu_{com} + 1}{\nu_{com} + 3}\,\nu_{com}(1 - \lambda),

and the fraction of missing information :math:`\mathrm{FMI} = (r + 2/(\nu + 3)) / (r + 1)`, as
``mice::pool.scalar``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from trialstats.analysis.chained import impute_batches, impute_chained, impute_missing
from trialstats.analysis.design import ModelData, model_data
from trialstats.analysis.effects import mcid_verdict
from trialstats.analysis.glmm import DEFAULT_N_AGQ
from trialstats.analysis.inference import contrast_test
from trialstats.analysis.reml import ClusterSums, fit_reml
from trialstats.analysis.rows import (
    arms_problem,
    chosen_outcomes,
    clusters_per_arm,
    outcome_scale,
    scale_note,
)
from trialstats.contract import COLUMNS, MEAN_DIFFERENCE, imputation_label
from trialstats.data.validate import TREATED, outcome_column, outcome_months
from trialstats.errors import TrialstatsError

__all__ = [
    "IMPUTATION_COLUMNS",
    "ImputedTrial",
    "PooledEstimate",
    "exposure_offset",
    "impute_chained",
    "impute_missing",
    "impute_trial",
    "imputed_batches",
    "multiple_imputation",
    "pooled_row",
    "rubin_pool",
]

#: Columns of the multiple-imputation rows: the primary columns, ``analysis``, ``fmi``, ``riv``.
IMPUTATION_COLUMNS = (*COLUMNS, "analysis", "fmi", "riv")
#: Cycles of the chained equations by default.
ITERATIONS = 10
# mice's floor on lambda in barnard.rubin.
_LAMBDA_FLOOR = 1e-4
# Pooled df below this make no interval worth reporting (a t on 0.001 df has a 95% quantile
# of 1e3000): such a pooled result comes from a degenerate fit and is not estimable.
_MIN_DF = 1.0


@dataclass(frozen=True)
class PooledEstimate:
    """Rubin's rules for one scalar; every field has the leading (batch) shape of the input.

    Attributes
    ----------
    estimate : :math:`\\bar Q`.
    within, between, total : :math:`\\bar U`, :math:`B`, :math:`T`.
    se : :math:`\\sqrt T`.
    df : Barnard–Rubin degrees of freedom.
    riv : relative increase in variance :math:`r`.
    lambda_ : :math:`\\lambda = (1 + 1/M) B / T` (before mice's floor).
    fmi : fraction of missing information.
    """

    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    se: np.ndarray
    df: np.ndarray
    riv: np.ndarray
    lambda_: np.ndarray
    fmi: np.ndarray


def rubin_pool(estimates: Any, variances: Any, df_complete: Any = np.inf) -> PooledEstimate:
    """Pool per-imputation estimates with Rubin's rules and Barnard–Rubin df.

    Parameters
    ----------
    estimates, variances : array_like, shape (..., M)
        :math:`\\hat Q_m` and :math:`U_m` (squared standard errors), imputations last;
        :math:`M \\ge 2`.
    df_complete : float or array_like, shape (...)
        Complete-data degrees of freedom :math:`\\nu_{com}` (``inf`` gives Rubin's 1987 df).

    Returns
    -------
    PooledEstimate
        As ``mice::pool.scalar(Q, U, n = df_complete + 1, k = 1)`` (see the module notes).
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.shape != u.shape or q.ndim < 1 or q.shape[-1] < 2:
        raise TrialstatsError(
            f"Pooling needs estimates and variances of the same shape with at least two "
            f"imputations; got {q.shape} and {u.shape}."
        )
    m = q.shape[-1]
    qbar, ubar = q.mean(axis=-1), u.mean(axis=-1)
    b = q.var(axis=-1, ddof=1)
    t = ubar + (1.0 + 1.0 / m) * b
    riv = (1.0 + 1.0 / m) * b / ubar
    lam = (1.0 + 1.0 / m) * b / t
    floored = np.maximum(lam, _LAMBDA_FLOOR)
    df_old = (m - 1) / floored**2
    dfcom = np.broadcast_to(np.asarray(df_complete, dtype=float), qbar.shape)
    with np.errstate(invalid="ignore"):
        df_obs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - floored)
        df = np.where(np.isinf(dfcom), df_old, df_old * df_obs / (df_old + df_obs))
    fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
    return PooledEstimate(
        estimate=qbar[()], within=ubar[()], between=b[()], total=t[()], se=np.sqrt(t)[()],
        df=df[()], riv=riv[()], lambda_=lam[()], fmi=fmi[()],
    )


@dataclass(frozen=True)
class ImputedTrial:
    """The completed datasets of one multiple imputation, ready to be analysed.

    Attributes
    ----------
    values : ndarray, shape (n, K)
        Scores of the analysed patients (complete covariates), NaN where missing, columns
        ``score_columns``.
    draws : list of ndarray
        Column *k*'s imputed values, shape (M, missing values of column *k*), in row order
        (:func:`impute_missing`).
    score_columns : list of str
        Every outcome at every month, in configuration order.
    frame : ModelData
        The primary design of those patients without a baseline column (each outcome's
        imputed baseline is put in as the third column when it is analysed).
    scales : dict
        (outcome name, month) → ``{"sd_baseline", "mcid"}`` on the raw scale, as the primary
        analysis (:func:`trialstats.analysis.rows.outcome_scale`).
    note : str
        How the data were imputed, for the rows' ``notes``.
    latent : dict
        Score column index -> (linear predictors, uniforms), each shaped like its ``draws``,
        of the binary and count columns' last draws
        (:mod:`trialstats.analysis.chained_glmm`; empty when every outcome is continuous).
    log_exposure : dict
        Name of a count outcome with an ``exposure`` column -> the log exposure (n,) of each
        patient, NaN where the exposure is missing or not positive (:func:`exposure_offset`).
    """

    values: np.ndarray
    draws: list[np.ndarray]
    score_columns: list[str]
    frame: ModelData
    scales: dict[tuple[str, int], dict[str, float]]
    note: str
    latent: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    log_exposure: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def missing(self) -> np.ndarray:
        """True where the score was missing, i.e. imputed, shape (n, K)."""
        return np.isnan(self.values)

    @property
    def imputations(self) -> int:
        """Number of completed datasets M."""
        return self.draws[0].shape[0]

    def completed(self, column: str) -> np.ndarray:
        """The completed scores of ``column`` (one of ``score_columns``), shape (M, n)."""
        k = self.score_columns.index(column)
        return np.stack([self.completed_one(k, m) for m in range(self.imputations)])

    def completed_one(self, k: int, imputation: int) -> np.ndarray:
        """The completed scores of score column ``k`` in one imputation, shape (n,)."""
        out = self.values[:, k].copy()
        out[np.isnan(out)] = self.draws[k][imputation]
        return out

    @property
    def treated(self) -> np.ndarray:
        """The intervention indicator of each analysed patient, shape (n,)."""
        return self.frame.X[:, self.frame.columns.index(TREATED)]


def exposure_offset(log_exposure: np.ndarray) -> tuple[np.ndarray, float]:
    """The offset of a count's imputation model from its patients' log exposure (NaN where
    the exposure is missing or not positive), and the value given to those patients.

    A patient without person-time cannot contribute a count to the analysis (the analysis
    leaves them out, :mod:`trialstats.analysis.imputation_glmm`), but their follow-up count
    is still a predictor in the other columns' imputation models, so it is drawn too: at the
    mean observed log exposure (the geometric-mean exposure), the person-time of a typical
    patient, rather than at a guessed exposure of their own.
    """
    known = np.isfinite(log_exposure)
    fill = float(np.mean(log_exposure[known])) if known.any() else 0.0
    return np.where(known, log_exposure, fill), fill


def _imputation_inputs(
    patients: pd.DataFrame, config: dict[str, Any], iterations: int,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The fields of :class:`ImputedTrial` but ``draws``, the covariates (arm, covariate
    dummies) and practice codes the imputation model takes, and the options of
    :func:`~trialstats.analysis.chained.impute_batches` for binary and count columns (each
    column's ``kinds``, the quadrature nodes ``n_agq``, and the ``offsets`` of the follow-up
    counts of outcomes with an exposure: :func:`exposure_offset`)."""
    design, analysis = config["design"], config["analysis"]
    covariates = list(analysis["covariates"])
    known = [o["name"] for o in config["outcomes"]]
    months = sorted({m for o in config["outcomes"] for m in outcome_months(o, design)})
    score_columns = [outcome_column(o["name"], m) for o in config["outcomes"]
                     for m in outcome_months(o, design)]

    # The primary design with every score present, so only missing covariates exclude.
    placeholder = patients[[TREATED, design["cluster"], *covariates]].assign(
        **{outcome_column(known[0], design["followup_months"][0]): 0.0})
    frame = model_data(placeholder, known[0], design["followup_months"][0],
                       cluster=design["cluster"], baseline_month=None, covariates=covariates)
    kept = pd.Series(True, index=patients.index)
    for name in covariates:
        kept &= patients[name].notna()
    scales = {(o["name"], month): outcome_scale(patients, o, design, month)
              for o in config["outcomes"] for month in design["followup_months"]}
    kinds = [o.get("type", "continuous") for o in config["outcomes"]
             for _ in outcome_months(o, design)]
    others = sorted({k for k in kinds if k != "continuous"})
    models = "two-level Bayesian linear regression" + "".join(
        f"; {kind}: two-level {'logistic' if kind == 'binary' else 'Poisson'} GLMM draws"
        for kind in others)
    note = (f"chained-equations imputation ({models}, "
            f"random practice intercept) of all {len(known)} outcomes at months "
            f"{', '.join(str(m) for m in months)}, {iterations} iterations")
    log_exposure = {}
    for o in (o for o in config["outcomes"] if o.get("exposure")):
        exposure = patients.loc[kept, o["exposure"]].to_numpy(dtype=float)
        log_exposure[o["name"]] = np.log(np.where(exposure > 0, exposure, np.nan))
    offsets = {score_columns.index(outcome_column(name, m)): exposure_offset(values)[0]
               for name, values in log_exposure.items() for m in design["followup_months"]}
    fields = {"values": patients.loc[kept, score_columns].to_numpy(dtype=float),
              "score_columns": score_columns, "frame": frame, "scales": scales, "note": note,
              "log_exposure": log_exposure}
    options = {"kinds": kinds, "n_agq": analysis.get("quadrature_points", DEFAULT_N_AGQ),
               **({"offsets": offsets} if offsets else {})}
    return fields, np.delete(frame.X, [0], axis=1), frame.cluster_codes, options


def impute_trial(
    patients: pd.DataFrame,
    config: dict[str, Any],
    *,
    imputations: int = 20,
    seed: int,
    iterations: int = ITERATIONS,
    progress: Callable[[float], None] | None = None,
) -> ImputedTrial:
    """Impute every configured outcome at every month (the model of the module docstring).

    Parameters are those of :func:`multiple_imputation`; the imputation does not depend on
    which outcomes are later analysed.
    """
    fields, covariates, codes, options = _imputation_inputs(patients, config, iterations)
    latent: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    draws = impute_missing(fields["values"], covariates, codes, imputations=imputations,
                           iterations=iterations, seed=seed, progress=progress, latent=latent,
                           **options)
    return ImputedTrial(draws=draws, latent=latent, **fields)


def imputed_batches(patients: pd.DataFrame, config: dict[str, Any],
                    **options: Any) -> Iterator[ImputedTrial]:
    """:func:`impute_trial` (the same arguments) one batch of imputations at a time
    (:func:`~trialstats.analysis.chained.impute_batches`): the same draws, but those of all
    imputations never held at once."""
    options = {"imputations": 20, "iterations": ITERATIONS, **options}
    fields, covariates, codes, types = _imputation_inputs(patients, config,
                                                          options["iterations"])
    for _, draws in impute_batches(fields["values"], covariates, codes, **options, **types):
        yield ImputedTrial(draws=draws, **fields)


def _imputed_sums(frame: ModelData,
                  completed: Iterable[tuple[np.ndarray, np.ndarray | None]]) -> ClusterSums:
    """Cluster sums of the primary model in every completed dataset: from ``completed``, per
    imputation the response (n,) and the baseline score (n,) inserted as the third column of
    the design of ``frame`` (None: no baseline column).

    The same numbers as :meth:`~trialstats.analysis.reml.ClusterSums.from_data` on the
    stacked data (each total adds the same row products in the same order), but one
    imputation at a time and the products of the fixed columns once, in O(n p) memory instead
    of the (M, n, p, p) products.
    """
    X, codes, n_clusters = frame.X, frame.cluster_codes, frame.n_clusters
    n_rows, width = X.shape
    indicator = sparse.csr_matrix((np.ones(n_rows), (codes, np.arange(n_rows))),
                                  shape=(n_clusters, n_rows))

    def total(columns: np.ndarray) -> np.ndarray:
        return np.asarray(indicator @ columns.reshape(n_rows, -1))

    fixed = np.stack([total(X * X[:, [a]]) for a in range(width)], axis=1)  # (J, p, p)
    parts: dict[str, list[np.ndarray]] = {"xtx": [], "xty": [], "yty": [], "xsum": [],
                                          "ysum": []}
    for y, base in completed:
        design = X if base is None else np.insert(X, 2, base, axis=1)
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(design))):
            raise TrialstatsError("y and X must be finite (drop incomplete rows before fitting).")
        if base is None:
            xtx = fixed
        else:
            xtx = np.empty((n_clusters, width + 1, width + 1))
            others = np.delete(np.arange(width + 1), 2)
            xtx[:, others[:, None], others] = fixed
            xtx[:, 2, :] = xtx[:, :, 2] = total(design * base[:, None])
        parts["xtx"].append(xtx)
        parts["xty"].append(total(design * y[:, None]))
        parts["yty"].append(total(y * y)[:, 0])
        parts["xsum"].append(total(design))
        parts["ysum"].append(total(y)[:, 0])
    stacked = {name: np.stack(part) for name, part in parts.items()}
    counts = np.bincount(codes, minlength=n_clusters).astype(float)
    return ClusterSums(n=np.array(np.broadcast_to(counts, stacked["ysum"].shape)), **stacked)


def _not_estimable(trial: ImputedTrial, outcome: dict[str, Any], month: int) -> str | None:
    """Why the completed data cannot estimate the effect on ``outcome`` at ``month``, or None."""
    frame = trial.frame
    column = trial.score_columns.index(outcome_column(outcome["name"], month))
    observed = ~trial.missing[:, column]
    problem = arms_problem(clusters_per_arm(trial.treated[observed],
                                            frame.cluster_codes[observed]))
    if problem:  # an arm's scores would come from the other arm's model alone
        return (f"{problem} with an observed month-{month} score; "
                f"imputation cannot stand in for an arm's outcome")
    if np.linalg.matrix_rank(frame.X) < frame.X.shape[1]:
        return ("not estimable: the fixed-effects design is rank deficient "
                "(a covariate aliased with arm, or a covariate level with no patients)")
    return None


def _fit_imputed(trial: ImputedTrial, config: dict[str, Any], outcome: dict[str, Any], month: int,
                 offset: np.ndarray | None = None) -> dict[str, np.ndarray] | str:
    """The primary model fitted to each completed dataset of ``trial`` (``offset`` as in
    :func:`pooled_row`): per imputation the arm contrast's ``estimate``, ``se`` and ``df`` and
    the fit's ``var_cluster``, ``var_residual``, ``boundary`` and ``converged``; or why the
    fits failed. Each imputation's numbers do not depend on the others fitted with it."""
    design, frame = config["design"], trial.frame
    baseline = outcome.get("baseline", True)  # the imputed baseline after intercept and arm
    contrast = np.zeros(frame.X.shape[1] + baseline)
    contrast[frame.columns.index(TREATED)] = 1.0
    response = trial.score_columns.index(outcome_column(outcome["name"], month))
    base_column = trial.score_columns.index(
        outcome_column(outcome["name"], design["baseline_month"])) if baseline else None

    def completed(m: int) -> tuple[np.ndarray, np.ndarray | None]:
        y = trial.completed_one(response, m)
        return (y if offset is None else y + offset,
                None if base_column is None else trial.completed_one(base_column, m))

    sums = _imputed_sums(frame, (completed(m) for m in range(trial.imputations)))
    try:
        fit = fit_reml(sums)
        test = contrast_test(sums, fit, contrast, config["analysis"]["df_method"][0])
    except TrialstatsError as error:  # e.g. a constant outcome: say why, without batch words
        why = re.sub(r"^\d+ replicate\(s\), first at batch index \([^)]*\): ", "", str(error))
        return f"not estimable: in the imputed datasets, {why}"
    return {"estimate": np.asarray(test.estimate), "se": np.asarray(test.se),
            "df": np.asarray(test.df), "var_cluster": np.asarray(fit.var_cluster),
            "var_residual": np.asarray(fit.var_residual),
            "boundary": np.asarray(fit.boundary), "converged": np.asarray(fit.converged)}


def pooled_row(
    trial: ImputedTrial,
    config: dict[str, Any],
    outcome: dict[str, Any],
    month: int,
    offset: np.ndarray | None = None,
) -> dict[str, Any]:
    """The primary model fitted to every completed dataset and pooled: one result row.

    Parameters
    ----------
    trial : ImputedTrial
        From :func:`impute_trial`.
    config : dict
        The validated configuration (``design``, ``analysis``).
    outcome : dict
        The configured outcome entry.
    month : int
        Follow-up month.
    offset : ndarray, shape (n,), optional
        Added to the completed follow-up score of every imputation before the fit (e.g. a
        delta adjustment of imputed values); None fits the completed data as they are.

    Returns
    -------
    dict
        The row described in :func:`multiple_imputation`.
    """
    fits = _not_estimable(trial, outcome, month) or [
        _fit_imputed(trial, config, outcome, month, offset)]
    return _pooled(trial, config, outcome, month, fits, trial.imputations)


def _pooled(
    trial: ImputedTrial,
    config: dict[str, Any],
    outcome: dict[str, Any],
    month: int,
    fits: str | list[dict[str, np.ndarray] | str],
    imputations: int,
) -> dict[str, Any]:
    """The row of :func:`pooled_row` from the fits of :func:`_fit_imputed` to consecutive
    batches of the ``imputations``, or from why they were not made."""
    design, analysis = config["design"], config["analysis"]
    alpha, method = float(analysis["alpha"]), analysis["df_method"][0]
    frame, name = trial.frame, outcome["name"]
    scale = trial.scales[(name, month)]
    sd0, mcid = scale["sd_baseline"], scale["mcid"]
    failed = fits if isinstance(fits, str) else next(
        (fit for fit in fits if isinstance(fit, str)), None)
    base = {"outcome": name, "month": month, "method": method, "n_patients": len(frame.y),
            "n_clusters": frame.n_clusters, "sd_baseline": sd0, "mcid": mcid,
            "analysis": imputation_label(imputations), "effect_measure": MEAN_DIFFERENCE}
    if failed:
        return {**base, "notes": failed}
    fit = {key: np.concatenate([part[key] for part in fits]) for key in fits[0]}
    notes = [trial.note]
    pooled = rubin_pool(fit["estimate"], fit["se"] ** 2, np.mean(fit["df"]))
    estimate, se, df = float(pooled.estimate), float(pooled.se), float(pooled.df)
    if not (np.isfinite(estimate) and np.isfinite(se) and se > 0 and df >= _MIN_DF):
        return {**base, "notes": f"not estimable: the pooled fit is degenerate (estimate "
                f"{estimate:.4g}, SE {se:.4g} on {df:.4g} df)"}
    half = stats.t.ppf(1 - alpha / 2, df) * se
    low, high = estimate - half, estimate + half
    var_cluster, var_residual = fit["var_cluster"], fit["var_residual"]
    notes.append(f"FMI {float(pooled.fmi):.3f}, relative increase in variance "
                 f"{float(pooled.riv):.3f}")
    notes.append("variance components and ICC averaged over imputations; "
                 "ICC CI not computed")
    boundary = int(np.sum(fit["boundary"]))
    if boundary:
        notes.append(f"practice variance at 0 in {boundary} of {imputations} "
                     "imputed datasets")
    if not np.all(fit["converged"]):
        notes.append(f"REML did not converge in {int(np.sum(~fit['converged']))} of "
                     f"{imputations} imputed datasets; estimates are unreliable")
    notes += [n for n in (frame.exclusion_note(), scale_note(outcome, design, month)) if n]
    return {
        **base, "estimate": estimate, "se": se, "df": df,
        "ci_low": low, "ci_high": high,
        "p_value": float(2 * stats.t.sf(abs(estimate) / se, df)),
        "var_cluster": float(var_cluster.mean()),
        "var_residual": float(var_residual.mean()),
        "icc": float(np.mean(var_cluster / (var_cluster + var_residual))),
        "icc_ci_low": np.nan, "icc_ci_high": np.nan,
        "effect_size": estimate / sd0, "es_ci_low": low / sd0, "es_ci_high": high / sd0,
        "mcid_verdict": mcid_verdict(low, high, mcid, outcome["higher_is_better"]),
        "converged": bool(np.all(fit["converged"])), "notes": "; ".join(notes),
        "fmi": float(pooled.fmi),
        "riv": float(pooled.riv),
    }

def multiple_imputation(
    patients: pd.DataFrame,
    config: dict[str, Any],
    *,
    imputations: int = 20,
    seed: int,
    outcomes: list[str] | None = None,
    iterations: int = ITERATIONS,
    progress: Callable[[float], None] | None = None,
) -> pd.DataFrame:
    """Primary analysis after multilevel multiple imputation, pooled by Rubin's rules.

    Parameters
    ----------
    patients : DataFrame
        Validated patients (see :class:`trialstats.data.validate.Trial`).
    config : dict
        The validated configuration: ``design``, ``outcomes``, ``analysis`` (covariates, the
        primary df method = the first of ``df_method``, ``alpha``).
    imputations : int
        Number of imputed datasets M (at least 2).
    seed : int
        Seed of the imputation streams; reruns are identical.
    outcomes : list of str, optional
        Outcomes to report (default all). The imputation model always uses every configured
        outcome, so an outcome's result does not depend on which others are reported.
    iterations : int
        Cycles of the chained equations.
    progress : callable, optional
        Advanced after each cycle, by 1 in all (:func:`impute_chained`).

    Returns
    -------
    DataFrame
        One row per outcome × follow-up month with the columns of
        :data:`IMPUTATION_COLUMNS`: those of :data:`trialstats.contract.COLUMNS`
        (``estimate`` = pooled adjusted difference :math:`\\bar Q`, ``se`` = :math:`\\sqrt T`,
        ``df`` Barnard–Rubin, ``ci_*``/``p_value`` from the t distribution on that df,
        ``var_cluster``/``var_residual``/``icc`` averaged over the imputations with
        ``icc_ci_*`` NaN, ``n_patients`` every patient with complete covariates, ``sd_baseline``
        the observed-data baseline SD, ``effect_size``/``es_ci_*``/``mcid``/``mcid_verdict`` as
        in the primary analysis, ``converged`` true when every imputed-data fit converged),
        ``analysis`` (``"multiple imputation (m=M)"``), ``fmi`` (fraction of missing
        information) and ``riv`` (relative increase in variance due to nonresponse).

    Notes
    -----
    The imputation model, the draws and the pooling are stated in the module docstring
    (van Buuren 2018; Rubin 1987; Barnard & Rubin 1999; Andridge 2011).
    """
    chosen = [(outcome, month) for outcome in chosen_outcomes(config, outcomes)
              for month in config["design"]["followup_months"]]
    fits: list[str | list[dict[str, np.ndarray] | str]] = []
    for trial in imputed_batches(patients, config, imputations=imputations, seed=seed,
                                 iterations=iterations, progress=progress):
        if not fits:  # the same for every batch: the observed data decide
            fits = [_not_estimable(trial, outcome, month) or [] for outcome, month in chosen]
            observed = replace(trial, draws=[])
        for (outcome, month), found in zip(chosen, fits, strict=True):
            if isinstance(found, list):
                found.append(_fit_imputed(trial, config, outcome, month))
        del trial  # its draws are not held while the next batch is imputed
    out = [_pooled(observed, config, outcome, month, found, imputations)
           for (outcome, month), found in zip(chosen, fits, strict=True)]
    return pd.DataFrame(out, columns=list(IMPUTATION_COLUMNS))
