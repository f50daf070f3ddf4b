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
  variances, t on J − 2 df, and ``cr2`` — baseline-adjusted OLS with CR2 cluster-robust SEs
  and Bell–McCaffrey df (:mod:`trialstats.analysis.robust`);
- ``delta-adjustment`` — the imputations of ``multiple-imputation`` with the imputed follow-up
  scores of one arm shifted by each delta of ``sensitivity.delta`` (missing not at random),
  one row per delta with an extra ``delta`` column (:mod:`trialstats.analysis.delta`);
- ``subgroups`` — arm × subgroup interaction and effects within subgroups, exploratory
  (:mod:`trialstats.analysis.subgroups`);
- ``permutation-test`` — clustered permutation test on covariate-adjusted practice residuals
  over the allocation set, CI by test inversion (:mod:`trialstats.analysis.permutation`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd

from trialstats.analysis.cluster_level import cluster_level_analysis
from trialstats.analysis.delta import DELTA_COLUMNS, delta_adjustment
from trialstats.analysis.imputation import multiple_imputation
from trialstats.analysis.permutation import permutation_analysis
from trialstats.analysis.repeated import repeated_measures_analysis
from trialstats.analysis.robust import cr2_analysis, gee_analysis
from trialstats.analysis.rows import chosen_outcomes, honest_status
from trialstats.analysis.subgroups import subgroup_analysis
from trialstats.contract import SENSITIVITY_COLUMNS
from trialstats.errors import TrialstatsError

#: A sensitivity analysis: ``analysis(patients, config, outcomes)`` with the validated patients
#: (:class:`trialstats.data.validate.Trial`), the validated configuration and the names of the
#: outcomes to analyse (None: every configured outcome, in configuration order).
Analysis = Callable[[pd.DataFrame, dict[str, Any], list[str] | None], pd.DataFrame]


def _imputation(patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None,
                progress: Callable[[float], None] | None = None):
    settings = config["sensitivity"]
    return multiple_imputation(patients, config, imputations=settings["imputations"],
                               seed=settings["seed"], outcomes=outcomes, progress=progress)


def _subgroups(patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None):
    return subgroup_analysis(patients, config, outcomes,
                             variable=config["sensitivity"]["subgroup"])


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


def run_analysis(
    name: str, patients: pd.DataFrame, config: dict[str, Any],
    outcomes: list[str] | None = None, *, progress: Callable[[float], None] | None = None,
) -> pd.DataFrame:
    """Run the sensitivity analysis ``name`` (a key of :data:`ANALYSES`).

    ``progress`` is advanced by the one long analysis, multiple imputation: by 1 in all for each
    of its :data:`~trialstats.analysis.imputation.ITERATIONS` chained-equations cycles (in
    fractions when a large trial imputes in batches).

    Returns exactly :data:`~trialstats.contract.SENSITIVITY_COLUMNS`, so that every
    analysis stacks into one ``sensitivity.csv``; analysis-specific figures (e.g. the fraction
    of missing information of multiple imputation) are in ``notes``. The exception is
    ``delta-adjustment``, whose rows add the ``delta`` column
    (:data:`~trialstats.analysis.delta.DELTA_COLUMNS`). An analysis that fails on the data
    (a numerical error such as numpy's ``LinAlgError``, or a
    :class:`~trialstats.errors.TrialstatsError` such as a covariate aliased with arm) gives
    the rows of :func:`not_estimable` instead.
    """
    if name not in ANALYSES:
        raise TrialstatsError(
            f"unknown sensitivity analysis '{name}'; choose from {', '.join(ANALYSES)}."
        )
    analysis = ANALYSES[name]
    if name == "multiple-imputation":
        analysis = partial(_imputation, progress=progress)
    columns = DELTA_COLUMNS if name == "delta-adjustment" else SENSITIVITY_COLUMNS
    chosen_outcomes(config, outcomes)  # an unknown outcome is the user's error, not the data's
    try:
        table = analysis(patients, config, outcomes)
    except (ArithmeticError, ValueError, TrialstatsError) as error:
        table = not_estimable(name, config, outcomes, error)
    return honest_status(table.reindex(columns=list(columns)))


def not_estimable(name: str, config: dict[str, Any], outcomes: list[str] | None,
                  error: Exception) -> pd.DataFrame:
    """One "not estimable: why" row per chosen outcome x follow-up month for an analysis that
    failed as a whole (e.g. a singular matrix from a degenerate trial), so that it never
    takes the rows of the other analyses with it."""
    why = str(error).strip() or type(error).__name__
    rows = [{"outcome": outcome["name"], "month": month, "analysis": name,
             "notes": f"not estimable: {name} failed on these data ({why})"}
            for outcome in chosen_outcomes(config, outcomes)
            for month in config["design"]["followup_months"]]
    return pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))
