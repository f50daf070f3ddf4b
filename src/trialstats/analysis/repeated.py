r"""Repeated-measures analysis: all follow-up months together, patients nested in practices.

Model (REML), for occasion (month) *t* of patient *i* in practice *j*:

.. math::

    y_{jit} = \mu + \tau_t + (\beta + \delta_t) T_j + \lambda\, y^{(0)}_{ji} + x_{ji}^\top\gamma
              + c_j + p_{ji} + e_{jit},

with :math:`\tau_{t_1} = \delta_{t_1} = 0` for the first follow-up month,
:math:`c_j \sim N(0, \sigma_c^2)` (practice), :math:`p_{ji} \sim N(0, \sigma_p^2)` (patient)
and :math:`e_{jit} \sim N(0, \sigma_e^2)`, all independent: ``lmer(y ~ arm * month + y0 +
covariates + (1 | practice/patient))`` with month a factor. The arm effect at month *t* is
:math:`\beta + \delta_t`. Patients with the baseline score, every covariate and at least one
follow-up score are analysed, each with the follow-up scores they have (valid under missing at
random given the model's terms); the others are counted in ``notes``.

The model is fitted by the exact REML kernel of :mod:`trialstats.analysis.nested_reml`
(profiled criterion from per-patient and per-practice sums, analytic derivatives) and the arm
effect at each month tested with Satterthwaite df as lmerTest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.design import complete_rows, exclusion_note, model_data
from trialstats.analysis.nested_reml import NestedSums, fit_nested_reml, nested_satterthwaite_df
from trialstats.analysis.rows import (
    arms_problem,
    chosen_outcomes,
    clusters_per_arm,
    frame,
    join_notes,
    outcome_scale,
    scale_note,
    t_row,
)
from trialstats.contract import REPEATED_MEASURES
from trialstats.data.validate import TREATED, baseline_month_of, outcome_column
from trialstats.errors import TrialstatsError

__all__ = ["RepeatedData", "month_contrasts", "repeated_data", "repeated_measures_analysis"]


@dataclass(frozen=True)
class RepeatedData:
    """The long-format arrays of the repeated-measures model.

    Attributes
    ----------
    y : ndarray (N,)
        Follow-up scores, one per observed patient-month.
    X : ndarray (N, p)
        Design: ``(Intercept)``, ``treated``, ``month[t]`` and ``treated:month[t]`` for every
        month after the first, the baseline column, then the covariate columns.
    columns : tuple of str
    month : ndarray (N,)
        Month of each observation.
    patient_codes, practice_codes : ndarray of int (N,)
        Patient ``0 .. P - 1`` and practice ``0 .. J - 1`` of each observation.
    excluded : dict
        Reason → patients excluded for it (first reason that applies).
    n_randomised : int
        Patients in the input table.
    offset : ndarray (N,)
        Log exposure of each observation (count outcomes with an ``exposure`` column, the same
        for every month; zeros otherwise).
    """

    y: np.ndarray
    X: np.ndarray
    columns: tuple[str, ...]
    month: np.ndarray
    patient_codes: np.ndarray
    practice_codes: np.ndarray
    excluded: dict[str, int]
    n_randomised: int
    offset: np.ndarray | None = None

    @property
    def n_patients(self) -> int:
        """Patients with at least one analysed observation."""
        return int(self.patient_codes.max()) + 1 if self.y.size else 0

    @property
    def n_clusters(self) -> int:
        """Practices with at least one analysed observation."""
        return int(self.practice_codes.max()) + 1 if self.y.size else 0

    def exclusion_note(self) -> str:
        """One sentence counting the excluded patients by reason ("" when none)."""
        return exclusion_note(self.excluded, self.n_randomised)


def repeated_data(
    patients: pd.DataFrame, outcome: str, months: list[int], *, cluster: str,
    baseline_month: int | None, covariates: list[str], exposure: str | None = None,
) -> RepeatedData:
    """Assemble the long-format repeated-measures model for ``outcome``.

    Patients need the baseline score (unless ``baseline_month`` is None: no baseline term),
    every covariate, the ``exposure`` when given (its log is every observation's offset) and
    at least one of the follow-up scores at ``months``; each contributes one observation per
    follow-up score observed.
    """
    baseline = None if baseline_month is None else outcome_column(outcome, baseline_month)
    followups = [outcome_column(outcome, month) for month in months]
    keep, excluded = complete_rows(patients.index, [
        (f"without any of {', '.join(followups)}", patients[followups].isna().all(axis=1)),
        *([(f"without {baseline}", patients[baseline].isna())] if baseline else []),
        *[(f"without {c}", patients[c].isna()) for c in covariates],
        *([(f"without {exposure}", patients[exposure].isna())] if exposure else []),
    ])
    analysed = patients.loc[keep].reset_index(drop=True)
    # One row per observed patient-month; the month's score is put in the first follow-up's
    # column so that model_data builds the baseline and covariate columns for every row alike.
    first = followups[0]
    long = pd.concat(
        [analysed.assign(**{first: analysed[column], "_month": month, "_patient": analysed.index})
         .loc[analysed[column].notna()] for month, column in zip(months, followups, strict=True)],
        ignore_index=True,
    )
    base = model_data(long, outcome, months[0], cluster=cluster, baseline_month=baseline_month,
                      covariates=covariates, exposure=exposure)
    month = long["_month"].to_numpy()
    treated = base.X[:, base.columns.index(TREATED)]
    later = {f"month[{m}]": (month == m).astype(float) for m in months[1:]}
    interactions = {f"{TREATED}:{name}": treated * values for name, values in later.items()}
    head = base.X[:, : base.columns.index(TREATED) + 1]
    tail = base.X[:, base.columns.index(TREATED) + 1 :]
    X = np.column_stack([head, *later.values(), *interactions.values(), tail])
    columns = (*base.columns[: base.columns.index(TREATED) + 1], *later, *interactions,
               *base.columns[base.columns.index(TREATED) + 1 :])
    patient_codes, _ = pd.factorize(long["_patient"], sort=True)
    return RepeatedData(
        y=base.y, X=X, columns=columns, month=month,
        patient_codes=patient_codes.astype(np.intp), practice_codes=base.cluster_codes,
        excluded=excluded, n_randomised=len(patients), offset=base.offset,
    )


def month_contrasts(columns: tuple[str, ...], months: list[int]) -> np.ndarray:
    """Rows :math:`L_t` selecting the arm effect at each month: ``treated`` plus, after the
    first month, ``treated:month[t]``; shape (len(months), p)."""
    L = np.zeros((len(months), len(columns)))
    L[:, columns.index(TREATED)] = 1.0
    for row, month in enumerate(months[1:], start=1):
        L[row, columns.index(f"{TREATED}:month[{month}]")] = 1.0
    return L


def _outcome_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], *, design: dict[str, Any],
    analysis: dict[str, Any],
) -> list[dict[str, Any]]:
    months = list(design["followup_months"])
    base = {"outcome": outcome["name"], "analysis": REPEATED_MEASURES, "method": "satterthwaite"}

    def scaled(month: int) -> dict[str, Any]:
        return {**base, "month": month, **outcome_scale(patients, outcome, design, month)}

    if len(months) < 2:
        return [{**scaled(months[0]), "converged": False,
                 "notes": "not estimable: repeated measures need at least two follow-up months"}]
    data = repeated_data(patients, outcome["name"], months, cluster=design["cluster"],
                         baseline_month=baseline_month_of(outcome, design),
                         covariates=analysis["covariates"])
    base |= {"n_patients": data.n_patients, "n_clusters": data.n_clusters}
    exclusions = data.exclusion_note()
    treated = data.X[:, data.columns.index(TREATED)] if data.y.size else np.zeros(0)
    problem = arms_problem(clusters_per_arm(treated, data.practice_codes))
    if not problem:
        try:
            sums = NestedSums.from_data(data.y, data.X, data.patient_codes, data.practice_codes)
            fit = fit_nested_reml(sums)
        except TrialstatsError as error:
            problem = f"not estimable: {error}"
    if problem:
        return [{**scaled(month), "converged": False,
                 "notes": join_notes(problem, exclusions)} for month in months]
    L = month_contrasts(data.columns, months)
    dfs = nested_satterthwaite_df(sums, fit, L)
    within = fit.var_patient + fit.var_residual
    counts = ", ".join(f"month {m}: {int(np.sum(data.month == m)):,}" for m in months)
    described = (
        f"{data.y.size:,} observations ({counts}) from {data.n_patients:,} patients; "
        f"variances: practice {fit.var_practice:.4g}, patient {fit.var_patient:.4g}, "
        f"occasion {fit.var_residual:.4g} (var_residual = patient + occasion; ICC = practice "
        f"share of the total); Satterthwaite df (lmerTest)")
    flags = [f"{name} variance estimated at 0 (boundary fit)"
             for name, at_zero in zip(("patient", "practice"), fit.boundary, strict=True)
             if at_zero]
    if not fit.converged:
        flags.append("REML optimisation did not converge; estimates are unreliable")
    rows = []
    for month, contrast, df in zip(months, L, dfs, strict=True):
        rows.append(t_row(
            {**scaled(month), "var_cluster": fit.var_practice, "var_residual": within,
             "icc": fit.var_practice / (fit.var_practice + within), "converged": fit.converged,
             "notes": join_notes(exclusions, described, *flags,
                                 scale_note(outcome, design, month))},
            estimate=float(contrast @ fit.beta), se=float(np.sqrt(contrast @ fit.vcov @ contrast)),
            df=float(df), alpha=analysis["alpha"], higher_is_better=outcome["higher_is_better"],
        ))
    return rows


def repeated_measures_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None
) -> pd.DataFrame:
    """Repeated-measures mixed model of every outcome over all follow-up months.

    The occasions are ``design.followup_months`` (the first is the reference month).

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`; per outcome one row
        per follow-up month, ``analysis = "repeated measures"``, ``method = "satterthwaite"``:
        ``estimate`` is the arm effect at that month (:math:`\\beta + \\delta_t`) with its
        model-based SE and Satterthwaite df; ``var_cluster`` the practice variance,
        ``var_residual`` the patient plus occasion variance, ``icc`` the practice share of the
        total (no interval); ``n_patients`` the patients in the model (any follow-up);
        ``notes`` exclusions, observations per month, the three variance components and
        boundary or convergence problems.
    """
    design, analysis = config["design"], config["analysis"]
    rows = [row for outcome in chosen_outcomes(config, outcomes)
            for row in _outcome_rows(patients, outcome, design=design, analysis=analysis)]
    return frame(rows)
