"""Power curves of a scenario grid: power against one design quantity, panels for the others.

The grid table is that of :mod:`trialstats.power.grid` (one row per scenario and method).
The quantity with the most values besides the horizontal axis gets one curve per value, the
others one panel per combination (:func:`split_curves`); analytic power is drawn as lines,
simulated power as points with 95% Monte Carlo intervals.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from trialstats.power.grid import GRID_KEYS, METHODS, varying_keys

__all__ = ["curve_axis", "design_phrases", "grid_label", "power_curve_figure", "split_curves"]

#: Display name and unit of each grid quantity on figures and tables.
_LABELS = {
    "clusters_per_arm": ("clusters per arm", ""),
    "allocation_ratio": ("allocation ratio", ""),
    "cluster_size": ("mean cluster size", ""),
    "cv": ("CV of cluster size", ""),
    "icc": ("ICC", ""),
    "effect": ("effect", " SD"),
    "attrition": ("attrition", ""),
    "rho_s": ("subject autocorrelation", ""),
    "rho_c": ("cluster autocorrelation", ""),
}
_BASELINE = {
    "ancova": "adjusted for baseline (ANCOVA)",
    "change": "change from baseline",
    "none": "no baseline adjustment",
}
_INK = "#1f3b57"


def curve_axis(table: pd.DataFrame, x: str = "clusters_per_arm") -> str:
    """The grid key on the horizontal axis: ``x``, or if it does not vary the first that does."""
    varying = varying_keys(table)
    return varying[0] if x not in varying and varying else x


def split_curves(table: pd.DataFrame, keys: Sequence[str]) -> tuple[str | None, list[str]]:
    """Which of ``keys`` colours the curves and which split them into panels.

    The key with the most values (the first in ``keys`` on ties) is drawn as curves of one
    colour each; every other key becomes a panel dimension, one panel per combination of
    their values. A grid varying ICC (5 values) and effect (2) thus gets one panel per
    effect and one curve per ICC.

    Returns
    -------
    colour : str or None
        The colour key (``None`` when ``keys`` is empty).
    panels : list of str
        The panel keys, in the order of ``keys``.
    """
    if not keys:
        return None, []
    colour = max(keys, key=lambda k: len(pd.unique(table[k])))
    return colour, [k for k in keys if k != colour]


def grid_label(key: str, value: float | None = None) -> str:
    """Display name of a grid quantity: ``effect (SD)``, or with a value ``effect 0.2 SD``."""
    name, unit = _LABELS[key]
    if value is None:
        return f"{name} ({unit.strip()})" if unit else name
    return f"{name} {value:g}{unit}"


def design_phrases(table: pd.DataFrame) -> list[str]:
    """The design values every scenario of a grid table shares, as display phrases.

    One phrase per grid key that does not vary (``mean cluster size 127``), then the
    significance level and the use of the baseline score.
    """
    varying = varying_keys(table)
    phrases = [grid_label(k, table[k].iloc[0]) for k in GRID_KEYS if k not in varying]
    phrases.append(f"two-sided α {table['alpha'].iloc[0]:g}")
    baseline = str(table["baseline"].iloc[0])
    phrases.append(_BASELINE.get(baseline, f"baseline {baseline}"))
    return phrases


def _curve_colours(n: int) -> list[Any]:
    """``n`` colours of a sequential map, light for the smallest value, dark for the largest."""
    if n == 1:
        return [_INK]
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.8, 0.0, n)]


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in as few lines of at most ``width`` characters as possible, of even length."""
    lines = math.ceil(len(text) / width)
    return textwrap.wrap(text, min(width, math.ceil(len(text) / lines) + 8))


def _curve_note(table: pd.DataFrame) -> str:
    simulated = table[table["method"] == "simulation"]
    parts = []
    if (table["method"] == "analytic").any():
        parts.append("lines: analytic")
    if len(simulated):
        parts.append(
            f"points: simulated ({int(simulated['reps'].iloc[0]):,} trials, "
            f"{simulated['df_method'].iloc[0]} df), 95% Monte Carlo interval"
        )
    parts.append("dotted: 80%, 90% power")
    note = "; ".join(parts)
    return note[:1].upper() + note[1:]


def _draw_curves(ax: Any, part: pd.DataFrame, x: str, colour_key: str | None,
                 colours: dict[Any, Any]) -> None:
    """One panel: reference lines, then per colour level the analytic line and the simulated
    points with their 95% Monte Carlo intervals."""
    for level in (0.8, 0.9):
        ax.axhline(level, color="#8a8a8a", lw=0.8, ls=(0, (1, 2)), zorder=1)
    for level, colour in colours.items():
        series = part if colour_key is None else part[part[colour_key] == level]
        series = series.sort_values(x)
        analytic = series[series["method"] == "analytic"]
        if len(analytic):
            ax.plot(analytic[x], analytic["power"], color=colour, lw=1.5, zorder=2)
        simulated = series[series["method"] == "simulation"]
        if len(simulated):
            power = simulated["power"].to_numpy(dtype=float)
            half = 1.96 * simulated["mc_se"].to_numpy(dtype=float)
            yerr = [power - np.clip(power - half, 0, 1), np.clip(power + half, 0, 1) - power]
            ax.errorbar(simulated[x], power, yerr=yerr, fmt="o", ms=3.8, color=colour,
                        mec="white", mew=0.5, elinewidth=1.0, capsize=0, zorder=3)


def _columns(table: pd.DataFrame, panel_keys: list[str], n: int) -> int:
    """Panels per row: the values of the last panel key when several keys make the panels
    (so rows and columns line up with them), else up to 3 in a row, then a square-ish grid."""
    last = len(pd.unique(table[panel_keys[-1]])) if panel_keys else 1
    if len(panel_keys) > 1 and last <= 4:
        return last
    return n if n <= 3 else min(4, math.ceil(math.sqrt(n)))


def power_curve_figure(table: pd.DataFrame, x: str = "clusters_per_arm") -> Figure:
    """Power against one design quantity: panels and coloured curves for the others.

    The quantities that vary besides ``x`` are split by :func:`split_curves`: the one with
    the most values gets one curve per value, coloured along a sequential colormap (light
    for the smallest value), and the others one panel per combination of values. Analytic
    power is drawn as lines, simulated power as points with 95% Monte Carlo intervals
    (``power ± 1.96 mc_se``, clipped to [0, 1]); dotted lines mark 80% and 90% power. The
    design values shared by every scenario (:func:`design_phrases`) form the subtitle.

    Parameters
    ----------
    table : pandas.DataFrame
        A grid table (:func:`run_scenarios` or :func:`gather`).
    x : str, default "clusters_per_arm"
        Grid key on the horizontal axis; if it does not vary, the first grid key that does.

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = curve_axis(table, x)
    colour_key, panel_keys = split_curves(table, [k for k in varying_keys(table) if k != x])
    panels = list(table.groupby(panel_keys, sort=True)) if panel_keys else [((), table)]
    levels = sorted(pd.unique(table[colour_key])) if colour_key else [None]
    colours = dict(zip(levels, _curve_colours(len(levels)), strict=True))
    n = len(panels)
    ncols = _columns(table, panel_keys, n)
    nrows = math.ceil(n / ncols)
    panel_w, panel_h = (3.1, 2.5) if ncols > 1 else (4.4, 3.0)
    left, right, gap_x, gap_y = 0.62, 0.2, 0.18, 0.5
    width = left + ncols * panel_w + (ncols - 1) * gap_x + right
    subtitle = _wrap(", ".join(design_phrases(table)), int((width - left) / 0.062))
    note = _wrap(_curve_note(table), int((width - 0.2) / 0.058))
    legend_columns = min(len(levels), 8, int((width - 0.2) / 0.8))
    legend_rows = math.ceil(len(levels) / legend_columns)
    top = 0.42 + 0.16 * len(subtitle) + (0.3 if panel_keys else 0.1)
    legend = 0.32 + 0.18 * legend_rows if colour_key else 0.0
    bottom = 0.45 + legend + 0.15 * len(note) + 0.1
    height = top + nrows * panel_h + (nrows - 1) * gap_y + bottom
    figure = Figure(figsize=(width, height))
    grid = figure.add_gridspec(
        nrows, ncols, left=left / width, right=1 - right / width, top=1 - top / height,
        bottom=bottom / height, wspace=gap_x / panel_w, hspace=gap_y / panel_h,
    )
    x_values = sorted(pd.unique(table[x]))
    first = None
    for i, (key, part) in enumerate(panels):
        ax = figure.add_subplot(grid[i // ncols, i % ncols], sharex=first, sharey=first)
        if first is None:
            first = ax
        _draw_curves(ax, part, x, colour_key, colours)
        if panel_keys:
            values = key if isinstance(key, tuple) else (key,)
            title = ", ".join(grid_label(k, v) for k, v in zip(panel_keys, values, strict=True))
            ax.set_title(title, fontsize=9 if len(title) <= 40 else 8)
        bottom_row, left_column = i + ncols >= n, i % ncols == 0
        ax.tick_params(labelsize=8, labelbottom=bottom_row, labelleft=left_column)
        if bottom_row:
            ax.set_xlabel(grid_label(x), fontsize=9)
        if left_column:
            ax.set_ylabel("power", fontsize=9)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if len(x_values) <= 12:
        first.set_xticks(x_values, [f"{v:g}" for v in x_values])
    elif x == "clusters_per_arm":
        first.xaxis.set_major_locator(MaxNLocator(integer=True))
    first.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0], ["0", "0.2", "0.4", "0.6", "0.8",
                                                          "0.9", "1"])
    first.set_ylim(0, 1.02)
    first.margins(x=0.06)
    figure.text(left / width, 1 - 0.14 / height, f"Power by {grid_label(x)}", fontsize=10.5,
                fontweight="bold", va="top")
    figure.text(left / width, 1 - 0.42 / height, "\n".join(subtitle), fontsize=8,
                color="#333333", va="top", linespacing=1.3)
    if colour_key:
        analytic, simulated = ((table["method"] == m).any() for m in METHODS)
        handles = [Line2D([], [], color=colours[v], lw=1.5 if analytic else 0,
                          marker="o" if simulated else None, ms=4, mec="white", mew=0.5)
                   for v in levels]
        figure.legend(handles, [f"{v:g}" for v in levels], title=grid_label(colour_key),
                      loc="lower center", bbox_to_anchor=(0.5, (0.12 + 0.15 * len(note)) / height),
                      ncol=legend_columns, frameon=False, fontsize=8, title_fontsize=8.5,
                      handlelength=2.2, columnspacing=1.4)
    figure.text(0.5, 0.1 / height, "\n".join(note), fontsize=7.5, color="#333333",
                ha="center", va="bottom", linespacing=1.3)
    return figure
