"""The prespecified sensitivity and secondary analyses, by name.

Each analysis takes the validated patients and the configuration and returns rows with the
primary columns (:data:`trialstats.contract.COLUMNS`) plus ``analysis``:

- ``multiple-imputation`` — chained equations of two-level Bayesian linear regressions with
  a random practice intercept, the primary model in each imputed dataset, Rubin's rules with
  Barnard–Rubin df (:mod:`trialstats.analysis.imputation`);
- ``repeated-measures`` — all follow-up months together, arm × month, practice and patient
  random intercepts (:mod:`trialstats.analysis.repeated`);
- ``cluster-level`` — two-stage covariate-adjusted practice-level t-test on J − 2 df, and the
  unadjusted practice-mean t-test (:mod:`trialstats.analysis.cluster_level`);
- ``gee`` — exchangeable GEE with Mancl–DeRouen and Kauermann–Carroll corrected sandwich
  variances, t on J − 2 df, and the Fay–Graubard variance on their df; and ``cr2`` —
  baseline-adjusted OLS with CR2 cluster-robust SEs and Bell–McCaffrey df
  (:mod:`trialstats.analysis.robust`);
- ``delta-adjustment`` — the imputations of ``multiple-imputation`` with the imputed follow-up
  scores of one arm shifted by each delta of ``sensitivity.delta`` (missing not at random),
  one row per delta with an extra ``delta`` column (:mod:`trialstats.analysis.delta`);
- ``subgroups`` — arm × subgroup interaction and effects within subgroups, exploratory
  (:mod:`trialstats.analysis.subgroups`);
- ``permutation-test`` — clustered permutation test on covariate-adjusted practice residuals
  over the allocation set, CI by test inversion (:mod:`trialstats.analysis.permutation`).

Period designs (stepped wedge, crossover, parallel-baseline) have their own cluster-level and
CR2 analyses (:mod:`trialstats.analysis.period_sensitivity`); the others say they are for
parallel designs.

Binary and count outcomes get the cluster-level analysis (Hayes & Moulton ratio residuals,
practice proportions or log rates), logit/log-link GEE with the same corrections and, binary
only, the CR2 linear probability model for the risk difference
(:mod:`trialstats.analysis.binary_sensitivity`), the subgroups in the GLMM
(:mod:`trialstats.analysis.glmm_subgroups`) and the repeated-measures GLMM with practice and
patient intercepts (:mod:`trialstats.analysis.glmm_repeated`), and, counts only, the
permutation test with a Poisson null model and the rate ratio by test inversion
(:mod:`trialstats.analysis.permutation_counts`; a binary outcome gets a row saying it is not
available); multiple imputation and the
delta adjustment impute every outcome in one model (two-level logistic or Poisson draws for
binary and count columns) and give them the pooled GLMM rows, delta on the log-odds or
log-rate scale (:mod:`trialstats.analysis.imputation_glmm`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd

from trialstats.analysis.binary_sensitivity import cluster_level_rows, cr2_rows, gee_rows
from trialstats.analysis.cluster_level import cluster_level_analysis
from trialstats.analysis.delta import DELTA_COLUMNS, delta_adjustment
from trialstats.analysis.glmm_repeated import glmm_repeated_analysis
from trialstats.analysis.glmm_rows import measures_of
from trialstats.analysis.glmm_subgroups import glmm_subgroup_analysis
from trialstats.analysis.imputation import ImputedTrial
from trialstats.analysis.imputation_glmm import imputed_outcome_rows
from trialstats.analysis.period_sensitivity import period_sensitivity
from trialstats.analysis.permutation import permutation_analysis
from trialstats.analysis.permutation_counts import count_permutation_analysis
from trialstats.analysis.repeated import repeated_measures_analysis
from trialstats.analysis.robust import cr2_analysis, gee_analysis
from trialstats.analysis.rows import (
    OutcomeRows,
    chosen_outcomes,
    each_outcome_month,
    honest_status,
)
from trialstats.analysis.subgroups import subgroup_analysis
from trialstats.contract import MEAN_DIFFERENCE, SENSITIVITY_COLUMNS
from trialstats.data.periods import is_period_design
from trialstats.errors import TrialstatsError

#: A sensitivity analysis: ``analysis(patients, config, outcomes)`` with the validated patients
#: (:class:`trialstats.data.validate.Trial`), the validated configuration and the names of the
#: outcomes to analyse (None: every configured outcome, in configuration order).
Analysis = Callable[[pd.DataFrame, dict[str, Any], list[str] | None], pd.DataFrame]


def _imputation(patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None,
                progress: Callable[[float], None] | None = None):
    return imputed_outcome_rows(patients, config, outcomes, progress=progress)


def _subgroups(patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None):
    return subgroup_analysis(patients, config, outcomes,
                             variable=config["sensitivity"]["subgroup"])


def _glmm_subgroups(patients: pd.DataFrame, config: dict[str, Any],
                    outcomes: list[str] | None):
    return glmm_subgroup_analysis(patients, config, outcomes,
                                  variable=config["sensitivity"]["subgroup"])


def _each_month(outcome_rows: OutcomeRows) -> Analysis:
    """The analysis giving the rows of ``outcome_rows`` at every follow-up month."""
    return partial(_month_by_month, outcome_rows=outcome_rows)


def _month_by_month(patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None,
                    *, outcome_rows: OutcomeRows) -> pd.DataFrame:
    return each_outcome_month(patients, config, outcomes, outcome_rows)


#: Every sensitivity analysis by its configuration name.
ANALYSES: dict[str, Analysis] = {
    "multiple-imputation": _imputation,
    "delta-adjustment": delta_adjustment,
    "repeated-measures": repeated_measures_analysis,
    "cluster-level": cluster_level_analysis,
    "gee": gee_analysis,
    "cr2": cr2_analysis,
    "subgroups": _subgroups,
    "permutation-test": permutation_analysis,
}


#: The analyses of the one multilevel imputation of every outcome: they give rows for every
#: outcome type from the same imputations (:mod:`trialstats.analysis.imputation_glmm`).
IMPUTATION_ANALYSES = ("multiple-imputation", "delta-adjustment")

#: The binary and count versions of the other sensitivity analyses, by configuration name
#: (:mod:`trialstats.analysis.binary_sensitivity`, :mod:`trialstats.analysis.glmm_subgroups`,
#: :mod:`trialstats.analysis.glmm_repeated`, :mod:`trialstats.analysis.permutation_counts`):
#: each gives a row per outcome and month, "not estimable: why" where it cannot estimate.
GLMM_ANALYSES: dict[str, Analysis] = {
    "repeated-measures": glmm_repeated_analysis,
    "cluster-level": _each_month(cluster_level_rows),
    "gee": _each_month(gee_rows),
    "cr2": _each_month(cr2_rows),
    "subgroups": _glmm_subgroups,
    "permutation-test": count_permutation_analysis,
}


def run_analysis(
    name: str, patients: pd.DataFrame, config: dict[str, Any],
    outcomes: list[str] | None = None, *, progress: Callable[[float], None] | None = None,
    trial: ImputedTrial | None = None,
) -> pd.DataFrame:
    """Run the sensitivity analysis ``name`` (a key of :data:`ANALYSES`).

    ``trial``, the MAR imputation of :func:`~trialstats.analysis.delta.imputed_trial`, is
    shifted by ``delta-adjustment`` instead of imputing again (the tipping points use it too).

    ``progress`` is advanced by the one long analysis, multiple imputation: by 1 in all for each
    of its :data:`~trialstats.analysis.imputation.ITERATIONS` chained-equations cycles (in
    fractions when a large trial imputes in batches).

    Returns exactly :data:`~trialstats.contract.SENSITIVITY_COLUMNS`, so that every
    analysis stacks into one ``sensitivity.csv``; analysis-specific figures (e.g. the fraction
    of missing information of multiple imputation) are in ``notes``; ``delta-adjustment``
    adds the ``delta`` column (:data:`~trialstats.analysis.delta.DELTA_COLUMNS`). The analyses
    are those of continuous outcomes (``effect_measure`` mean difference); a binary or count
    outcome gets the rows of :data:`IMPUTATION_ANALYSES` or :data:`GLMM_ANALYSES`. An
    analysis that fails on the data (a numerical error such as numpy's ``LinAlgError``, or a
    :class:`~trialstats.errors.TrialstatsError` such as a covariate aliased with arm) gives
    the rows of :func:`not_estimable` instead. Rows that could not be estimated have an
    empty ``converged``.
    """
    if name not in ANALYSES:
        raise TrialstatsError(
            f"unknown sensitivity analysis '{name}'; choose from {', '.join(ANALYSES)}."
        )
    if is_period_design(config):
        rows = period_sensitivity(name, patients, config, outcomes)
        return honest_status(rows.reindex(columns=list(SENSITIVITY_COLUMNS)))
    analysis = ANALYSES[name]
    if name == "multiple-imputation":
        analysis = partial(_imputation, progress=progress)
    if name == "delta-adjustment" and trial is not None:
        analysis = partial(delta_adjustment, trial=trial)
    columns = DELTA_COLUMNS if name == "delta-adjustment" else SENSITIVITY_COLUMNS
    chosen = chosen_outcomes(config, outcomes)  # an unknown outcome is the user's error
    try:
        rows = _rows_by_type(name, analysis, patients, config, chosen)
    except (ArithmeticError, ValueError, TrialstatsError) as error:
        rows = not_estimable(name, config, outcomes, error)
    return honest_status(rows.reindex(columns=list(columns)))


def _rows_by_type(
    name: str, analysis: Analysis, patients: pd.DataFrame, config: dict[str, Any],
    chosen: list[dict[str, Any]],
) -> pd.DataFrame:
    """The rows of ``analysis`` for continuous outcomes, and for binary and count outcomes
    those of :data:`IMPUTATION_ANALYSES` (every type from one imputation) or
    :data:`GLMM_ANALYSES`, in configuration order."""
    if name in IMPUTATION_ANALYSES:  # rows of every type, effect_measure set
        return analysis(patients, config, [o["name"] for o in chosen])
    continuous = [o["name"] for o in chosen if o.get("type", "continuous") == "continuous"]
    tables = []
    if continuous:
        table = analysis(patients, config, continuous)
        tables.append(table.assign(effect_measure=MEAN_DIFFERENCE))
    other = [o["name"] for o in chosen if o["name"] not in continuous]
    if other:
        tables.append(GLMM_ANALYSES[name](patients, config, other))
    rows = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    order = {n: i for i, n in enumerate(o["name"] for o in chosen)}
    rows = rows.sort_values("outcome", key=lambda c: c.map(order), kind="stable")
    return rows.reset_index(drop=True)


def not_estimable(name: str, config: dict[str, Any], outcomes: list[str] | None,
                  error: Exception) -> pd.DataFrame:
    """One "not estimable: why" row per chosen outcome x follow-up month for an analysis that
    failed as a whole (e.g. a singular matrix from a degenerate trial), so that it never
    takes the rows of the other analyses with it."""
    why = str(error).strip() or type(error).__name__
    rows = [{"outcome": outcome["name"], "month": month, "analysis": name,
             "effect_measure": MEAN_DIFFERENCE if outcome.get("type", "continuous")
             == "continuous" else measures_of(outcome)[0],
             "notes": f"not estimable: {name} failed on these data ({why})"}
            for outcome in chosen_outcomes(config, outcomes)
            for month in config["design"]["followup_months"]]
    return pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))
