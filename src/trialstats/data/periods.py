r"""Stepped-wedge, crossover and parallel-baseline trials: checking the tables and building the
analysis-ready data.

Design
------
Cluster :math:`i` is randomised to a sequence :math:`s(i)`; each sequence is under the
intervention in a set of periods :math:`P_s`, so that the treatment of a measurement in period
:math:`t` is :math:`X_{it} = 1[t \in P_{s(i)}]`. The practices table gives each cluster's
``sequence`` and ``switch_period`` (columns named by ``design.sequence`` and
``design.switch_period``):

- ``stepped-wedge`` and ``parallel-baseline``: the first period under the intervention,
  :math:`P_s = \{t : t \ge \text{switch}_s\}` (blank: never, e.g. the control sequence of a
  parallel-baseline design);
- ``crossover``: every period under the intervention, separated by ``;`` (``2`` for AB and
  ``1`` for BA in a 2 x 2 crossover; ``1;3`` for ABAB), whose first is the first period
  under the intervention as in the stepped wedge.

The patients table is long and cross-sectional: one row per participant, measured once, in
the period named by ``design.period_column``, with one column per outcome. Exposure time (for
``analysis.time_on_treatment``) counts the periods since the switch,
:math:`E_{it} = t - \text{switch}_{s(i)} + 1` under the intervention and 0 under control
(Kenny et al. 2022, *Stat. Med.* 41:4289); periods are numbered by their position in the
design's period list.

Every problem is reported with file, rows and column as in :mod:`trialstats.data.validate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trialstats.data.io import read_input
from trialstats.data.validate import (
    TREATED,
    Trial,
    _as_id,
    _check_ids,
    _exposure_problems,
    _keyed_table,
    _missing_columns,
    _numeric_outcomes,
    _raise,
    _rows,
    _to_number,
    _values,
    _withdrawn_flags,
    covariate_problems,
    with_covariates,
)

#: Column added to the patients table: periods since the switch (0 under control); not
#: "exposure", the usual name of a count outcome's person-time column.
EXPOSURE = "exposure_time"
#: Column added to the patients table: the period's position in the design, 0 .. T - 1.
PERIOD_INDEX = "period_index"


def is_period_design(config: dict[str, Any]) -> bool:
    """Whether the configured design has periods (anything but ``parallel``, the default)."""
    return config["design"].get("type", "parallel") != "parallel"


def _parse_switch(value: Any, crossover: bool) -> tuple[float, ...] | None:
    """The periods of a ``switch_period`` cell (empty: never), or None if unreadable."""
    if pd.isna(value) or str(value).strip() == "":
        return ()
    parts = str(value).split(";") if crossover else [str(value)]
    numbers = _to_number(pd.Series(parts))
    if numbers.isna().any() or (numbers % 1 != 0).any():
        return None
    return tuple(sorted(numbers))


def check_period_practices(
    raw: pd.DataFrame, config: dict[str, Any], path: Path
) -> pd.DataFrame:
    """Validate the practices table of a period design.

    Returns
    -------
    DataFrame
        The table with text ids and sequences, ``withdrawn`` (bool) and ``switch_period``
        normalised to text (whole numbers joined by ``;``, "" = never).

    Raises
    ------
    TrialstatsError
        Missing columns, missing or duplicate ids, a practice without a sequence, a switch
        period that is not a whole number, practices of one sequence that disagree on it, a
        stepped-wedge or crossover sequence never under the intervention, or fewer than two
        sequences.
    """
    design = config["design"]
    cluster, sequence, switch = design["cluster"], design["sequence"], design["switch_period"]
    _raise(_missing_columns(raw, [cluster, sequence, switch], path))
    practices, problems, _ = _keyed_table(
        raw, cluster, sequence, path, "practice",
        f"sequence (every cluster of a {design['type']} design needs one)",
    )
    parsed = practices[switch].map(lambda v: _parse_switch(v, design["type"] == "crossover"))
    unreadable = parsed.isna()
    if unreadable.any():
        form = "whole numbers separated by ';'" if design["type"] == "crossover" else (
            "a whole number")
        problems.append(f"{path}, column '{switch}': values "
                        f"{_values(practices[switch][unreadable])} at {_rows(unreadable)} are "
                        f"not {form} (blank = never treated).")
    _raise(problems)
    practices[switch] = parsed.map(lambda p: ";".join(str(int(t)) for t in p))
    per_sequence = practices.groupby(sequence)[switch].nunique()
    mixed = practices[sequence].isin(per_sequence[per_sequence > 1].index)
    if mixed.any():
        problems.append(f"{path}, column '{switch}': practices of one sequence must share the "
                        f"switch period, but sequences {_values(practices[sequence][mixed])} have "
                        f"several (at {_rows(mixed)}).")
    if design["type"] != "parallel-baseline":
        never = practices[switch] == ""
        if never.any():
            problems.append(f"{path}, column '{switch}': {_rows(never)} have no switch period; "
                            f"every sequence of a {design['type']} design is treated at some time.")
    if practices[sequence].nunique() < 2:
        problems.append(f"{path}, column '{sequence}': a {design['type']} design needs at "
                        f"least two sequences.")
    problems += _withdrawn_flags(practices, design, path)
    _raise(problems)
    return practices


def _design_periods(periods: pd.Series, config: dict[str, Any]) -> list[int]:
    """The design's periods: ``design.periods`` or those found, sorted."""
    listed = config["design"]["periods"]
    return sorted(listed) if listed is not None else sorted(int(p) for p in periods.dropna()
                                                           .unique())


def check_period_patients(
    raw: pd.DataFrame, practices: pd.DataFrame, config: dict[str, Any], path: Path,
    practices_path: Path,
) -> pd.DataFrame:
    """Validate the long patients table of a period design against its (validated) practices.

    Returns
    -------
    DataFrame
        One row per participant: text ids, the sequence, the period as an integer,
        :data:`PERIOD_INDEX`, ``treated`` (:math:`X_{it}`), :data:`EXPOSURE`, float outcomes
        and typed covariates (practice-level ones merged in).

    Raises
    ------
    TrialstatsError
        Missing columns, missing or duplicate participant ids, unknown practices, periods that
        are not whole numbers or outside the design, switch periods outside the design, a
        cluster whose arm column switches back to control (or disagrees with its sequence), a
        sequence without clusters with participants, bad scores or covariates.
    """
    design = config["design"]
    cluster, patient, period = design["cluster"], design["patient"], design["period_column"]
    sequence, switch = design["sequence"], design["switch_period"]
    names = [o["name"] for o in config["outcomes"]]
    _raise(_missing_columns(raw, [patient, cluster, period, *names], path))
    patients = raw.reset_index(drop=True)
    patients[patient] = _as_id(patients[patient])
    patients[cluster] = _as_id(patients[cluster])
    problems = _check_ids(patients[patient], patient, path, "participant")
    unknown = patients[cluster].isna() | ~patients[cluster].isin(practices[cluster])
    if unknown.any():
        problems.append(f"{path}, column '{cluster}': practices "
                        f"{_values(patients[cluster][unknown])} at {_rows(unknown)} are not in "
                        f"{practices_path}.")
    numbers = _to_number(patients[period])
    bad = numbers.isna() | (numbers % 1 != 0)
    if bad.any():
        problems.append(f"{path}, column '{period}': {_rows(bad)} have no period as a whole "
                        f"number (values {_values(patients[period][bad])}).")
    _raise(problems)
    periods = _design_periods(numbers, config)
    outside = ~numbers.isin(periods)
    if outside.any():
        problems.append(f"{path}, column '{period}': periods "
                        f"{_values(numbers[outside].astype(int))} at {_rows(outside)} are outside "
                        f"the design (design.periods: {periods}).")
    treated_periods = practices[switch].map(
        lambda text: tuple(int(t) for t in text.split(";")) if text else ())
    off = treated_periods.map(lambda ts: any(t not in periods for t in ts))
    if off.any():
        problems.append(f"{practices_path}, column '{switch}': switch periods "
                        f"{_values(practices[switch][off])} at {_rows(off)} are not periods of "
                        f"the design ({periods}).")
    _raise(problems)
    patients[period] = numbers.astype(int)
    patients[sequence] = patients[cluster].map(dict(zip(practices[cluster], practices[sequence],
                                                        strict=True)))
    first = patients[cluster].map(dict(zip(practices[cluster], treated_periods, strict=True)))
    if design["type"] == "crossover":
        on = pd.Series([t in ts for t, ts in zip(patients[period], first, strict=True)])
        exposure = on.astype(int)
    else:
        start = first.map(lambda ts: ts[0] if len(ts) else np.inf)
        on = patients[period] >= start
        position = {p: i for i, p in enumerate(periods)}
        exposure = np.where(on, patients[period].map(position) - start.map(
            lambda s: position.get(s, 0)) + 1, 0)
    problems += _arm_column(patients, on, config, path)
    empty = sorted(set(practices[sequence]) - set(patients[sequence]))
    if empty:
        problems.append(f"{practices_path}, column '{sequence}': sequences "
                        f"{', '.join(map(repr, empty))} have no clusters with participants in "
                        f"{path}; the design cannot be analysed as randomised.")
    problems += _numeric_outcomes(patients, config, path,
                                  list(zip(names, config["outcomes"], strict=True)))
    problems += _exposure_problems(patients, config, path, long=True)
    problems += covariate_problems(patients, practices, config, path, practices_path)
    _raise(problems)
    patients[PERIOD_INDEX] = patients[period].map({p: i for i, p in enumerate(periods)})
    patients[TREATED] = on.astype(int).to_numpy()
    patients[EXPOSURE] = np.asarray(exposure, dtype=int)
    return with_covariates(patients, practices, config)


def _arm_column(patients: pd.DataFrame, on: pd.Series, config: dict[str, Any],
                path: Path) -> list[str]:
    """Problems with an optional per-row arm column (``design.arm``): a cluster that returns
    to control after the intervention started (one-way designs), or rows disagreeing with the
    treatment their sequence and period imply."""
    design = config["design"]
    arm, cluster, period = design["arm"], design["cluster"], design["period_column"]
    if arm not in patients.columns:
        return []
    label = _as_id(patients[arm])
    given = (label == design["intervention"]).where(label.notna())
    problems = []
    if design["type"] != "crossover":
        order = pd.DataFrame({"c": patients[cluster], "t": patients[period], "x": given})
        order = order.dropna().sort_values(["c", "t"])
        started = order.groupby("c")["x"].cummax().astype(bool)
        back = order.index[started.to_numpy() & ~order["x"].astype(bool).to_numpy()]
        if len(back):
            mask = patients.index.isin(back)
            return [f"{path}, column '{arm}': clusters {_values(patients[cluster][mask])} switch "
                    f"back to control after the intervention started (at {_rows(mask)}); a "
                    f"{design['type']} cluster stays under the intervention."]
    disagree = given.notna() & (given.astype("boolean") != on.to_numpy())
    if disagree.any():
        problems.append(f"{path}, column '{arm}': {_rows(disagree)} disagree with the treatment "
                        f"their cluster's sequence and switch period give in that period.")
    return problems


def load_period_trial(config: dict[str, Any]) -> Trial:
    """Read and validate the tables of a period design (see the module docstring)."""
    practices_path = Path(config["data"]["practices"])
    patients_path = Path(config["data"]["patients"])
    practices = check_period_practices(read_input(config, "practices"), config, practices_path)
    patients = check_period_patients(read_input(config, "patients"), practices, config,
                                     patients_path, practices_path)
    return Trial(practices, patients, config)


def cluster_periods(patients: pd.DataFrame, config: dict[str, Any], outcome: str) -> pd.DataFrame:
    """The cluster-period table of one outcome: one row per measured cluster-period.

    Returns
    -------
    DataFrame
        Columns: the cluster, the sequence, the period, :data:`PERIOD_INDEX`, ``treated``,
        :data:`EXPOSURE`, ``n_participants`` (rows), ``n`` (observed values) and ``mean`` of
        the outcome (NaN when none is observed), sorted by cluster and period.
    """
    design = config["design"]
    keys = [design["cluster"], design["sequence"], design["period_column"], PERIOD_INDEX,
            TREATED, EXPOSURE]
    grouped = patients.groupby(keys, sort=True)[outcome]
    table = pd.DataFrame({"n_participants": grouped.size(), "n": grouped.count(),
                          "mean": grouped.mean()})
    return table.reset_index()


def summarise_periods(trial: Trial) -> str:
    """A plain-text summary of a valid period design: clusters and participants by sequence
    and period, treatment shown as ``*`` (intervention) or ``.`` (control)."""
    design = trial.config["design"]
    cluster, sequence, period = design["cluster"], design["sequence"], design["period_column"]
    patients = trial.patients
    counts = patients.pivot_table(index=sequence, columns=period, values=TREATED,
                                  aggfunc=["size", "max"])
    clusters = trial.practices.groupby(sequence)[cluster].size()
    width = 9
    lines = [f"Valid {design['type']} trial.", "",
             "Participants per sequence and period (* = under the intervention):",
             f"{'sequence':<12}{'clusters':>9}" + "".join(f"{p:>{width}}" for p in
                                                          counts["size"].columns)]
    for label, row in counts["size"].iterrows():
        marks = ["" if pd.isna(n) else f"{int(n):,}" + ("*" if counts["max"].loc[label, p]
                                                          else " ") for p, n in row.items()]
        cells = "".join(f"{mark:>{width}}" for mark in marks)
        lines.append(f"{label:<12}{int(clusters.get(label, 0)):>9}{cells}")
    lines.append(f"{'total':<12}{len(trial.practices):>9}{len(patients):>{width},}"
                 " participants")
    return "\n".join(lines)


def period_completeness(patients: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """Observed values of every outcome by condition, in the columns of
    :func:`trialstats.data.validate.completeness`: ``arm`` is the condition of the
    measurement (``intervention`` or ``control`` period, then ``all``) and ``month``
    ``design.primary_month``, as in the results."""
    rows = []
    condition = np.where(patients[TREATED] == 1, "intervention", "control")
    for outcome in config["outcomes"]:
        column = patients[outcome["name"]]
        for label in ["intervention", "control", "all"]:
            mask = condition == label if label != "all" else np.ones(len(column), dtype=bool)
            n, observed = int(mask.sum()), int(column[mask].notna().sum())
            rows.append({"outcome": outcome["name"], "month": config["design"]["primary_month"],
                         "arm": label, "n_patients": n, "n_observed": observed,
                         "percent_observed": 100 * observed / n if n else np.nan})
    return pd.DataFrame(rows)
