"""The schematic of a trial design: the sequence x period grid every stepped-wedge paper shows.

One row per sequence (labelled with its number of clusters), one column per period; a cell is
shaded when the sequence is under the intervention, white under control and hatched grey when
the sequence is not measured in that period (Hemming et al. 2018, BMJ 363:k1614, figure 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from trialstats.power.designs import Design

_INTERVENTION = "#1f3b57"
_CONTROL = "#ffffff"
_MISSING = "#d9d9d9"
_EDGE = "#555555"


def schematic_figure(design: Design) -> Figure:
    """Draw ``design`` as a grid of cells (sequences down, periods across).

    Parameters
    ----------
    design : Design
        The layout to draw.

    Returns
    -------
    matplotlib.figure.Figure
        The schematic with a legend for intervention, control and not measured.
    """
    n_seq, n_per = design.treatment.shape
    width = min(max(3.5 + 0.5 * n_per, 5.0), 12.0)
    height = 1.6 + 0.4 * n_seq
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    for s, row in enumerate(design.treatment):
        y = n_seq - 1 - s
        for t, value in enumerate(row):
            missing = bool(np.isnan(value))
            colour = _MISSING if missing else (_INTERVENTION if value == 1 else _CONTROL)
            ax.add_patch(Rectangle((t, y), 1, 1, facecolor=colour, edgecolor=_EDGE,
                                   linewidth=0.8, hatch="///" if missing else None))
    ax.set_xlim(0, n_per)
    ax.set_ylim(0, n_seq)
    ax.set_xticks(np.arange(n_per) + 0.5, labels=list(design.periods))
    labels = [f"Sequence {s + 1} ({int(k)} cluster{'s' if k != 1 else ''})"
              for s, k in enumerate(design.clusters)]
    ax.set_yticks(np.arange(n_seq)[::-1] + 0.5, labels=labels)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("Period")
    name = Path(design.name).name
    ax.set_title(f"{name}: {n_seq} sequences x {n_per} periods, {design.n_clusters} clusters",
                 fontsize=10)
    handles = [Patch(facecolor=_INTERVENTION, edgecolor=_EDGE, label="intervention"),
               Patch(facecolor=_CONTROL, edgecolor=_EDGE, label="control")]
    if np.isnan(design.treatment).any():
        handles.append(Patch(facecolor=_MISSING, edgecolor=_EDGE, hatch="///",
                             label="not measured"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False,
               fontsize=8)
    return fig
