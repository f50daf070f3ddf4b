"""The "Planning the next trial" section: power curves and the clusters needed for 80% and 90%.

Everything comes from the gathered power-grid table (``results/power/power.csv``, written by
``trialstats power gather``; columns :data:`trialstats.power.grid.GRID_COLUMNS`). A *scenario
family* is one combination of the grid quantities that vary other than clusters per arm (for
the default grid, one effect size and one ICC). For each family, method (analytic,
simulated) and target power, :func:`clusters_needed` finds the smallest number of clusters
per arm in the grid whose power reaches the target. The grid is coarse, so the requirement
is bracketed, not solved: it lies above the next smaller grid value and at most the value
found.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.contract import check_columns
from trialstats.errors import TrialstatsError
from trialstats.power.grid import GRID_KEYS, METHODS, varying_keys
from trialstats.report.document import FigureFile, Section, Table
from trialstats.report.format import Words, fmt_count, method_name
from trialstats.report.power_curves import (
    curve_axis,
    design_phrases,
    grid_label,
    power_curve_figure,
    split_curves,
)
from trialstats.report.render import render_figure

#: Target powers of the planning table.
TARGETS = (0.8, 0.9)

#: Columns the power table must have.
POWER_COLUMNS = (
    "scenario", "method", *GRID_KEYS, "baseline", "alpha", "power", "mc_se", "df_method",
    "generator", "reps", "seed",
)

_METHOD_LABELS = {"analytic": "analytic", "simulation": "simulated"}
_GENERATORS = {
    "patients": "every {participant} generated",
    "sums": "each {cluster}'s sufficient statistics drawn from their exact distribution",
}
_BASELINE_MODELS = {
    "ancova": "adjusted for the baseline score",
    "change": "of the change from baseline",
    "none": "of the follow-up score alone",
}


def check_power(power: pd.DataFrame, source: str) -> None:
    """Raise a user-facing error when the power table is empty or lacks a column."""
    check_columns(power, source, POWER_COLUMNS,
                  "is it the table written by `trialstats power gather`?")
    if power.empty:
        raise TrialstatsError(f"{source}: the power table has no rows.")


def family_keys(power: pd.DataFrame) -> tuple[str | None, list[str]]:
    """The grid quantities that define scenario families, split as in the power figure.

    Returns
    -------
    row : str or None
        The quantity with the most values (one table row, or figure curve, per value).
    groups : list of str
        The other varying quantities (one group of rows, or figure panel, per combination).
    """
    keys = [k for k in varying_keys(power) if k != "clusters_per_arm"]
    return split_curves(power, keys)


def clusters_needed(power: pd.DataFrame, targets: tuple[float, ...] = TARGETS) -> pd.DataFrame:
    """Smallest clusters per arm in the grid reaching each target power, per family and method.

    Parameters
    ----------
    power : pandas.DataFrame
        The gathered power-grid table.
    targets : tuple of float
        Target powers.

    Returns
    -------
    pandas.DataFrame
        One row per scenario family x method x target, ordered like the planning table
        (group keys, then the row key, then method and target), with the family's grid keys
        then ``method``, ``target_power``, ``clusters_per_arm`` (smallest grid value whose
        power is at least the target; missing when none is), ``previous_clusters_per_arm``
        (the next smaller grid value, below the target; missing when ``clusters_per_arm`` is
        the smallest or missing), ``largest_clusters_per_arm`` (of the grid), ``power`` and
        ``mc_se`` (at ``clusters_per_arm``; ``mc_se`` missing for analytic rows).

    Notes
    -----
    Power increases with the number of clusters, so the requirement lies in
    ``(previous_clusters_per_arm, clusters_per_arm]``. Simulated power carries Monte Carlo
    error, so near the target the simulated and analytic answers can differ by one grid
    step without disagreeing.
    """
    row_key, group_keys = family_keys(power)
    keys = [*group_keys, *([row_key] if row_key else [])]
    grid = sorted(pd.unique(power["clusters_per_arm"]))
    order = {m: i for i, m in enumerate(METHODS)}
    methods = sorted(pd.unique(power["method"]), key=lambda m: order.get(m, len(order)))
    families = power.groupby(keys, sort=True) if keys else [((), power)]
    rows: list[dict[str, Any]] = []
    for key, family in families:
        values = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        for method in methods:
            curve = family[family["method"] == method].sort_values("clusters_per_arm")
            for target in targets:
                reached = curve[curve["power"] >= target]
                row: dict[str, Any] = {
                    **values, "method": method, "target_power": target,
                    "clusters_per_arm": np.nan, "previous_clusters_per_arm": np.nan,
                    "largest_clusters_per_arm": grid[-1], "power": np.nan, "mc_se": np.nan,
                }
                if len(reached):
                    first = reached.iloc[0]
                    k = first["clusters_per_arm"]
                    smaller = [g for g in grid if g < k]
                    row.update(
                        clusters_per_arm=k,
                        previous_clusters_per_arm=smaller[-1] if smaller else np.nan,
                        power=first["power"], mc_se=first["mc_se"],
                    )
                rows.append(row)
    return pd.DataFrame(rows)


def _needed_cell(row: pd.Series) -> str:
    if not np.isfinite(row["clusters_per_arm"]):
        return f">{fmt_count(row['largest_clusters_per_arm'])}"
    prefix = "≤" if not np.isfinite(row["previous_clusters_per_arm"]) else ""
    return prefix + fmt_count(row["clusters_per_arm"])


def _percent(target: float) -> str:
    return f"{100 * target:g}%"


def planning_table(needed: pd.DataFrame, power: pd.DataFrame, number: int) -> Table:
    """The planning table from :func:`clusters_needed`: one row per scenario family.

    Parameters
    ----------
    needed : pandas.DataFrame
        From :func:`clusters_needed`.
    power : pandas.DataFrame
        The power table it was computed from (for the notes).
    number : int
        The table's number in the report.

    Returns
    -------
    Table
        Columns: the family, then per target power the analytic and simulated clusters per
        arm. Families are grouped under a heading per combination of the group keys of
        :func:`family_keys`, one row per value of its row key.
    """
    row_key, group_keys = family_keys(power)
    targets = list(dict.fromkeys(needed["target_power"]))
    methods = list(dict.fromkeys(needed["method"]))
    columns = (
        "Scenario",
        *(f"{_percent(t)} power, {_METHOD_LABELS.get(m, m)}" for t in targets for m in methods),
    )
    rows: list[tuple[str, ...]] = []
    depth: list[int] = []
    keys = [*group_keys, *([row_key] if row_key else [])]
    families = needed.groupby(keys, sort=False) if keys else [((), needed)]
    heading: tuple = ()
    for key, family in families:
        values = key if isinstance(key, tuple) else (key,)
        if group_keys and values[:-1] != heading:
            heading = values[:-1]
            label = ", ".join(grid_label(k, v) for k, v in zip(group_keys, heading, strict=True))
            rows.append((label[:1].upper() + label[1:], *[""] * (len(columns) - 1)))
            depth.append(0)
        by_cell = {(r["method"], r["target_power"]): r for _, r in family.iterrows()}
        label = grid_label(row_key, values[-1]) if row_key else "Planned design"
        rows.append((label, *(_needed_cell(by_cell[(m, t)]) for t in targets for m in methods)))
        depth.append(1 if group_keys else 0)
    return Table(
        name="planning_power",
        title=f"Table {number}. Clusters per arm needed for "
        + " and ".join(_percent(t) for t in targets) + " power",
        columns=columns, rows=tuple(rows), depth=tuple(depth),
        notes=_planning_notes(power), data=needed,
    )


def _planning_notes(power: pd.DataFrame) -> str:
    grid = sorted(pd.unique(power["clusters_per_arm"]))
    notes = (
        "Smallest number of clusters per arm among those computed ("
        + ", ".join(f"{k:g}" for k in grid)
        + ") at which power reaches the target; the requirement lies between the next "
        f"smaller value and this one. ≤{grid[0]:g}: reached at the smallest value computed; "
        f">{grid[-1]:g}: not reached."
    )
    simulated = power[power["method"] == "simulation"]
    if len(simulated):
        notes += (
            f" Simulated: share of {int(simulated['reps'].iloc[0]):,} simulated trials "
            f"significant at two-sided α {simulated['alpha'].iloc[0]:g} (Monte Carlo SE at "
            f"most {simulated['mc_se'].max():.3f})."
        )
    if (power["allocation_ratio"] != 1).any():
        notes += (" With unequal allocation the count is of control clusters; the "
                  "intervention arm has the allocation ratio times as many, rounded up.")
    phrases = [p for p in design_phrases(power) if not p.startswith("clusters per arm")]
    return notes + " Every scenario: " + ", ".join(phrases) + "."


def planning_references(power: pd.DataFrame) -> list[str]:
    """Keys of :data:`trialstats.report.methods.REFERENCES` cited by :func:`planning_methods`."""
    keys = []
    if (power["method"] == "analytic").any():
        keys.append("eldridge")
        if (power["baseline"] != "none").any():
            keys.append("teerenstra")
    if (power["method"] == "simulation").any():
        keys.append("morris")
    return keys


def _generator(generator: str, w: Words) -> str:
    text = _GENERATORS.get(generator, f"{generator} generator")
    return text.format(cluster=w.cluster, participant=w.participant)


def _baseline_model(baseline: str) -> str:
    return _BASELINE_MODELS.get(baseline, f"with baseline handling {baseline!r}")


def planning_methods(power: pd.DataFrame, cite: dict[str, int], w: Words | None = None) -> str:
    """One sentence of methods: how power was computed (analytic formula, simulation engine,
    replicates, df method and seed), read from the power table itself.

    Parameters
    ----------
    power : pandas.DataFrame
        The gathered power-grid table.
    cite : dict
        Reference number of each key of :func:`planning_references`.
    w : Words, optional
        The trial's words (default: practice, patient).
    """
    w = w or Words()

    def ref(*keys: str) -> str:
        present = [str(cite[k]) for k in keys if k in cite]
        return f" [{', '.join(present)}]" if present else ""

    n = int(power["scenario"].nunique())
    ways = []
    analytic = power[power["method"] == "analytic"]
    if len(analytic):
        distribution = (
            f"noncentral t distribution with {w.clusters} minus 2 degrees of freedom"
            if str(analytic["df_method"].iloc[0]) == "analytic-t"
            else "normal approximation"
        )
        adjustment = ("" if str(analytic["baseline"].iloc[0]) == "none"
                      else f" with adjustment for the baseline score{ref('teerenstra')}")
        ways.append(
            f"analytically (design effect for variable {w.cluster} sizes"
            f"{ref('eldridge')}{adjustment}; {distribution})"
        )
    simulated = power[power["method"] == "simulation"]
    if len(simulated):
        first = simulated.iloc[0]
        df = str(first["df_method"])
        df_text = ("a normal reference distribution (Wald z)" if df == "z"
                   else f"{method_name(df)} degrees of freedom")
        ways.append(
            f"by simulation ({int(first['reps']):,} trials per scenario, "
            f"{_generator(str(first['generator']), w)}, base seed {int(first['seed'])} with an "
            "independent random-number stream for every scenario and trial; each trial "
            f"analysed by restricted maximum likelihood with a random intercept for {w.cluster}, "
            f"{_baseline_model(str(first['baseline']))}, and {df_text}; Monte Carlo standard "
            f"errors{ref('morris')})"
        )
    return (
        f"To plan the next trial, power was computed for each of the {n} scenarios of the "
        f"planning grid {' and '.join(ways)}."
    )


def planning_figure(power: pd.DataFrame, number: int) -> FigureFile:
    """The power curves of :func:`trialstats.power.grid.power_curve_figure`, captioned."""
    shown = []
    if (power["method"] == "analytic").any():
        shown.append("analytic (lines)")
    if (power["method"] == "simulation").any():
        shown.append("simulated (points with 95% Monte Carlo intervals)")
    return render_figure(
        power_curve_figure(power), "power_curves",
        f"Figure {number}. Power of the next trial by {grid_label(curve_axis(power))}: "
        + " and ".join(shown),
    )


def planning_section(
    power: pd.DataFrame, cite: dict[str, int], *, table: int, figure: int,
    w: Words | None = None,
) -> Section:
    """The "Planning the next trial" section: methods sentence, power curves, planning table.

    Parameters
    ----------
    power : pandas.DataFrame
        The gathered power-grid table (checked with :func:`check_power`).
    cite : dict
        Reference number of each key of :func:`planning_references`.
    table, figure : int
        Numbers of the section's table and figure in the report.
    w : Words, optional
        The trial's words (default: practice, patient).
    """
    return Section("Planning the next trial", (
        planning_methods(power, cite, w),
        planning_figure(power, figure),
        planning_table(clusters_needed(power), power, table),
    ))
