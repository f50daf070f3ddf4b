"""Checking a trial's tables against the data contract and building the analysis-ready data.

The contract (see ``config/README.md``): a practices table with one row per randomised
cluster (id, arm with exactly two labels, optional ``withdrawn`` flag, cluster covariates)
and a patients table with one row per recruited patient (id, cluster id, covariates and
outcomes as ``<outcome>_m<month>``), or in long format one row per patient per measurement
(the month in ``data.month_column``, one column per outcome), which is checked and then
reshaped to the wide table holding the same values. Every problem found is reported with
the file, the column and the first offending rows (spreadsheet numbering: header = row 1);
nothing is dropped or repaired silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trialstats.data.io import first_data_row, read_input
from trialstats.data.outcome_types import (
    bad_exposure,
    binary_looking,
    code_labels,
    disallowed,
)
from trialstats.errors import TrialstatsError

#: Column added to both tables: 1 for the intervention arm, 0 for control.
TREATED = "treated"
_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
_SHOWN_ROWS = 5
# Largest magnitude accepted as a score: beyond it sums of squares over a large trial lose all
# precision or overflow (1e308), and no instrument scores that high.
_SCORE_LIMIT = 1e15


@dataclass(frozen=True)
class Trial:
    """A validated trial.

    Attributes
    ----------
    practices : DataFrame
        One row per randomised cluster: the cluster id (text), the arm label, ``treated``
        (1 intervention, 0 control), ``withdrawn`` (bool) and the other practice columns.
    patients : DataFrame
        One row per patient: the ids (text), ``treated``, the arm label, covariates (numbers,
        or text for categorical ones, practice-level ones merged in), and every configured
        outcome column as float (NaN = missing).
    config : dict
        The validated configuration the trial was checked against.
    notes : tuple of str
        What validation left out or changed, one sentence each (printed in the summary).
    """

    practices: pd.DataFrame
    patients: pd.DataFrame
    config: dict[str, Any]
    notes: tuple[str, ...] = ()


def outcome_column(name: str, month: int) -> str:
    """Column holding outcome ``name`` at ``month``: ``<name>_m<month>``."""
    return f"{name}_m{month}"


def baseline_month_of(outcome: dict[str, Any], design: dict[str, Any]) -> int | None:
    """The month of ``outcome``'s baseline measurement, or None with ``baseline: false``."""
    return design["baseline_month"] if outcome.get("baseline", True) else None


def outcome_months(outcome: dict[str, Any], design: dict[str, Any]) -> list[int]:
    """Months at which ``outcome`` is measured: the baseline (unless ``baseline: false``),
    then the follow-up months."""
    baseline = [design["baseline_month"]] if outcome.get("baseline", True) else []
    return [*baseline, *design["followup_months"]]


def outcome_columns(config: dict[str, Any]) -> list[str]:
    """Every outcome column the configuration needs, baseline first within each outcome."""
    design = config["design"]
    return [
        outcome_column(o["name"], m) for o in config["outcomes"] for m in outcome_months(o, design)
    ]


def _rows(mask: pd.Series | np.ndarray) -> str:
    """The spreadsheet rows where ``mask`` holds: a Series's index labels are the rows'
    positions in the file (a reshaped long table keeps each patient's first row)."""
    if isinstance(mask, pd.Series) and pd.api.types.is_integer_dtype(mask.index):
        positions = mask.index.to_numpy()[mask.to_numpy(dtype=bool)]
    else:
        positions = np.flatnonzero(np.asarray(mask))
    index = positions + first_data_row()
    shown = ", ".join(str(i) for i in index[:_SHOWN_ROWS])
    more = f" and {len(index) - _SHOWN_ROWS} more" if len(index) > _SHOWN_ROWS else ""
    return f"row{'s' if len(index) > 1 else ''} {shown}{more}"


def _have(mask: pd.Series | np.ndarray) -> str:
    return "have" if np.count_nonzero(np.asarray(mask)) > 1 else "has"


def _values(series: pd.Series) -> str:
    shown = list(dict.fromkeys(str(v) for v in series))[:_SHOWN_ROWS]
    return ", ".join(repr(v) for v in shown)


def _as_id(series: pd.Series) -> pd.Series:
    """Identifiers as text, so that 7, 7.0 and '7' from different formats all match."""
    def text(value: Any) -> Any:
        if pd.isna(value):
            return pd.NA
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value).strip()

    return series.map(text).astype("string")


def _to_number(series: pd.Series) -> pd.Series:
    """Numbers as float; cells that are not numbers become NaN (the caller compares)."""
    if pd.api.types.is_numeric_dtype(series):  # booleans included
        return series.astype(float)
    # Commas were decided by the reader (data.io: thousands separators or decimal commas,
    # per file and column, or refused); one left here is not a number.
    text = series.astype("string").str.strip()
    return pd.to_numeric(text, errors="coerce").astype(float)


def _missing_columns(frame: pd.DataFrame, columns: list[str], path: Path) -> list[str]:
    absent = [c for c in columns if c not in frame.columns]
    if not absent:
        return []
    return [
        f"{path}: required column{'s' if len(absent) > 1 else ''} "
        f"{', '.join(repr(c) for c in absent)} not found; the file has: "
        f"{', '.join(map(str, frame.columns))}."
    ]


def _raise(problems: list[str]) -> None:
    if problems:
        raise TrialstatsError("Invalid input:\n" + "\n".join(f"  - {p}" for p in problems))


def _check_ids(ids: pd.Series, column: str, path: Path, what: str) -> list[str]:
    problems = []
    if ids.isna().any():
        problems.append(
            f"{path}, column '{column}': {_rows(ids.isna())} {_have(ids.isna())} no {what} id."
        )
    duplicated = ids.notna() & ids.duplicated(keep=False)
    if duplicated.any():
        problems.append(
            f"{path}, column '{column}': duplicate {what} ids {_values(ids[duplicated])} "
            f"at {_rows(duplicated)}."
        )
    return problems


def _keyed_table(raw: pd.DataFrame, key: str, reference: str, path: Path, what: str,
                 lacking: str) -> tuple[pd.DataFrame, list[str], pd.Series]:
    """A copy of ``raw`` with the id column ``key`` and the column ``reference`` placing each
    row (arm, sequence, practice) as text; the problems of the ids (``what`` names a row) and
    of the rows with no ``reference`` ("has no ``lacking``"); the mask of those rows."""
    table = raw.copy()
    table[key], table[reference] = _as_id(table[key]), _as_id(table[reference])
    problems = _check_ids(table[key], key, path, what)
    absent = table[reference].isna()
    if absent.any():
        problems.append(f"{path}, column '{reference}': {_rows(absent)} {_have(absent)} no "
                        f"{lacking}.")
    return table, problems, absent


def _withdrawn_flags(practices: pd.DataFrame, design: dict[str, Any], path: Path) -> list[str]:
    """Parse the optional ``design.withdrawn`` column of ``practices`` in place to booleans
    (all False when the column is absent; blank means not withdrawn); return its problems."""
    name = design["withdrawn"]
    column = practices.get(name, pd.Series(False, index=practices.index))
    text = column.astype("string").str.strip().str.lower()
    known = text.isna() | text.isin(_TRUE | _FALSE)
    if not known.all():
        return [f"{path}, column '{name}': values {_values(column[~known])} at {_rows(~known)} "
                f"are not true/false (use true/false, yes/no or 1/0; blank means not withdrawn)."]
    practices[name] = text.isin(_TRUE).astype(bool)
    return []


def check_practices(raw: pd.DataFrame, config: dict[str, Any], path: Path) -> pd.DataFrame:
    """Validate the practices table and return it with text ids, ``treated`` and ``withdrawn``.

    Raises
    ------
    TrialstatsError
        Missing columns, missing or duplicate ids, a practice with no arm, other than two
        arm labels, the intervention label absent, an unreadable withdrawn flag, or fewer
        than two randomised clusters in an arm.
    """
    design = config["design"]
    cluster, arm = design["cluster"], design["arm"]
    _raise(_missing_columns(raw, [cluster, arm], path))
    practices, problems, no_arm = _keyed_table(raw, cluster, arm, path, "practice", "arm")
    counts = practices[arm].value_counts()
    intervention = design["intervention"]
    if intervention not in counts.index:
        problems.append(f"{path}, column '{arm}': the intervention label '{intervention}' "
                        f"(design.intervention) does not occur; labels found: "
                        f"{', '.join(map(repr, counts.index))}.")
    elif len(counts) > 2:
        control = counts.drop(intervention).index[0]
        extra = ~practices[arm].isin([intervention, control]) & ~no_arm
        problems.append(f"{path}, column '{arm}': exactly two arm labels are allowed but found "
                        f"{len(counts)} ({', '.join(f'{k!r}: {v}' for k, v in counts.items())}); "
                        f"unexpected labels {_values(practices[arm][extra])} at {_rows(extra)}.")
    elif len(counts) < 2:
        problems.append(f"{path}, column '{arm}': only one arm label ({intervention!r}) found.")
    problems += _withdrawn_flags(practices, design, path)
    _raise(problems)
    small = counts[counts < 2]
    if len(small):
        _raise([
            f"{path}, column '{arm}': every arm needs at least two randomised clusters; "
            f"{', '.join(f'{k!r} has {v}' for k, v in small.items())}."
        ])
    practices[TREATED] = (practices[arm] == intervention).astype(int)
    return practices


def _numeric_outcomes(
    patients: pd.DataFrame, config: dict[str, Any], path: Path,
    columns: list[tuple[str, dict[str, Any]]] | None = None,
) -> list[str]:
    """Turn the outcome columns into floats in place; problems for non-numbers and values
    outside the outcome's range. ``columns`` pairs each column with its outcome (default:
    every wide-format outcome column)."""
    problems = []
    design = config["design"]
    if columns is None:
        columns = [(outcome_column(o["name"], m), o) for o in config["outcomes"]
                   for m in outcome_months(o, design)]
    for column, outcome in columns:
        raw, labels = patients[column], outcome.get("labels")
        values = _to_number(raw) if labels is None else code_labels(raw, labels)
        bad = raw.notna() & values.isna()
        if bad.any():
            problems.append(
                f"{path}, column '{column}': non-numeric values {_values(raw[bad])} "
                f"at {_rows(bad)}." if labels is None else f"{path}, column '{column}': "
                f"values {_values(raw[bad])} at {_rows(bad)} are not one of the labels "
                f"{labels} set for binary outcome '{outcome['name']}'."
            )
        wrong, rule = disallowed(values, outcome)
        if wrong.any():
            problems.append(
                f"{path}, column '{column}': values {_values(raw[wrong])} at {_rows(wrong)} are "
                f"not allowed for {outcome['type']} outcome '{outcome['name']}' ({rule})."
            )
        huge = ~(values.abs() <= _SCORE_LIMIT) & values.notna()
        if huge.any():
            problems.append(
                f"{path}, column '{column}': values {_values(raw[huge])} at {_rows(huge)} are "
                f"infinite or beyond {_SCORE_LIMIT:g} in magnitude, not scores."
            )
        low_high = outcome.get("range")
        if low_high is not None:
            outside = (values < low_high[0]) | (values > low_high[1])
            if outside.any():
                problems.append(
                    f"{path}, column '{column}': values {_values(raw[outside])} at "
                    f"{_rows(outside)} are outside the range {low_high} "
                    f"set for outcome '{outcome['name']}'."
                )
        patients[column] = values
    return problems


def _exposure_problems(patients: pd.DataFrame, config: dict[str, Any], path: Path,
                       long: bool = False) -> list[str]:
    """Exposure columns of count outcomes, as floats in place (see :mod:`.outcome_types`);
    ``long``: the count is the column named as the outcome (period designs)."""
    problems = []
    for outcome in (o for o in config["outcomes"] if "exposure" in o):
        column, follow_up = outcome["exposure"], ([outcome["name"]] if long else [
            outcome_column(outcome["name"], m) for m in config["design"]["followup_months"]])
        problems += _missing_columns(patients, [column], path)
        if column in patients.columns:
            values = _to_number(patients[column])
            bad = bad_exposure(values, patients[follow_up])
            if bad.any():
                problems.append(f"{path}, column '{column}': exposure of outcome "
                                f"'{outcome['name']}' must be a positive number where the "
                                f"count is observed; not so at {_rows(bad)} "
                                f"(values {_values(patients[column][bad])}).")
            patients[column] = values
    return problems


def binary_looking_notes(patients: pd.DataFrame, config: dict[str, Any]) -> tuple[str, ...]:
    """A warning for each continuous outcome whose observed values are all 0 or 1."""
    notes = (binary_looking(o, [patients[outcome_column(o["name"], m)]
                                for m in outcome_months(o, config["design"])])
             for o in config["outcomes"])
    return tuple(note for note in notes if note)


def _empty_baselines(patients: pd.DataFrame, config: dict[str, Any], path: Path) -> list[str]:
    """A baseline column with no value at all is a mistake or an outcome without baseline."""
    month = config["design"]["baseline_month"]
    return [
        f"{path}, column '{outcome_column(o['name'], month)}': the baseline of outcome "
        f"'{o['name']}' is empty in every row; if it was not measured at baseline, set "
        f"`baseline: false` on the outcome."
        for o in config["outcomes"]
        if o.get("baseline", True) and patients[outcome_column(o["name"], month)].isna().all()
    ]


def _looks_long(raw: pd.DataFrame, config: dict[str, Any]) -> bool:
    names = {o["name"] for o in config["outcomes"]}
    return config["data"]["month_column"] in raw.columns and bool(names & set(raw.columns))


def _looks_wide(raw: pd.DataFrame, config: dict[str, Any]) -> bool:
    return bool(set(outcome_columns(config)) & set(raw.columns))


def check_shape(raw: pd.DataFrame, config: dict[str, Any], path: Path) -> None:
    """Refuse a long table configured as wide and the reverse, saying how to fix it."""
    data = config["data"]
    if data["format"] == "wide" and not _looks_wide(raw, config) and _looks_long(raw, config):
        _raise([
            f"{path}: the patients table looks like long format (a '{data['month_column']}' "
            f"column and one column per outcome) but the configuration says wide "
            f"(<outcome>_m<month> columns); set `data: {{format: long, month_column: "
            f"{data['month_column']}}}` in the configuration."
        ])
    if data["format"] == "long" and data["month_column"] not in raw.columns:
        hint = (
            " It looks like wide format (<outcome>_m<month> columns): remove `format: long` "
            "from `data:` in the configuration (wide is the default)."
            if _looks_wide(raw, config)
            else " Name the month column with `data.month_column`."
        )
        _raise([
            f"{path}: the configuration says long format, but the month column "
            f"'{data['month_column']}' (data.month_column) is not in the table.{hint}"
        ])


def long_to_wide(
    raw: pd.DataFrame, config: dict[str, Any], path: Path
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Check a long patients table and reshape it to the wide table with the same values.

    One row per patient per measurement: the patient id, the month in
    ``data.month_column``, one column per outcome (named as the outcome) and the patient's
    other columns: those the configuration uses (cluster, arm, covariates, subgroup) must
    agree on every row of a patient (blank cells are allowed); others that change between
    a patient's rows (e.g. visit dates) are left out, with a note.

    Returns
    -------
    wide : DataFrame
        One row per patient in order of first appearance, its other columns, then
        ``<outcome>_m<month>`` for every configured outcome and month (NaN when not
        measured); the index holds each patient's first row in ``raw``, so later
        messages name rows of the long file.
    notes : tuple of str
        One sentence per column left out.

    Raises
    ------
    TrialstatsError
        Missing columns, rows without a patient id or month, months that are not whole
        numbers or not in the configuration, the same patient twice in one month,
        non-numeric or out-of-range scores, or a patient whose other columns change.
    """
    design, month_column = config["design"], config["data"]["month_column"]
    patient = design["patient"]
    names = [o["name"] for o in config["outcomes"]]
    _raise(_missing_columns(raw, [patient, month_column, *names], path))
    table = raw.reset_index(drop=True)
    ids = _as_id(table[patient])
    months = _to_number(table[month_column])
    known = [design["baseline_month"], *design["followup_months"]]
    problems = []
    if ids.isna().any():
        problems.append(f"{path}, column '{patient}': {_rows(ids.isna())} have no patient id.")
    bad_month = table[month_column].isna() | months.isna() | (months % 1 != 0)
    if bad_month.any():
        problems.append(
            f"{path}, column '{month_column}': {_rows(bad_month)} have no month as a whole "
            f"number (values {_values(table[month_column][bad_month])})."
        )
    unknown = ~bad_month & ~months.isin(known)
    if unknown.any():
        problems.append(
            f"{path}, column '{month_column}': months {_values(months[unknown].astype(int))} at "
            f"{_rows(unknown)} are not in the configuration (baseline_month and "
            f"followup_months: {known})."
        )
    twice = ids.notna() & ~bad_month & pd.DataFrame({"id": ids, "m": months}).duplicated(
        keep=False
    )
    if twice.any():
        problems.append(
            f"{path}, columns '{patient}' and '{month_column}': patients "
            f"{_values(ids[twice])} have more than one row for the same month at {_rows(twice)}."
        )
    problems += _numeric_outcomes(table, config, path,
                                  list(zip(names, config["outcomes"], strict=True)))
    _raise(problems)
    table[patient] = ids
    fixed = [c for c in table.columns if c not in {patient, month_column, *names}]
    first = table.groupby(patient, sort=False)[fixed].first()

    def differs(column: str) -> pd.Series:
        own = table[column].astype("string")
        return (own != table[patient].map(first[column]).astype("string")).fillna(False) & (
            own.notna()
        )

    changing = [c for c in fixed if differs(c).any()]
    used = {design["cluster"], design["arm"], *config["analysis"]["covariates"],
            config["sensitivity"]["subgroup"]}
    if [c for c in changing if c in used]:
        changing = [c for c in changing if c in used]
        column = changing[0]
        _raise([
            f"{path}, column '{column}': patients {_values(table[patient][differs(column)])} "
            f"have different values on different rows (at {_rows(differs(column))}); a patient's "
            f"{', '.join(repr(c) for c in changing)} must be the same on every row."
        ])
    notes = tuple(
        f"{path}: column '{c}' changes between a patient's rows and is not used by the "
        f"configuration, so it was left out of the patient table."
        for c in changing
    )
    wide = first.drop(columns=changing).reset_index()
    wide.index = table.groupby(patient, sort=False).head(1).index
    month_of = months.astype("Int64")
    for outcome in config["outcomes"]:
        for month in outcome_months(outcome, design):
            at = table.loc[month_of == month].set_index(patient)[outcome["name"]]
            if outcome.get("labels") is not None:  # back to the labels check_patients reads
                at = at.map(dict(enumerate(outcome["labels"])))
            wide[outcome_column(outcome["name"], month)] = wide[patient].map(at).to_numpy()
    return wide, notes


def _covariate(series: pd.Series) -> pd.Series:
    """A covariate as float when every present value is a number, otherwise as text."""
    numbers = _to_number(series)
    if (numbers.notna() == series.notna()).all():
        return numbers
    return series.astype("string").str.strip()


def covariate_problems(patients: pd.DataFrame, practices: pd.DataFrame,
                       config: dict[str, Any], path: Path, practices_path: Path) -> list[str]:
    """Covariates (``analysis.covariates``) found in neither table or in both (the cluster
    id apart), each a problem naming the files."""
    cluster = config["design"]["cluster"]
    problems = []
    for name in config["analysis"]["covariates"]:
        where = (name in patients.columns, name in practices.columns)
        if not any(where):
            problems.append(f"covariate '{name}' (analysis.covariates) is a column of neither "
                            f"{path} nor {practices_path}.")
        elif all(where) and name != cluster:
            problems.append(f"covariate '{name}' (analysis.covariates) is a column of both "
                            f"{path} and {practices_path}; rename one so the model is "
                            f"unambiguous.")
    return problems


def with_covariates(patients: pd.DataFrame, practices: pd.DataFrame,
                    config: dict[str, Any]) -> pd.DataFrame:
    """``patients`` (changed in place) with every covariate typed, practice-level ones mapped
    onto the practices' patients."""
    cluster = config["design"]["cluster"]
    for name in config["analysis"]["covariates"]:
        if name in patients.columns:
            patients[name] = _covariate(patients[name])
        else:
            by_cluster = dict(zip(practices[cluster], _covariate(practices[name]), strict=True))
            patients[name] = patients[cluster].map(by_cluster)
    return patients


def check_patients(
    raw: pd.DataFrame, practices: pd.DataFrame, config: dict[str, Any], path: Path,
    practices_path: Path,
) -> pd.DataFrame:
    """Validate the patients table against the (validated) practices table.

    Returns the patients with text ids, float outcomes, typed covariates (practice-level
    covariates merged in), the arm label and ``treated``.

    Raises
    ------
    TrialstatsError
        Missing columns, missing or duplicate patient ids, patients in unknown practices,
        patients whose arm disagrees with their practice's, non-numeric or out-of-range
        scores, covariates found in neither or both tables.
    """
    design = config["design"]
    cluster, patient, arm = design["cluster"], design["patient"], design["arm"]
    needed = [patient, cluster, *outcome_columns(config)]
    problems = _missing_columns(raw, needed, path)
    problems += covariate_problems(raw, practices, config, path, practices_path)
    _raise(problems)
    patients, problems, no_cluster = _keyed_table(raw, patient, cluster, path, "patient",
                                                  "practice")
    unknown = ~no_cluster & ~patients[cluster].isin(practices[cluster])
    if unknown.any():
        problems.append(f"{path}, column '{cluster}': practices "
                        f"{_values(patients[cluster][unknown])} at {_rows(unknown)} are not in "
                        f"{practices_path}.")
    allocated = patients[cluster].map(dict(zip(practices[cluster], practices[arm], strict=True)))
    if arm in patients.columns:
        own = _as_id(patients[arm])
        disagree = own.notna() & allocated.notna() & (own != allocated)
        if disagree.any():
            problems.append(f"{path}, column '{arm}': patients at {_rows(disagree)} disagree "
                            f"with the arm of their practice in {practices_path} (practices "
                            f"{_values(patients[cluster][disagree])}).")
    problems += _numeric_outcomes(patients, config, path)
    problems += _exposure_problems(patients, config, path)
    problems += _empty_baselines(patients, config, path)
    _raise(problems)
    patients, allocated = patients.reset_index(drop=True), allocated.reset_index(drop=True)
    patients[arm] = allocated
    patients[TREATED] = (allocated == design["intervention"]).astype(int)
    return with_covariates(patients, practices, config)


def validate_trial(practices: pd.DataFrame, patients: pd.DataFrame, config: dict[str, Any],
                   practices_path: str | Path = "practices",
                   patients_path: str | Path = "patients") -> Trial:
    """Validate both tables of a trial against the data contract and the configuration."""
    practices_path, patients_path = Path(practices_path), Path(patients_path)
    checked_practices = check_practices(practices, config, practices_path)
    checked_patients = check_patients(
        patients, checked_practices, config, patients_path, practices_path
    )
    return Trial(checked_practices, checked_patients, config,
                 binary_looking_notes(checked_patients, config))


def load_trial(config: dict[str, Any]) -> Trial:
    """Read the tables named in ``config['data']`` and validate them (a long patients
    table is checked and reshaped to wide first; period designs:
    :func:`trialstats.data.periods.load_period_trial`)."""
    if config["design"].get("type", "parallel") != "parallel":
        from trialstats.data.periods import load_period_trial

        return load_period_trial(config)
    practices_path = Path(config["data"]["practices"])
    patients_path = Path(config["data"]["patients"])
    patients, notes = read_input(config, "patients"), ()
    check_shape(patients, config, patients_path)
    if config["data"]["format"] == "long":
        source = patients.attrs.get("source")
        patients, notes = long_to_wide(patients, config, patients_path)
        if source is not None:
            patients.attrs["source"] = source
    trial = validate_trial(
        read_input(config, "practices"), patients, config, practices_path, patients_path,
    )
    return Trial(trial.practices, trial.patients, config, notes + trial.notes)


def completeness(trial: Trial) -> pd.DataFrame:
    """Observed values of every outcome at every month, by arm.

    Returns
    -------
    DataFrame
        Columns ``outcome, month, arm, n_patients, n_observed, percent_observed``; one row
        per outcome x month x arm, then a row with arm ``all``.
    """
    design = trial.config["design"]
    arm = design["arm"]
    rows = []
    groups = [*sorted(trial.patients[arm].unique(), key=lambda a: a != design["intervention"])]
    for outcome in trial.config["outcomes"]:
        for month in outcome_months(outcome, design):
            column = trial.patients[outcome_column(outcome["name"], month)]
            for label in [*groups, "all"]:
                in_group = trial.patients[arm] == label
                mask = in_group if label != "all" else pd.Series(True, index=column.index)
                n, observed = int(mask.sum()), int(column[mask].notna().sum())
                rows.append({
                    "outcome": outcome["name"], "month": month, "arm": label, "n_patients": n,
                    "n_observed": observed, "percent_observed": 100 * observed / n if n else np.nan,
                })
    return pd.DataFrame(rows)


def summarise(trial: Trial) -> str:
    """A plain-text summary of a valid trial: clusters and patients per arm, completeness
    (period designs: :func:`trialstats.data.periods.summarise_periods`)."""
    if trial.config["design"].get("type", "parallel") != "parallel":
        from trialstats.data.periods import summarise_periods

        return summarise_periods(trial)
    design = trial.config["design"]
    cluster, arm = design["cluster"], design["arm"]
    practices, patients = trial.practices, trial.patients
    recruiting = patients.groupby(arm)[cluster].nunique()
    lines = ["Valid trial.", "", f"{'arm':<16}{'randomised':>11}{'withdrawn':>10}"
             f"{'recruiting':>11}{'patients':>10}"]
    arms = sorted(practices[arm].unique(), key=lambda a: a != design["intervention"])
    for label in arms:
        in_arm = practices[arm] == label
        withdrawn = int(practices.loc[in_arm, design["withdrawn"]].sum())
        lines.append(
            f"{label:<16}{int(in_arm.sum()):>11}{withdrawn:>10}"
            f"{int(recruiting.get(label, 0)):>11}{int((patients[arm] == label).sum()):>10,}"
        )
    lines.append(
        f"{'total':<16}{len(practices):>11}{int(practices[design['withdrawn']].sum()):>10}"
        f"{int(recruiting.sum()):>11}{len(patients):>10,}"
    )
    empty = practices[~practices[cluster].isin(patients[cluster])]
    if len(empty):
        named = ", ".join(f"{c} ({a})" for c, a in zip(empty[cluster], empty[arm], strict=True))
        lines += ["", f"Warning: {len(empty)} randomised practice{'s' if len(empty) > 1 else ''} "
                  f"recruited no patients: {named}."]
    table = completeness(trial)
    lines += ["", "Completeness: observed n (%) by arm", f"{'outcome':<22}{'month':>6}"
              + "".join(f"{a:>20}" for a in [*arms, "all"])]
    for (outcome, month), rows in table.groupby(["outcome", "month"], sort=False):
        cells = "".join(
            f"{f'{r.n_observed:,} ({r.percent_observed:.1f}%)':>20}" for r in rows.itertuples()
        )
        lines.append(f"{outcome:<22}{month:>6}{cells}")
    if trial.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in trial.notes)]
    return "\n".join(lines)
