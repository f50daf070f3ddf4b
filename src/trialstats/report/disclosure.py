"""What Table 1 may show: the configured columns, no identifiers, no small counts.

Table 1 describes the columns the configuration names, ``analysis.covariates`` and
``report.table1`` (each at practice level when it is a practice column, else at patient
level, in the order of the data's columns), never every column of the data. A named column
that looks like an identifier or free text (see
:func:`trialstats.data.columns.identifier_reason`) is *withheld*: it gets one tidy row per
arm with ``summary = "withheld"`` and the reason, and no value of it is computed or shown.
With ``report.min_cell: N`` (N > 1), any count from 1 to N - 1 (a category count, a missing
count, or the number of values behind a mean or median) is suppressed: its numbers become
missing, ``suppressed`` is true, and the table shows ``<N``. Complementary suppression (a
hidden count recoverable from a total) is not attempted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.data.columns import identifier_reason
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

_STATISTICS = ("mean", "sd", "median", "q1", "q3")


def table1_columns(
    practices: pd.DataFrame, patients: pd.DataFrame, config: dict[str, Any]
) -> tuple[list[str], list[str], dict[str, tuple[str, str]]]:
    """The practice and patient columns Table 1 describes, and those it withholds.

    Returns
    -------
    cluster_columns, patient_columns : list of str
        Named columns (``analysis.covariates`` and ``report.table1``) in the order of the
        data's columns.
    withheld : dict
        Column -> (level, reason) for named columns that look like identifiers or free text.

    Raises
    ------
    TrialstatsError
        When ``report.table1`` names a column of neither table.
    """
    design = config["design"]
    fixed = {design["cluster"], design["arm"], design["patient"], TREATED, design["withdrawn"]}
    named = [*config["analysis"]["covariates"], *config.get("report", {}).get("table1", [])]
    absent = [c for c in named if c not in practices.columns and c not in patients.columns]
    if absent:
        raise TrialstatsError(
            f"report.table1 names {', '.join(repr(c) for c in absent)}, a column of neither "
            "the practices nor the patients table."
        )
    cluster_columns, patient_columns, withheld = [], [], {}
    chosen = set(named) - fixed
    in_data_order = [*practices.columns, *(c for c in patients.columns if c not in practices)]
    for column in (c for c in in_data_order if c in chosen):
        level, values = ("cluster", practices[column]) if column in practices.columns else (
            "patient", patients[column])
        reason = identifier_reason(column, values)
        if reason is not None:
            withheld[column] = (level, reason)
        else:
            (cluster_columns if level == "cluster" else patient_columns).append(column)
    return cluster_columns, patient_columns, withheld


def withheld_rows(withheld: dict[str, tuple[str, str]], order: list[str]) -> list[dict]:
    """Tidy rows naming each withheld column and why (no values), one per arm."""
    return [{"level": level, "variable": column, "label": column, "category": reason,
             "arm": arm, "summary": "withheld"}
            for column, (level, reason) in withheld.items() for arm in order]


def suppress_small_counts(summary: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """Blank every count below ``min_cell`` (and above 0) and what could reveal it.

    Adds a boolean ``suppressed`` column. Category rows lose ``count`` and ``percent``, and
    so does the events row of a binary outcome when its events or its non-events are few;
    missing counts are blanked in ``n_missing``; continuous rows summarising fewer than
    ``min_cell`` values lose their statistics.
    """
    summary = summary.assign(suppressed=False)
    if min_cell <= 1:
        return summary

    def small(column: str) -> pd.Series:
        values = summary[column]
        return (values > 0) & (values < min_cell)

    # a binary outcome's events row also reveals its non-events, n - count
    events = summary["summary"] == "events"
    rest = summary["n"] - summary["count"]
    categories = ((summary["summary"].isin(["n_percent", "events"]) & small("count"))
                  | (events & (rest > 0) & (rest < min_cell)))
    continuous = summary["summary"].isin(["mean_sd", "median_iqr"]) & small("n")
    missing = ~summary["summary"].isin(["count", "withheld"]) & small("n_missing")
    summary.loc[categories, ["count", "percent"]] = np.nan
    summary.loc[continuous, list(_STATISTICS)] = np.nan
    summary.loc[missing, "n_missing"] = np.nan
    summary["suppressed"] = categories | continuous | missing
    return summary


def small_cell(min_cell: int) -> str:
    """How a suppressed count is shown."""
    return f"<{min_cell}"
