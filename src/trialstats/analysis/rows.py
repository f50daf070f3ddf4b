"""Building result rows: the output contract's columns and the helpers every analysis shares.

Every analysis writes rows with :data:`~trialstats.contract.COLUMNS` (``primary.csv``) or
:data:`~trialstats.contract.SENSITIVITY_COLUMNS` (``sensitivity.csv``), built by one driver
(:func:`each_outcome_month`) from the rows of one outcome at one follow-up month, analysed in
the primary analysis population (:func:`primary_population`). For an estimated difference
:math:`\\hat\\delta` with standard error *s* on :math:`\\nu` df the interval is
:math:`\\hat\\delta \\pm t_{1-\\alpha/2,\\nu}\\, s`, the p-value two-sided from
:math:`t_\\nu`, and the effect size and MCID verdict follow :mod:`trialstats.analysis.effects`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from trialstats.analysis.design import ModelData, model_data
from trialstats.analysis.effects import baseline_sd, mcid_raw, mcid_verdict
from trialstats.analysis.reml import ClusterSums, RemlFit, fit_reml
from trialstats.contract import SENSITIVITY_COLUMNS
from trialstats.data.validate import TREATED, baseline_month_of, outcome_column
from trialstats.errors import TrialstatsError


def chosen_outcomes(config: dict[str, Any], outcomes: list[str] | None) -> list[dict[str, Any]]:
    """The configured outcome entries named in ``outcomes`` (all when None), in config order.

    Raises
    ------
    TrialstatsError
        If a name is not a configured outcome.
    """
    names = [o["name"] for o in config["outcomes"]]
    unknown = sorted(set(outcomes or []) - set(names))
    if unknown:
        raise TrialstatsError(f"unknown outcome(s) {', '.join(unknown)}; the configuration "
                              f"has {', '.join(names)}.")
    return [o for o in config["outcomes"] if outcomes is None or o["name"] in outcomes]


def outcome_scale(
    patients: pd.DataFrame, outcome: dict[str, Any], design: dict[str, Any], month: int
) -> dict[str, float]:
    """``sd_baseline`` and ``mcid`` (raw scale) of an outcome at ``month``, exactly as the
    primary analysis: the SD at baseline of all randomised patients (both arms pooled), or for
    an outcome without baseline (``baseline: false``) the SD at ``month``
    (:func:`scale_note` says so)."""
    scale_month = baseline_month_of(outcome, design)
    column = outcome_column(outcome["name"], month if scale_month is None else scale_month)
    sd0 = baseline_sd(patients[column])
    return {"sd_baseline": sd0, "mcid": mcid_raw(outcome.get("mcid"), sd0)}


def scale_note(outcome: dict[str, Any], design: dict[str, Any], month: int) -> str:
    """For an outcome without baseline: that the model has no baseline term and the
    standardised effect divides by the SD at ``month`` ("" otherwise)."""
    if baseline_month_of(outcome, design) is not None:
        return ""
    return (f"no baseline measurement: not adjusted for baseline; sd_baseline and the "
            f"standardised effect use the SD at month {month} (both arms pooled)")


def join_notes(*notes: str) -> str:
    """The non-empty notes joined with "; "."""
    return "; ".join(n for n in notes if n)


# A standard error below this many baseline SDs is rounding error, not information.
_DEGENERATE_SE = 1e-8


def t_row(
    base: dict[str, Any], *, estimate: float, se: float, df: float, alpha: float,
    higher_is_better: bool,
) -> dict[str, Any]:
    """Complete ``base`` with the *t*-based inference, effect size and MCID verdict.

    Parameters
    ----------
    base : dict
        Row fields known already; must hold ``sd_baseline`` and ``mcid``.
    estimate, se, df : float
        The difference (intervention − control), its standard error and the *t* df.
    alpha : float
        Two-sided level; the interval is 100(1 − alpha)%.
    higher_is_better : bool
        Direction of benefit, for the verdict.

    Returns
    -------
    dict
        ``base`` plus ``estimate, se, df, ci_low, ci_high, p_value, effect_size, es_ci_low,
        es_ci_high, mcid_verdict`` computed as in :mod:`trialstats.analysis.primary`; or, from
        a degenerate fit (a non-finite estimate, SE or df, or an SE below ``1e-8`` baseline SD,
        e.g. a constant outcome), ``base`` with "not estimable: ..." first in ``notes``.
    """
    sd0 = base["sd_baseline"]
    if not (np.isfinite(estimate) and np.isfinite(se) and np.isfinite(df) and df > 0
            and se > _DEGENERATE_SE * (abs(sd0) if np.isfinite(sd0) else 0.0)):
        return {**base, "notes": join_notes(
            f"not estimable: degenerate fit (estimate {estimate:.4g}, SE {se:.4g} on "
            f"{df:.4g} df)", base.get("notes", ""))}
    half = stats.t.ppf(1 - alpha / 2, df) * se
    low, high = estimate - half, estimate + half
    return {
        **base, "estimate": estimate, "se": se, "df": df, "ci_low": low, "ci_high": high,
        "p_value": float(2 * stats.t.sf(abs(estimate / se), df)),
        "effect_size": estimate / sd0, "es_ci_low": low / sd0, "es_ci_high": high / sd0,
        "mcid_verdict": mcid_verdict(low, high, base["mcid"], higher_is_better),
    }


#: Practices with analysed patients each arm needs before the arms are compared. The one
#: definition of an analysable trial: the simulated trials of :mod:`trialstats.simulation`
#: obey it too (:func:`arms_comparable`).
MIN_CLUSTERS_PER_ARM = 2


def arms_comparable(intervention: ArrayLike, control: ArrayLike) -> np.ndarray:
    """Whether arms with these numbers of practices with analysed patients can be compared
    (elementwise, so it serves a batch of simulated trials as well as one real one)."""
    return np.minimum(intervention, control) >= MIN_CLUSTERS_PER_ARM


def clusters_per_arm(treated: np.ndarray, cluster_codes: np.ndarray) -> tuple[int, int]:
    """Practices with analysed patients in the intervention and the control arm."""
    return tuple(len(np.unique(cluster_codes[treated == arm])) for arm in (1.0, 0.0))


def arms_problem(per_arm: tuple[int, int]) -> str:
    """Why arms with ``(intervention, control)`` practices cannot be compared ("" if they can)."""
    if not arms_comparable(*per_arm):
        return (f"not estimable: fewer than two clusters with analysable patients in an arm "
                f"(intervention {per_arm[0]}, control {per_arm[1]})")
    return ""


def too_few_clusters(data: ModelData) -> str:
    """:func:`arms_problem` of the analysed patients of ``data``."""
    return arms_problem(clusters_per_arm(data.X[:, data.columns.index(TREATED)],
                                         data.cluster_codes))


def fit_or_problem(
    y: np.ndarray, X: np.ndarray, cluster_codes: np.ndarray, n_clusters: int
) -> tuple[ClusterSums, RemlFit | None, str]:
    """The cluster sums and REML fit of the random-intercept model of ``y`` on ``X``, or
    ``None`` and why it cannot be fitted ("not estimable: ...")."""
    sums = ClusterSums.from_data(y, X, cluster_codes, n_clusters)
    try:
        return sums, fit_reml(sums), ""
    except TrialstatsError as error:
        return sums, None, f"not estimable: {error}"


def honest_status(table: pd.DataFrame) -> pd.DataFrame:
    """Rows that could not be estimated (``notes`` start "not estimable" or "skipped") get
    an empty ``converged``: no fit was attempted, so "did not converge" would be untrue.
    The table is returned unchanged when there are none."""
    untried = table["notes"].fillna("").astype(str).str.startswith(("not estimable", "skipped"))
    if not untried.any():
        return table
    return table.assign(converged=table["converged"].astype(object).where(~untried, None))


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame with exactly :data:`~trialstats.contract.SENSITIVITY_COLUMNS`
    (absent fields NaN)."""
    return pd.DataFrame(rows, columns=list(SENSITIVITY_COLUMNS))


#: The rows of one outcome (its configuration entry) at one follow-up month:
#: ``outcome_rows(patients, outcome, month, config)``.
OutcomeRows = Callable[[pd.DataFrame, dict[str, Any], int, dict[str, Any]], list[dict[str, Any]]]


def each_outcome_month(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None,
    outcome_rows: OutcomeRows, columns: tuple[str, ...] = SENSITIVITY_COLUMNS,
) -> pd.DataFrame:
    """The rows of every chosen outcome (:func:`chosen_outcomes`, config order) at every
    follow-up month, stacked into a table with exactly ``columns`` (absent fields NaN)."""
    rows = [
        row
        for outcome in chosen_outcomes(config, outcomes)
        for month in config["design"]["followup_months"]
        for row in outcome_rows(patients, outcome, month, config)
    ]
    return honest_status(pd.DataFrame(rows, columns=list(columns)))


@dataclass(frozen=True)
class Population:
    """One outcome at one month in the primary analysis population.

    Attributes
    ----------
    data : ModelData
        The patients with the follow-up score, the baseline score and every covariate.
    base : dict
        Row fields every analysis of it shares: ``outcome``, ``month``, ``n_patients``,
        ``n_clusters``, ``sd_baseline`` and ``mcid``.
    exclusions : str
        The patients left out, by reason (:meth:`ModelData.exclusion_note`), and for an
        outcome without baseline how it is scaled (:func:`scale_note`).
    problem : str
        Why the arms cannot be compared (:func:`too_few_clusters`; "" when they can).
    """

    data: ModelData
    base: dict[str, Any]
    exclusions: str
    problem: str


def primary_population(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any]
) -> Population:
    """:class:`Population` of ``outcome`` at ``month`` with the configured covariates."""
    design = config["design"]
    data = model_data(patients, outcome["name"], month, cluster=design["cluster"],
                      baseline_month=baseline_month_of(outcome, design),
                      covariates=config["analysis"]["covariates"],
                      exposure=outcome.get("exposure"))
    base = {"outcome": outcome["name"], "month": month, "n_patients": len(data.y),
            "n_clusters": data.n_clusters, **outcome_scale(patients, outcome, design, month)}
    return Population(data=data, base=base,
                      exclusions=join_notes(data.exclusion_note(),
                                            scale_note(outcome, design, month)),
                      problem=too_few_clusters(data))
