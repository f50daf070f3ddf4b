r"""Repeated-measures analysis of binary and count outcomes: a GLMM with practice and patient
random intercepts over all follow-up months.

Model (maximum likelihood, nested adaptive quadrature of :mod:`trialstats.analysis.glmm_nested`),
for month *t* of patient *i* in practice *j*:

.. math::

    g\{E(y_{jit} \mid c_j, p_{ji})\} = \mu + \tau_t + (\beta + \delta_t) T_j
        + \lambda y^{(0)}_{ji} + x_{ji}^\top\gamma + o_{ji} + c_j + p_{ji},

with :math:`\tau_{t_1} = \delta_{t_1} = 0` for the first follow-up month, :math:`c_j \sim
N(0, \sigma_c^2)` (practice), :math:`p_{ji} \sim N(0, \sigma_p^2)` (patient), independent:
``glmer(y ~ arm * month + y0 + covariates + (1 | practice/patient))`` with month a factor, logit
link (binary) or log link with offset log exposure (counts; the outcome's ``exposure`` column is
every month's exposure). The design, population and exclusions are those of the continuous
repeated-measures model (:func:`~trialstats.analysis.repeated.repeated_data`): patients with the
baseline value, every covariate (and the exposure) and at least one follow-up value, each with
the follow-up values they have. The effect at month *t* is :math:`e^{\beta + \delta_t}`, an odds
ratio or a rate ratio conditional on both random intercepts.

Counts are Poisson: the patient intercept is a patient-level random effect that takes up
between-patient over-dispersion (the negative binomial of the single-month analysis has no
nested counterpart here; ``notes`` say so).

Inference on :math:`L_t\hat\beta` uses the inverse observed information over the fixed effects
and both SDs jointly, and the df rule of the primary GLMM analysis (``analysis.glmm_df_method``:
between-within :math:`J - p_b`, as the contrast involves the practice-level arm column; ``z``;
``residual`` on observations minus parameters).

Quadrature: ``analysis.quadrature_points`` nodes in each dimension (default 15; 1 is glmer's
Laplace fit); the measured choice is in :mod:`trialstats.analysis.glmm_nested`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.glmm import DEFAULT_N_AGQ
from trialstats.analysis.glmm_nested import fit_nested_glmm
from trialstats.analysis.glmm_nested_likelihood import nested_data
from trialstats.analysis.glmm_rows import contrast_row, measures_of
from trialstats.analysis.repeated import month_contrasts, repeated_data
from trialstats.analysis.rows import (
    arms_problem,
    chosen_outcomes,
    clusters_per_arm,
    frame,
    join_notes,
    scale_note,
)
from trialstats.contract import REPEATED_MEASURES
from trialstats.data.validate import TREATED, baseline_month_of
from trialstats.errors import TrialstatsError

__all__ = ["glmm_repeated_analysis"]


def _outcome_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], config: dict[str, Any]
) -> list[dict[str, Any]]:
    design, analysis = config["design"], config["analysis"]
    months = list(design["followup_months"])
    methods = analysis.get("glmm_df_method", ["between-within"])
    n_agq = analysis.get("quadrature_points", DEFAULT_N_AGQ)
    binary = outcome["type"] == "binary"
    measure = measures_of(outcome)[0]
    base = {"outcome": outcome["name"], "analysis": REPEATED_MEASURES,
            "effect_measure": measure, "sd_baseline": np.nan, "mcid": np.nan}

    def blank(problem: str, *notes: str) -> list[dict[str, Any]]:
        return [{**base, "month": month, "method": method, "converged": False,
                 "notes": join_notes(problem, *notes)}
                for month in months for method in methods]

    if len(months) < 2:
        return blank("not estimable: repeated measures need at least two follow-up months")
    data = repeated_data(patients, outcome["name"], months, cluster=design["cluster"],
                         baseline_month=baseline_month_of(outcome, design),
                         covariates=analysis["covariates"], exposure=outcome.get("exposure"))
    base |= {"n_patients": data.n_patients, "n_clusters": data.n_clusters}
    exclusions = join_notes(data.exclusion_note(), scale_note(outcome, design, months[0]))
    treated = data.X[:, data.columns.index(TREATED)] if data.y.size else np.zeros(0)
    problem = arms_problem(clusters_per_arm(treated, data.practice_codes))
    if not problem and np.ptp(data.y) == 0:
        problem = f"not estimable: every analysed observation has {data.y[0]:g} as the outcome"
    if not problem:
        try:
            nested = nested_data(data.y, data.X, data.practice_codes, data.patient_codes,
                                 "binomial" if binary else "poisson", offset=data.offset)
            fit = fit_nested_glmm(nested, n_agq)
        except TrialstatsError as error:
            problem = f"not estimable: {error}"
    if problem:
        return blank(problem, exclusions)
    var_c, var_p = fit.sigma_practice**2, fit.sigma_patient**2
    counts = ", ".join(f"month {m}: {int(np.sum(data.month == m)):,}" for m in months)
    scale = "logit" if binary else "log"
    family = ("binomial (logit)" if binary else
              "Poisson (log, offset log exposure; over-dispersion between patients is in the "
              "patient intercept; no negative binomial for nested models)")
    quadrature = ("Laplace approximation (as glmer nAGQ = 1)" if n_agq == 1 else
                  f"nested adaptive quadrature, {n_agq} x {n_agq} nodes per practice and patient")
    described = (
        f"{data.y.size:,} observations ({counts}) from {data.n_patients:,} patients; family: "
        f"{family}; variances on the {scale} scale: practice {var_c:.4g}, patient {var_p:.4g}"
        + (" (var_residual = patient + pi^2/3; ICC = practice share on the latent scale)"
           if binary else "") + f"; {quadrature}")
    flags = [f"{name} variance estimated at 0 (boundary fit)"
             for name, at_zero in zip(("practice", "patient"), fit.boundary, strict=True)
             if at_zero]
    if not fit.converged:
        flags.append("GLMM fit did not converge (e.g. all or no events in an arm); "
                     "estimates are unreliable")
    components = {"var_cluster": var_c, "converged": fit.converged}
    if binary:
        within = var_p + np.pi**2 / 3
        components |= {"var_residual": within, "icc": var_c / (var_c + within)}
    rows = []
    for month, contrast in zip(months, month_contrasts(data.columns, months), strict=True):
        for method in methods:
            row = {**base, **components, "month": month, "method": method,
                   "notes": join_notes(exclusions, described, *flags)}
            rows.append(contrast_row(row, outcome, measure, fit, contrast, method=method,
                                     y=data.y, X=data.X, cluster_codes=data.practice_codes,
                                     alpha=analysis["alpha"]))
    return rows


def glmm_repeated_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None
) -> pd.DataFrame:
    """Repeated-measures GLMM of every chosen binary or count outcome over all follow-up months.

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`; per outcome, follow-up month and
        ``analysis.glmm_df_method``, one row, ``analysis = "repeated measures"``: ``estimate``
        the odds ratio (binary) or rate ratio (count) at that month with ``se`` of its log and
        the interval on the method's df; ``var_cluster`` the practice variance on the link
        scale; binary: ``var_residual`` patient variance + :math:`\\pi^2/3` and ``icc`` the
        latent practice share (no interval), counts: both empty; ``n_patients`` the patients
        in the model; ``notes`` exclusions, observations per month, the variances, the
        quadrature, boundary or convergence problems. A row says "not estimable: why" when the
        model cannot be fitted (fewer than two months, two practices per arm, a constant
        outcome, separated or degenerate data).
    """
    rows = [row for outcome in chosen_outcomes(config, outcomes)
            for row in _outcome_rows(patients, outcome, config)]
    return frame(rows)
