r"""Prespecified subgroup analysis: arm × subgroup interaction and the effect in each subgroup.

Model (REML, random practice intercept), for patient *i* in practice *j* with subgroup level
:math:`k(i) \in \{1, \dots, K\}` (level 1, the first in sorted order, is the reference):

.. math::

    y_{ij} = \beta_0 + \beta_1 T_j + \lambda y^{(0)}_{ij} + x_{ij}^\top\gamma + \sum_{k \ge 2}
             \{\eta_k + \delta_k T_j\} [k(i) = k] + b_j + e_{ij},

i.e. the primary model (the subgroup variable among the covariates) plus the arm × subgroup
interaction: ``lmer(y ~ arm * condition + y0 + covariates + (1 | practice))``. The effect in
subgroup *k* is :math:`\beta_1 + \delta_k` (:math:`\beta_1` for the reference level), tested
like the primary effect with the first configured df method (Kenward–Roger replacing the SE).
The interaction is the Wald test of :math:`\delta_2 = \dots = \delta_K = 0`,

.. math:: F = \hat\delta^\top (L\Phi L^\top)^{-1}\hat\delta / q, \qquad q = K - 1,

with lmerTest's denominator df (Kuznetsova et al. 2017, ``contest``): with
:math:`L\Phi L^\top = PDP^\top`, each row of :math:`P^\top L` gets its Satterthwaite df
:math:`\nu_m`, and :math:`\nu = 2E/(E - q)`, :math:`E = \sum_m \nu_m/(\nu_m - 2)` (:math:`\nu = 2`
if any :math:`\nu_m \le 2`; the common value if all are equal). Subgroup analyses of a trial
powered for the overall effect are exploratory (Wang et al. 2007, *NEJM* 357:2189); every row
says so. Same population as the primary analysis; a level whose analysable patients are all in
one arm cannot have an interaction term and is left out, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trialstats.analysis.design import ModelData, model_data
from trialstats.analysis.inference import contrast_test, satterthwaite_df
from trialstats.analysis.reml import ClusterSums, RemlFit
from trialstats.analysis.rows import (
    each_outcome_month,
    fit_or_problem,
    join_notes,
    outcome_scale,
    scale_note,
    t_row,
    too_few_clusters,
)
from trialstats.contract import subgroup_interaction_label, subgroup_label
from trialstats.data.validate import TREATED, baseline_month_of, outcome_column

__all__ = ["SubgroupDesign", "interaction_f_test", "skipped_note", "subgroup_analysis",
           "subgroup_design"]

# Relative eigenvalue tolerance of L Phi L' (lmerTest contestMD: eps = sqrt(.Machine$double.eps)).
_RANK_TOL = np.sqrt(np.finfo(float).eps)
# lmerTest get_Fstat_ddf: df of eigen-contrasts closer than this are treated as equal.
_EQUAL_DF_TOL = 1e-8


def _level_text(value: Any) -> Any:
    if pd.isna(value):
        return pd.NA
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def interaction_f_test(
    sums: ClusterSums, fit: RemlFit, L: np.ndarray
) -> tuple[float, float, float, float]:
    """Wald F test of :math:`L\\beta = 0` with lmerTest's Satterthwaite denominator df.

    Parameters
    ----------
    sums : ClusterSums
        The data ``fit`` was fitted to (one dataset, no batch dimensions).
    fit : RemlFit
    L : ndarray (q, p)

    Returns
    -------
    f, num_df, den_df, p_value : float
        As ``lmerTest::contest(fit, L, ddf = "Satterthwaite")`` (see the module docstring).
    """
    L = np.atleast_2d(L)
    beta, vcov = np.asarray(fit.beta), np.asarray(fit.vcov)
    values, vectors = np.linalg.eigh(L @ vcov @ L.T)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = values > max(_RANK_TOL * values[0], 0.0)
    rotated = vectors[:, keep].T @ L
    q = int(keep.sum())
    f = float(np.sum((rotated @ beta) ** 2 / values[keep]) / q)
    nu = np.array([float(satterthwaite_df(sums, fit, row)) for row in rotated])
    if q == 1 or np.all(np.abs(np.diff(nu)) < _EQUAL_DF_TOL):
        den = float(np.mean(nu))
    elif np.any(nu <= 2):
        den = 2.0
    else:
        e = float(np.sum(nu / (nu - 2.0)))
        den = 2.0 * e / (e - q)
    return f, float(q), den, float(stats.f.sf(f, q, den))


@dataclass(frozen=True)
class SubgroupDesign:
    """The interaction model of one outcome at one month (shared by the GLMM version).

    Attributes
    ----------
    data : ModelData
        The primary model's data with ``variable`` among the covariates (levels in one arm
        left out); ``data.X`` has no interaction columns.
    X : ndarray (n, p + K - 1)
        ``data.X`` followed by ``treated:<variable>[<level>]`` for every level after the first.
    columns : list of str
        Names of the columns of ``X``.
    levels : list of str
        The analysed levels, sorted (the first is the reference).
    level_of : ndarray (n,)
        Level of each analysed patient, aligned with ``data.y``.
    exclusions : str
        Patients left out by reason, levels left out, and the scale note.
    problem : str
        Why the model cannot be fitted ("" when it can).
    """

    data: ModelData
    X: np.ndarray
    columns: list[str]
    levels: list[str]
    level_of: np.ndarray
    exclusions: str
    problem: str

    def interaction_contrasts(self, variable: str) -> np.ndarray:
        """Rows selecting the interaction coefficients :math:`\\delta_2, \\dots, \\delta_K`."""
        L = np.zeros((len(self.levels) - 1, len(self.columns)))
        for row, level in enumerate(self.levels[1:]):
            L[row, self.columns.index(f"{TREATED}:{variable}[{level}]")] = 1.0
        return L

    def level_contrast(self, variable: str, level: str) -> np.ndarray:
        """The arm effect in ``level``: ``treated`` plus its interaction after the first level."""
        contrast = np.zeros(len(self.columns))
        contrast[self.columns.index(TREATED)] = 1.0
        if level != self.levels[0]:
            contrast[self.columns.index(f"{TREATED}:{variable}[{level}]")] = 1.0
        return contrast


def skipped_note(variable: str) -> str:
    """The note of an outcome whose subgroup variable is not a patients column."""
    return f"skipped: the subgroup variable '{variable}' is not a column of the patients table"


def subgroup_design(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any],
    variable: str,
) -> SubgroupDesign:
    """The interaction model of ``outcome`` at ``month`` (``variable`` must be a column):
    the primary population with ``variable`` among the covariates (and the outcome's
    exposure for counts); a level whose analysable patients are all in one arm is left out."""
    design, analysis = config["design"], config["analysis"]
    name = outcome["name"]
    baseline_month = baseline_month_of(outcome, design)
    covariates = [*analysis["covariates"], *([variable] if variable not in
                                             analysis["covariates"] else [])]
    frame_ = patients.assign(**{variable: patients[variable].map(_level_text)
                                .astype("string")})
    needed = [outcome_column(name, month),
              *([] if baseline_month is None else [outcome_column(name, baseline_month)]),
              *covariates]
    analysable = frame_[needed].notna().all(axis=1)
    arms_per_level = frame_.loc[analysable].groupby(variable)[TREATED].nunique()
    one_arm = sorted(arms_per_level.index[arms_per_level < 2])
    dropped = ""
    if one_arm:
        in_one_arm = frame_[variable].isin(one_arm)
        dropped = (f"level(s) {', '.join(one_arm)} of {variable} left out: their "
                   f"{int((analysable & in_one_arm).sum()):,} analysable patients are all in "
                   "one arm")
        frame_ = frame_.loc[~in_one_arm]
    data = model_data(frame_, name, month, cluster=design["cluster"],
                      baseline_month=baseline_month, covariates=covariates,
                      exposure=outcome.get("exposure"))
    levels = sorted(frame_.loc[analysable.loc[frame_.index], variable].unique())
    dummies = [f"{variable}[{level}]" for level in levels[1:]]
    treated = data.X[:, data.columns.index(TREATED)]
    X = np.column_stack([data.X, *[treated * data.X[:, data.columns.index(d)]
                                   for d in dummies]])
    columns = [*data.columns, *[f"{TREATED}:{d}" for d in dummies]]
    exclusions = join_notes(data.exclusion_note(), dropped, scale_note(outcome, design, month))
    problem = too_few_clusters(data)
    if not problem and len(levels) < 2:
        problem = f"not estimable: fewer than two levels of {variable} in both arms"
    # model_data keeps the analysable rows in order, so their levels line up with data.y
    kept = analysable.loc[frame_.index]
    if outcome.get("exposure"):
        kept &= frame_[outcome["exposure"]].notna()
    return SubgroupDesign(data=data, X=X, columns=columns, levels=levels,
                          level_of=frame_.loc[kept, variable].to_numpy(),
                          exclusions=exclusions, problem=problem)


def _outcome_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any], *,
    variable: str,
) -> list[dict[str, Any]]:
    design, analysis = config["design"], config["analysis"]
    interaction_label = subgroup_interaction_label(variable)
    method = analysis["df_method"][0]
    base = {"outcome": outcome["name"], "month": month, "method": method,
            **outcome_scale(patients, outcome, design, month)}
    if variable not in patients.columns:
        return [{**base, "analysis": interaction_label, "converged": False,
                 "notes": skipped_note(variable)}]
    model = subgroup_design(patients, outcome, month, config, variable)
    data, levels, exclusions, problem = model.data, model.levels, model.exclusions, model.problem
    base |= {"n_patients": len(data.y), "n_clusters": data.n_clusters}
    if not problem:
        sums, fit, problem = fit_or_problem(data.y, model.X, data.cluster_codes,
                                            data.n_clusters)
    if problem:
        return [{**base, "analysis": interaction_label, "converged": False,
                 "notes": join_notes(problem, exclusions)}]

    components = {"var_cluster": float(fit.var_cluster), "var_residual": float(fit.var_residual),
                  "icc": float(fit.var_cluster / (fit.var_cluster + fit.var_residual)),
                  "converged": bool(fit.converged)}
    flags = [join_notes(
        "practice variance estimated at 0 (boundary fit)" if bool(fit.boundary) else "",
        "" if bool(fit.converged) else "REML optimisation did not converge; estimates are "
                                       "unreliable")]
    f, num_df, den_df, p_value = interaction_f_test(sums, fit,
                                                    model.interaction_contrasts(variable))
    rows = [{
        **base, **components, "analysis": interaction_label, "method": "satterthwaite",
        "df": den_df, "p_value": p_value,
        "notes": join_notes(
            exclusions,
            f"Wald F({num_df:.0f}, {den_df:.4g}) = {f:.4g} for the arm x {variable} "
            f"interaction (levels {', '.join(levels)}); denominator df as lmerTest contest "
            "(Satterthwaite per eigen-contrast)", *flags),
    }]
    for level in levels:
        test = contrast_test(sums, fit, model.level_contrast(variable, level), method)
        in_level = model.level_of == level
        rows.append(t_row(
            {**base, **components, "analysis": subgroup_label(level),
             "n_patients": int(in_level.sum()),
             "n_clusters": len(np.unique(data.cluster_codes[in_level])),
             "notes": join_notes(
                 exclusions,
                 f"effect in patients with {variable} = {level}, from the model with the arm x "
                 f"{variable} interaction ({len(data.y):,} patients); {method} df", *flags)},
            estimate=float(test.estimate), se=float(test.se), df=float(test.df),
            alpha=analysis["alpha"], higher_is_better=outcome["higher_is_better"],
        ))
    return rows


def subgroup_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None, *,
    variable: str = "condition",
) -> pd.DataFrame:
    """Arm × subgroup interaction and subgroup effects, every outcome and follow-up month.

    The subgroup effects use the primary df method, ``analysis.df_method[0]``.

    Parameters
    ----------
    patients, config, outcomes
        As for every sensitivity analysis (:data:`~trialstats.analysis.sensitivity.Analysis`).
    variable : str, default "condition"
        Patient column defining the subgroups; its distinct values are the levels (numbers
        are treated as labels). Added to the covariates when not among them.

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`; per outcome and month
        first a row ``analysis = "subgroup interaction: arm x <variable> (exploratory)"`` with
        the interaction F test (``df`` its denominator df, ``p_value``; ``estimate``/``se``
        NaN; F and numerator df in ``notes``), then one row per level ``"subgroup: <level>
        (exploratory)"`` with the effect in that subgroup, its test, effect size and verdict
        as the primary analysis, ``n_patients``/``n_clusters`` of that subgroup. Variance
        components and ICC are those of the interaction model (no ICC interval). When
        ``variable`` is not a column of ``patients``, one row per outcome and month says the
        analysis was skipped.
    """
    return each_outcome_month(patients, config, outcomes,
                              partial(_outcome_rows, variable=variable))
