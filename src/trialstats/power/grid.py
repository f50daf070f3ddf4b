"""Scenario grids for power planning: expand, split into chunks, run, gather.

A grid is the ``power:`` section of the run configuration (validated against the config
schema, so every key is present). Its ``grid`` mapping lists values for each design quantity;
the scenarios are their Cartesian product, numbered ``0..S-1`` in C order of
:data:`GRID_KEYS` (the last key varies fastest). Chunk ``c`` of ``n`` takes the scenarios
whose number is ``c`` modulo ``n`` (round-robin, so expensive large designs are spread over
chunks). Simulated replicate ``r`` of scenario ``s`` draws from
``SeedSequence(seed, spawn_key=(s, r))`` (:func:`trialstats.simulation.draw.replicate_rng`),
so chunks use disjoint, independent streams and the gathered table does not depend on the
number of chunks. The power curves of a grid table are drawn by
:mod:`trialstats.report.power_curves`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from trialstats.errors import TrialstatsError
from trialstats.power.analytic import power_continuous
from trialstats.power.simulate import simulate_power
from trialstats.simulation.draw import SimulationDesign

__all__ = [
    "GRID_COLUMNS",
    "GRID_KEYS",
    "METHODS",
    "chunk_scenarios",
    "expand_grid",
    "gather",
    "grid_workload",
    "run_scenarios",
    "varying_keys",
]

#: Design quantities a grid may vary, in the order that numbers the scenarios.
GRID_KEYS = (
    "clusters_per_arm", "allocation_ratio", "cluster_size", "cv", "icc", "effect", "attrition",
    "rho_s", "rho_c",
)
METHODS = ("analytic", "simulation")
#: Columns of a grid table, in order.
GRID_COLUMNS = (
    "scenario", "method", *GRID_KEYS, "k_intervention", "baseline", "alpha", "power", "mc_se",
    "type_i_error", "type_i_error_mc_se", "design_effect", "df_method", "generator", "mean_df",
    "reps", "seed", "n_failed", "n_boundary", "mean_estimate", "empirical_se", "mean_se",
    "cluster_size_realised", "cv_realised", "cluster_size_analysed_realised",
)


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
    scenarios: pd.DataFrame, spec: dict[str, Any], progress: Callable[[int], None] | None = None,
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
                clusters_per_arm=k_c, k_intervention=k_i, cluster_size=scenario["cluster_size"],
                icc=scenario["icc"], effect=scenario["effect"], cv=scenario["cv"],
                attrition=scenario["attrition"], rho_s=scenario["rho_s"], rho_c=scenario["rho_c"],
                min_cluster_size=spec["min_cluster_size"], baseline=spec["baseline"],
            )
            row = simulate_power(
                design, reps=spec["reps"], seed=spec["seed"], df_method=spec["df_method"],
                alpha=spec["alpha"], scenario=int(scenario["scenario"]), progress=progress,
                generator=spec["generator"],
            )
            row.update(scenario=scenario["scenario"], allocation_ratio=scenario["allocation_ratio"])
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(GRID_COLUMNS))


def _analytic_row(
    scenario: dict[str, Any], k_c: int, k_i: int, spec: dict[str, Any]
) -> dict[str, Any]:
    frame = power_continuous(
        cluster_size=scenario["cluster_size"], icc=scenario["icc"], clusters_per_arm=k_c,
        k_intervention=k_i, effect=scenario["effect"], cv=scenario["cv"], alpha=spec["alpha"],
        attrition=scenario["attrition"], baseline=spec["baseline"], rho_c=scenario["rho_c"],
        rho_s=scenario["rho_s"], distribution=spec["distribution"],
    )
    row = dict(scenario)
    row.update(
        method="analytic", k_intervention=k_i, baseline=spec["baseline"], alpha=spec["alpha"],
        power=float(frame["power"].iloc[0]), design_effect=float(frame["design_effect"].iloc[0]),
        df_method=f"analytic-{spec['distribution']}", mean_df=float(frame["df"].iloc[0]),
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


