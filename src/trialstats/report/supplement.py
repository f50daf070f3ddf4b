"""Tables of the report's supplement: subgroup analyses and the missing-data summary.

Subgroup rows are exploratory: they show the effect within each subgroup with its interval
but no MCID verdict, and the arm x subgroup interaction test as a test (its p value), not as
an effect. The missing-data tables show ``results/missing_data/completeness.csv`` (percent of
patients with an observed value by outcome, month and arm) and ``dropout.csv`` (odds ratios of
returning the questionnaire; see :mod:`trialstats.analysis.missingness`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.contract import MEAN_DIFFERENCE
from trialstats.data.validate import TREATED
from trialstats.report.document import Table
from trialstats.report.format import (
    Words,
    arm_title,
    contrast_text,
    digits_for,
    fmt,
    fmt_ci,
    fmt_count,
    fmt_p,
    month_label,
    ordered_outcomes,
    sentence,
    words,
)
from trialstats.report.measures import estimate_cell

__all__ = ["SUBGROUP", "completeness_table", "dropout_table", "subgroup_table"]

#: ``analysis`` labels of ``sensitivity.csv`` that start with this are subgroup rows.
SUBGROUP = "subgroup"


def _level(config: dict[str, Any]) -> str:
    return f"{100 * (1 - config['analysis']['alpha']):g}%"


def subgroup_table(subgroups: pd.DataFrame, config: dict[str, Any], name: str,
                   title: str) -> Table:
    """Subgroup effects and interaction tests, by outcome and month.

    Parameters
    ----------
    subgroups : DataFrame
        The ``sensitivity.csv`` rows whose ``analysis`` starts with :data:`SUBGROUP`; a row
        with a missing estimate is an interaction test (its ``p_value`` is the test's).
    config : dict
        The validated run configuration.
    name, title : str
        File stem and caption.
    """
    level = _level(config)
    w = words(config)
    measure = subgroups["effect_measure"]
    scores = measure.isna() | measure.eq(MEAN_DIFFERENCE)
    effect = "Adjusted difference" if scores.all() else "Adjusted effect"
    columns = ("Outcome, month and subgroup", f"Analysed n ({w.clusters})",
               f"{effect} ({level} CI)", f"Standardised effect ({level} CI)", "p",
               "Interaction p")
    rows: list[tuple[str, ...]] = []
    depth: list[int] = []
    blank = ("",) * (len(columns) - 1)
    for outcome in ordered_outcomes(config):
        mine = subgroups[subgroups["outcome"] == outcome["name"]]
        if mine.empty:
            continue
        rows.append((outcome["label"], *blank))
        depth.append(0)
        for month, part in mine.groupby("month", sort=True):
            rows.append((month_label(int(month), config["design"]["baseline_month"]), *blank))
            depth.append(1)
            sd = part["sd_baseline"].dropna()
            digits = digits_for(float(sd.iloc[0]) if len(sd) else np.nan)
            for _, row in part.iterrows():
                label = str(row["analysis"]).removeprefix(SUBGROUP).lstrip(":").strip()
                if not np.isfinite(row["estimate"]):
                    rows.append((label[:1].upper() + label[1:], "", "", "", "",
                                 fmt_p(row["p_value"])))
                else:
                    rows.append((
                        label[:1].upper() + label[1:],
                        f"{fmt_count(row['n_patients'])} ({fmt_count(row['n_clusters'])})",
                        estimate_cell(row, digits),
                        fmt_ci(row["effect_size"], row["es_ci_low"], row["es_ci_high"], 2),
                        fmt_p(row["p_value"]), "",
                    ))
                depth.append(2)
    notes = (
        "Exploratory analyses, not powered to detect differences between subgroups: no MCID "
        "verdicts are given. Interaction p: test of the arm x subgroup interaction (does the "
        f"effect differ between subgroups?). {effect}: {contrast_text(config)} within the "
        "subgroup"
        + ("" if scores.all() else " (OR: odds ratio, rate ratio: ratio of event rates, "
           "from the logistic or Poisson GLMM)")
        + ("; standardised effect: divided by the baseline SD." if scores.any() else ".")
    )
    return Table(name=name, title=title, columns=columns, rows=tuple(rows),
                 depth=tuple(depth), notes=notes, data=subgroups.reset_index(drop=True))


def completeness_table(completeness: pd.DataFrame, config: dict[str, Any], name: str,
                       title: str) -> Table:
    """Observed values by outcome, month and arm: ``n observed / n (%)`` per arm column.

    ``completeness`` is ``completeness.csv`` (``outcome, month, arm, n_patients,
    n_observed, percent_observed``; ``arm`` ``all`` for both arms together).
    """
    arms = list(dict.fromkeys(completeness["arm"]))
    w = words(config)
    columns = ("Outcome and month", *("All" if a == "all" else arm_title(a, config)
                                      for a in arms))
    rows: list[tuple[str, ...]] = []
    depth: list[int] = []
    for outcome in ordered_outcomes(config):
        mine = completeness[completeness["outcome"] == outcome["name"]]
        if mine.empty:
            continue
        rows.append((outcome["label"], *("",) * len(arms)))
        depth.append(0)
        for month, part in mine.groupby("month", sort=True):
            by_arm = part.set_index("arm")
            rows.append((
                month_label(int(month), config["design"]["baseline_month"]),
                *(f"{fmt_count(by_arm.loc[a, 'n_observed'])}/"
                  f"{fmt_count(by_arm.loc[a, 'n_patients'])} "
                  f"({fmt(by_arm.loc[a, 'percent_observed'], 1)})" for a in arms),
            ))
            depth.append(1)
    notes = (f"{sentence(w.participants)} with an observed value / {w.participants} recruited "
             "(%), by allocated arm.")
    return Table(name=name, title=title, columns=columns, rows=tuple(rows),
                 depth=tuple(depth), notes=notes, data=completeness.reset_index(drop=True))


def _predictor(term: str, contrast: str, w: Words) -> tuple[str, str]:
    """A dropout-model term and its contrast in the trial's words: the arm term as ``Arm``
    with display labels, a category ``column[value]`` with its value labels."""
    parts = contrast.split(" vs ")
    if term == TREATED:
        return "Arm", " vs ".join(w.arm(p) for p in parts)
    column = term.split("[")[0]
    return column, " vs ".join(w.value(column, p) for p in parts)


def dropout_table(dropout: pd.DataFrame, config: dict[str, Any], name: str,
                  title: str) -> Table:
    """Predictors of returning the follow-up questionnaire, one section per month.

    ``dropout`` is ``dropout.csv`` (see :data:`trialstats.analysis.missingness.DROPOUT_COLUMNS`).
    """
    w = words(config)
    columns = ("Month and predictor", "Contrast", "Returned/analysed",
               "Odds ratio (95% CI)", "p")
    rows: list[tuple[str, ...]] = []
    depth: list[int] = []
    for month, part in dropout.groupby("month", sort=True):
        rows.append((month_label(int(month), config["design"]["baseline_month"]),
                     "", "", "", ""))
        depth.append(0)
        for _, row in part.iterrows():
            rows.append((*_predictor(str(row["term"]), str(row["contrast"]), w),
                         f"{fmt_count(row['n_returned'])}/{fmt_count(row['n_patients'])}",
                         fmt_ci(row["odds_ratio"], row["ci_low"], row["ci_high"], 2),
                         fmt_p(row["p_value"])))
            depth.append(1)
    notes = (
        "Logistic regression of returning the questionnaire at each follow-up month on arm, "
        "the covariates and the baseline scores (per SD); cluster-robust standard errors by "
        f"{w.cluster}, Wald z intervals. An odds ratio above 1 means more likely to return it."
    )
    return Table(name=name, title=title, columns=columns, rows=tuple(rows),
                 depth=tuple(depth), notes=notes, data=dropout.reset_index(drop=True))
