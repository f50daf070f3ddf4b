"""CONSORT 2010 flow of clusters and patients (extension to cluster randomised trials).

The counts come from the validated trial tables, checked against the analysis results:

- *randomised*: every practice in the practices table and every patient recruited in them;
- *allocated*: per arm, practices and recruited patients;
- *withdrawn*: per arm, practices withdrawn after randomisation and the patients in them;
- *lost* (one row per follow-up month): patients of practices that did not withdraw with no
  outcome observed at that month, and the practices with no patient followed up;
- *not analysed*: patients followed up at the primary month (some outcome observed) but
  lacking the first primary outcome there, its baseline or an adjustment covariate;
- *analysed*: patients with the first primary outcome at the primary month, its baseline and
  every covariate observed, and the practices they belong to. Their totals must equal
  ``n_patients`` and ``n_clusters`` of that outcome's primary analysis row.

Optionally ``report.consort`` in the configuration gives the practices assessed for
eligibility and those excluded before randomisation (by reason).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from trialstats.data.validate import outcome_column
from trialstats.errors import TrialstatsError
from trialstats.report.format import arm_order, month_label, primary_rows, sentence, words

STAGES = ("assessed", "excluded", "randomised", "allocated", "withdrawn", "lost",
          "not_analysed", "analysed")


def _row(stage: str, arm: str, clusters: float, patients: float, month: float = np.nan,
         reason: str = "") -> dict[str, Any]:
    """One row of the counts table (NaN = not counted at this stage)."""
    return {"stage": stage, "arm": arm, "month": month, "reason": reason,
            "clusters": clusters, "patients": patients}


def primary_outcome(config: dict[str, Any]) -> dict[str, Any]:
    """The first primary outcome of the configuration (the first outcome if none is primary)."""
    return next((o for o in config["outcomes"] if o["primary"]), config["outcomes"][0])


def analysed_mask(patients: pd.DataFrame, config: dict[str, Any]) -> pd.Series:
    """Patients in the primary analysis of the first primary outcome at the primary month:
    outcome, its baseline and every adjustment covariate observed."""
    design = config["design"]
    outcome = primary_outcome(config)
    name = outcome["name"]
    baseline = [outcome_column(name, design["baseline_month"])] if outcome.get(
        "baseline", True) else []
    needed = [outcome_column(name, design["primary_month"]), *baseline,
              *config["analysis"]["covariates"]]
    return patients[needed].notna().all(axis=1)


def consort_counts(
    practices: pd.DataFrame, patients: pd.DataFrame, results: pd.DataFrame,
    config: dict[str, Any],
) -> pd.DataFrame:
    """Counts of practices and patients at every stage of the CONSORT flow.

    Parameters
    ----------
    practices, patients : DataFrame
        The validated trial tables.
    results : DataFrame
        ``primary.csv``; the primary-method row of the first primary outcome at the primary
        month must agree with the analysed counts found in the data.
    config : dict
        The validated run configuration (``report.consort`` optional).

    Returns
    -------
    DataFrame
        Columns ``stage`` (one of :data:`STAGES`), ``arm`` (``all`` for stages before
        allocation), ``month`` (follow-up month of ``lost`` rows, else NaN), ``reason``
        (exclusion reason of ``excluded`` rows), ``clusters`` and ``patients`` (nullable
        integers, missing when the stage does not count them), and on ``allocated`` rows the
        patients per cluster: ``size_median``, ``size_min`` and ``size_max``.

    Raises
    ------
    TrialstatsError
        When the analysed totals differ from those of the primary analysis row, or that row
        is missing.
    """
    design = config["design"]
    cluster, arm, withdrawn = design["cluster"], design["arm"], design["withdrawn"]
    order = arm_order(config, practices[arm])
    rows = []
    screening = config.get("report", {}).get("consort", {})
    if "assessed" in screening:
        rows.append(_row("assessed", "all", screening["assessed"], np.nan))
        for reason, n in screening.get("excluded", {}).items():
            rows.append(_row("excluded", "all", n, np.nan, reason=reason))
    rows.append(_row("randomised", "all", len(practices), len(patients)))
    left = set(practices.loc[practices[withdrawn], cluster])
    in_left = patients[cluster].isin(left)
    outcomes = [o["name"] for o in config["outcomes"]]
    analysed = analysed_mask(patients, config)
    for label in order:
        in_arm = patients[arm] == label
        arm_practices = practices[practices[arm] == label]
        sizes = patients[in_arm].groupby(cluster).size().reindex(
            arm_practices[cluster], fill_value=0)
        rows.append(_row("allocated", label, len(arm_practices), int(in_arm.sum()))
                    | {"size_median": float(sizes.median()), "size_min": int(sizes.min()),
                       "size_max": int(sizes.max())})
        rows.append(_row("withdrawn", label, int(arm_practices[withdrawn].sum()),
                         int((in_arm & in_left).sum())))
        staying = patients[in_arm & ~in_left]
        active = set(arm_practices.loc[~arm_practices[withdrawn], cluster])
        for month in design["followup_months"]:
            seen = staying[[outcome_column(o, month) for o in outcomes]].notna().any(axis=1)
            lost_clusters = len(active - set(staying.loc[seen, cluster]))
            rows.append(_row("lost", label, lost_clusters, int((~seen).sum()), month=month))
            if month == design["primary_month"]:
                not_analysed = int((seen & ~analysed[staying.index]).sum())
        rows.append(_row("not_analysed", label, np.nan, not_analysed))
        rows.append(_row("analysed", label, patients.loc[in_arm & analysed, cluster].nunique(),
                         int((in_arm & analysed).sum())))
    counts = pd.DataFrame(rows).astype(
        {"month": "Int64", "clusters": "Int64", "patients": "Int64", "size_min": "Int64",
         "size_max": "Int64"}
    )
    _check_against_results(counts, results, config)
    return counts


def _check_against_results(
    counts: pd.DataFrame, results: pd.DataFrame, config: dict[str, Any]
) -> None:
    design = config["design"]
    name = primary_outcome(config)["name"]
    shown = primary_rows(results, config)
    row = shown[(shown["outcome"] == name) & (shown["month"] == design["primary_month"])]
    method = config["analysis"]["df_method"][0]
    if row.empty:
        raise TrialstatsError(
            f"primary.csv has no row for outcome '{name}' at month {design['primary_month']} "
            f"with method '{method}', which the CONSORT flow needs."
        )
    analysed = counts[counts["stage"] == "analysed"]
    found = (int(analysed["patients"].sum()), int(analysed["clusters"].sum()))
    reported = (int(row["n_patients"].iloc[0]), int(row["n_clusters"].iloc[0]))
    if found != reported:
        raise TrialstatsError(
            f"primary.csv reports {reported[0]} patients in {reported[1]} practices for "
            f"'{name}' at month {design['primary_month']}, but the data have {found[0]} "
            f"patients in {found[1]} practices with that outcome, its baseline and every "
            f"covariate ({', '.join(config['analysis']['covariates']) or 'none'}) observed; "
            "the results do not belong to these data."
        )


# ---------------------------------------------------------------------------------------------
# drawing

_WIDTH = 8.0          # figure width, inches
_LINE = 0.2           # text line height, inches
_PAD = 0.12           # padding inside a box
_GAP = 0.32           # vertical gap between boxes
_BAR = 0.26           # height of a stage bar
_FONT = 9


def flow_boxes(counts: pd.DataFrame, config: dict[str, Any]) -> dict[str, list[str]]:
    """Text of every box of the flow diagram (keys ``screen``, ``excluded``, ``randomised``
    and ``<stage>:<arm>`` for ``allocated``, ``lost`` and ``analysed``)."""
    design = config["design"]
    w = words(config)
    get = counts.set_index(["stage", "arm"])
    boxes: dict[str, list[str]] = {}
    if (counts["stage"] == "assessed").any():
        boxes["screen"] = [sentence(f"{w.clusters} assessed for eligibility"),
                           f"(n = {int(get.loc[('assessed', 'all'), 'clusters']):,})"]
        excluded = counts[counts["stage"] == "excluded"]
        boxes["excluded"] = [f"Excluded (n = {int(excluded['clusters'].sum()):,})"] + [
            f"  {r.reason} (n = {int(r.clusters):,})" for r in excluded.itertuples()
        ]
    total = get.loc[("randomised", "all")]
    boxes["randomised"] = [f"Randomised: {w.count(total['clusters'])}",
                           f"{w.count(total['patients'], True)} recruited"]
    name = primary_outcome(config)["label"]
    for label in dict.fromkeys(counts.loc[counts["arm"] != "all", "arm"]):
        allocated, withdrawn = get.loc[("allocated", label)], get.loc[("withdrawn", label)]
        boxes[f"allocated:{label}"] = [
            f"Allocated to {w.arm(label)}: {w.count(allocated['clusters'])}",
            f"{w.count(allocated['patients'], True)} recruited",
            f"per {w.cluster}: median {allocated['size_median']:g} "
            f"(range {allocated['size_min']} to {allocated['size_max']})",
            f"Withdrew after randomisation: {w.count(withdrawn['clusters'])}",
            f"({w.count(withdrawn['patients'], True)})",
        ]
        lost = counts[(counts["stage"] == "lost") & (counts["arm"] == label)]
        boxes[f"lost:{label}"] = ["Lost to follow-up (no outcome observed)"] + [
            f"{month_label(int(r.month), -1)}: {w.count(r.patients, True)}"
            + (f"; {w.count(r.clusters)} with none" if r.clusters else "")
            for r in lost.itertuples()
        ]
        analysed, missing = get.loc[("analysed", label)], get.loc[("not_analysed", label)]
        boxes[f"analysed:{label}"] = [
            f"Analysed: {w.count(analysed['clusters'])}",
            f"{w.count(analysed['patients'], True)}",
            f"({name}, {month_label(design['primary_month'], -1)})",
            f"Not analysed: {w.count(missing['patients'], True)}",
            "(missing outcome, baseline or covariate)",
        ]
    return boxes


def _box(ax: plt.Axes, x: float, top: float, width: float, lines: list[str],
         align: str = "center") -> tuple[float, float]:
    """Draw a box whose top edge is at ``top``; return (top, bottom)."""
    height = 2 * _PAD + _LINE * len(lines)
    ax.add_patch(FancyBboxPatch(
        (x - width / 2, top - height), width, height, boxstyle="square,pad=0",
        facecolor="white", edgecolor="black", linewidth=0.9,
    ))
    if align == "center":
        ax.text(x, top - height / 2, "\n".join(lines), ha="center", va="center",
                fontsize=_FONT, linespacing=1.45)
    else:
        ax.text(x - width / 2 + _PAD, top - height / 2, "\n".join(lines), ha="left",
                va="center", fontsize=_FONT, linespacing=1.45)
    return top, top - height


def _stage(ax: plt.Axes, top: float, text: str) -> float:
    """A stage label (rounded, centred between the arm columns); return its bottom."""
    ax.add_patch(FancyBboxPatch(
        (_WIDTH / 2 - 0.8, top - _BAR), 1.6, _BAR,
        boxstyle="round,pad=0,rounding_size=0.08",
        facecolor="#dce6f2", edgecolor="#4f6d8f", linewidth=0.8,
    ))
    ax.text(_WIDTH / 2, top - _BAR / 2, text, ha="center", va="center", fontsize=_FONT,
            fontweight="bold")
    return top - _BAR


def _arrow(ax: plt.Axes, x0: float, y0: float, x1: float, y1: float) -> None:
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 0.9,
                            "shrinkA": 0, "shrinkB": 0, "mutation_scale": 10})


def _height(boxes: dict[str, list[str]], arms: list[str]) -> float:
    def box(lines: list[str]) -> float:
        return 2 * _PAD + _LINE * len(lines)

    height = 0.25 + 4 * _BAR + 4 * _GAP + 0.05 + box(boxes["randomised"])
    if "screen" in boxes:
        height += box(boxes["screen"]) + box(boxes["excluded"]) + _GAP
    for stage in ("allocated", "lost", "analysed"):
        height += max(box(boxes[f"{stage}:{a}"]) for a in arms)
    return height


def flow_figure(counts: pd.DataFrame, config: dict[str, Any]) -> Figure:
    """The CONSORT flow diagram (clusters and patients by arm) as a matplotlib figure.

    Parameters
    ----------
    counts : DataFrame
        From :func:`consort_counts`.
    config : dict
        The validated run configuration.
    """
    boxes = flow_boxes(counts, config)
    arms = arm_order(config, counts.loc[counts["arm"] != "all", "arm"])
    height = _height(boxes, arms)
    figure = Figure(figsize=(_WIDTH, height))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, _WIDTH)
    ax.set_ylim(0, height)
    ax.axis("off")
    centre, columns = _WIDTH / 2, (_WIDTH / 4, 3 * _WIDTH / 4)
    arm_width = _WIDTH / 2 - 0.3
    y = _stage(ax, height - 0.1, "Enrolment") - _GAP
    if "screen" in boxes:
        left, right = centre - 1.6, centre + 2.15
        _, screen_bottom = _box(ax, left, y, 3.0, boxes["screen"])
        ex_top, ex_bottom = _box(ax, right, screen_bottom - _GAP / 2, 3.3, boxes["excluded"],
                                 align="left")
        below = ex_bottom - _GAP / 2
        mid = (ex_top + ex_bottom) / 2
        _arrow(ax, left, mid, right - 1.65, mid)
        _arrow(ax, left, screen_bottom, left, below)
        y, fork_x = below, left
    else:
        fork_x = centre
    _, bottom = _box(ax, fork_x, y, 3.4, boxes["randomised"])
    fork = bottom - _GAP / 2
    ax.plot([fork_x, fork_x], [bottom, fork], color="black", lw=0.9)
    ax.plot([columns[0], columns[1]], [fork, fork], color="black", lw=0.9)
    y = _stage(ax, fork - 0.05, "Allocation") - _GAP / 2
    previous = {}
    for x, label in zip(columns, arms, strict=True):
        _arrow(ax, x, fork, x, y)
        previous[label] = _box(ax, x, y, arm_width, boxes[f"allocated:{label}"])[1]
    for stage, title in (("lost", "Follow-up"), ("analysed", "Analysis")):
        lowest = min(previous.values())
        y = _stage(ax, lowest - _GAP / 2, title) - _GAP / 2
        for x, label in zip(columns, arms, strict=True):
            _arrow(ax, x, previous[label], x, y)
            previous[label] = _box(ax, x, y, arm_width, boxes[f"{stage}:{label}"])[1]
    return figure
