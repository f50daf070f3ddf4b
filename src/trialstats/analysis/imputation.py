r"""Multiple imputation by chained equations with practice fixed effects, pooled by Rubin's rules.

Imputation model
----------------
Let :math:`Y = (y_1, \dots, y_K)` be every configured outcome at every measured month (baseline
and all follow-up months together; :math:`K = 27` for nine outcomes at months 0, 6, 12), for
patient *i* in practice :math:`j = c(i)`, and :math:`x_i` the patient-level covariate columns
(text covariates as treatment-coded dummies, exactly as in the primary model). Each
incomplete :math:`y_k` is imputed in turn from its fully conditional model (FCS; van Buuren
2018, *Flexible Imputation of Missing Data*, 2nd ed., ch. 4)

.. math::

    y_{ik} = \alpha_{jk} + x_i^\top \gamma_k + \sum_{l \ne k} \beta_{kl}\, y_{il}
        + \varepsilon_{ik}, \qquad \varepsilon_{ik} \sim N(0, \sigma_k^2),

with one fixed intercept :math:`\alpha_{jk}` per practice. The practice intercepts span the arm
and every practice-level covariate, so those are predictors implicitly (they are not added as
columns: they would be aliased with the practice dummies); keeping practice as a fixed effect
preserves the intra-cluster correlation and the treatment effect in the imputed data, at the
price of a slightly conservative variance when clusters are small and the ICC is low (Andridge
2011, *Biom J* 53:57; negligible with the ~100+ patients per practice of primary-care CRTs).
All other outcome-month scores are predictors (mice's default "inclusive" predictor matrix).

Each draw is mice's Bayesian linear regression (``norm``; Rubin 1987, *Multiple Imputation for
Nonresponse in Surveys*, p. 167; van Buuren 2018, algorithm 3.1) on the patients with
:math:`y_k` observed. Writing :math:`\tilde X, \tilde y` for the predictors and the target
centred within practice (Frisch–Waugh–Lovell), :math:`n_o` observed patients in :math:`J_o`
practices and :math:`q` non-practice predictors:

1. :math:`\hat\beta = (\tilde X^\top \tilde X + \kappa D)^{-1} \tilde X^\top \tilde y` with
   :math:`D = \mathrm{diag}(\tilde X^\top \tilde X)` and :math:`\kappa = 10^{-5}` (mice's ridge,
   applied always so that collinear scores cannot stop the run);
2. :math:`\sigma_*^2 = \mathrm{RSS} / g`, :math:`g \sim \chi^2_{n_o - J_o - q}` (the scaled
   inverse-:math:`\chi^2` posterior);
3. :math:`\beta_* = \hat\beta + \sigma_* L^{-\top} z`, :math:`LL^\top = \tilde X^\top \tilde X +
   \kappa D`, :math:`z \sim N(0, I_q)`;
4. :math:`\alpha_{j*} = \bar y_j - \bar x_j^\top \beta_* + \sigma_* z_j / \sqrt{n_j}` — the
   exact conditional posterior of the practice intercepts given :math:`\beta_*, \sigma_*`;
5. :math:`y_{ik} = \alpha_{c(i)*} + x_i^\top \beta_* + \sigma_* \epsilon_i` for the missing
   :math:`y_{ik}`, :math:`\epsilon_i \sim N(0, 1)`.

A practice with no observed :math:`y_k` has no estimable intercept; its :math:`\alpha_{j*}` is
drawn from a normal with the mean and variance of the drawn intercepts of the other practices in
its arm (noted in the output). Missing values start as random draws from the observed values
(mice's default) and the cycle over :math:`y_1, \dots, y_K` is repeated ``iterations`` times.
Imputed values are neither rounded nor clipped to the outcome's range: the analysis model is
linear, and rounding biases it (Horton, Lipsitz & Parzen 2003, *Am Stat* 57:229). Patients with
a missing covariate are excluded from imputation and analysis and counted, as in the primary
analysis.

Analysis and pooling
--------------------
Each completed dataset is analysed with the primary model
(:func:`trialstats.analysis.primary.analyse_outcome`: follow-up ~ treated + baseline +
covariates + (1 | practice), exact REML) using the primary df method, all imputations in one
batched fit. With per-imputation estimates :math:`\hat Q_m`, variances :math:`U_m` (squared
standard errors, Kenward–Roger adjusted for that method) and complete-data df
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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from trialstats.analysis.design import model_data
from trialstats.analysis.effects import baseline_sd, mcid_raw, mcid_verdict
from trialstats.analysis.inference import contrast_test
from trialstats.analysis.primary import COLUMNS
from trialstats.analysis.reml import ClusterSums, fit_reml
from trialstats.data.validate import TREATED, outcome_column
from trialstats.errors import TrialstatsError

__all__ = [
    "IMPUTATION_COLUMNS",
    "Imputations",
    "PooledEstimate",
    "impute_chained",
    "multiple_imputation",
    "rubin_pool",
]

#: Columns of the multiple-imputation rows: the primary columns, ``analysis``, ``fmi``, ``riv``.
IMPUTATION_COLUMNS = (*COLUMNS, "analysis", "fmi", "riv")
# mice's ridge penalty (estimice, ridge = 1e-5), as a share of the diagonal of X'X.
_RIDGE = 1e-5
# mice's floor on lambda in barnard.rubin.
_LAMBDA_FLOOR = 1e-4
# A covariate column whose within-practice sum of squares is below this share of its total
# sum of squares is practice-level, hence spanned by the practice intercepts.
_WITHIN_TOL = 1e-10


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
class Imputations:
    """Completed data from :func:`impute_chained`.

    Attributes
    ----------
    scores : ndarray, shape (M, n, K)
        The M completed copies of the scores (observed values unchanged).
    borrowed : dict
        Column index → cluster codes whose intercept was not estimable for that column (no
        observed value) and was drawn from the other practices of the arm.
    """

    scores: np.ndarray
    borrowed: dict[int, tuple[int, ...]]


def _cluster_sums(values: np.ndarray, codes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Totals by cluster: values (M, n, q) -> (M, J, q)."""
    n_imp, n_rows, width = values.shape
    indicator = sparse.csr_matrix(
        (np.ones(n_rows), (codes, np.arange(n_rows))), shape=(n_clusters, n_rows))
    flat = np.moveaxis(values, 1, 0).reshape(n_rows, n_imp * width)
    return np.moveaxis((indicator @ flat).reshape(n_clusters, n_imp, width), 0, 1)


def impute_chained(
    values: Any,
    covariates: Any,
    cluster_codes: Any,
    cluster_arm: Any,
    *,
    imputations: int,
    iterations: int,
    seed: int | np.random.SeedSequence,
) -> Imputations:
    """Impute every incomplete column of ``values`` by chained Bayesian linear regressions.

    Parameters
    ----------
    values : array_like, shape (n, K)
        Scores, NaN where missing; every column is a predictor of every other.
    covariates : array_like, shape (n, c)
        Complete patient-level predictor columns (may have ``c = 0``); practice-level columns
        are aliased with the practice intercepts and are dropped.
    cluster_codes : array_like of int, shape (n,)
        Practice of each row, coded ``0 .. J - 1`` (each code used).
    cluster_arm : array_like, shape (J,)
        Arm of each practice (used only for practices without an observed value of a column).
    imputations, iterations : int
        Number of completed datasets M and of cycles through the columns.
    seed : int or SeedSequence
        Imputation *m* uses the *m*-th stream of ``SeedSequence(seed).spawn(imputations)``, so
        it does not depend on how many imputations are requested.

    Returns
    -------
    Imputations

    Notes
    -----
    The model and the draws are given in the module docstring; all imputations advance
    together as a batch.
    """
    y = np.asarray(values, dtype=float)
    codes = np.asarray(cluster_codes, dtype=np.intp)
    arm = np.asarray(cluster_arm)
    n_obs, n_cols = y.shape
    n_clusters = len(arm)
    if imputations < 2 or iterations < 1:
        raise TrialstatsError("Multiple imputation needs at least 2 imputations and 1 iteration.")
    x = np.asarray(covariates, dtype=float).reshape(n_obs, -1)
    centred = x - (_cluster_sums(x[None], codes, n_clusters)[0] /
                   np.bincount(codes, minlength=n_clusters)[:, None])[codes]
    within = np.sum(centred**2, axis=0) > _WITHIN_TOL * np.sum(x**2, axis=0)
    x = x[:, within]
    n_fixed = x.shape[1]
    missing = np.isnan(y)
    empty = np.flatnonzero(missing.all(axis=0))
    if empty.size:
        raise TrialstatsError(f"Cannot impute score column(s) {empty.tolist()}: no observed value.")
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    streams = [np.random.default_rng(s) for s in sequence.spawn(imputations)]
    # Work with columns centred at their observed means (better conditioned cross products;
    # the practice intercepts absorb the shift), restored on return.
    shift = np.concatenate([x.mean(axis=0), np.nanmean(y, axis=0)])
    data = np.array(np.broadcast_to(np.concatenate([x, y], axis=1) - shift,
                                    (imputations, n_obs, n_fixed + n_cols)), order="C")
    targets = [k for k in range(n_cols) if missing[:, k].any()]
    for k in targets:
        observed = data[0, ~missing[:, k], n_fixed + k]
        for m, rng in enumerate(streams):
            data[m, missing[:, k], n_fixed + k] = rng.choice(observed, missing[:, k].sum())
    state = _Crossproducts(data, codes, n_clusters)
    borrowed: dict[int, tuple[int, ...]] = {}
    for _ in range(iterations):
        for k in targets:
            lost = _draw_column(state, n_fixed + k, ~missing[:, k], arm, streams)
            if lost:
                borrowed[k] = lost
    return Imputations(scores=data[:, :, n_fixed:] + shift[n_fixed:], borrowed=borrowed)


class _Crossproducts:
    """Completed data (M, n, q) with its cross products and practice totals kept current."""

    def __init__(self, data: np.ndarray, codes: np.ndarray, n_clusters: int) -> None:
        self.data, self.codes, self.n_clusters = data, codes, n_clusters
        self.cross = np.swapaxes(data, 1, 2) @ data  # (M, q, q)
        self.sums = _cluster_sums(data, codes, n_clusters)  # (M, J, q)

    def update(self, column: int, rows: np.ndarray, values: np.ndarray) -> None:
        """Set ``data[:, rows, column] = values`` and refresh that column's sums."""
        self.data[:, rows, column] = values
        current = self.data[:, None, :, column]
        products = (current @ self.data)[:, 0, :]
        self.cross[:, column, :] = products
        self.cross[:, :, column] = products
        self.sums[:, :, column] = _cluster_sums(
            np.swapaxes(current, 1, 2), self.codes, self.n_clusters)[:, :, 0]


def _draw_column(
    state: _Crossproducts,
    target: int,
    observed: np.ndarray,
    arm: np.ndarray,
    streams: list[np.random.Generator],
) -> tuple[int, ...]:
    """One Bayesian-regression draw of the missing entries of column ``target``, in place.

    The observed-row cross products are the full-data ones minus the missing rows' own.
    Returns the cluster codes whose intercept had to be borrowed from their arm.
    """
    width = state.data.shape[2]
    n_clusters = len(arm)
    n_pred = width - 1
    predictors = np.delete(np.arange(width), target)
    unobserved = np.flatnonzero(~observed)
    miss_rows = state.data[:, unobserved, :]
    miss_codes = state.codes[unobserved]
    counts = np.bincount(state.codes[observed], minlength=n_clusters).astype(float)
    present = counts > 0
    safe = np.where(present, counts, 1.0)
    sums = state.sums - _cluster_sums(miss_rows, miss_codes, n_clusters)
    cross = state.cross - np.swapaxes(miss_rows, 1, 2) @ miss_rows
    cross -= np.swapaxes(sums, 1, 2) @ (sums / safe[:, None])
    xx = cross[:, predictors][:, :, predictors]
    xy = cross[:, predictors, target]
    xx += _RIDGE * np.einsum("mkk->mk", xx)[:, :, None] * np.eye(n_pred)
    chol = np.linalg.cholesky(xx)
    beta_hat = np.linalg.solve(xx, xy[..., None])[..., 0]
    rss = cross[:, target, target] - np.sum(xy * beta_hat, axis=1)
    dof = int(observed.sum()) - int(present.sum()) - n_pred
    if dof < 1:
        raise TrialstatsError(
            f"Too few observed values to impute score column {target}: {int(observed.sum())} "
            f"observed in {int(present.sum())} practices for {n_pred} predictors."
        )
    chi2 = np.array([rng.chisquare(dof) for rng in streams])
    z = np.stack([rng.standard_normal(n_pred + n_clusters + unobserved.size) for rng in streams])
    sigma = np.sqrt(np.maximum(rss, 0.0) / chi2)
    beta = beta_hat + sigma[:, None] * np.linalg.solve(
        np.swapaxes(chol, 1, 2), z[:, :n_pred, None])[..., 0]
    means = sums / safe[None, :, None]
    alpha = (means[:, :, target] - (means[:, :, predictors] @ beta[:, :, None])[..., 0]
             + sigma[:, None] * z[:, n_pred:n_pred + n_clusters] / np.sqrt(safe))
    needed = np.zeros(n_clusters, dtype=bool)
    needed[miss_codes] = True
    lost = np.flatnonzero(needed & ~present)
    for j in lost:
        donors = present & (arm == arm[j])
        if donors.sum() < 2:
            raise TrialstatsError(
                f"Cannot impute score column {target}: practice {j} has no observed value and "
                "its arm has fewer than two practices that do."
            )
        centre = alpha[:, donors].mean(axis=1)
        spread = alpha[:, donors].std(axis=1, ddof=1)
        alpha[:, j] = centre + spread * z[:, n_pred + j]
    fitted = alpha[:, miss_codes] + (miss_rows[:, :, predictors] @ beta[:, :, None])[..., 0]
    state.update(target, unobserved, fitted + sigma[:, None] * z[:, n_pred + n_clusters:])
    return tuple(int(j) for j in lost)


def _primary_method(config: dict[str, Any]) -> str:
    methods = config["analysis"].get("df_method", "kenward-roger")
    return methods if isinstance(methods, str) else methods[0]


def multiple_imputation(
    patients: pd.DataFrame,
    config: dict[str, Any],
    *,
    imputations: int = 20,
    seed: int,
    outcomes: list[str] | None = None,
    iterations: int = 10,
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

    Returns
    -------
    DataFrame
        One row per outcome × follow-up month with the columns of
        :data:`IMPUTATION_COLUMNS`: those of :data:`trialstats.analysis.primary.COLUMNS`
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
    design, analysis = config["design"], config["analysis"]
    cluster, baseline_month = design["cluster"], design["baseline_month"]
    covariates, alpha = list(analysis["covariates"]), float(analysis.get("alpha", 0.05))
    method = _primary_method(config)
    known = [o["name"] for o in config["outcomes"]]
    unknown = sorted(set(outcomes or []) - set(known))
    if unknown:
        raise TrialstatsError(f"unknown outcome(s) {', '.join(unknown)}; the configuration "
                              f"has {', '.join(known)}.")
    months = [baseline_month, *design["followup_months"]]
    score_columns = [outcome_column(o, m) for o in known for m in months]

    # The primary design with every score present, so only missing covariates exclude.
    placeholder = patients.copy()
    placeholder[score_columns] = 0.0
    frame = model_data(placeholder, known[0], months[1], cluster=cluster,
                       baseline_month=baseline_month, covariates=covariates)
    kept = pd.Series(True, index=patients.index)
    for name in covariates:
        kept &= patients[name].notna()
    rows = patients.loc[kept]
    n_kept = len(rows)
    base_position = frame.columns.index(outcome_column(known[0], baseline_month))
    excluded = frame.exclusion_note()
    arm_of_cluster = (pd.Series(frame.X[:, frame.columns.index(TREATED)])
                      .groupby(frame.cluster_codes).first().to_numpy())
    imputed = impute_chained(
        rows[score_columns].to_numpy(dtype=float),
        np.delete(frame.X, [0, 1, base_position], axis=1), frame.cluster_codes, arm_of_cluster,
        imputations=imputations, iterations=iterations, seed=seed,
    )
    label = f"multiple imputation (m={imputations})"
    contrast = np.zeros(len(frame.columns))
    contrast[frame.columns.index(TREATED)] = 1.0
    out = []
    for outcome in config["outcomes"]:
        name = outcome["name"]
        if outcomes is not None and name not in outcomes:
            continue
        base_index = score_columns.index(outcome_column(name, baseline_month))
        sd0 = baseline_sd(patients[outcome_column(name, baseline_month)])
        mcid = mcid_raw(outcome.get("mcid"), sd0)
        X = np.array(np.broadcast_to(frame.X, (imputations, *frame.X.shape)), order="C")
        X[:, :, base_position] = imputed.scores[:, :, base_index]
        for month in design["followup_months"]:
            index = score_columns.index(outcome_column(name, month))
            notes = [f"FCS Bayesian linear regression imputation of all {len(known)} outcomes "
                     f"at months {', '.join(str(m) for m in months)} with practice fixed "
                     f"effects, {iterations} iterations"]
            borrowed = sorted({frame.cluster_ids[j] for k in (base_index, index)
                               for j in imputed.borrowed.get(k, ())})
            if borrowed:
                notes.append(f"practice(s) {', '.join(borrowed)} without observed {name} "
                             "values: intercept drawn from the other practices of the arm")
            sums = ClusterSums.from_data(imputed.scores[:, :, index], X, frame.cluster_codes,
                                         frame.n_clusters)
            fit = fit_reml(sums)
            test = contrast_test(sums, fit, contrast, method)
            pooled = rubin_pool(test.estimate, np.asarray(test.se) ** 2, np.mean(test.df))
            estimate, se, df = float(pooled.estimate), float(pooled.se), float(pooled.df)
            half = stats.t.ppf(1 - alpha / 2, df) * se
            low, high = estimate - half, estimate + half
            var_cluster = np.asarray(fit.var_cluster)
            var_residual = np.asarray(fit.var_residual)
            notes.append(f"FMI {float(pooled.fmi):.3f}, relative increase in variance "
                         f"{float(pooled.riv):.3f}")
            notes.append("variance components and ICC averaged over imputations; "
                         "ICC CI not computed")
            boundary = int(np.sum(fit.boundary))
            if boundary:
                notes.append(f"practice variance at 0 in {boundary} of {imputations} "
                             "imputed datasets")
            if not np.all(fit.converged):
                notes.append(f"REML did not converge in {int(np.sum(~fit.converged))} of "
                             f"{imputations} imputed datasets; estimates are unreliable")
            if excluded:
                notes.append(excluded)
            out.append({
                "outcome": name, "month": month, "method": method, "n_patients": n_kept,
                "n_clusters": frame.n_clusters, "estimate": estimate, "se": se, "df": df,
                "ci_low": low, "ci_high": high,
                "p_value": float(2 * stats.t.sf(abs(estimate) / se, df)),
                "var_cluster": float(var_cluster.mean()),
                "var_residual": float(var_residual.mean()),
                "icc": float(np.mean(var_cluster / (var_cluster + var_residual))),
                "icc_ci_low": np.nan, "icc_ci_high": np.nan, "sd_baseline": sd0,
                "effect_size": estimate / sd0, "es_ci_low": low / sd0, "es_ci_high": high / sd0,
                "mcid": mcid,
                "mcid_verdict": mcid_verdict(low, high, mcid, outcome["higher_is_better"]),
                "converged": bool(np.all(fit.converged)), "notes": "; ".join(notes),
                "analysis": label, "fmi": float(pooled.fmi), "riv": float(pooled.riv),
            })
    return pd.DataFrame(out, columns=list(IMPUTATION_COLUMNS))
