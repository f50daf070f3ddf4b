"""Figures of a trial report: forest plots of the effects and the sensitivity comparison.

Scores are shown as standardised effects (adjusted difference / baseline SD) with their
confidence intervals, one row per outcome (or analysis), against a shaded band from −MCID to
+MCID on the same standardised scale (the MCID divided by the outcome's baseline SD), so that an
interval wholly inside the band rules out an important effect and one wholly outside shows one.

Binary and count outcomes have no standardised effect; their measures get figures of their
own, never mixed with the standardised one: odds, risk and rate ratios on a logarithmic axis
with the null line at 1 (a ratio and its reciprocal equally far from it), risk differences on
a linear axis with the null line at 0. A row is banded only when the outcome's MCID is set on
its measure (:func:`measure_band`): from 1/r to r for a ratio MCID r, from −d to +d for a risk
difference d.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from trialstats.contract import MEAN_DIFFERENCE, RATIO_MEASURES, RISK_DIFFERENCE
from trialstats.report.format import (
    arm_names,
    fmt_ci,
    month_label,
    ordered_outcomes,
    primary_rows,
    truthy,
)

_BAND = "#d9ead3"
_FIG_WIDTH = 8.0
_WRAP = 34       # characters per line of a row label
_CHAR = 0.075    # approximate width of a 9 pt character, inches
_INK = "#1f3b57"


def forest_data(results: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """Standardised effects at the primary month (primary df method), primary outcomes first.

    Returns
    -------
    DataFrame
        ``outcome, label, primary, effect_size, es_ci_low, es_ci_high, mcid_standardised,
        mcid_verdict, converged``; one row per outcome with a primary-month mean difference
        (binary and count outcomes have no standardised effect and are left out).
    """
    month = config["design"]["primary_month"]
    shown = primary_rows(results, config)
    if "effect_measure" in shown.columns:
        shown = shown[shown["effect_measure"].isin([MEAN_DIFFERENCE]) | shown[
            "effect_measure"].isna()]
    shown = shown[shown["month"] == month].set_index("outcome")
    rows = []
    for outcome in ordered_outcomes(config):
        if outcome["name"] not in shown.index:
            continue
        row = shown.loc[outcome["name"]]
        rows.append({
            "outcome": outcome["name"], "label": outcome["label"],
            "primary": bool(outcome["primary"]), "effect_size": row["effect_size"],
            "es_ci_low": row["es_ci_low"], "es_ci_high": row["es_ci_high"],
            "mcid_standardised": row["mcid"] / row["sd_baseline"],
            "mcid_verdict": row["mcid_verdict"], "converged": truthy(row["converged"]),
        })
    return pd.DataFrame(rows)


#: Most rows in one figure, so that it stays at most 1.4 times as tall as wide.
MAX_ROWS = 33


def _interval_figure(rows: list[dict[str, Any]], xlabel: str, level: str,
                     favours: tuple[str, str] | None = None, log: bool = False,
                     band_label: str = "−MCID to +MCID") -> Figure:
    """Dot-and-whisker rows (``heading`` rows are bold labels) with per-row MCID bands
    (``band``: the pair of its ends, or NaN); ``favours`` labels the left and right of the
    axis (e.g. favours control / intervention). With ``log`` the axis is logarithmic with
    the null line at 1 (ratios), else linear with the null line at 0."""
    n = len(rows)
    height = 1.1 + 0.3 * n
    labels = [textwrap.fill(r["label"], _WRAP) for r in rows]
    longest = max(len(line) for label in labels for line in label.split("\n"))
    left = (0.2 + _CHAR * longest) / _FIG_WIDTH
    figure = Figure(figsize=(_FIG_WIDTH, height))
    ax = figure.add_axes((left, 0.85 / height, 0.76 - left, 1 - 1.15 / height))
    values = np.array([[r["estimate"], r["low"], r["high"], *np.broadcast_to(r["band"], 2)]
                       for r in rows if not r["heading"]], dtype=float)
    if log:
        values = np.log(np.where(values > 0, values, np.nan))
    finite = values[np.isfinite(values)]
    reach = float(np.max(np.abs(finite))) if finite.size else 1.0
    if log:
        _log_axis(ax, max(reach * 1.15, np.log(1.25)))
    else:
        limit = max(reach * 1.15, 0.1)
        ax.set_xlim(-limit, limit)
    ax.set_ylim(n - 0.4, -0.6)
    ax.axvline(1 if log else 0, color="black", lw=0.8, zorder=1)
    for y, row in enumerate(rows):
        ax.text(-0.02, y, labels[y], transform=ax.get_yaxis_transform(), ha="right",
                va="center", fontsize=9, linespacing=1.0,
                fontweight="bold" if row["heading"] else "normal")
        if row["heading"]:
            continue
        ax.text(1.03, y, row["text"], transform=ax.get_yaxis_transform(), ha="left",
                va="center", fontsize=8.5)
        low, high = np.broadcast_to(row["band"], 2)
        if np.isfinite(low):
            ax.add_patch(Rectangle((low, y - 0.42), high - low, 0.84,
                                   facecolor=_BAND, edgecolor="none", zorder=0))
        if np.isfinite(row["estimate"]):
            ax.plot([row["low"], row["high"]], [y, y], color=_INK, lw=1.4, zorder=2)
            ax.plot([row["estimate"]], [y], marker="s", markersize=6, zorder=3,
                    color=_INK, markerfacecolor=_INK if row["converged"] else "white")
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", labelsize=8.5)
    ax.set_xlabel(xlabel, fontsize=9)
    if favours is not None:
        for x, text, align in ((0.0, favours[0], "left"), (1.0, favours[1], "right")):
            ax.text(x, 1.0, text, transform=ax.transAxes, ha=align, va="bottom",
                    fontsize=8.5, style="italic")
    ax.text(1.03, -0.9, f"Effect ({level} CI)", transform=ax.get_yaxis_transform(), ha="left",
            va="center", fontsize=8.5, fontweight="bold")
    handles = [Patch(facecolor=_BAND, label=band_label),
               Line2D([], [], color=_INK, marker="s", lw=1.4, label=f"effect, {level} CI")]
    if not all(r["converged"] for r in rows if not r["heading"]):
        handles.append(Line2D([], [], color=_INK, marker="s", lw=0, markerfacecolor="white",
                              label="model did not converge"))
    figure.legend(handles=handles, loc="lower left", ncol=len(handles), fontsize=8,
                  frameon=False, bbox_to_anchor=(0.01, 0.0))
    return figure


#: Candidate ticks of a ratio axis, finest first.
_RATIO_TICKS = ((0.67, 0.8, 1.0, 1.25, 1.5), (0.5, 0.67, 1.0, 1.5, 2.0), (0.25, 0.5, 1.0, 2.0, 4.0),
                (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), (0.01, 0.1, 1.0, 10.0, 100.0))


def _log_axis(ax: Any, reach: float) -> None:
    """A logarithmic x axis from exp(-reach) to exp(reach), ticks labelled as plain ratios:
    the finest candidate set whose ticks in range are at least a tenth of the axis apart."""
    ax.set_xscale("log")
    ax.set_xlim(np.exp(-reach), np.exp(reach))
    ticks: list[float] = [1.0]
    for candidates in _RATIO_TICKS:
        ticks = [t for t in candidates if abs(np.log(t)) <= reach]
        if np.min(np.diff(np.log(ticks)), initial=np.inf) >= reach / 5:
            break
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())


def measure_band(row: pd.Series) -> tuple[float, float]:
    """The MCID band of a results row on its own measure's scale: ``(1/r, r)`` (or
    ``(r, 1/r)``) for a ratio MCID ``r``, ``(-d, d)`` for a difference ``d``; NaN when the
    row carries no MCID (it is set on another measure)."""
    mcid = float(row["mcid"])
    if not np.isfinite(mcid) or mcid == 0:
        return (np.nan, np.nan)
    if row["effect_measure"] in RATIO_MEASURES:
        return (min(mcid, 1 / mcid), max(mcid, 1 / mcid))
    return (-abs(mcid), abs(mcid))


def measure_forest_data(results: pd.DataFrame, config: dict[str, Any],
                        ratios: bool) -> pd.DataFrame:
    """Ratio measures (``ratios``) or risk differences at the primary month (primary df
    method), primary outcomes first, each on its own scale.

    Returns
    -------
    DataFrame
        ``outcome, label, primary, effect_measure, estimate, ci_low, ci_high, band_low,
        band_high`` (:func:`measure_band`), ``mcid_verdict, converged``; one row per outcome x
        measure with an estimate (odds, risk and rate ratios; or risk differences).
    """
    wanted = RATIO_MEASURES if ratios else (RISK_DIFFERENCE,)
    shown = primary_rows(results, config)
    shown = shown[(shown["month"] == config["design"]["primary_month"])
                  & shown["effect_measure"].isin(wanted)
                  & np.isfinite(shown["estimate"].astype(float))]
    rows = []
    for outcome in ordered_outcomes(config):
        for _, row in shown[shown["outcome"] == outcome["name"]].iterrows():
            low, high = measure_band(row)
            rows.append({
                "outcome": outcome["name"], "label": outcome["label"],
                "primary": bool(outcome["primary"]), "effect_measure": row["effect_measure"],
                "estimate": row["estimate"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                "band_low": low, "band_high": high, "mcid_verdict": row["mcid_verdict"],
                "converged": truthy(row["converged"]),
            })
    return pd.DataFrame(rows)


def _measure_row(label: str, row: Any, band: tuple[float, float], ratios: bool
                 ) -> dict[str, Any]:
    """A figure row of a results row (a ratio or a risk difference) and its MCID band."""
    return {"heading": False, "label": label, "estimate": row["estimate"],
            "low": row["ci_low"], "high": row["ci_high"], "band": band,
            "converged": truthy(row["converged"]),
            "text": fmt_ci(row["estimate"], row["ci_low"], row["ci_high"], 2 if ratios else 3)}


def _by_primary(data: pd.DataFrame, make_row: Any) -> list[dict[str, Any]]:
    """Figure rows: a "Primary outcomes" heading and ``make_row(row)`` of each primary row
    of ``data``, then the same for the secondary outcomes."""
    rows = []
    for is_primary, title in ((True, "Primary outcomes"), (False, "Secondary outcomes")):
        part = data[data["primary"] == is_primary]
        if part.empty:
            continue
        rows.append({"heading": True, "label": title})
        rows += [make_row(r) for _, r in part.iterrows()]
    return rows


def _measure_axis(config: dict[str, Any], ratios: bool, when: str = "") -> tuple[str, str]:
    """The axis title (``when``: e.g. " at 12 months") and the band's legend entry of a
    ratio or risk-difference figure."""
    contrast = (" / " if ratios else " − ").join(arm_names(config))
    what = "Ratio (log scale)" if ratios else "Risk difference"
    return (f"{what}{when} ({contrast})",
            "1/MCID to MCID" if ratios else "−MCID to +MCID")


def measure_figure(data: pd.DataFrame, config: dict[str, Any], ratios: bool) -> Figure:
    """Forest plot of :func:`measure_forest_data`: ratios on a log axis with the null line at
    1, or risk differences on a linear axis at 0; each row's MCID band on its own scale."""
    rows = _by_primary(data, lambda r: _measure_row(
        f"{r['label']}: {r['effect_measure']}", r, (r["band_low"], r["band_high"]), ratios))
    title, band = _measure_axis(
        config, ratios, f" at {month_label(config['design']['primary_month'], -1)}")
    return _interval_figure(rows, title, _level(config), favours_labels(config), log=ratios,
                            band_label=band)


def sensitivity_measure_figure(summary: pd.DataFrame, config: dict[str, Any],
                               ratios: bool) -> Figure:
    """The primary and every sensitivity analysis of binary and count outcomes, by outcome:
    ratios on a log axis (``ratios``) or risk differences on a linear one.

    ``summary`` comes from :func:`trialstats.report.tables.sensitivity_summary`, restricted
    to rows of those measures with an estimate."""
    rows = []
    for label, part in summary.groupby("label", sort=False):
        rows.append({"heading": True, "label": str(label)})
        for _, r in part.iterrows():
            name = str(r["analysis_label"])
            if str(r["effect_measure"]) not in name:
                name += f": {r['effect_measure']}"
            rows.append(_measure_row(sentence_case(name), r, measure_band(r), ratios))
    title, band = _measure_axis(config, ratios)
    return _interval_figure(rows, title, _level(config), favours_labels(config), log=ratios,
                            band_label=band)


def sentence_case(text: str) -> str:
    """``text`` with its first letter capitalised."""
    return text[:1].upper() + text[1:]


def _level(config: dict[str, Any]) -> str:
    return f"{100 * (1 - config['analysis']['alpha']):g}%"


def forest_figure(data: pd.DataFrame, config: dict[str, Any]) -> Figure:
    """Forest plot of :func:`forest_data`: primary outcomes, then secondary outcomes."""
    rows = _by_primary(data, lambda r: {
        "heading": False, "label": r["label"], "estimate": r["effect_size"],
        "low": r["es_ci_low"], "high": r["es_ci_high"],
        "band": (-r["mcid_standardised"], r["mcid_standardised"]),
        "converged": r["converged"],
        "text": fmt_ci(r["effect_size"], r["es_ci_low"], r["es_ci_high"], 2),
    })
    month = month_label(config["design"]["primary_month"], -1)
    return _interval_figure(
        rows, f"Standardised effect at {month} (baseline SDs; {' − '.join(arm_names(config))})",
        _level(config), favours_labels(config),
    )


def favours_labels(config: dict[str, Any]) -> tuple[str, str] | None:
    """``("← favours control", "favours intervention →")`` (the arms' display names) when
    higher is better for every outcome (reversed when lower is better for every one); None
    when directions differ."""
    better = {bool(o.get("higher_is_better", True)) for o in config["outcomes"]}
    if len(better) != 1:
        return None
    intervention, control = arm_names(config)
    if better == {False}:
        intervention, control = control, intervention
    return f"← favours {control}", f"favours {intervention} →"


def split_by_outcome(summary: pd.DataFrame) -> list[pd.DataFrame]:
    """``summary`` (rows grouped by outcome ``label``) cut into consecutive parts of whole
    outcomes, each with at most :data:`MAX_ROWS` figure rows (one heading per outcome)."""
    parts: list[list[pd.DataFrame]] = [[]]
    used = 0
    for _, part in summary.groupby("label", sort=False):
        if used and used + len(part) + 1 > MAX_ROWS:
            parts.append([])
            used = 0
        parts[-1].append(part)
        used += len(part) + 1
    return [pd.concat(p) for p in parts if p]


def sensitivity_figure(summary: pd.DataFrame, config: dict[str, Any]) -> Figure:
    """Standardised effects of the primary and every sensitivity analysis, by outcome.

    ``summary`` comes from :func:`trialstats.report.tables.sensitivity_summary`.
    """
    rows = []
    for label, part in summary.groupby("label", sort=False):
        rows.append({"heading": True, "label": str(label)})
        rows += [{
            "heading": False, "label": sentence_case(str(r["analysis_label"])),
            "estimate": r["effect_size"], "low": r["es_ci_low"], "high": r["es_ci_high"],
            "band": (-r["mcid"] / r["sd_baseline"], r["mcid"] / r["sd_baseline"]),
            "converged": truthy(r["converged"]),
            "text": fmt_ci(r["effect_size"], r["es_ci_low"], r["es_ci_high"], 2),
        } for _, r in part.iterrows()]
    return _interval_figure(
        rows, f"Standardised effect (baseline SDs; {' − '.join(arm_names(config))})",
        _level(config),
        favours_labels(config),
    )
