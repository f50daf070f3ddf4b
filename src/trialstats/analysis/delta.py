r"""Delta-adjusted multiple imputation and the tipping point: departures from missing at random.

Model
-----
Multiple imputation (:mod:`trialstats.analysis.imputation`) assumes the follow-up scores are
missing at random (MAR): a patient without the month-*t* score is imputed from the scores and
covariates observed for them, as if they resembled the patients who stayed. The delta adjustment
is the pattern-mixture departure from it (Carpenter & Kenward 2013, *Multiple Imputation and its
Application*, ch. 10; Ratitch, O'Kelly & Tosiello 2013, *Pharm Stat* 12:337): for patient *i* in
arm :math:`a` with :math:`R_{it} = 0` (score missing),

.. math::

    y_{it} \mid (\text{observed data}, R_{it} = 0) \;=\;
        y_{it}^{\mathrm{MAR}} + \delta\, I(a \in \mathcal A),

so the missing scores of the arms in :math:`\mathcal A` (``delta_arm``: the intervention arm,
the control arm or both) are on average :math:`\delta` higher than MAR predicts
(:math:`\delta < 0`: lower). :math:`\delta` is given on the outcome's own scale (``raw``) or in
multiples of its baseline SD (``standardised``; the SD of :mod:`trialstats.analysis.effects`).
Each of the *M* completed datasets of the MAR imputation (the same draws and seed as
``multiple-imputation``) has :math:`\delta` added to its imputed month-*t* scores in those arms
and only there; the primary model is fitted to each and the results pooled by Rubin's rules with
Barnard–Rubin df, exactly as :func:`~trialstats.analysis.imputation.multiple_imputation`. At
:math:`\delta = 0` the rows equal the MAR rows number for number.

The shift is applied once, after the chained equations have converged ("delta adjustment after
MAR imputation"), not inside them as mice's ``mnar.norm`` and SAS ``MNAR ADJUST`` do, where
the later visits of the cycle condition on already shifted values. We chose it because (i) the
primary model has one imputed score, the month-*t* follow-up, as its response, and its baseline
covariate is imputed from every score; shifting inside the chain would change the imputed
baselines and the other months as well, so :math:`\delta` would no longer be the one stated
departure for the analysed score; (ii) every :math:`\delta` then reuses the same *M* completed
datasets, so the rows for different :math:`\delta` differ only by :math:`\delta`, :math:`\delta
= 0` is exactly MAR, and the tipping point is a deterministic root search rather than a fresh
imputation per trial value. When only the follow-up score is missing (complete baseline, one
follow-up month) the two coincide in distribution; ``tests/fixtures/delta`` checks agreement with
``mnar.norm`` there.

Binary and count outcomes
-------------------------
For a binary or count outcome :math:`\delta` is on the logit (log-rate) scale, whatever
``delta_scale`` says: the imputed follow-up values of the arms in :math:`\mathcal A` are
redrawn from their last imputation step's linear predictor plus :math:`\delta` with the same
uniforms, :math:`y = F^{-1}(u; \eta + \delta)`, so the odds (rate) of the outcome among them is
:math:`e^{\delta}` times that under MAR (Carpenter & Kenward 2013, sec. 10.2; Leacy et al.
2017, *Am J Epidemiol* 185:304); :math:`\delta = 0` is again the MAR analysis exactly
(:mod:`trialstats.analysis.imputation_glmm`). For a count with an exposure the linear
predictor holds the offset :math:`\log(\text{exposure})`, so :math:`e^{\delta}` is the ratio
of the rate per unit of exposure; patients without person-time are not analysed and not
shifted. The rows are the pooled GLMM rows (odds ratio,
risk difference, risk ratio; or rate ratio) at each :math:`\delta`; the tipping search runs in
log-odds units on the odds-ratio row (significance) and the row of the MCID's measure (the
verdict). The redrawn values are whole numbers, so the pooled results are step functions of
:math:`\delta` and a tipping point is located at the step where the conclusion changes.

Tipping point
-------------
For a primary outcome at the primary month, let :math:`L(\delta), U(\delta)` be the pooled
:math:`100(1 - \alpha)\%` interval. The conclusion is (a) significance, :math:`p < \alpha \iff 0
\notin [L, U]`, and (b) the MCID verdict of :func:`trialstats.analysis.effects.mcid_verdict`;
both change only where :math:`L` or :math:`U` crosses one of :math:`\{0\}` or :math:`\{-m, +m\}`
(*m* the MCID). The tipping point of a criterion is the :math:`\delta` of smallest
:math:`|\delta|` at which it differs from its value at :math:`\delta = 0`: the two directions
are scanned outward together in steps of ``step`` baseline SDs up to ``limit`` SDs, and the first
step whose conclusion differs is narrowed by Brent's method on the crossing bound (``xtol`` =
:math:`10^{-6}` baseline SD), refitting the primary model to the shifted datasets at every
evaluation. The pooled estimate is very nearly linear in :math:`\delta` (exactly so for fixed
variance components), so each crossing is a simple root. A conclusion that does not change
within ``limit`` SDs is reported with ``delta`` NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from trialstats.analysis.effects import mcid_verdict
from trialstats.analysis.glmm_rows import measures_of
from trialstats.analysis.imputation import ImputedTrial, impute_trial, pooled_row
from trialstats.analysis.imputation_glmm import glmm_pooled_rows
from trialstats.analysis.rows import SENSITIVITY_COLUMNS, chosen_outcomes
from trialstats.contract import MEAN_DIFFERENCE, RISK_DIFFERENCE
from trialstats.data.validate import outcome_column
from trialstats.errors import TrialstatsError

__all__ = ["DELTA_COLUMNS", "TIPPING_COLUMNS", "delta_adjustment", "delta_rows",
           "imputed_trial", "shifted_cells", "tipping_analysis", "tipping_points"]

#: Columns of the delta-adjustment rows: the sensitivity columns plus ``delta``.
DELTA_COLUMNS = (*SENSITIVITY_COLUMNS, "delta")
#: Columns of the tipping-point table.
TIPPING_COLUMNS = ("outcome", "month", "criterion", "delta", "estimate", "ci_low", "ci_high",
                   "p_value", "conclusion_mar", "conclusion_tipped", "notes")
ARMS = ("intervention", "control", "both")
SCALES = ("raw", "standardised")
ANALYSIS = "delta-adjustment"
_XTOL = 1e-6


def _check(arm: str, scale: str) -> None:
    if arm not in ARMS or scale not in SCALES:
        raise TrialstatsError(
            f"the delta adjustment shifts arm {', '.join(ARMS)} on scale {', '.join(SCALES)}; "
            f"got arm {arm!r} and scale {scale!r}.")


def imputed_trial(patients: pd.DataFrame, config: dict[str, Any]) -> ImputedTrial:
    """The MAR imputation of ``multiple-imputation`` (same imputations and seed), which the
    delta adjustment and its tipping points shift: impute once, pass it to both."""
    settings = config["sensitivity"]
    return impute_trial(patients, config, imputations=settings["imputations"],
                        seed=settings["seed"])


def shifted_cells(trial: ImputedTrial, name: str, month: int, arm: str) -> np.ndarray:
    """Which completed scores the delta adjustment shifts.

    Returns
    -------
    ndarray, shape (n,)
        1.0 for the analysed patients of ``arm`` (``intervention``, ``control`` or ``both``)
        whose month-``month`` score of outcome ``name`` was imputed, else 0.0; the adjusted
        response of imputation *m* is ``trial.completed(column)[m] + delta * cells``. A count
        with an exposure is analysed only for the patients with a positive exposure
        (:mod:`trialstats.analysis.imputation_glmm`), so only their values are counted.
    """
    missing = trial.missing[:, trial.score_columns.index(outcome_column(name, month))]
    if name in trial.log_exposure:
        missing = missing & np.isfinite(trial.log_exposure[name])
    treated = trial.treated == 1.0
    in_arm = {"intervention": treated, "control": ~treated, "both": np.ones_like(treated)}[arm]
    return (missing & in_arm).astype(float)


def _unit(scale: str, sd: float, delta: float) -> str:
    if scale == "raw":
        return f"{delta:g} (outcome scale)"
    return f"{delta:g} baseline SD (= {delta * sd:.4g} on the outcome scale)"


def delta_rows(
    trial: ImputedTrial,
    config: dict[str, Any],
    deltas: list[float],
    *,
    arm: str = "intervention",
    scale: str = "raw",
    outcomes: list[str] | None = None,
) -> pd.DataFrame:
    """Delta-adjusted analyses of completed datasets: one row per outcome × month × delta.

    Parameters
    ----------
    trial : ImputedTrial
        The MAR imputation (:func:`trialstats.analysis.imputation.impute_trial`).
    config : dict
        The validated configuration.
    deltas : list of float
        The shifts, in the unit of ``scale``; for binary and count outcomes always on the
        log-odds or log-rate scale, added to the linear predictor of the imputed values before
        they are redrawn (:mod:`trialstats.analysis.imputation_glmm`).
    arm : {"intervention", "control", "both"}
        Whose imputed scores are shifted.
    scale : {"raw", "standardised"}
        ``raw``: outcome units; ``standardised``: multiples of the outcome's baseline SD
        (continuous outcomes only).
    outcomes : list of str, optional
        Outcomes to report (default all).

    Returns
    -------
    DataFrame
        :data:`DELTA_COLUMNS`: the columns and meanings of the multiple-imputation rows, with
        ``analysis`` = ``"delta-adjustment"``, ``delta`` the shift in the unit of ``scale``, and
        the shift, the arm and the number of shifted scores first in ``notes``. Binary and
        count outcomes give the rows of
        :func:`~trialstats.analysis.imputation_glmm.glmm_pooled_rows` per delta.
    """
    _check(arm, scale)
    out = []
    for outcome in chosen_outcomes(config, outcomes):
        for month in config["design"]["followup_months"]:
            sd = trial.scales[(outcome["name"], month)]["sd_baseline"]
            cells = shifted_cells(trial, outcome["name"], month, arm)
            arms = f"{arm} {'arms' if arm == 'both' else 'arm'}"
            for delta in deltas:
                if outcome.get("type", "continuous") == "continuous":
                    raw = float(delta) * (sd if scale == "standardised" else 1.0)
                    rows = [pooled_row(trial, config, outcome, month, offset=raw * cells)]
                    note = (f"delta adjustment: {_unit(scale, sd, float(delta))} added to the "
                            f"{int(cells.sum())} imputed month-{month} scores of the {arms}")
                else:
                    rows = glmm_pooled_rows(trial, config, outcome, month, delta=float(delta),
                                            cells=cells > 0)
                    note = _glmm_note(outcome["type"], float(delta), int(cells.sum()), month,
                                      arms)
                for row in rows:
                    notes = (f"{row['notes']}; {note}" if row["notes"].startswith(
                        "not estimable") else f"{note}; {row['notes']}")
                    out.append({**row, "analysis": ANALYSIS, "delta": float(delta),
                                "notes": notes})
    return pd.DataFrame(out, columns=list(DELTA_COLUMNS))


def _glmm_note(kind: str, delta: float, cells: int, month: int, arms: str) -> str:
    """The delta-adjustment note of a binary or count outcome (delta on the link scale)."""
    scale, ratio = (("log-odds", "odds ratio") if kind == "binary"
                    else ("log-rate", "rate ratio"))
    return (f"delta adjustment: {delta:g} on the {scale} scale ({ratio} {np.exp(delta):.4g}) "
            f"added to the linear predictor of the {cells} imputed month-{month} values of "
            f"the {arms} before they were redrawn (delta_scale does not apply)")


def delta_adjustment(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None, *,
    trial: ImputedTrial | None = None,
) -> pd.DataFrame:
    """The ``delta-adjustment`` sensitivity analysis as configured (see :func:`delta_rows`).

    Uses ``sensitivity.delta``, ``delta_arm``, ``delta_scale``, ``imputations`` and ``seed``:
    the imputations are those of ``multiple-imputation`` (``trial``, from
    :func:`imputed_trial`, when already made).
    """
    settings = config["sensitivity"]
    trial = imputed_trial(patients, config) if trial is None else trial
    return delta_rows(trial, config, settings["delta"],
                      arm=settings["delta_arm"], scale=settings["delta_scale"],
                      outcomes=outcomes)


def _conclusion(criterion: str, row: dict[str, Any], alpha: float,
                higher_is_better: bool) -> str:
    if criterion == "significance":
        return "significant" if row["p_value"] < alpha else "not significant"
    return mcid_verdict(row["ci_low"], row["ci_high"], row["mcid"], higher_is_better)


def _tipping(
    evaluate: Callable[[float], dict[str, Any]],
    conclusion: Callable[[dict[str, Any]], str],
    thresholds: list[float],
    *,
    step: float,
    steps: int,
    xtol: float,
) -> float:
    """Smallest-|delta| change of ``conclusion`` (raw units; NaN if none within the scan)."""
    start = conclusion(evaluate(0.0))
    for k in range(1, steps + 1):
        for sign in (-1.0, 1.0):
            near, far = sign * (k - 1) * step, sign * k * step
            if conclusion(evaluate(far)) == start:
                continue
            roots = []
            for bound in ("ci_low", "ci_high"):
                for level in thresholds:
                    g_near = evaluate(near)[bound] - level
                    g_far = evaluate(far)[bound] - level
                    if g_near * g_far <= 0 and g_near != g_far:
                        roots.append(optimize.brentq(
                            lambda d, b=bound, v=level: evaluate(d)[b] - v, near, far,
                            xtol=xtol, rtol=4 * np.finfo(float).eps))
            # the first crossing after which the conclusion differs; a bound crossing a
            # threshold twice within one step is not resolved (the step end is returned)
            return next((root for root in sorted(roots, key=abs)
                         if conclusion(evaluate(root + 4 * sign * xtol)) != start), far)
    return float("nan")


def tipping_points(
    trial: ImputedTrial,
    config: dict[str, Any],
    *,
    arm: str = "intervention",
    scale: str = "raw",
    limit: float = 5.0,
    step: float = 0.25,
) -> pd.DataFrame:
    """The tipping point of each primary outcome at the primary month.

    Parameters
    ----------
    trial, config, arm, scale
        As :func:`delta_rows` (``scale`` is the unit of the reported delta); the primary
        outcomes at ``design.primary_month`` and ``analysis.alpha`` are used. For binary and
        count outcomes delta, ``limit`` and ``step`` are in log-odds (log-rate) units.
    limit, step : float
        The scan reaches ±``limit`` baseline SDs in steps of ``step`` SDs (module notes).

    Returns
    -------
    DataFrame
        :data:`TIPPING_COLUMNS`, two rows per primary outcome: ``criterion`` is
        ``significance`` (p crosses alpha) or ``mcid verdict``; ``delta`` the tipping shift
        in the unit of ``delta_scale`` (NaN when the conclusion holds over the whole scan, or
        for the verdict when no MCID is configured); ``estimate, ci_low, ci_high, p_value`` the
        pooled delta-adjusted analysis at that shift; ``conclusion_mar`` the conclusion at
        delta = 0 and ``conclusion_tipped`` just beyond the tipping shift (4 ``xtol`` further
        from 0); ``notes`` the arm,
        the scale and the search.

    Notes
    -----
    See the module docstring; the roots are reproducible to :math:`10^{-6}` baseline SD.
    """
    _check(arm, scale)
    out = []
    for outcome in config["outcomes"]:
        if not outcome.get("primary", False):
            continue
        out += _outcome_tipping(trial, config, outcome, arm=arm, scale=scale, limit=limit,
                                step=step)
    return pd.DataFrame(out, columns=list(TIPPING_COLUMNS))


def _outcome_tipping(trial: ImputedTrial, config: dict[str, Any], outcome: dict[str, Any], *,
                     arm: str, scale: str, limit: float, step: float) -> list[dict[str, Any]]:
    """The two tipping-point rows of one primary outcome (:func:`tipping_points`).

    A continuous outcome is searched in baseline SDs on its mean-difference row; a binary or
    count outcome in log-odds (log-rate) units, significance on its odds-ratio (rate-ratio)
    row (threshold 1) and the verdict on the row of its MCID's measure, ratios compared on the
    ratio scale (thresholds 1/r and r)."""
    month = config["design"]["primary_month"]
    alpha = float(config["analysis"]["alpha"])
    cells = shifted_cells(trial, outcome["name"], month, arm)
    cache: dict[float, dict[str, dict[str, Any]]] = {}
    continuous = outcome.get("type", "continuous") == "continuous"
    if continuous:
        scale_ = trial.scales[(outcome["name"], month)]
        sd, mcid = scale_["sd_baseline"], scale_["mcid"]
        unit, units = (1.0, "outcome units") if scale == "raw" else (sd, "baseline SDs")
        first = MEAN_DIFFERENCE
    else:
        sd = unit = 1.0
        units = "log-odds" if outcome["type"] == "binary" else "log-rate units"
        first = measures_of(outcome)[0]

    def evaluate(raw: float) -> dict[str, dict[str, Any]]:
        if raw not in cache:
            rows = ([pooled_row(trial, config, outcome, month, offset=raw * cells)]
                    if continuous
                    else glmm_pooled_rows(trial, config, outcome, month, delta=raw,
                                          cells=cells > 0))
            cache[raw] = {row["effect_measure"]: row for row in rows}
        return cache[raw]

    problem = evaluate(0.0)[first]["notes"]
    if problem.startswith("not estimable"):
        return [{"outcome": outcome["name"], "month": month, "criterion": criterion,
                 "delta": np.nan, "conclusion_mar": "", "conclusion_tipped": "",
                 "notes": problem} for criterion in ("significance", "mcid verdict")]
    verdict_on = next((m for m, row in evaluate(0.0).items() if np.isfinite(row["mcid"])),
                      first)
    if not continuous:
        mcid = evaluate(0.0)[verdict_on]["mcid"]
    ratio = first != MEAN_DIFFERENCE and verdict_on != RISK_DIFFERENCE
    out = []
    for criterion, measure, thresholds in (
            ("significance", first, [1.0 if first != MEAN_DIFFERENCE else 0.0]),
            ("mcid verdict", verdict_on, [1 / mcid, mcid] if ratio else [-mcid, mcid])):
        def picked(raw: float, measure=measure) -> dict[str, Any]:
            return evaluate(raw)[measure]

        def conclusion(row, criterion=criterion):
            if criterion == "mcid verdict" and not continuous:
                return row["mcid_verdict"]
            return _conclusion(criterion, row, alpha, outcome["higher_is_better"])

        base = {"outcome": outcome["name"], "month": month, "criterion": criterion,
                "conclusion_mar": conclusion(picked(0.0))}
        how = (f"imputed month-{month} {'scores' if continuous else 'values'} of the {arm} "
               f"{'arms' if arm == 'both' else 'arm'} shifted; delta in {units}")
        if not np.isfinite(mcid) and criterion == "mcid verdict":
            out.append({**base, "delta": np.nan, "conclusion_tipped": "",
                        "notes": "no MCID configured"})
            continue
        raw = _tipping(picked, conclusion, thresholds, step=step * sd,
                       steps=round(limit / step), xtol=_XTOL * sd)
        span = "baseline SD" if continuous else units
        if np.isnan(raw):
            out.append({**base, "delta": np.nan, "conclusion_tipped": "", "notes":
                        f"{how}; the conclusion holds for |delta| up to {limit:g} {span}"})
            continue
        at = picked(raw)
        tipped = conclusion(picked(raw + 4 * np.sign(raw) * _XTOL * sd))
        out.append({**base, "delta": raw / unit, "estimate": at["estimate"],
                    "ci_low": at["ci_low"], "ci_high": at["ci_high"],
                    "p_value": at["p_value"], "conclusion_tipped": tipped,
                    "notes": f"{how}; root to {_XTOL:g} {span}"})
    return out


def tipping_analysis(patients: pd.DataFrame, config: dict[str, Any], *,
                     trial: ImputedTrial | None = None) -> pd.DataFrame:
    """:func:`tipping_points` as configured: the imputations of ``multiple-imputation``
    (``trial``, from :func:`imputed_trial`, when already made) and
    ``sensitivity.delta_arm`` / ``delta_scale``."""
    settings = config["sensitivity"]
    trial = imputed_trial(patients, config) if trial is None else trial
    return tipping_points(trial, config, arm=settings["delta_arm"],
                          scale=settings["delta_scale"])
