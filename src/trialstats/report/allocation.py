"""The allocation of the trial's practices: the scores figure and the report's allocation section.

The figure is a histogram of the balance scores of every allocation considered (all, or the
uniform sample), a line at the cut-off score (the largest accepted) and a marker at the drawn
allocation's score, as cvcrand's ``bhist``. ``trialstats allocate`` stores the histogram
(:func:`score_histogram`) as ``scores.csv`` beside ``summary.json`` and ``balance.csv``, so the
trial report can redraw it (:func:`allocation_section`) without the millions of scores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from trialstats.errors import TrialstatsError
from trialstats.report.document import Section, Table
from trialstats.report.format import fmt, fmt_count
from trialstats.report.render import render_figure

_INK = "#1f3b57"
_CUT = "#b03a2e"
#: Bins of the stored score histogram.
BINS = 50
_METHODS = {
    "constrained": "covariate-constrained randomisation (Raab & Butcher 2001; Li et al. 2016)",
    "minimisation": "minimisation with a random element (Pocock & Simon 1975)",
    "stratified": "stratified permuted blocks",
    "simple": "simple randomisation",
}


def score_histogram(scores: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """Counts of allocations by balance score, ``bins`` equal-width bins over their range.

    Returns
    -------
    DataFrame
        ``bin_low, bin_high, allocations``.
    """
    counts, edges = np.histogram(np.asarray(scores, dtype=float), bins=bins)
    return pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "allocations": counts})


def score_figure(
    histogram: pd.DataFrame, cutoff_score: float, score: float, *, metric: str,
    n_accepted: int, enumerated: bool,
) -> Figure:
    """Histogram of the balance scores with the cut-off and the drawn allocation marked.

    Parameters
    ----------
    histogram : DataFrame
        :func:`score_histogram` of every allocation considered.
    cutoff_score : float
        Largest accepted score.
    score : float
        Score of the drawn allocation.
    metric : str
        ``l2`` or ``l1``, for the axis label.
    n_accepted : int
        Size of the constrained space, for the legend.
    enumerated : bool
        Whether the scores cover every allocation (else a sample), for the title.
    """
    figure = Figure(figsize=(7.0, 3.6))
    axes = figure.add_subplot()
    edges = np.append(histogram["bin_low"].to_numpy(), histogram["bin_high"].iloc[-1])
    axes.stairs(histogram["allocations"].to_numpy(), edges, fill=True, color="#9fb7cc")
    axes.axvline(cutoff_score, color=_CUT, linewidth=1.5,
                 label=f"cut-off {cutoff_score:.4g} ({n_accepted:,} accepted)")
    axes.axvline(score, color=_INK, linewidth=1.2, linestyle="--",
                 label=f"drawn allocation {score:.4g}")
    which = "all" if enumerated else "a uniform sample of"
    total = int(histogram["allocations"].sum())
    axes.set_title(f"Balance scores of {which} {total:,} allocations", fontsize=10)
    axes.set_xlabel(f"balance score ({metric})")
    axes.set_ylabel("allocations")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    return figure


def read_allocation(folder: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame | None]:
    """Read ``summary.json``, ``balance.csv`` and (constrained only) ``scores.csv`` of
    ``trialstats allocate --out folder``.

    Raises
    ------
    TrialstatsError
        When ``summary.json`` or ``balance.csv`` is missing or unreadable.
    """
    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text("utf-8"))
        balance = pd.read_csv(folder / "balance.csv", keep_default_na=False,
                              na_values=[""])
    except (OSError, ValueError) as problem:
        raise TrialstatsError(
            f"{folder}: cannot read the allocation ({problem}); it should be the --out folder "
            "of `trialstats allocate` (summary.json, balance.csv).") from None
    scores = folder / "scores.csv"
    return summary, balance, pd.read_csv(scores) if scores.is_file() else None


def _method_text(summary: dict[str, Any]) -> str:
    n1, n0 = summary["n_intervention"], summary["n_control"]
    text = (f"{summary['n_practices']} practices were allocated, {n1} to the intervention and "
            f"{n0} to control, by {_METHODS.get(summary['method'], summary['method'])} "
            f"(trialstats allocate, seed {summary['seed']}).")
    if summary["method"] == "constrained":
        space = ("every one of the" if summary.get("enumerated")
                 else "a uniform sample of")
        keep = (f"the best {100 * summary['cutoff']:g}%" if summary.get("cutoff") is not None
                else f"the best {summary['top']:,}")
        text += (f" Each of {space} {summary['n_allocations']:,} allocations was scored for "
                 f"balance ({summary['metric']} score of the standardised covariate "
                 f"differences); {keep}, {summary['n_accepted']:,} allocations with scores up "
                 f"to {summary['cutoff_score']:.4g}, were accepted and one was drawn (score "
                 f"{summary['score']:.4g}). The accepted allocations are the allocation set "
                 "of the permutation test.")
    elif summary.get("score") is not None:
        text += f" The balance score of the allocation is {summary['score']:.4g}."
    if summary.get("probability") is not None:
        text += (f" The arm that minimised imbalance was given with probability "
                 f"{summary['probability']:g}.")
    for warning in summary.get("warnings") or ():
        text += f" Warning: {warning}"
    return text


def balance_display(balance: pd.DataFrame, table: str) -> Table:
    """The balance table of the allocation: arm means (SD) or proportions, standardised
    differences; ``table`` is its number (e.g. ``"A1"``)."""
    rows, depth = [], []
    for r in balance.itertuples():
        level = "" if pd.isna(r.level) or r.level == "" else f": {r.level}"
        if r.statistic == "mean":
            cells = (f"{fmt(r.intervention, 2)} ({fmt(r.sd_intervention, 2)})",
                     f"{fmt(r.control, 2)} ({fmt(r.sd_control, 2)})")
        else:
            cells = (f"{fmt(100 * r.intervention, 1)}%", f"{fmt(100 * r.control, 1)}%")
        rows.append((f"{r.covariate}{level}", *cells, fmt(r.standardised_difference, 3)))
        depth.append(1 if level else 0)
    first = balance.iloc[0]
    return Table(
        name="allocation_balance",
        title=f"Table {table}. Balance of the allocated practices",
        columns=("Covariate", f"Intervention (n = {fmt_count(first['n_intervention'])})",
                 f"Control (n = {fmt_count(first['n_control'])})", "Standardised difference"),
        rows=tuple(rows), depth=tuple(depth),
        notes="Practice-level mean (SD) of each numeric covariate and percentage of practices "
        "at each level of a categorical one; standardised difference (intervention − control) "
        "over the pooled SD (Austin 2009).",
        data=balance,
    )


def allocation_section(
    summary: dict[str, Any], balance: pd.DataFrame, histogram: pd.DataFrame | None, *,
    table: str = "A1", figure: str = "A1",
) -> Section:
    """The report's allocation section: method, balance table and (constrained) scores figure.

    Parameters
    ----------
    summary, balance, histogram
        As :func:`read_allocation` returns them.
    table, figure : str
        Numbers of the balance table and the scores figure.

    Returns
    -------
    Section
        Headed "Allocation": a paragraph on the method, the balance table (when covariates
        were balanced) and the scores figure (when ``histogram`` is given).
    """
    items: list = [_method_text(summary)]
    if len(balance):
        items.append(balance_display(balance, table))
    if histogram is not None:
        items.append(render_figure(
            score_figure(histogram, summary["cutoff_score"], summary["score"],
                         metric=summary["metric"], n_accepted=summary["n_accepted"],
                         enumerated=bool(summary.get("enumerated"))),
            "allocation_scores",
            f"Figure {figure}. Balance scores of the allocations considered; the red line is "
            "the cut-off, the dashed line the drawn allocation"))
    return Section("Allocation", tuple(items))
