"""The prespecified sensitivity and secondary analyses, by name.

Each analysis takes the validated patients and the configuration and returns rows with the
primary columns (:data:`trialstats.analysis.primary.COLUMNS`) plus ``analysis``:

- ``multiple-imputation`` — chained equations with practice fixed effects, the primary model
  in each imputed dataset, Rubin's rules with Barnard–Rubin df
  (:mod:`trialstats.analysis.imputation`);
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
  (:mod:`trialstats.analysis.subgroups`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from trialstats.analysis.cluster_level import cluster_level_analysis
from trialstats.analysis.delta import DELTA_COLUMNS, delta_adjustment
from trialstats.analysis.imputation import multiple_imputation
from trialstats.analysis.repeated import repeated_measures_analysis
from trialstats.analysis.robust import cr2_analysis, gee_analysis
from trialstats.analysis.rows import SENSITIVITY_COLUMNS
from trialstats.analysis.subgroups import subgroup_analysis
from trialstats.errors import TrialstatsError

Analysis = Callable[[pd.DataFrame, dict[str, Any], list[str] | None], pd.DataFrame]


def _imputation(patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None):
    settings = config["sensitivity"]
    return multiple_imputation(patients, config, imputations=settings["imputations"],
                               seed=settings["seed"], outcomes=outcomes)


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
}


def run_analysis(
    name: str, patients: pd.DataFrame, config: dict[str, Any],
    outcomes: list[str] | None = None,
) -> pd.DataFrame:
    """Run the sensitivity analysis ``name`` (a key of :data:`ANALYSES`).

    Returns exactly :data:`~trialstats.analysis.rows.SENSITIVITY_COLUMNS`, so that every
    analysis stacks into one ``sensitivity.csv``; analysis-specific figures (e.g. the fraction
    of missing information of multiple imputation) are in ``notes``. The exception is
    ``delta-adjustment``, whose rows add the ``delta`` column
    (:data:`~trialstats.analysis.delta.DELTA_COLUMNS`).
    """
    if name not in ANALYSES:
        raise TrialstatsError(
            f"unknown sensitivity analysis '{name}'; choose from {', '.join(ANALYSES)}."
        )
    columns = DELTA_COLUMNS if name == "delta-adjustment" else SENSITIVITY_COLUMNS
    return ANALYSES[name](patients, config, outcomes).reindex(columns=list(columns))
