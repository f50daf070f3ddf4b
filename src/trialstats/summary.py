"""A one-line summary per stage of a finished run, for the console.

Reads only the tidy results a run wrote (``results/``) and names the finished report; every
line is built from one table, so the summary never disagrees with the report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trialstats.report.format import Words


def _statuses(table: pd.DataFrame) -> str:
    """Models that could not be estimated (a reason in ``notes``) and fits that did not
    converge, counted apart: the first is a property of the data, the second of a fit."""
    not_estimable = table["notes"].fillna("").str.startswith("not estimable")
    converged = table["converged"].astype("string").str.lower().isin(["true", "1", "1.0"])
    not_converged = ~not_estimable & ~converged
    return f"{int(not_estimable.sum())} not estimable, {int(not_converged.sum())} not converged"


# Columns that, where present, tell one model's rows from another's (a model of a binary
# outcome has one row per effect measure; the MCID judges one of them).
_MODEL_KEYS = ("analysis", "method", "subgroup", "level", "delta", "outcome", "month")


def _verdicts(table: pd.DataFrame) -> str:
    """Verdicts against the MCID counted once per model: the verdicts of its rows that have
    one (the measure the MCID is set on), else one "no verdict"."""
    keys = [key for key in _MODEL_KEYS if key in table.columns]
    verdict = table["mcid_verdict"]
    judged = verdict.notna().groupby([table[k] for k in keys], sort=False,
                                     dropna=False).transform("any")
    unjudged = table.loc[~judged, keys].drop_duplicates()
    counts = pd.concat([verdict[judged], pd.Series("no verdict", index=unjudged.index)])
    return ", ".join(f"{n} {v}" for v, n in counts.value_counts().items())


def stage_lines(results: Path, reports: Path, words: Words | None = None) -> list[str]:
    """One line per stage whose output exists under ``results`` (and the report's path).

    Parameters
    ----------
    results, reports : Path
        The run's results and reports directories.
    words : Words, optional
        The trial's own words for its clusters and participants (default practices and
        patients).

    Returns
    -------
    list of str
        ``data``, ``primary``, ``sensitivity``, ``power`` and ``report`` lines, in that order,
        for the stages that have run.
    """
    w = words or Words()
    lines = []
    patients = results / "data" / "patients.parquet"
    if patients.exists():
        practices = pd.read_parquet(results / "data" / "practices.parquet")
        n_patients = len(pd.read_parquet(patients, columns=["treated"]))
        lines.append(f"data: {len(practices)} {w.clusters} randomised, {n_patients:,} "
                     f"{w.participants}")
    primary = results / "primary.csv"
    if primary.exists():
        table = pd.read_csv(primary)
        # each outcome's primary method is its first in file order (binary and count
        # outcomes have their own); a binary outcome has one row per effect measure
        first = table.groupby("outcome", sort=False)["method"].transform("first")
        main = table[table["method"] == first]
        models = main.drop_duplicates(["outcome", "month"])
        lines.append(
            f"primary: {len(models)} outcome x month models "
            f"({', '.join(pd.unique(main['method']))} df), "
            f"{_statuses(models)}; {_verdicts(main)}"
        )
    sensitivity = results / "sensitivity.csv"
    if sensitivity.exists():
        table = pd.read_csv(sensitivity)
        lines.append(f"sensitivity: {table['analysis'].nunique()} analyses, {len(table)} rows, "
                     f"{_statuses(table)}; {_verdicts(table)}")
    power = results / "power" / "power.csv"
    if power.exists():
        table = pd.read_csv(power)
        lines.append(f"power: {table['scenario'].nunique()} scenarios "
                     f"({', '.join(sorted(table['method'].unique()))})")
    report = reports / "report.html"
    if report.exists():
        lines.append(f"report: {report}")
    return lines
