"""The tipping-point analysis for the paper: a figure and one sentence per primary outcome.

Both read the tables of :mod:`trialstats.analysis.delta`: the ``delta-adjustment`` rows of
``sensitivity.csv`` (pooled estimate and CI for each delta of the configured grid) and the
tipping-point table (for each primary outcome at the primary month, the delta of smallest size at
which significance, or the MCID verdict, differs from the missing-at-random analysis). The
figure draws the estimate and its CI against delta (the grid and the tipping points together),
the band from −MCID to +MCID and a dashed line at each tipping delta.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from trialstats.contract import ODDS_RATIO, RATE_RATIO
from trialstats.errors import TrialstatsError
from trialstats.report.tables import digits_for, fmt, month_label

_BAND = "#d9ead3"
_INK = "#1f3b57"
_CRITERIA = {"significance": ("#b03a2e", "p crosses alpha"),
             "mcid verdict": ("#7d5a00", "MCID verdict changes")}
_WHO = {"intervention": "intervention patients", "control": "control patients",
        "both": "patients"}
_ARM = {"intervention": "the intervention arm", "control": "the control arm",
        "both": "both arms"}


def _outcome(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(o for o in config["outcomes"] if o["name"] == name)


def _unit(config: dict[str, Any], outcome: dict[str, Any]) -> str:
    """The scale of delta: the outcome's own units or baseline SDs for a score, log odds or
    log rate for a binary or count outcome (:mod:`trialstats.analysis.delta`)."""
    kind = outcome.get("type", "continuous")
    if kind != "continuous":
        return "log-odds units" if kind == "binary" else "log-rate units"
    return ("outcome units" if config["sensitivity"]["delta_scale"] == "raw"
            else "baseline SDs")


def _ratio(outcome: dict[str, Any]) -> str | None:
    """The ratio measure drawn for a binary (odds ratio) or count (rate ratio) outcome."""
    kind = outcome.get("type", "continuous")
    return None if kind == "continuous" else ODDS_RATIO if kind == "binary" else RATE_RATIO


def tipping_figure(
    rows: pd.DataFrame, tipping: pd.DataFrame, outcome: str, config: dict[str, Any]
) -> Figure:
    """Estimate and CI against delta for one outcome at the primary month.

    Parameters
    ----------
    rows : DataFrame
        ``sensitivity.csv`` rows (other analyses, outcomes and months are ignored); needs
        ``analysis, outcome, month, delta, estimate, ci_low, ci_high, mcid``.
    tipping : DataFrame
        The tipping-point table (:data:`trialstats.analysis.delta.TIPPING_COLUMNS`).
    outcome : str
        Outcome name.
    config : dict
        The validated configuration (labels, primary month, alpha, delta arm and scale).

    Returns
    -------
    matplotlib.figure.Figure
    """
    month = config["design"]["primary_month"]
    grid = rows[(rows["analysis"] == "delta-adjustment") & (rows["outcome"] == outcome)
                & (rows["month"] == month)]
    points = tipping[(tipping["outcome"] == outcome) & tipping["delta"].notna()]
    ratio = _ratio(_outcome(config, outcome))
    if ratio is not None:
        # one curve, the odds (rate) ratio; a tipping point judged on another measure (the
        # MCID's) is marked by its delta only
        grid = grid[grid["effect_measure"] == ratio]
        mine = points["estimate"].isin(grid["estimate"]) | (points["criterion"] == "significance")
        points = points.assign(on_curve=mine)
    else:
        points = points.assign(on_curve=True)
    curve = pd.concat([grid, points[points["on_curve"]]], ignore_index=True).sort_values("delta")
    if curve.empty:
        raise TrialstatsError(f"no delta-adjustment rows for {outcome} at month {month}")
    level = f"{100 * (1 - config['analysis']['alpha']):g}%"
    figure = Figure(figsize=(6.4, 4.0))
    ax = figure.add_axes((0.12, 0.2, 0.84, 0.68))
    mcid = grid["mcid"].iloc[0] if not grid.empty else np.nan
    if ratio is not None:
        ax.set_yscale("log")
        if np.isfinite(mcid):
            ax.axhspan(min(mcid, 1 / mcid), max(mcid, 1 / mcid), color=_BAND, zorder=0)
        ax.axhline(1, color="black", lw=0.8, zorder=1)
    else:
        if np.isfinite(mcid):
            ax.axhspan(-mcid, mcid, color=_BAND, zorder=0)
        ax.axhline(0, color="black", lw=0.8, zorder=1)
    ax.fill_between(curve["delta"], curve["ci_low"], curve["ci_high"], color=_INK, alpha=0.15,
                    lw=0, zorder=2)
    ax.plot(curve["delta"], curve["estimate"], color=_INK, lw=1.4, zorder=3)
    ax.plot(grid["delta"], grid["estimate"], "o", color=_INK, markersize=4, zorder=4)
    handles = [Line2D([], [], color=_INK, marker="o", markersize=4, label="estimate"),
               Patch(facecolor=_INK, alpha=0.15, label=f"{level} CI")]
    if np.isfinite(mcid):
        handles.append(Patch(facecolor=_BAND, label="−MCID to +MCID" if ratio is None
                             else "1/MCID to MCID"))
    for point in points.itertuples():
        colour, label = _CRITERIA[point.criterion]
        ax.axvline(point.delta, color=colour, ls="--", lw=1.0, zorder=5)
        if point.on_curve:
            ax.plot([point.delta], [point.estimate], "D", color=colour, markersize=5, zorder=6)
        handles.append(Line2D([], [], color=colour, ls="--",
                              label=f"{label} (δ = {fmt(point.delta, 2)})"))
    arm = config["sensitivity"]["delta_arm"]
    what = "scores" if ratio is None else "values' linear predictor"
    ax.set_xlabel(f"δ added to the imputed month-{month} {what} of {_ARM[arm]} "
                  f"({_unit(config, _outcome(config, outcome))})", fontsize=9)
    ax.set_ylabel("Adjusted difference (intervention − control)" if ratio is None else
                  f"{ratio[:1].upper()}{ratio[1:]} (intervention / control)", fontsize=9)
    ax.set_title(f"{_outcome(config, outcome)['label']}: tipping-point analysis", fontsize=10)
    ax.tick_params(labelsize=8.5)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    figure.legend(handles=handles, loc="lower center", ncol=3, fontsize=7.5, frameon=False)
    return figure


def tipping_sentences(tipping: pd.DataFrame, config: dict[str, Any]) -> dict[str, str]:
    """One sentence per primary outcome for the paper's results section.

    Returns
    -------
    dict
        Outcome name → sentence: the missing-at-random conclusion and how much lower (or
        higher) than predicted the missing scores of the shifted arm would have to be for
        significance, and for the MCID verdict, to change (with the estimate and CI there), or
        that it does not change within the range searched.
    """
    who = _WHO[config["sensitivity"]["delta_arm"]]
    level = f"{100 * (1 - config['analysis']['alpha']):g}%"
    sentences = {}
    for name, part in tipping.groupby("outcome", sort=False):
        outcome = _outcome(config, str(name))
        unit = _unit(config, outcome)
        effect, values = (("difference", "scores") if _ratio(outcome) is None
                          else ("estimate", "values"))
        by = part.set_index("criterion")
        mar = [by.loc[c, "conclusion_mar"] for c in by.index
               if isinstance(by.loc[c, "conclusion_mar"], str) and by.loc[c, "conclusion_mar"]]
        clauses = []
        for criterion in by.index:
            row = by.loc[criterion]
            what = "significance" if criterion == "significance" else "the MCID verdict"
            if not np.isfinite(row["delta"]):
                if row["notes"] != "no MCID configured":
                    clauses.append(f"{what} did not change within the range searched")
                continue
            digits = digits_for(abs(row["ci_high"] - row["ci_low"]))
            direction = "lower" if row["delta"] < 0 else "higher"
            clauses.append(
                f"{what} would change (to {row['conclusion_tipped']}) if the missing {values} of "
                f"{who} were {fmt(abs(row['delta']), digits)} {unit} {direction} than MAR "
                f"predicts ({effect} {fmt(row['estimate'], digits)}, {level} CI "
                f"{fmt(row['ci_low'], digits)} to {fmt(row['ci_high'], digits)})")
        month = month_label(int(part["month"].iloc[0]), -1)
        sentences[str(name)] = (f"For {outcome['label']} at {month} (missing at random: "
                                 f"{'; '.join(mar)}), {'; '.join(clauses)}.")
    return sentences
