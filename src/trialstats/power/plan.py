r"""Planning the next trial from this one: design inputs taken from a finished analysis.

A finished analysis holds what the next trial's sample size needs: the ICC of the
baseline-adjusted model and the baseline SD (``primary.csv``), the MCID on the raw scale, and
in the analysis-ready patients the within- and between-cluster correlations of baseline and
follow-up (:func:`inputs_from_analysis`). :func:`resolve_inputs` merges them with the values a
user gives explicitly (explicit values win), and :func:`plan_from_analysis` turns them into
the clusters per arm needed to detect each outcome's MCID, from the analytic formulas of
:mod:`trialstats.power.analytic`:

.. math::

    \text{clusters per arm} = \min\{k : \text{power}(k;\ m, \rho, \delta_{MCID},
    \mathrm{cv}, F, \rho_s, \rho_c) \ge 1 - \beta\},

with :math:`\delta_{MCID}` = MCID / baseline SD and the baseline adjustment (ANCOVA) used
when both autocorrelations were estimated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from trialstats.contract import MEAN_DIFFERENCE, ODDS_RATIO
from trialstats.errors import TrialstatsError
from trialstats.power.analytic import solve_continuous

__all__ = [
    "PLAN_COLUMNS",
    "grid_from_analysis",
    "inputs_from_analysis",
    "plan_from_analysis",
    "resolve_inputs",
]

#: Columns of the planning table, in order.
PLAN_COLUMNS = (
    "outcome", "month", "icc", "sd_baseline", "mcid", "effect", "rho_s", "rho_c", "baseline",
    "cluster_size", "cv", "attrition", "allocation_ratio", "alpha", "target_power",
    "clusters_per_arm", "k_intervention", "power", "design_effect", "notes",
)


def inputs_from_analysis(
    primary: pd.DataFrame, patients: pd.DataFrame | None, *, outcome: str, month: int | None = None,
    baseline_month: int = 0, cluster: str = "practice_id", source: str = "the analysis",
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
        why = str(row.get("notes", "") or "").split(";")[0].strip()
        raise TrialstatsError(f"{source}: the {outcome} month-{month} row has no ICC"
                              + (f" ({why})." if why else "."))
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
    baseline_column = f"{outcome}_m{baseline_month}"
    if patients is not None and baseline_column not in patients.columns:
        notes.append(f"no {baseline_column} in the analysis (an outcome without baseline): "
                     "planned without baseline adjustment")
    elif patients is not None:
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


def resolve_inputs(
    given: Mapping[str, Any], taken: Mapping[str, Any], source: str | None = None
) -> dict[str, Any]:
    """Merge the design values a user gave with those taken from an analysis.

    Parameters
    ----------
    given : mapping
        The values given explicitly (``None`` = not given): ``clusters_per_arm``,
        ``allocation_ratio``, ``cluster_size``, ``cv``, ``icc``, ``effect``, ``difference``,
        ``sd``, ``alpha``, ``attrition``, ``baseline_corr``, ``cluster_autocorr``,
        ``baseline`` and ``target_power`` (the ``trialstats power`` flags).
    taken : mapping
        :func:`inputs_from_analysis` (empty when planning from scratch); explicit values win.
    source : str, optional
        Where ``taken`` came from, for the notes.

    Returns
    -------
    dict
        The design: ``clusters_per_arm``, ``allocation_ratio``, ``cluster_size``, ``cv``,
        ``icc``, ``effect`` (SD units: ``difference / sd`` when a raw difference is given; the
        MCID of the analysis when nothing is given or solved for), ``alpha``, ``attrition``,
        ``rho_s``, ``rho_c`` (0 when unknown), ``baseline`` (``ancova`` when an
        autocorrelation is known, else ``none``, unless given), ``sd`` and ``notes`` (one
        sentence per value taken or derived).

    Raises
    ------
    TrialstatsError
        When the ICC is unknown, a baseline analysis lacks an autocorrelation, or the effect
        is given twice or as a difference without an SD.
    """
    notes = list(taken.get("notes", []))

    def pick(flag: str, key: str) -> Any:
        value = given.get(flag)
        return taken.get(key) if value is None else value

    icc = pick("icc", "icc")
    rho_s = pick("baseline_corr", "rho_s")
    rho_c = pick("cluster_autocorr", "rho_c")
    sd = pick("sd", "sd")
    baseline = given.get("baseline")
    if baseline is None:
        baseline = "none" if rho_s is None and rho_c is None else "ancova"
    if baseline != "none" and (rho_s is None or rho_c is None):
        raise TrialstatsError(
            f"--baseline {baseline} needs both --baseline-corr (subject autocorrelation) and "
            "--cluster-autocorr (cluster autocorrelation)."
        )
    if icc is None:
        raise TrialstatsError("Give the intracluster correlation with --icc (or take it --from).")
    effect, difference = given.get("effect"), given.get("difference")
    if effect is not None and difference is not None:
        raise TrialstatsError("Give the effect as --effect (SD units) or --difference, not both.")
    if difference is not None:
        if sd is None:
            raise TrialstatsError("--difference needs the outcome SD: --sd (or --from).")
        if sd <= 0:
            raise TrialstatsError("The outcome SD must be positive.")
        effect = difference / sd
        notes.append(f"effect = difference {difference:g} / SD {sd:g} = {effect:.6g}")
    elif effect is None and given.get("target_power") is None and "mcid_effect" in taken:
        effect = taken["mcid_effect"]
        notes.append(f"effect = MCID / sd_baseline = {effect:.6g} (from {source})")
    return {
        **{key: given.get(key) for key in ("clusters_per_arm", "allocation_ratio",
                                           "cluster_size", "cv")},
        "icc": icc,
        "effect": effect,
        "alpha": given.get("alpha"),
        "attrition": given.get("attrition"),
        "rho_s": 0.0 if rho_s is None else rho_s,
        "rho_c": 0.0 if rho_c is None else rho_c,
        "baseline": baseline,
        "sd": sd,
        "notes": notes,
    }


def plan_from_analysis(
    primary: pd.DataFrame, patients: pd.DataFrame | None, *, outcomes: Sequence[str] | None = None,
    month: int | None = None, baseline_month: int = 0, cluster: str = "practice_id",
    cluster_size: float | None = None, cv: float = 0.0, attrition: float = 0.0,
    allocation_ratio: float = 1.0, alpha: float = 0.05, target_power: float = 0.8,
    source: str = "the analysis",
) -> pd.DataFrame:
    """Clusters per arm the next trial needs to detect each outcome's MCID.

    Parameters
    ----------
    primary : pandas.DataFrame
        The analysis' ``primary.csv``.
    patients : pandas.DataFrame or None
        The analysis-ready patients; without them the autocorrelations are unknown and the
        plan is for an analysis without baseline adjustment.
    outcomes : sequence of str, optional
        Outcomes to plan for (default: every outcome of ``primary`` with an MCID, in file
        order).
    month, baseline_month, cluster, source
        As in :func:`inputs_from_analysis`.
    cluster_size : float, optional
        Mean recruited patients per cluster of the next trial; by default the analysed
        patients per cluster of the analysis (``n_patients / n_clusters`` of the row), with
        ``attrition`` then best left at 0.
    cv, attrition, allocation_ratio, alpha, target_power : float
        The next trial's cluster-size CV, attrition, allocation ratio, two-sided level and
        target power.

    Returns
    -------
    pandas.DataFrame
        :data:`PLAN_COLUMNS`, one row per outcome: the inputs taken (``icc``,
        ``sd_baseline``, ``mcid``, ``effect`` = MCID / SD, ``rho_s``, ``rho_c``,
        ``baseline``), the design (``cluster_size`` ... ``target_power``), the answer of
        :func:`trialstats.power.analytic.solve_continuous` (``clusters_per_arm``,
        ``k_intervention``, the ``power`` reached and the ``design_effect``) and ``notes``
        (what was taken from where). A binary or count outcome gets a row saying it was
        not planned (the formulas here are for continuous outcomes); so does, when
        ``outcomes`` is not given, an outcome without an MCID or whose row has no ICC (not
        estimable), with the reason.

    Raises
    ------
    TrialstatsError
        When an outcome named in ``outcomes`` has no row, no ICC or no MCID, or
        ``primary`` has no outcome.
    """
    names = list(pd.unique(primary["outcome"])) if outcomes is None else list(outcomes)
    rows = []
    for name in names:
        measures = set(primary.loc[primary["outcome"] == name, "effect_measure"].dropna()) \
            if "effect_measure" in primary.columns else set()
        if measures - {MEAN_DIFFERENCE}:
            how = ("use `trialstats power analytic --p0 P0 --p1 P1` or `trialstats power "
                   "simulate --p0 P0 --p1 P1`" if ODDS_RATIO in measures else
                   "use `trialstats power analytic --rate0 R0 --rate-ratio RR` (Hayes & "
                   "Bennett 1999)")
            rows.append({"outcome": name, "notes": (
                f"not planned: the plan from a finished analysis is for continuous outcomes; "
                f"for this {', '.join(sorted(measures))} outcome {how}")})
            continue
        try:
            taken = inputs_from_analysis(primary, patients, outcome=name, month=month,
                                         baseline_month=baseline_month, cluster=cluster,
                                         source=source)
            if "mcid_effect" not in taken:
                raise TrialstatsError(f"{source}: outcome {name!r} has no MCID to plan for.")
        except TrialstatsError as error:
            if outcomes is not None:  # named by the user: their error
                raise
            reason = str(error).removeprefix(f"{source}: ")
            rows.append({"outcome": name, "month": month, "notes": f"not planned: {reason}"})
            continue
        row = primary[primary["outcome"] == name]
        row = row[row["month"] == (row["month"].max() if month is None else month)].iloc[0]
        size = float(row["n_patients"] / row["n_clusters"]) if cluster_size is None \
            else cluster_size
        design = resolve_inputs({"cluster_size": size, "cv": cv, "attrition": attrition,
                                 "allocation_ratio": allocation_ratio, "alpha": alpha},
                                taken, source)
        solved = solve_continuous(
            unknown="clusters_per_arm", target_power=target_power, cluster_size=size,
            icc=design["icc"], effect=design["effect"], allocation_ratio=allocation_ratio,
            cv=cv, alpha=alpha, attrition=attrition, baseline=design["baseline"],
            rho_c=design["rho_c"], rho_s=design["rho_s"],
        ).iloc[0]
        rows.append({
            "outcome": name, "month": int(row["month"]), "icc": design["icc"],
            "sd_baseline": taken["sd"], "mcid": float(row["mcid"]), "effect": design["effect"],
            "rho_s": design["rho_s"], "rho_c": design["rho_c"], "baseline": design["baseline"],
            "cluster_size": size, "cv": cv, "attrition": attrition,
            "allocation_ratio": allocation_ratio, "alpha": alpha,
            "target_power": target_power,
            "clusters_per_arm": int(solved["clusters_per_arm"]),
            "k_intervention": int(solved["k_intervention"]), "power": float(solved["power"]),
            "design_effect": float(solved["design_effect"]), "notes": "; ".join(design["notes"]),
        })
    if not rows:
        raise TrialstatsError(f"{source}: primary.csv has no outcome to plan for.")
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS)).astype({"month": "Int64"})


def grid_from_analysis(
    primary: pd.DataFrame, patients: pd.DataFrame, config: Mapping[str, Any]
) -> dict[str, list[float]]:
    """A planning grid (the ``power.grid`` configuration keys) taken from a finished trial.

    The design of the finished trial, read from its results: ``cluster_size`` the mean
    recruited patients per cluster and ``cv`` their coefficient of variation (clusters with
    patients); ``attrition`` the share of recruited patients without the first primary
    outcome at the primary month; ``icc`` the ICC of each primary outcome's primary
    analysis at the primary month (primary df method's row); ``effect`` each primary outcome's
    MCID in SD units; ``rho_s``/``rho_c`` the subject and cluster autocorrelations of the
    first primary outcome with a baseline (:func:`inputs_from_analysis`); and
    ``clusters_per_arm`` half to twice the trial's clusters per arm (at least 2).

    Parameters
    ----------
    primary : pandas.DataFrame
        The finished trial's ``primary.csv``.
    patients : pandas.DataFrame
        Its analysis-ready patients (``data/patients.parquet``).
    config : mapping
        Its validated configuration.

    Returns
    -------
    dict
        Grid key -> list of values, rounded for a configuration file (ICCs and
        correlations to 3 decimals, effects to 2).
    """
    design = config["design"]
    cluster, month = design["cluster"], design["primary_month"]
    primaries = [o for o in config["outcomes"] if o.get("primary")] or config["outcomes"][:1]
    sizes = patients.groupby(cluster).size()
    first = primaries[0]["name"]
    attrition = float(patients[f"{first}_m{month}"].isna().mean())
    iccs, effects = [], []
    rho_s = rho_c = None
    for outcome in primaries:
        taken = inputs_from_analysis(primary, patients, outcome=outcome["name"], month=month,
                                     baseline_month=design["baseline_month"], cluster=cluster) \
            if outcome.get("baseline", True) else inputs_from_analysis(
                primary, None, outcome=outcome["name"], month=month)
        iccs.append(round(max(taken["icc"], 0.001), 3))
        if "mcid_effect" in taken:
            effects.append(round(taken["mcid_effect"], 2))
        if rho_s is None and "rho_s" in taken:
            rho_s, rho_c = taken["rho_s"], taken.get("rho_c")
    per_arm = len(sizes) / 2
    clusters = sorted({max(2, round(per_arm * f)) for f in (0.5, 0.75, 1, 1.5, 2)})
    grid = {
        "clusters_per_arm": clusters,
        "cluster_size": [round(float(sizes.mean()), 1)],
        "cv": [round(float(sizes.std(ddof=1) / sizes.mean()), 2) if len(sizes) > 1 else 0.0],
        "icc": sorted(set(iccs)),
        "effect": sorted(set(effects)) or [0.2],
        "attrition": [round(min(attrition, 0.95), 2)],
    }
    if rho_s is not None:
        grid["rho_s"] = [round(rho_s, 3)]
        grid["rho_c"] = [round(0.0 if rho_c is None else rho_c, 3)]
    return grid
