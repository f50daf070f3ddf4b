r"""The missing-data summary: completeness by arm, month and outcome, and predictors of dropout.

Dropout model
-------------
For each follow-up month *t*, with :math:`R_{it} = 1` when patient *i* returned the
questionnaire (any configured outcome observed at month *t*),

.. math::

    \operatorname{logit} P(R_{it} = 1) = \alpha + \delta T_j + x_i^\top \gamma
        + \sum_k \beta_k\, z^{(0)}_{ik},

with :math:`T_j` the intervention indicator, :math:`x_i` the configured covariates (text
covariates as treatment-coded dummies against the first level in sorted order, numeric ones
standardised) and :math:`z^{(0)}_{ik}` the baseline score of outcome *k* standardised by its SD
among the analysed patients, so every continuous odds ratio is per standard deviation (the
baseline of a binary outcome enters as 0/1: its odds ratio is 1 vs 0). Fitted by
maximum likelihood (statsmodels ``GLM``, binomial family) to the patients with every predictor
observed; the standard errors are cluster-robust by practice (sandwich with statsmodels'
small-sample factor), and intervals and p values are Wald *z*. Odds ratios above 1 mean
*more likely to return* the questionnaire. The model describes who is lost; it is what makes
the missing-at-random assumption of :mod:`trialstats.analysis.imputation` plausible (predictors
of dropout that are in the imputation model) — it cannot test it (Bell, Fiero, Horton & Hsu
2014, *BMC Med Res Methodol* 14:118; White, Horton, Carpenter & Pocock 2011, *BMJ* 342:d40).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from trialstats.data.periods import is_period_design, period_completeness
from trialstats.data.validate import TREATED, Trial, completeness, outcome_column

__all__ = ["DROPOUT_COLUMNS", "missing_data_summary"]

#: Columns of the dropout-predictors table.
DROPOUT_COLUMNS = (
    "month", "term", "contrast", "n_patients", "n_returned", "odds_ratio", "ci_low", "ci_high",
    "p_value", "converged", "notes",
)


def _predictors(
    patients: pd.DataFrame, config: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Design columns (no intercept) and the contrast each one's odds ratio is for."""
    design = config["design"]
    arm = design["arm"]
    control = sorted(set(patients[arm].dropna()) - {design["intervention"]})
    columns = {TREATED: patients[TREATED].astype(float)}
    contrasts = {TREATED: f"{design['intervention']} vs {', '.join(control) or 'control'}"}
    for name in config["analysis"]["covariates"]:
        values = patients[name]
        if pd.api.types.is_numeric_dtype(values):
            columns[name] = values.astype(float)
            contrasts[name] = "per SD"
        else:
            levels = sorted(values.dropna().unique())
            for level in levels[1:]:
                term = f"{name}[{level}]"
                columns[term] = (values == level).astype(float).where(values.notna())
                contrasts[term] = f"{level} vs {levels[0]}"
    for outcome in config["outcomes"]:
        if not outcome.get("baseline", True):
            continue  # measured only at follow-up: no baseline score to predict return
        column = outcome_column(outcome["name"], design["baseline_month"])
        columns[column] = patients[column].astype(float)
        # a binary baseline is a yes/no predictor, a score or count one per SD
        contrasts[column] = ("1 vs 0" if outcome.get("type", "continuous") == "binary"
                             else "per SD")
    return pd.DataFrame(columns, index=patients.index), contrasts


def _dropout_rows(
    returned: pd.Series,
    predictors: pd.DataFrame,
    contrasts: dict[str, str],
    clusters: pd.Series,
    month: int,
    alpha: float,
) -> list[dict[str, Any]]:
    usable = predictors.notna().all(axis=1)
    excluded = int((~usable).sum())
    X = predictors.loc[usable].copy()
    sds = {}
    for term, contrast in contrasts.items():
        if contrast == "per SD":
            sds[term] = float(X[term].std(ddof=1))
            X[term] = (X[term] - X[term].mean()) / sds[term]
    y = returned.loc[usable].astype(float)
    codes = pd.factorize(clusters.loc[usable], sort=True)[0]
    base = {"month": month, "n_patients": len(y), "n_returned": int(y.sum())}
    notes = [f"logistic regression of returning the month-{month} questionnaire; "
             f"cluster-robust SEs by practice ({codes.max() + 1} practices), Wald z"]
    if excluded:
        notes.append(f"excluded {excluded:,} patients with a missing predictor")
    if y.nunique() < 2:
        notes.append("not estimable: every analysed patient "
                     f"{'returned' if y.iloc[0] else 'did not return'} the questionnaire")
        return [{**base, "term": t, "contrast": c, "converged": False,
                 "notes": "; ".join(notes)} for t, c in contrasts.items()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", PerfectSeparationWarning)
        fit = sm.GLM(y.to_numpy(), sm.add_constant(X.to_numpy(), has_constant="add"),
                     family=sm.families.Binomial()).fit(
            cov_type="cluster", cov_kwds={"groups": codes})
    converged = bool(fit.converged) and not any(
        issubclass(w.category, ConvergenceWarning | PerfectSeparationWarning) for w in caught)
    if not converged:
        notes.append("the fit did not converge or the predictors separate returners from "
                      "non-returners: odds ratios are unreliable")
    z = stats.norm.ppf(1 - alpha / 2)
    rows = []
    for position, term in enumerate(contrasts, start=1):
        estimate, se = float(fit.params[position]), float(fit.bse[position])
        contrast = contrasts[term]
        if term in sds:
            contrast = f"per SD ({sds[term]:.4g})"
        with np.errstate(over="ignore"):  # a separated fit: flagged in notes, shown as inf
            ratio, low, high = np.exp([estimate, estimate - z * se, estimate + z * se])
        rows.append({
            **base, "term": term, "contrast": contrast, "odds_ratio": ratio,
            "ci_low": low, "ci_high": high,
            "p_value": float(fit.pvalues[position]), "converged": converged,
            "notes": "; ".join(notes),
        })
    return rows


def missing_data_summary(
    patients: pd.DataFrame, config: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Completeness of every outcome and the predictors of dropout at each follow-up month.

    Parameters
    ----------
    patients : DataFrame
        Validated patients (see :class:`trialstats.data.validate.Trial`).
    config : dict
        The validated configuration (``design``, ``outcomes``, ``analysis.covariates`` and
        ``analysis.alpha``).

    Returns
    -------
    completeness : DataFrame
        :func:`trialstats.data.validate.completeness`: ``outcome, month, arm, n_patients,
        n_observed, percent_observed``, one row per outcome × month × arm, then arm ``all``.
    dropout : DataFrame
        One row per follow-up month × predictor, columns :data:`DROPOUT_COLUMNS`: ``term``
        (``treated``, covariate or covariate level, baseline score column), ``contrast`` (what
        the odds ratio compares: the arms, a level against the reference level, or per SD with
        the SD in brackets), ``n_patients`` analysed and ``n_returned`` of them, ``odds_ratio``
        of returning the questionnaire with its ``ci_low``/``ci_high`` and Wald ``p_value``
        (cluster-robust by practice), ``converged`` and ``notes``.

    Notes
    -----
    The dropout model is stated in the module docstring. Period designs (cross-sectional):
    :func:`trialstats.data.periods.period_completeness` and one dropout row saying why
    there is none.
    """
    design = config["design"]
    if is_period_design(config):
        note = ("not estimable: in a cross-sectional period design each participant is "
                "measured once, so there is no follow-up to drop out of")
        return period_completeness(patients, config), pd.DataFrame(
            [{"month": design["primary_month"], "converged": False, "notes": note}],
            columns=list(DROPOUT_COLUMNS))
    # completeness() reads only the patients and the configuration of a Trial
    table = completeness(Trial(practices=pd.DataFrame(), patients=patients, config=config))
    predictors, contrasts = _predictors(patients, config)
    alpha = float(config["analysis"]["alpha"])
    rows = []
    for month in design["followup_months"]:
        columns = [outcome_column(o["name"], month) for o in config["outcomes"]]
        returned = patients[columns].notna().any(axis=1)
        rows += _dropout_rows(returned, predictors, contrasts, patients[design["cluster"]],
                              month, alpha)
    return table, pd.DataFrame(rows, columns=list(DROPOUT_COLUMNS))
