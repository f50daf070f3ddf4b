"""Scenario grids for power planning: expand, split into chunks, run, gather, draw.

A grid is the ``power:`` section of the run configuration (validated against the config
schema, so every key is present). Its ``grid`` mapping lists values for each design quantity;
the scenarios are their Cartesian product, numbered ``0..S-1`` in C order of
:data:`GRID_KEYS` (the last key varies fastest). Chunk ``c`` of ``n`` takes the scenarios
whose number is ``c`` modulo ``n`` (round-robin, so expensive large designs are spread over
chunks). Simulated replicate ``r`` of scenario ``s`` draws from
``SeedSequence(seed, spawn_key=(s, r))`` (:func:`trialstats.power.simulate.replicate_rng`),
so chunks use disjoint, independent streams and the gathered table does not depend on the
number of chunks.

Planning inputs can also be taken from a finished analysis (:func:`inputs_from_analysis`).
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from trialstats.errors import TrialstatsError
from trialstats.power.analytic import power_continuous
from trialstats.power.simulate import SimulationDesign, simulate_power

#: Design quantities a grid may vary, in the order that numbers the scenarios.
GRID_KEYS = (
    "clusters_per_arm",
    "allocation_ratio",
    "cluster_size",
    "cv",
    "icc",
    "effect",
    "attrition",
    "rho_s",
    "rho_c",
)
METHODS = ("analytic", "simulation")
#: Columns of a grid table, in order.
GRID_COLUMNS = (
    "scenario",
    "method",
    *GRID_KEYS,
    "k_intervention",
    "baseline",
    "alpha",
    "power",
    "mc_se",
    "type_i_error",
    "type_i_error_mc_se",
    "design_effect",
    "df_method",
    "generator",
    "mean_df",
    "reps",
    "seed",
    "n_failed",
    "n_boundary",
    "mean_estimate",
    "empirical_se",
    "mean_se",
    "cluster_size_realised",
    "cv_realised",
    "cluster_size_analysed_realised",
)
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


def expand_grid(spec: dict[str, Any]) -> pd.DataFrame:
    """Expand the ``grid`` of a validated ``power:`` section into a scenario table.

    Parameters
    ----------
    spec : dict
        The ``power:`` section; ``spec["grid"]`` maps each of :data:`GRID_KEYS` to a list of
        values.

    Returns
    -------
    pandas.DataFrame
        One row per scenario: ``scenario`` (0..S-1) then one column per grid key.
    """
    grid = spec["grid"]
    values = [list(grid[key]) for key in GRID_KEYS]
    rows = list(itertools.product(*values))
    table = pd.DataFrame(rows, columns=list(GRID_KEYS))
    table["clusters_per_arm"] = table["clusters_per_arm"].astype(np.int64)
    table.insert(0, "scenario", np.arange(len(table), dtype=np.int64))
    return table


def chunk_scenarios(scenarios: pd.DataFrame, chunk: int, n_chunks: int) -> pd.DataFrame:
    """The scenarios of chunk ``chunk`` (0-based) of ``n_chunks``: numbers congruent mod n."""
    if n_chunks < 1 or not 0 <= chunk < n_chunks:
        raise TrialstatsError(f"Chunk {chunk} does not exist among {n_chunks} chunks.")
    return scenarios[scenarios["scenario"] % n_chunks == chunk].reset_index(drop=True)


def grid_workload(scenarios: pd.DataFrame, spec: dict[str, Any]) -> int | None:
    """Simulated replicates a grid run will perform (``None`` when nothing is simulated)."""
    if "simulation" not in spec["methods"]:
        return None
    return int(spec["reps"]) * len(scenarios)


def run_scenarios(
    scenarios: pd.DataFrame,
    spec: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Analytic and/or simulated power of each scenario.

    Parameters
    ----------
    scenarios : pandas.DataFrame
        Rows of :func:`expand_grid` (possibly one chunk of them).
    spec : dict
        The validated ``power:`` section: ``methods``, ``reps``, ``seed``, ``alpha``,
        ``df_method``, ``distribution``, ``baseline``, ``min_cluster_size``, ``generator``.
    progress : callable, optional
        Called with the number of replicates finished after each batch.

    Returns
    -------
    pandas.DataFrame
        The columns :data:`GRID_COLUMNS`, one row per scenario and method. Analytic rows have
        ``mc_se`` and the simulation diagnostics missing and ``df_method`` ``analytic-t`` or
        ``analytic-normal``; see :func:`trialstats.power.simulate.simulate_power` for the
        simulation columns.
    """
    rows: list[dict[str, Any]] = []
    for scenario in scenarios.to_dict("records"):
        k_c = int(scenario["clusters_per_arm"])
        k_i = int(np.ceil(scenario["allocation_ratio"] * k_c - 1e-9))
        if "analytic" in spec["methods"]:
            rows.append(_analytic_row(scenario, k_c, k_i, spec))
        if "simulation" in spec["methods"]:
            design = SimulationDesign(
                clusters_per_arm=k_c,
                k_intervention=k_i,
                cluster_size=scenario["cluster_size"],
                icc=scenario["icc"],
                effect=scenario["effect"],
                cv=scenario["cv"],
                attrition=scenario["attrition"],
                rho_s=scenario["rho_s"],
                rho_c=scenario["rho_c"],
                min_cluster_size=spec["min_cluster_size"],
                baseline=spec["baseline"],
            )
            row = simulate_power(
                design,
                reps=spec["reps"],
                seed=spec["seed"],
                df_method=spec["df_method"],
                alpha=spec["alpha"],
                scenario=int(scenario["scenario"]),
                progress=progress,
                generator=spec["generator"],
            )
            row.update(scenario=scenario["scenario"], allocation_ratio=scenario["allocation_ratio"])
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(GRID_COLUMNS))


def _analytic_row(
    scenario: dict[str, Any], k_c: int, k_i: int, spec: dict[str, Any]
) -> dict[str, Any]:
    frame = power_continuous(
        cluster_size=scenario["cluster_size"],
        icc=scenario["icc"],
        clusters_per_arm=k_c,
        k_intervention=k_i,
        effect=scenario["effect"],
        cv=scenario["cv"],
        alpha=spec["alpha"],
        attrition=scenario["attrition"],
        baseline=spec["baseline"],
        rho_c=scenario["rho_c"],
        rho_s=scenario["rho_s"],
        distribution=spec["distribution"],
    )
    row = dict(scenario)
    row.update(
        method="analytic",
        k_intervention=k_i,
        baseline=spec["baseline"],
        alpha=spec["alpha"],
        power=float(frame["power"].iloc[0]),
        design_effect=float(frame["design_effect"].iloc[0]),
        df_method=f"analytic-{spec['distribution']}",
        mean_df=float(frame["df"].iloc[0]),
    )
    return row


def gather(chunks: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Combine chunk tables into one, sorted by scenario and method.

    Raises
    ------
    TrialstatsError
        If a (scenario, method) appears twice or scenario numbers have gaps (a chunk is
        missing).
    """
    if not chunks:
        raise TrialstatsError("No chunk tables to gather.")
    table = pd.concat(list(chunks), ignore_index=True)
    missing = [c for c in ("scenario", "method") if c not in table.columns]
    if missing:
        raise TrialstatsError(f"Chunk tables lack the column(s) {', '.join(missing)}.")
    duplicated = table.duplicated(["scenario", "method"])
    if duplicated.any():
        first = table.loc[duplicated, ["scenario", "method"]].iloc[0]
        raise TrialstatsError(
            f"Scenario {first['scenario']} ({first['method']}) appears in more than one chunk."
        )
    present = set(table["scenario"].astype(int))
    gaps = sorted(set(range(max(present) + 1)) - present)
    if gaps:
        raise TrialstatsError(
            f"Scenarios {', '.join(map(str, gaps[:10]))} are missing: is a chunk left out?"
        )
    order = {m: i for i, m in enumerate(METHODS)}
    table = table.assign(_m=table["method"].map(order)).sort_values(["scenario", "_m"])
    return table.drop(columns="_m").reset_index(drop=True).reindex(columns=list(GRID_COLUMNS))


def varying_keys(table: pd.DataFrame) -> list[str]:
    """Grid keys that take more than one value in a grid table, in :data:`GRID_KEYS` order."""
    return [k for k in GRID_KEYS if len(pd.unique(table[k])) > 1]


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


def save_figure(figure: Figure, path: str | Path) -> None:
    """Write ``figure`` with deterministic metadata, so reruns give byte-identical files.

    The format follows the extension (``.svg``, ``.png`` or ``.pdf``). Dates and software
    versions are left out of the metadata and SVG element ids are salted with a constant.
    """
    from trialstats.data.io import write_atomically

    path = Path(path)
    metadata = {
        ".svg": {"Date": None, "Creator": "trialstats"},
        ".png": {"Software": "trialstats"},
        ".pdf": {"CreationDate": None, "ModDate": None, "Creator": "trialstats",
                 "Producer": "trialstats"},
    }
    suffix = path.suffix.lower()
    if suffix not in metadata:
        raise TrialstatsError(f"{path}: figures are written as .svg, .png or .pdf.")

    def write(tmp: Path) -> None:
        with matplotlib.rc_context({"svg.hashsalt": "trialstats", "svg.fonttype": "path"}):
            figure.savefig(tmp, format=suffix[1:], metadata=metadata[suffix], dpi=150)

    write_atomically(path, write)


def inputs_from_analysis(
    primary: pd.DataFrame,
    patients: pd.DataFrame | None,
    *,
    outcome: str,
    month: int | None = None,
    baseline_month: int = 0,
    cluster: str = "practice_id",
    source: str = "the analysis",
) -> dict[str, Any]:
    """Planning inputs from a finished analysis ("plan the next trial from this one").

    What is taken:

    - ``icc``: the ``icc`` column of the ``primary.csv`` row for ``outcome`` at ``month``
      (the latest month present when not given; the first row in file order, i.e. the
      primary df method, as all methods share the REML variance components). This is the
      ICC of the baseline-adjusted model.
    - ``sd``: ``sd_baseline`` of that row (converts raw differences to SD units).
    - ``mcid_effect``: ``mcid / sd_baseline`` when the row has an MCID (in raw units).
    - ``rho_s`` and ``rho_c``, when ``patients`` is given: from patients with both
      ``<outcome>_m<baseline_month>`` and ``<outcome>_m<month>`` observed, the one-way
      multivariate ANOVA (method of moments) estimates of the within-cluster covariance
      ``S_w = MSW`` and the between-cluster covariance ``S_b = (MSB - MSW) / n0`` of
      (baseline, follow-up), with ``n0 = (N - sum n_j**2 / N) / (J - 1)``;
      ``rho_s = S_w[0,1] / sqrt(S_w[0,0] S_w[1,1])`` and
      ``rho_c = S_b[0,1] / sqrt(S_b[0,0] S_b[1,1])`` clipped to [-1, 1]. ``rho_c`` is not
      taken when a between-cluster variance estimate is not positive.

    Parameters
    ----------
    primary : pandas.DataFrame
        The analysis' ``primary.csv``.
    patients : pandas.DataFrame or None
        The analysis-ready patients table (``data/patients.parquet``).
    outcome : str
        Outcome name (column stem).
    month, baseline_month : int
        Follow-up month of the row and the baseline month.
    cluster : str
        Cluster column of ``patients``.
    source : str
        Where the inputs come from, for messages.

    Returns
    -------
    dict
        ``icc``, ``sd``, optionally ``mcid_effect``, ``rho_s``, ``rho_c``, and ``notes``
        (one sentence per value taken, for the user).

    Raises
    ------
    TrialstatsError
        If the outcome or month has no row or the row has no ICC.
    """
    rows = primary[primary["outcome"] == outcome] if "outcome" in primary else primary.iloc[:0]
    if rows.empty:
        known = ", ".join(map(str, pd.unique(primary.get("outcome", pd.Series(dtype=str)))))
        raise TrialstatsError(
            f"{source}: primary.csv has no row for outcome {outcome!r} (outcomes: {known})."
        )
    months = sorted(int(m) for m in pd.unique(rows["month"]))
    if month is None:
        month = months[-1]
    elif month not in months:
        raise TrialstatsError(
            f"{source}: outcome {outcome!r} has no row for month {month} "
            f"(months: {', '.join(map(str, months))})."
        )
    row = rows[rows["month"] == month].iloc[0]
    icc = float(row["icc"])
    if not np.isfinite(icc):
        raise TrialstatsError(f"{source}: the {outcome} month-{month} row has no ICC.")
    taken: dict[str, Any] = {"icc": icc}
    notes = [
        f"icc = {icc:.6g} from primary.csv ({outcome}, month {month}, method {row['method']}; "
        "ICC of the baseline-adjusted model)"
    ]
    sd = float(row.get("sd_baseline", np.nan))
    if np.isfinite(sd) and sd > 0:
        taken["sd"] = sd
        notes.append(f"sd = sd_baseline = {sd:.6g} from primary.csv")
        mcid = float(row.get("mcid", np.nan))
        if np.isfinite(mcid):
            taken["mcid_effect"] = abs(mcid) / sd
    if patients is not None:
        rho_s, rho_c, n_pairs, n_clusters = _autocorrelations(
            patients, f"{outcome}_m{baseline_month}", f"{outcome}_m{month}", cluster, source
        )
        where = (f"{n_pairs} patients with months {baseline_month} and {month} in "
                 f"{n_clusters} clusters of data/patients.parquet (ANOVA estimates)")
        taken["rho_s"] = rho_s
        notes.append(f"baseline-corr (subject autocorrelation) = {rho_s:.6g} from {where}")
        if rho_c is not None:
            taken["rho_c"] = rho_c
            notes.append(f"cluster-autocorr = {rho_c:.6g} from {where}")
        else:
            notes.append("cluster-autocorr not estimable (a between-cluster variance estimate "
                         "is not positive); give --cluster-autocorr")
    taken["notes"] = notes
    return taken


def _autocorrelations(
    patients: pd.DataFrame, baseline: str, followup: str, cluster: str, source: str
) -> tuple[float, float | None, int, int]:
    """Within- and between-cluster correlations of (baseline, follow-up), ANOVA estimators."""
    missing = [c for c in (baseline, followup, cluster) if c not in patients.columns]
    if missing:
        raise TrialstatsError(
            f"{source}: data/patients.parquet lacks the column(s) {', '.join(missing)}."
        )
    pairs = patients[[cluster, baseline, followup]].dropna()
    codes, _ = pd.factorize(pairs[cluster])
    values = pairs[[baseline, followup]].to_numpy(dtype=float)
    n_obs, n_clusters = len(values), int(codes.max()) + 1 if len(codes) else 0
    if n_clusters < 2 or n_obs <= n_clusters:
        raise TrialstatsError(
            f"{source}: too few patients with both {baseline} and {followup} to estimate the "
            "autocorrelations; give --baseline-corr and --cluster-autocorr."
        )
    counts = np.bincount(codes, minlength=n_clusters).astype(float)
    sums = np.stack([np.bincount(codes, values[:, k], n_clusters) for k in (0, 1)], axis=1)
    means = sums / counts[:, None]
    within = values - means[codes]
    msw = within.T @ within / (n_obs - n_clusters)
    centred = means - values.mean(axis=0)
    msb = (centred * counts[:, None]).T @ centred / (n_clusters - 1)
    n0 = (n_obs - (counts**2).sum() / n_obs) / (n_clusters - 1)
    between = (msb - msw) / n0
    rho_s = float(msw[0, 1] / np.sqrt(msw[0, 0] * msw[1, 1]))
    rho_c = None
    if between[0, 0] > 0 and between[1, 1] > 0:
        rho_c = float(np.clip(between[0, 1] / np.sqrt(between[0, 0] * between[1, 1]), -1, 1))
    return rho_s, rho_c, n_obs, n_clusters

