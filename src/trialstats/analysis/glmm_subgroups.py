r"""Subgroup analysis of binary and count outcomes: arm × subgroup interaction in the GLMM.

Model (maximum likelihood, adaptive Gauss-Hermite quadrature with ``analysis.quadrature_points``
nodes; :mod:`trialstats.analysis.glmm`), for patient *i* in practice *j* with subgroup level
:math:`k(i)` (level 1, the first in sorted order, is the reference):

.. math::

    g\{E(y_{ij} \mid b_j)\} = \beta_0 + \beta_1 T_j + \lambda y^{(0)}_{ij} + x_{ij}^\top\gamma
        + \sum_{k \ge 2} \{\eta_k + \delta_k T_j\}[k(i) = k] + o_{ij} + b_j,

the primary GLMM of :mod:`trialstats.analysis.glmm_rows` (same population, family rule and
offset) with the subgroup variable among the covariates plus the arm × subgroup interaction,
built exactly as the continuous analysis (:func:`~trialstats.analysis.subgroups.subgroup_design`):
``glmer(y ~ arm * condition + y0 + covariates + (1 | practice))``. The effect in subgroup *k*
is :math:`e^{\beta_1 + \delta_k}` (odds ratio or rate ratio; :math:`e^{\beta_1}` for the
reference level) with the SE of its log from the inverse observed information over the fixed
effects and :math:`\sigma` jointly (as glmer's ``vcov``), on the primary GLMM df method
(``analysis.glmm_df_method[0]``; between-within gives :math:`J - p_b`, as the contrast involves
the practice-level arm column). The interaction is the Wald test of :math:`\delta_2 = \dots =
\delta_K = 0`,

.. math:: W = \hat\delta^\top (L \hat V L^\top)^{-1} \hat\delta, \qquad F = W / q, \; q = K - 1,

referred to :math:`F_{q,\nu}` with :math:`\nu` the between-within df of the interaction
columns (patient-level: :math:`N - J - (p - p_b)`), to :math:`\nu = N - p` for ``residual``, or
:math:`W` to :math:`\chi^2_q` for ``z``. Exploratory, as the continuous analysis (Wang et al.
2007, *NEJM* 357:2189).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trialstats.analysis.glmm import DEFAULT_N_AGQ, fit_glmm, latent_icc
from trialstats.analysis.glmm_likelihood import glmm_data
from trialstats.analysis.glmm_rows import _count_fit, contrast_row, glmm_df, measures_of
from trialstats.analysis.rows import each_outcome_month, join_notes
from trialstats.analysis.subgroups import skipped_note, subgroup_design
from trialstats.contract import subgroup_interaction_label, subgroup_label
from trialstats.errors import TrialstatsError

__all__ = ["glmm_subgroup_analysis"]


def _outcome_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any], *,
    variable: str,
) -> list[dict[str, Any]]:
    analysis = config["analysis"]
    method = analysis.get("glmm_df_method", ["between-within"])[0]
    n_agq = analysis.get("quadrature_points", DEFAULT_N_AGQ)
    binary = outcome["type"] == "binary"
    measure = measures_of(outcome)[0]
    interaction_label = subgroup_interaction_label(variable)
    base = {"outcome": outcome["name"], "month": month, "method": method,
            "effect_measure": measure, "sd_baseline": np.nan, "mcid": np.nan}
    if variable not in patients.columns:
        return [{**base, "analysis": interaction_label, "converged": False,
                 "notes": skipped_note(variable)}]
    model = subgroup_design(patients, outcome, month, config, variable)
    data, levels, problem = model.data, model.levels, model.problem
    base |= {"n_patients": len(data.y), "n_clusters": data.n_clusters}
    if not problem and np.ptp(data.y) == 0:
        problem = f"not estimable: every analysed patient has {data.y[0]:g} as the outcome"
    if not problem:
        try:
            if binary:
                fit = fit_glmm(glmm_data(data.y, model.X, data.cluster_codes, "binomial"), n_agq)
                family_note = "family: binomial (logit)"
            else:
                fit, family_note = _count_fit(replace(data, X=model.X), n_agq)
        except TrialstatsError as error:
            problem = f"not estimable: {error}"
    if problem:
        return [{**base, "analysis": interaction_label, "converged": False,
                 "notes": join_notes(problem, model.exclusions)}]

    sigma = float(fit.sigma)
    components = {"var_cluster": sigma**2, "converged": bool(fit.converged)}
    if binary:
        components |= {"var_residual": np.pi**2 / 3, "icc": float(latent_icc(sigma))}
    flags = [family_note, f"{fit.n_agq}-node adaptive quadrature"]
    if bool(fit.boundary):
        flags.append("practice variance estimated at 0 (boundary fit)")
    if not bool(fit.converged):
        flags.append("GLMM fit did not converge (e.g. all or no events in a subgroup and "
                     "arm); estimates are unreliable")
    p = model.X.shape[1]
    cov = fit.cov[:p, :p]
    L = model.interaction_contrasts(variable)
    delta = L @ fit.beta
    wald = (float(delta @ np.linalg.solve(L @ cov @ L.T, delta)) if np.all(np.isfinite(cov))
            else np.nan)  # information not positive definite: no test
    q = L.shape[0]
    den = glmm_df(method, data.y, model.X, data.cluster_codes, L)
    if np.isfinite(den):
        test = f"Wald F({q}, {den:.4g}) = {wald / q:.4g}"
        p_value = float(stats.f.sf(wald / q, q, den))
    else:
        test = f"Wald chi-squared({q}) = {wald:.4g}"
        p_value = float(stats.chi2.sf(wald, q))
    rows = [{
        **base, **components, "analysis": interaction_label,
        "df": den if np.isfinite(den) else np.nan, "p_value": p_value,
        "notes": join_notes(
            model.exclusions,
            f"{test} for the arm x {variable} interaction (levels {', '.join(levels)}) in the "
            f"GLMM; {method} df", *flags),
    }]
    for level in levels:
        contrast = model.level_contrast(variable, level)
        in_level = model.level_of == level
        row = {**base, **components, "analysis": subgroup_label(level),
               "n_patients": int(in_level.sum()),
               "n_clusters": len(np.unique(data.cluster_codes[in_level])),
               "notes": join_notes(
                   model.exclusions,
                   f"effect in patients with {variable} = {level}, from the GLMM with the arm "
                   f"x {variable} interaction ({len(data.y):,} patients); {method} df", *flags)}
        rows.append(contrast_row(row, outcome, measure, fit, contrast, method=method,
                                 y=data.y, X=model.X, cluster_codes=data.cluster_codes,
                                 alpha=analysis["alpha"]))
    return rows


def glmm_subgroup_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None, *,
    variable: str = "condition",
) -> pd.DataFrame:
    """Arm × subgroup interaction and subgroup effects of binary and count outcomes.

    Parameters
    ----------
    patients, config, outcomes
        As for every sensitivity analysis; ``outcomes`` names binary or count outcomes.
    variable : str, default "condition"
        Patient column defining the subgroups (as
        :func:`~trialstats.analysis.subgroups.subgroup_analysis`).

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`; per outcome and month first the
        interaction row (``df`` the denominator df, empty for ``z``; ``p_value`` of the Wald
        test; ``estimate``/``se`` empty; the statistic in ``notes``), then one row per level
        with the odds ratio (binary) or rate ratio (count) in that subgroup, ``se`` of its log,
        interval, p-value and the MCID verdict on its own measure, ``n_patients`` and
        ``n_clusters`` of the subgroup. ``var_cluster`` is the practice variance on the link
        scale; binary rows add ``var_residual`` :math:`\\pi^2/3` and the latent ``icc``.
        A row says "not estimable: why" (or "skipped") when the model cannot be fitted.
    """
    return each_outcome_month(patients, config, outcomes,
                              partial(_outcome_rows, variable=variable))
