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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
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
_INK = ("#1f3b57", "#b5562b", "#3f7f3a", "#7a4c9a", "#8c8c3a", "#2c8c99", "#a23b72", "#555555")


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


def power_curve_figure(table: pd.DataFrame, x: str = "clusters_per_arm") -> Figure:
    """Power against one design quantity, one curve per combination of the others.

    Analytic power is drawn as a line, simulated power as points with 95% Monte Carlo
    intervals (``power ± 1.96 mc_se``); dotted lines mark 80% and 90% power.

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
    varying = [k for k in GRID_KEYS if len(pd.unique(table[k])) > 1]
    if x not in varying and varying:
        x = varying[0]
    groups = [k for k in varying if k != x]
    figure = Figure(figsize=(7.0, 4.5))
    ax = figure.add_axes((0.1, 0.12, 0.58, 0.8))
    for level in (0.8, 0.9):
        ax.axhline(level, color="#999999", lw=0.8, ls=":", zorder=0)
    keyed = table.sort_values(x)
    grouped = keyed.groupby(groups, sort=True) if groups else [((), keyed)]
    for i, (key, part) in enumerate(grouped):
        colour = _INK[i % len(_INK)]
        values = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{g} {v:g}" for g, v in zip(groups, values, strict=True)) or "power"
        analytic = part[part["method"] == "analytic"]
        if len(analytic):
            ax.plot(analytic[x], analytic["power"], color=colour, lw=1.4, label=f"{label}")
        simulated = part[part["method"] == "simulation"]
        if len(simulated):
            ax.errorbar(
                simulated[x], simulated["power"], yerr=1.96 * simulated["mc_se"], fmt="o",
                ms=4, color=colour, capsize=2, lw=1.0,
                label=f"{label} (simulated)" if len(analytic) else label,
            )
    if x == "clusters_per_arm":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel("power")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fixed = ", ".join(f"{k.replace('_', ' ')} {table[k].iloc[0]:g}"
                      for k in GRID_KEYS if k not in varying)
    ax.set_title(f"Lines: analytic; points: simulated (95% Monte Carlo interval)\n{fixed}",
                 fontsize=8)
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

