"""Figure of a constrained randomisation: the distribution of balance scores.

A histogram of the balance scores of every allocation considered (all, or the uniform
sample), a line at the cut-off score (the largest accepted) and a marker at the drawn
allocation's score, as cvcrand's ``bhist``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

_INK = "#1f3b57"
_CUT = "#b03a2e"


def score_figure(
    scores: np.ndarray, cutoff_score: float, score: float, *, metric: str, n_accepted: int,
    enumerated: bool,
) -> Figure:
    """Histogram of ``scores`` with the cut-off and the drawn allocation marked.

    Parameters
    ----------
    scores : ndarray
        Balance score of every allocation considered.
    cutoff_score : float
        Largest accepted score.
    score : float
        Score of the drawn allocation.
    metric : str
        ``l2`` or ``l1``, for the axis label.
    n_accepted : int
        Size of the constrained space, for the legend.
    enumerated : bool
        Whether ``scores`` covers every allocation (else a sample), for the title.
    """
    figure = Figure(figsize=(7.0, 3.6))
    axes = figure.add_subplot()
    axes.hist(scores, bins=50, color="#9fb7cc", edgecolor="white", linewidth=0.4)
    axes.axvline(cutoff_score, color=_CUT, linewidth=1.5,
                 label=f"cut-off {cutoff_score:.4g} ({n_accepted:,} accepted)")
    axes.axvline(score, color=_INK, linewidth=1.2, linestyle="--",
                 label=f"drawn allocation {score:.4g}")
    which = "all" if enumerated else "a uniform sample of"
    axes.set_title(f"Balance scores of {which} {len(scores):,} allocations", fontsize=10)
    axes.set_xlabel(f"balance score ({metric})")
    axes.set_ylabel("allocations")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    return figure
