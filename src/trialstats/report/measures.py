"""Effect measures in the report: the cells of an analysis row on the scale of its own measure.

A results row (``primary.csv``, ``sensitivity.csv``) holds one ``effect_measure``
(:data:`~trialstats.contract.EFFECT_MEASURES`): a mean difference of a score, the odds ratio
(OR) of a binary outcome from the logistic GLMM with the marginal risk difference (RD) and risk
ratio (RR) standardised from it, or the rate ratio of a count. Ratios are shown with two
decimals and risk differences (proportions) with three. CONSORT 2010 item 17b asks for the
absolute and the relative effect of a binary outcome together, so the outcome tables show the
OR, RD and RR of one outcome x month side by side in one row (:func:`glmm_cells`).

An MCID is set on the scale of one measure and judges that measure's row only (the analysis
writes ``mcid`` and ``mcid_verdict`` on that row; see :mod:`trialstats.analysis.glmm_rows`):
a risk-difference MCID on the RD row, a ratio MCID :math:`r` (the band :math:`1/r` to :math:`r`)
on the row of that ratio. The tables show the MCID and the verdict with the measure they judge.

A row whose ``estimate`` is missing is *not estimable* (its ``notes`` say why, e.g. an analysis
defined only for continuous outcomes); it is shown as such, not as a failed fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.glmm import DEFAULT_N_AGQ
from trialstats.contract import (
    GLMM_DF_METHODS,
    MEAN_DIFFERENCE,
    ODDS_RATIO,
    RATE_RATIO,
    RATIO_MEASURES,
    RISK_DIFFERENCE,
    RISK_RATIO,
)
from trialstats.report.format import (
    contrast_text,
    fmt,
    fmt_ci,
    fmt_count,
    fmt_p,
    method_name,
    truthy,
    words,
)

__all__ = [
    "MEASURE_ABBREVIATIONS",
    "NOT_ESTIMABLE",
    "effect_cells",
    "estimable",
    "estimate_cell",
    "glmm_cells",
    "glmm_columns",
    "glmm_note",
    "mcid_cell",
    "measure_digits",
    "verdict_cell",
]

#: Short names of the effect measures in table cells.
MEASURE_ABBREVIATIONS = {ODDS_RATIO: "OR", RISK_DIFFERENCE: "RD", RISK_RATIO: "RR",
                         RATE_RATIO: "rate ratio"}
#: The effect cell of a row without an estimate.
NOT_ESTIMABLE = "not estimable"
#: The measure shown in an outcome table's effect column, by preference.
_MAIN = (ODDS_RATIO, RATE_RATIO, MEAN_DIFFERENCE)


def estimable(row: pd.Series) -> bool:
    """Whether a results row has an estimate."""
    return bool(np.isfinite(pd.to_numeric(row["estimate"], errors="coerce")))


def measure_digits(row: pd.Series, digits: int) -> int:
    """Decimals of a row's estimate: ratios 2, risk differences 3, else ``digits``."""
    measure = row.get("effect_measure")
    if measure in RATIO_MEASURES:
        return 2
    return 3 if measure == RISK_DIFFERENCE else digits


def mcid_cell(row: pd.Series, digits: int, named: bool = False) -> str:
    """The MCID of a row: raw (standardised) for a score, else on its measure's scale,
    prefixed with the measure's short name when ``named`` (``RD 0.050``)."""
    if not np.isfinite(row["mcid"]):
        return ""
    if not np.isfinite(row["sd_baseline"]):  # binary and count outcomes: on its own scale
        value = fmt(row["mcid"], measure_digits(row, digits))
        measure = MEASURE_ABBREVIATIONS.get(row.get("effect_measure"), "")
        return f"{measure} {value}" if named and measure else value
    return f"{fmt(row['mcid'], digits)} ({fmt(row['mcid'] / row['sd_baseline'], 2)})"


def _flag(row: pd.Series) -> str:
    """``" †"`` for an estimate from a fit that did not converge."""
    return " †" if estimable(row) and not truthy(row["converged"]) else ""


def estimate_cell(row: pd.Series, digits: int, named: bool = True) -> str:
    """A row's estimate (CI) at its measure's decimals, prefixed with the measure's short name
    when ``named`` (``OR 2.27 (1.32 to 3.91)``; a mean difference has none), "not estimable"
    without an estimate, and " †" after an estimate of a fit that did not converge."""
    if not estimable(row):
        return NOT_ESTIMABLE
    measure = MEASURE_ABBREVIATIONS.get(row.get("effect_measure"), "") if named else ""
    estimate = fmt_ci(row["estimate"], row["ci_low"], row["ci_high"],
                      measure_digits(row, digits))
    return (f"{measure} {estimate}" if measure else estimate) + _flag(row)


def effect_cells(row: pd.Series | None, digits: int) -> list[str]:
    """The analysis cells of one results row: analysed n (clusters), estimate (CI), p,
    ICC (CI), standardised effect (CI), MCID and verdict (blank without a row)."""
    if row is None:
        return [""] * 7
    return [
        f"{fmt_count(row['n_patients'])} ({fmt_count(row['n_clusters'])})",
        estimate_cell(row, digits),
        fmt_p(row["p_value"]),
        fmt_ci(row["icc"], row["icc_ci_low"], row["icc_ci_high"], 3),
        fmt_ci(row["effect_size"], row["es_ci_low"], row["es_ci_high"], 2),
        mcid_cell(row, digits),
        "" if pd.isna(row["mcid_verdict"]) else str(row["mcid_verdict"]),
    ]


def verdict_cell(rows: pd.DataFrame) -> str:
    """The MCID verdict of one outcome x month: that of the row whose measure the MCID is set
    on, named by its measure when the outcome has several (``inconclusive (RD)``)."""
    judged = rows[rows["mcid_verdict"].notna() & (rows["mcid_verdict"].astype(str) != "")]
    if judged.empty:
        return ""
    row = judged.iloc[0]
    measure = MEASURE_ABBREVIATIONS.get(row.get("effect_measure"))
    return f"{row['mcid_verdict']} ({measure})" if len(rows) > 1 and measure else str(
        row["mcid_verdict"])


def glmm_cells(rows: pd.DataFrame | None, digits: int, binary: bool,
               standardised: bool) -> list[str]:
    """The analysis cells of one outcome x month in a table that has binary or count outcomes.

    Parameters
    ----------
    rows : DataFrame or None
        The primary-method rows of the outcome x month, one per effect measure.
    digits : int
        Decimals of a mean difference.
    binary : bool
        Whether the table has RD and RR columns (it holds a binary outcome).
    standardised : bool
        Whether the table has a standardised-effect column (it holds a score).

    Returns
    -------
    list of str
        Analysed n (clusters); effect (CI) of the OR, rate ratio or mean difference named by
        its measure; its p; with ``binary``, the RD (CI) and RR (CI); ICC (CI); with
        ``standardised``, the standardised effect (CI); MCID (with its measure); verdict.
    """
    size = 6 + 2 * binary + standardised
    if rows is None or rows.empty:
        return [""] * size
    measures = rows["effect_measure"].tolist()
    main = rows.iloc[next((measures.index(m) for m in _MAIN if m in measures), 0)]
    by_measure = {m: rows.iloc[k] for k, m in enumerate(measures)}
    judged = rows[np.isfinite(rows["mcid"].astype(float))]
    cells = [f"{fmt_count(main['n_patients'])} ({fmt_count(main['n_clusters'])})",
             estimate_cell(main, digits, main["effect_measure"] != MEAN_DIFFERENCE),
             fmt_p(main["p_value"])]
    if binary:
        cells += ["" if m not in by_measure else estimate_cell(by_measure[m], digits, False)
                  for m in (RISK_DIFFERENCE, RISK_RATIO)]
    cells.append(fmt_ci(main["icc"], main["icc_ci_low"], main["icc_ci_high"], 3))
    if standardised:
        cells.append(fmt_ci(main["effect_size"], main["es_ci_low"], main["es_ci_high"], 2))
    cells += [mcid_cell(judged.iloc[0], digits, named=True) if len(judged) else "",
              verdict_cell(rows)]
    return cells


def glmm_columns(shape: tuple[bool, bool], level: str) -> tuple[str, ...]:
    """The analysis column titles after "Analysed n" and before "MCID verdict" of an outcome
    table with binary or count outcomes (``shape`` as in :func:`glmm_cells`)."""
    binary, standardised = shape
    return (
        f"Effect ({level} CI)", "p",
        *((f"Risk difference ({level} CI)", f"Risk ratio ({level} CI)") if binary else ()),
        f"ICC ({level} CI)",
        *((f"Standardised effect ({level} CI)",) if standardised else ()),
        "MCID",
    )


def glmm_note(config: dict[str, Any], kinds: set[str]) -> str:
    """The note of an outcome table with binary or count outcomes: what each summary, effect
    and MCID is, for the outcome types (``kinds``: binary, count, continuous) it holds."""
    analysis = config["analysis"]
    level = f"{100 * (1 - analysis['alpha']):g}%"
    w = words(config)
    glmm_df = method_name(analysis.get("glmm_df_method", GLMM_DF_METHODS)[0])
    nodes = analysis.get("quadrature_points", DEFAULT_N_AGQ)
    exposures = [o["exposure"] for o in config["outcomes"]
                 if o.get("type") == "count" and "exposure" in o]
    terms = ["the baseline value", *analysis["covariates"]]
    adjusted = (", ".join(terms[:-1]) + " and " if len(terms) > 1 else "") + terms[-1]
    summaries = {
        "binary": "events n (%) of binary outcomes",
        "count": f"of counts the mean (SD) per {w.participant}" + (
            " at baseline and, at follow-up, total events / total exposure "
            f"({', '.join(dict.fromkeys(exposures))}) with the rate per unit of exposure"
            if exposures else ""),
        "continuous": "mean (SD) of scores",
    }
    effects = {
        "binary": "for binary outcomes the odds ratio (OR) from a logistic mixed model with a "
        f"random intercept for {w.cluster} (maximum likelihood, {nodes}-node adaptive "
        "Gauss-Hermite quadrature), beside the marginal risk difference (a difference of "
        "proportions) and risk ratio standardised from the same model (their p-values are "
        "in primary.csv)",
        "count": "for counts the rate ratio from a Poisson or negative binomial mixed model "
        f"with a random intercept for {w.cluster} (the notes of primary.csv name the family)",
    }
    iccs = {"binary": "on the latent (logistic) scale for binary outcomes",
            "count": "not defined for counts"}
    return (
        f"n and summary: observed values of all recruited {w.participants}; "
        + "; ".join(summaries[k] for k in summaries if k in kinds) + ". "
        + f"Effect (intervention versus control, adjusted for {adjusted}): "
        + "; ".join(effects[k] for k in effects if k in kinds)
        + f"; {level} CI and p with {glmm_df} degrees of freedom. ICC: intracluster "
        "correlation coefficient, " + " and ".join(iccs[k] for k in iccs if k in kinds) + "."
        + (f" For scores: adjusted mean difference ({contrast_text(config)}) from a linear "
           f"mixed model, {level} CI and p with "
           f"{method_name(analysis['df_method'][0])} degrees of freedom; standardised "
           "effect: the difference divided by the baseline SD (both arms pooled)."
           if "continuous" in kinds else "")
        + " MCID: minimal clinically important difference, on the scale of the measure it "
        "names" + (" (a score's raw value with its size in baseline SDs)"
                   if "continuous" in kinds else "")
        + "; the verdict compares that measure's confidence interval with it."
    )
