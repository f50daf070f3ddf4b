"""Tables of a trial report: tidy summaries (unrounded) and their display form.

Each table is built in two steps. A *summary* function takes the validated trial tables (and
the analysis results) and returns a tidy DataFrame of unrounded numbers, one row per cell
group. A *table* function turns that summary into a
:class:`~trialstats.report.document.Table` of display strings, the single structure every
renderer (HTML, DOCX, LaTeX, Markdown, CSV) writes out, so that the same number reads the same
in every format. Rounding happens only in the table functions, with the helpers of
:mod:`trialstats.report.format`.

Continuous characteristics are summarised as mean (SD) when their pooled distribution is
roughly symmetric (absolute sample skewness at most :data:`SKEW_LIMIT`), otherwise as median
(IQR); categories as n (%) of the patients (or practices) with a value; missing values are
counted separately; a binary outcome at baseline as one n (%) row of its events, a count as a
number whatever its values. Following CONSORT, baseline tables carry no p-values. The analysis
cells of binary and count outcomes (OR beside RD and RR) are built by
:mod:`trialstats.report.measures`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trialstats.contract import (
    COLUMNS,
    MEAN_DIFFERENCE,
    check_columns,
    primary_method,
)
from trialstats.data.validate import outcome_column, outcome_months
from trialstats.report.disclosure import (
    small_cell,
    suppress_small_counts,
    table1_columns,
    withheld_rows,
)
from trialstats.report.document import Table
from trialstats.report.format import (
    arm_order,
    arm_title,
    contrast_text,
    digits_for,
    fmt,
    fmt_count,
    method_name,
    month_label,
    ordered_outcomes,
    primary_rows,
    sentence,
    truthy,
    variable_label,
    words,
)
from trialstats.report.measures import (
    effect_cells,
    estimable,
    glmm_cells,
    glmm_columns,
    glmm_note,
)

#: Above this absolute skewness a continuous characteristic is shown as median (IQR).
SKEW_LIMIT = 1.0
#: ``analysis`` of the primary model summarised with another df method.
CHECK = "primary model, other df method"


# ---------------------------------------------------------------------------------------------
# Table 1: baseline characteristics


def _as_numbers(series: pd.Series) -> pd.Series | None:
    """``series`` as float when every present value is a number (and not boolean), else None."""
    if pd.api.types.is_bool_dtype(series):
        return None
    values = pd.to_numeric(series, errors="coerce").astype(float)
    return values if (values.notna() == series.notna()).all() else None


def _describe(
    values: pd.Series, arms: pd.Series, order: list[str], level: str, variable: str, label: str,
    kind: str = "continuous",
) -> list[dict[str, Any]]:
    """Summary rows of one characteristic, one per arm (and category); ``kind`` is the type
    of an outcome at baseline: a ``count`` is always summarised as a number, a ``binary``
    outcome by its events (summary ``events``, the category ``1``) only."""
    numbers = _as_numbers(values)
    if kind == "binary":
        rows = _describe(values, arms, order, level, variable, label, "categories")
        return [r | {"summary": "events"} for r in rows if r["category"] == "1"] or [
            r | {"summary": "events", "category": "1", "count": 0,
                 "percent": 0.0 if r["n"] else np.nan}
            for r in rows if r["category"] == "0"]
    if numbers is not None and (numbers.nunique() > 2 or kind == "count"):
        present = numbers.dropna()
        skew = float(stats.skew(present)) if len(present) > 2 else 0.0
        summary = "median_iqr" if abs(skew) > SKEW_LIMIT else "mean_sd"
        rows = []
        for arm in order:
            x = numbers[arms == arm]
            observed = x.dropna()
            rows.append({
                "level": level, "variable": variable, "label": label, "category": "",
                "arm": arm, "summary": summary, "n": len(observed),
                "n_missing": int(x.isna().sum()), "total": len(x),
                "mean": observed.mean(), "sd": observed.std(ddof=1),
                "median": observed.median(), "q1": observed.quantile(0.25),
                "q3": observed.quantile(0.75), "count": np.nan, "percent": np.nan,
                "skewness": skew,
            })
        return rows
    text = values.astype("string") if numbers is None else numbers.map(
        lambda v: pd.NA if pd.isna(v) else f"{v:g}"
    ).astype("string")
    categories = sorted(text.dropna().unique().tolist())
    rows = []
    for category in categories:
        for arm in order:
            x = text[arms == arm]
            observed = int(x.notna().sum())
            count = int((x == category).sum())
            rows.append({
                "level": level, "variable": variable, "label": label, "category": category,
                "arm": arm, "summary": "n_percent", "n": observed,
                "n_missing": int(x.isna().sum()), "total": len(x), "mean": np.nan,
                "sd": np.nan, "median": np.nan, "q1": np.nan, "q3": np.nan, "count": count,
                "percent": 100 * count / observed if observed else np.nan, "skewness": np.nan,
            })
    return rows


def _count_rows(arms: pd.Series, order: list[str], level: str, label: str) -> list[dict]:
    return [{
        "level": level, "variable": "", "label": label, "category": "", "arm": arm,
        "summary": "count", "n": int((arms == arm).sum()), "n_missing": 0,
        "total": int((arms == arm).sum()), "mean": np.nan, "sd": np.nan, "median": np.nan,
        "q1": np.nan, "q3": np.nan, "count": int((arms == arm).sum()), "percent": np.nan,
        "skewness": np.nan,
    } for arm in order]


def _size_rows(practices: pd.DataFrame, patients: pd.DataFrame, config: dict[str, Any],
               order: list[str], label: str) -> list[dict]:
    """Patients recruited per cluster, by arm: median and range (every randomised cluster,
    one with no patients counting 0)."""
    design = config["design"]
    cluster, arm = design["cluster"], design["arm"]
    sizes = patients.groupby(cluster).size().reindex(practices[cluster], fill_value=0)
    rows = []
    for a in order:
        x = sizes[(practices[arm] == a).to_numpy()].astype(float)
        rows.append({
            "level": "cluster", "variable": "", "label": label, "category": "", "arm": a,
            "summary": "median_range", "n": len(x), "n_missing": 0, "total": len(x),
            "mean": x.mean(), "sd": x.std(ddof=1), "median": x.median(), "q1": x.min(),
            "q3": x.max(), "count": np.nan, "percent": np.nan, "skewness": np.nan,
        })
    return rows


def baseline_summary(
    practices: pd.DataFrame, patients: pd.DataFrame, config: dict[str, Any]
) -> pd.DataFrame:
    """Baseline characteristics of all randomised practices and recruited patients, by arm.

    Parameters
    ----------
    practices, patients : DataFrame
        The validated trial tables (see :class:`trialstats.data.validate.Trial`).
    config : dict
        The validated run configuration.

    Returns
    -------
    DataFrame
        One row per characteristic (x category) x arm, intervention arm first, with columns
        ``level`` (``cluster`` or ``patient``), ``variable`` (data column, ``""`` for the
        counts of practices and patients), ``label``, ``category`` (``""`` for continuous
        ones), ``arm``, ``summary`` (``count``, ``mean_sd``, ``median_iqr``,
        ``n_percent``, ``events`` (a binary outcome's events at baseline) or
        ``median_range``), ``n`` (with a value), ``n_missing``, ``total``,
        ``mean``, ``sd``,
        ``median``, ``q1``, ``q3`` (minimum and maximum for ``median_range``, the patients
        per cluster), ``count``, ``percent`` (of ``n``), ``skewness`` (of
        the pooled values, which chose the summary) and ``suppressed`` (a count below
        ``report.min_cell``, blanked). The characteristics are the practice and patient
        columns named in ``analysis.covariates`` and ``report.table1`` and the outcomes at
        baseline; a named identifier-like or free-text column gets only rows with summary
        ``withheld`` and the reason in ``category`` (see :mod:`trialstats.report.disclosure`).
    """
    design = config["design"]
    arm = design["arm"]
    order = arm_order(config, practices[arm])
    cluster_columns, patient_columns, withheld = table1_columns(practices, patients, config)
    w = words(config)
    rows = _count_rows(practices[arm], order, "cluster", sentence(f"{w.clusters} randomised"))
    rows += _size_rows(practices, patients, config, order,
                       sentence(f"{w.participants} per {w.cluster}"))
    for column in cluster_columns:
        rows += _describe(practices[column], practices[arm], order, "cluster", column,
                          variable_label(config, column))
    rows += _count_rows(patients[arm], order, "patient", sentence(f"{w.participants} recruited"))
    for column in patient_columns:
        rows += _describe(patients[column], patients[arm], order, "patient", column,
                          variable_label(config, column))
    for outcome in config["outcomes"]:
        if not outcome.get("baseline", True):
            continue  # measured only at follow-up
        column = outcome_column(outcome["name"], design["baseline_month"])
        rows += _describe(patients[column], patients[arm], order, "patient", column,
                          outcome["label"], outcome.get("type", "continuous"))
    rows += withheld_rows(withheld, order)
    return suppress_small_counts(pd.DataFrame(rows), config.get("report", {}).get("min_cell", 0))


def _summary_cell(row: pd.Series, digits: int, min_cell: int) -> str:
    if row["suppressed"]:
        return small_cell(min_cell)
    if row["summary"] == "count":
        return fmt_count(row["count"])
    if row["summary"] in ("n_percent", "events"):
        return f"{fmt_count(row['count'])} ({fmt(row['percent'], 1)})"
    if row["summary"] == "median_range":
        return f"{fmt(row['median'], digits)} ({fmt(row['q1'], 0)} to {fmt(row['q3'], 0)})"
    if row["summary"] == "mean_sd":
        return f"{fmt(row['mean'], digits)} ({fmt(row['sd'], digits)})"
    return f"{fmt(row['median'], digits)} ({fmt(row['q1'], digits)} to {fmt(row['q3'], digits)})"


def baseline_table(summary: pd.DataFrame, config: dict[str, Any]) -> Table:
    """Table 1 from :func:`baseline_summary`: practices, then patients, by arm.

    Continuous rows read ``label, mean (SD)`` or ``label, median (IQR)``; categorical ones
    a ``label, n (%)`` heading with one indented row per category. A ``Missing`` row follows
    any characteristic with a missing value in either arm. Withheld columns (identifiers,
    free text) are named in the notes only; suppressed counts read ``<N``.
    """
    min_cell = config.get("report", {}).get("min_cell", 0)
    withheld = summary[summary["summary"] == "withheld"].drop_duplicates("variable")
    summary_shown = summary[summary["summary"] != "withheld"]
    order = list(dict.fromkeys(summary["arm"]))
    columns = ("Characteristic", *(arm_title(a, config) for a in order))
    w = words(config)
    rows: list[tuple[str, ...]] = []
    depth: list[int] = []

    def add(label: str, cells: list[str], level: int) -> None:
        rows.append((label, *cells))
        depth.append(level)

    sections = {"cluster": sentence(f"{w.cluster} level"),
                "patient": sentence(f"{w.participant} level")}
    for level, title in sections.items():
        part = summary_shown[summary_shown["level"] == level]
        add(title, [""] * len(order), 0)
        for (_, label), group in part.groupby(["variable", "label"], sort=False):
            kind = group["summary"].iloc[0]
            by_arm = group.set_index("arm")
            if kind == "count":
                add(f"{label}, n", [_summary_cell(by_arm.loc[a], 0, min_cell) for a in order], 1)
                continue
            if kind == "median_range":
                add(f"{label}, median (range)",
                    [_summary_cell(by_arm.loc[a], 1 if (group["median"] % 1).any() else 0,
                                   min_cell) for a in order], 1)
                continue
            if kind == "events":  # a binary outcome at baseline: its events only
                add(f"{label}, n (%)",
                    [_summary_cell(by_arm.loc[a], 0, min_cell) for a in order], 1)
            elif kind == "n_percent":
                add(f"{label}, n (%)", [""] * len(order), 1)
                for category, cat in group.groupby("category", sort=False):
                    cells = cat.set_index("arm")
                    add(w.value(str(group["variable"].iloc[0]), str(category)),
                        [_summary_cell(cells.loc[a], 0, min_cell) for a in order], 2)
            else:
                spread = group["sd"] if kind == "mean_sd" else group["q3"] - group["q1"]
                digits = digits_for(float(spread.max()))
                name = "mean (SD)" if kind == "mean_sd" else "median (IQR)"
                add(f"{label}, {name}",
                    [_summary_cell(by_arm.loc[a], digits, min_cell) for a in order], 1)
            missing = by_arm.groupby(level=0, sort=False)["n_missing"].first()
            if (missing.isna() | (missing > 0)).any():
                add("Missing, n", [fmt_count(missing[a]) if pd.notna(missing[a])
                                   else small_cell(min_cell) for a in order], 2)
    notes = (
        f"All randomised {w.clusters} and all recruited {w.participants}, by allocated arm. "
        "SD: standard deviation; IQR: interquartile range (lower to upper quartile), shown "
        f"for characteristics with absolute skewness above {SKEW_LIMIT:g}. Percentages are "
        "of those with a value. As CONSORT recommends, no significance tests of baseline "
        "differences are reported."
        + (f" Counts below {min_cell} are shown as {small_cell(min_cell)} (fewer than "
           f"{min_cell}), and so are summaries of fewer than {min_cell} values."
           if summary["suppressed"].any() else "")
        + (" Not tabulated because they look like identifiers or free text: "
           + "; ".join(f"{r.variable} ({r.category})" for r in withheld.itertuples()) + "."
           if len(withheld) else "")
    )
    return Table(
        name="table1_baseline",
        title=f"Table 1. Baseline characteristics of {w.clusters} and {w.participants} by arm",
        columns=columns, rows=tuple(rows), depth=tuple(depth), notes=notes, data=summary,
    )


# ---------------------------------------------------------------------------------------------
# Outcome tables


def check_results(results: pd.DataFrame, source: str, extra: tuple[str, ...] = ()) -> None:
    """Raise a user-facing error when a results table lacks a required column."""
    check_columns(results, source, (*COLUMNS, *extra))


def outcome_summary(patients: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """Observed outcome values by arm at baseline and every follow-up month.

    Returns
    -------
    DataFrame
        One row per outcome x month x arm (configuration order, intervention arm first) with
        ``outcome, label, primary, month, arm, n, mean, sd, type`` (the outcome's type),
        ``total`` (the sum of the values: events of a binary outcome or a count) and
        ``exposure`` (a count's summed exposure over the patients with a follow-up value;
        missing at baseline and for other outcomes).
    """
    design = config["design"]
    arm = design["arm"]
    order = arm_order(config, patients[arm])
    baseline = design["baseline_month"]
    rows = []
    for outcome in ordered_outcomes(config):
        for month in outcome_months(outcome, design):
            values = patients[outcome_column(outcome["name"], month)]
            for label in order:
                observed = values[patients[arm] == label].dropna()
                rows.append({
                    "outcome": outcome["name"], "label": outcome["label"],
                    "primary": bool(outcome["primary"]), "month": month, "arm": label,
                    "n": len(observed), "mean": observed.mean(), "sd": observed.std(ddof=1),
                    "type": outcome.get("type", "continuous"), "total": observed.sum(),
                    "exposure": (patients.loc[observed.index, outcome["exposure"]].sum()
                                 if "exposure" in outcome and month != baseline else np.nan),
                })
    return pd.DataFrame(rows)


def _outcome_digits(results: pd.DataFrame, descriptive: pd.DataFrame, name: str) -> int:
    sd = results.loc[results["outcome"] == name, "sd_baseline"]
    if sd.notna().any():
        return digits_for(float(sd.dropna().iloc[0]))
    return digits_for(float(descriptive.loc[descriptive["outcome"] == name, "sd"].max()))


def _descriptive_cell(stats: pd.Series, digits: int) -> str:
    """One arm's observed values: mean (SD) of a score, events n (%) of a binary outcome,
    total events / total exposure (rate) of a count with an exposure, else its mean (SD)."""
    kind = stats.get("type", "continuous")
    if kind == "binary":
        return f"{fmt_count(stats['total'])} ({fmt(100 * stats['mean'], 1)}%)"
    if kind == "count" and np.isfinite(stats["exposure"]):
        exposure = stats["exposure"]
        return (f"{fmt_count(stats['total'])} / {fmt(exposure, 0 if exposure % 1 == 0 else 1)} "
                f"({fmt(stats['total'] / exposure, 3)})")
    if kind == "count":
        digits = 2
    return f"{fmt(stats['mean'], digits)} ({fmt(stats['sd'], digits)})"


def _measure_cells(rows: pd.DataFrame, digits: int, shape: tuple[bool, bool] | None
                   ) -> list[str]:
    """The analysis cells of one outcome x month: :func:`effect_cells` of its first row in a
    table of scores only (``shape`` None), else :func:`glmm_cells` with ``shape`` = (RD and
    RR columns, standardised-effect column)."""
    if shape is None:
        return effect_cells(rows.iloc[0] if len(rows) else None, digits)
    return glmm_cells(rows, digits, *shape)


def outcome_table(
    descriptive: pd.DataFrame, results: pd.DataFrame, config: dict[str, Any],
    keep: Callable[[bool, int], bool] = lambda primary, month: True,
    name: str = "table2_outcomes", title: str = "Table 2. Outcomes by arm and estimated effects",
) -> Table:
    """An outcome table: descriptive statistics and the primary-method analysis.

    Parameters
    ----------
    descriptive : DataFrame
        From :func:`outcome_summary`.
    results : DataFrame
        ``primary.csv``; only the rows of the primary df method are shown.
    config : dict
        The validated run configuration.
    keep : callable
        ``keep(primary, month)`` says whether an outcome's row at ``month`` is shown (the
        main report shows the primary outcomes at baseline and the primary month; the rest
        goes in a second table).
    name, title : str
        File stem and caption.

    Returns
    -------
    Table
        Primary outcomes, then secondary; per outcome one row per kept month with n and mean (SD)
        per arm, and at follow-up months the analysed n (practices), adjusted difference
        (95% CI), p, ICC (95% CI), standardised effect (95% CI), MCID and verdict. Its
        ``data`` joins the descriptive statistics (wide by arm) with the analysis rows.
    """
    design = config["design"]
    alpha = config["analysis"]["alpha"]
    level = f"{100 * (1 - alpha):g}%"
    method = config["analysis"]["df_method"][0]
    shown = primary_rows(results, config)
    order = list(dict.fromkeys(descriptive["arm"]))
    w = words(config)
    contrast = contrast_text(config)
    kept = descriptive[[keep(bool(p), int(m)) for p, m in zip(
        descriptive["primary"], descriptive["month"], strict=True)]]
    kinds = set(kept["type"]) if "type" in kept else {"continuous"}
    continuous_only = not kinds & {"binary", "count"}
    shape = None if continuous_only else ("binary" in kinds, "continuous" in kinds)
    columns = (
        "Outcome and time",
        *(f"{arm_title(a, config)} {what}" for a in order
          for what in ("n", "mean (SD)" if continuous_only else "summary")),
        f"Analysed n ({w.clusters})",
        *((f"Adjusted difference ({level} CI)", "p", f"ICC ({level} CI)",
           f"Standardised effect ({level} CI)", "MCID raw (standardised)")
          if shape is None else glmm_columns(shape, level)),
        "MCID verdict",
    )
    blank = [""] * (len(columns) - 1)
    rows: list[tuple[str, ...]] = []
    depth: list[int] = []
    data = []
    for is_primary, heading in ((True, "Primary outcomes"), (False, "Secondary outcomes")):
        part = kept[(kept["primary"] == is_primary).to_numpy()]
        if part.empty:
            continue
        rows.append((heading, *blank))
        depth.append(0)
        for (outcome_name, label), outcome in part.groupby(["outcome", "label"], sort=False):
            rows.append((label, *blank))
            depth.append(1)
            digits = _outcome_digits(shown, descriptive, outcome_name)
            for month, at in outcome.groupby("month", sort=False):
                by_arm = at.set_index("arm")
                cells = []
                for a in order:
                    cells += [fmt_count(by_arm.loc[a, "n"]),
                              _descriptive_cell(by_arm.loc[a], digits)]
                match = shown[(shown["outcome"] == outcome_name) & (shown["month"] == month)]
                rows.append((month_label(month, design["baseline_month"]), *cells,
                             *_measure_cells(match, digits, shape)))
                depth.append(2)
                record = {"outcome": outcome_name, "label": label, "primary": is_primary,
                          "month": month}
                stats_ = ("n", "mean", "sd") if shape is None else (
                    "n", "mean", "sd", "total", "exposure")
                for a in order:
                    record |= {f"{stat}_{a}": by_arm.loc[a, stat] for stat in stats_}
                data += [record | {c: row[c] for c in COLUMNS if c not in record}
                         for _, row in match.iterrows()] or [record]
    flag = (" †: the model did not converge (see the notes column of the CSV)."
            if any(estimable(r) and not truthy(r["converged"]) for r in _rows(shown))
            else "")
    if shape is not None:
        notes = glmm_note(config, kinds) + flag
    else:
        notes = (
            f"n and mean (SD): observed values of all recruited {w.participants}. Adjusted "
            f"difference: {contrast} from a linear mixed model with a random intercept for "
            f"{w.cluster}, adjusted for the baseline score"
            + (f" and {', '.join(config['analysis']['covariates'])}"
               if config["analysis"]["covariates"] else "")
            + f"; {level} CI and p with {method_name(method)} degrees of freedom. ICC: "
            "intracluster correlation coefficient. Standardised effect: adjusted difference "
            "divided by the baseline SD (both arms pooled). MCID: minimal clinically important "
            "difference, on the outcome's scale (and in baseline SDs)." + flag
        )
    return Table(
        name=name, title=title, columns=columns, rows=tuple(rows), depth=tuple(depth), notes=notes,
        data=pd.DataFrame(data),
    )


def _analysis_label(row: pd.Series, many_methods: set[str], primary_month: int) -> str:
    label = str(row["analysis"])
    if label in many_methods:
        label += f" ({method_name(str(row['method']))})"
    if row["month"] != primary_month:
        label += f", {month_label(int(row['month']), -1)}"
    return label


def _primary_label(row: pd.Series, method: str) -> str:
    """Label of a primary-analysis row in the sensitivity table (measure named when it is not
    a mean difference)."""
    measure = row.get("effect_measure")
    if isinstance(measure, str) and measure != MEAN_DIFFERENCE:
        return f"Primary analysis, {measure} ({method_name(str(row['method']))})"
    return f"Primary analysis ({method_name(method)})"


def sensitivity_summary(
    results: pd.DataFrame, sensitivity: pd.DataFrame, config: dict[str, Any],
    months: list[int] | None = None,
) -> pd.DataFrame:
    """The primary analysis beside every sensitivity analysis of the same outcome.

    Parameters
    ----------
    results, sensitivity : DataFrame
        ``primary.csv`` and the ``sensitivity.csv`` rows to show.
    config : dict
        The validated run configuration.
    months : list of int, optional
        The months shown (default: the primary month only).

    Returns
    -------
    DataFrame
        The columns of ``sensitivity.csv`` plus ``label`` (outcome label) and
        ``analysis_label``; per outcome (primary first) and month, the primary-method row of
        the primary analysis (``analysis`` = ``primary analysis``), the same model with each
        other df method of ``analysis.df_method`` (``analysis`` = :data:`CHECK`), then that
        outcome's sensitivity rows in file order.
    """
    primary_month = config["design"]["primary_month"]
    months = [primary_month] if months is None else months
    method = config["analysis"]["df_method"][0]
    reference = primary_rows(results, config).assign(analysis="primary analysis")
    primary_of = results["outcome"].map({o["name"]: primary_method(config, o)
                                         for o in config["outcomes"]})
    checks = results[results["method"] != primary_of].assign(analysis=CHECK)
    methods = sensitivity.groupby("analysis")["method"].nunique()
    many = set(methods[methods > 1].index)
    parts = []
    for outcome in ordered_outcomes(config):
        name = outcome["name"]
        for month in months:
            extra = [frame[(frame["outcome"] == name) & (frame["month"] == month)]
                     for frame in (reference, checks, sensitivity)]
            if extra[1].empty and extra[2].empty:
                continue
            part = pd.concat([e for e in extra if len(e)], ignore_index=True)
            part["label"] = outcome["label"]
            part["analysis_label"] = [
                _analysis_label(r, many, primary_month) for _, r in part.iterrows()
            ]
            if "delta" in part:  # delta-adjustment: one row per delta of the grid
                shifted = part["delta"].notna()
                part.loc[shifted, "analysis_label"] = [
                    f"Delta-adjusted imputation, delta = {fmt(d, 3)}"
                    for d in part.loc[shifted, "delta"]]
            when = "" if month == primary_month else f", {month_label(month, -1)}"
            primary = part["analysis"] == "primary analysis"
            part.loc[primary, "analysis_label"] = [
                _primary_label(r, method) + when for _, r in part[primary].iterrows()]
            checks_ = part["analysis"] == CHECK
            part.loc[checks_, "analysis_label"] = [
                f"Primary model with {method_name(str(m))} df" + when
                for m in part.loc[checks_, "method"]]
            parts.append(part)
    columns = [*COLUMNS, "analysis", "label", "analysis_label"]
    columns += ["delta"] if "delta" in sensitivity else []
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def sensitivity_table(
    summary: pd.DataFrame, config: dict[str, Any], name: str = "table3_sensitivity",
    title: str = "Table 3. Sensitivity analyses",
) -> Table:
    """A sensitivity table from :func:`sensitivity_summary`: one section per outcome."""
    alpha = config["analysis"]["alpha"]
    level = f"{100 * (1 - alpha):g}%"
    w = words(config)
    measures = set(summary["effect_measure"].dropna()) - {MEAN_DIFFERENCE}
    # columns: the cells of effect_cells by index; the standardised effect (4) only when a
    # row has one (binary and count outcomes do not)
    titles = {0: f"Analysed n ({w.clusters})",
              1: f"{'Effect' if measures else 'Adjusted difference'} ({level} CI)", 2: "p",
              4: f"Standardised effect ({level} CI)", 6: "MCID verdict"}
    if measures and not summary["effect_size"].notna().any():
        del titles[4]
    keep = list(titles)
    columns = ("Outcome and analysis", *titles.values())
    rows: list[tuple[str, ...]] = []
    depth: list[int] = []
    for label, part in summary.groupby("label", sort=False):
        rows.append((str(label), *[""] * (len(columns) - 1)))
        depth.append(0)
        digits = digits_for(float(part["sd_baseline"].dropna().iloc[0])
                            if part["sd_baseline"].notna().any() else np.nan)
        for _, row in part.iterrows():
            cells = effect_cells(row, digits)
            label = str(row["analysis_label"])
            rows.append((label[:1].upper() + label[1:], *(cells[k] for k in keep)))
            depth.append(1)
    notes = (
        "Each sensitivity analysis beside the primary analysis of the same outcome at "
        f"{month_label(config['design']['primary_month'], -1)} unless a month is named. "
        "Adjusted difference: intervention minus control; standardised effect: adjusted "
        "difference divided by the baseline SD."
        + (" OR: odds ratio; RD: risk difference; RR: risk ratio; rate ratio of counts; "
           "each row is judged against the MCID only when the MCID is set on its measure."
           if measures else "")
        + (" Not estimable: the analysis does not apply or could not be fitted (the notes "
           "column of the CSV says why)." if not all(map(estimable, _rows(summary))) else "")
        + (" †: the model did not converge (see the notes column of the CSV)."
           if any(estimable(r) and not truthy(r["converged"]) for r in _rows(summary))
           else "")
    )
    return Table(
        name=name, title=title, columns=columns, rows=tuple(rows), depth=tuple(depth),
        notes=notes, data=summary,
    )


def _rows(table: pd.DataFrame) -> list[pd.Series]:
    return [row for _, row in table.iterrows()]
