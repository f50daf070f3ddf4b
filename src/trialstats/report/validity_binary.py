"""The binary-outcome validity study (``trialstats methods-check --outcome-type binary``) as a
short report: methods, type I error and coverage tables, figure, references.

Everything is read from the study table itself
(:func:`trialstats.simulation.validity_binary.binary_validity_study`, or its
``validity_binary.csv`` read back), as for the continuous study
(:mod:`trialstats.report.validity`, whose tables and figure it reuses with the cells
clusters x prevalence x ICC).
"""

from __future__ import annotations

import pandas as pd

from trialstats import contract as c
from trialstats.report.document import Report, Section, Table
from trialstats.report.format import fmt, fmt_count
from trialstats.report.methods import REFERENCES
from trialstats.report.render import render_figure
from trialstats.report.validity import (
    DIGITS,
    FLAG,
    check_validity_table,
    method_label,
    rate_summary,
    rate_table,
    validity_figure,
)
from trialstats.simulation.validity import SIZE_BAND
from trialstats.simulation.validity_binary import BINARY_COLUMNS, GLMM

__all__ = ["BINARY_METHODS", "binary_validity_report", "check_binary_validity_table"]

_GEE = "GEE (exchangeable, logit link), "
#: Column header, description and reference keys of each ``(analysis, method)``.
BINARY_METHODS = {
    (GLMM, "between-within"): (
        "GLMM B-W", "logistic GLMM (ML, adaptive quadrature), Wald t on J − 2 df "
        "(between-within)", ("li-redden",)),
    (GLMM, "residual"): ("GLMM resid", "logistic GLMM, t on patients − 2 df", ()),
    (GLMM, "z"): ("GLMM z", "logistic GLMM, Wald z", ()),
    (c.MANCL_DEROUEN, c.CLUSTER_DF): (
        "MD t", _GEE + "Mancl–DeRouen SE, t on J − 2 df", ("mancl-derouen",)),
    (c.MANCL_DEROUEN, "z"): ("MD z", _GEE + "Mancl–DeRouen SE, z", ()),
    (c.KAUERMANN_CARROLL, c.CLUSTER_DF): (
        "KC t", _GEE + "Kauermann–Carroll SE, t on J − 2 df", ("kauermann-carroll",)),
    (c.KAUERMANN_CARROLL, "z"): ("KC z", _GEE + "Kauermann–Carroll SE, z", ()),
    (c.FAY_GRAUBARD, c.CLUSTER_DF): (
        "FG t", _GEE + "Fay–Graubard SE (b = 0.75), t on J − 2 df", ("fay-graubard",)),
    (c.FAY_GRAUBARD, "z"): ("FG z", _GEE + "Fay–Graubard SE, z", ()),
    (c.FAY_GRAUBARD, c.FAY_GRAUBARD_DF): (
        "FG dH", _GEE + "Fay–Graubard SE, t on their df d̃_H", ()),
    (c.UNADJUSTED, c.CLUSTER_DF): (
        "CL-RD", "t test of practice proportions (risk difference), J − 2 df",
        ("hayes-moulton",)),
    (c.ADJUSTED, c.CLUSTER_DF): (
        "CL-HM", "t test of log(observed/expected) events per practice (Hayes & Moulton "
        "ratio), J − 2 df", ()),
}
_CELL = ("prevalence", "icc")
_FIXED = ("cluster_size", "cv", "odds_ratio", "alpha", "seed", "reps")


def check_binary_validity_table(study: pd.DataFrame, source: str) -> None:
    """Raise a user-facing error when ``study`` is not a binary validity-study table (a column
    of :data:`~trialstats.simulation.validity_binary.BINARY_COLUMNS` absent, no rows, or a fixed
    design value differing between rows)."""
    check_validity_table(study, source, BINARY_COLUMNS, _FIXED,
                         "validity_binary.csv written by `trialstats methods-check "
                         "--outcome-type binary`")


def _label(analysis: str, method: str) -> str:
    return method_label(analysis, method, BINARY_METHODS)


def _values(study: pd.DataFrame, column: str) -> str:
    values = [f"{v:g}" for v in sorted(study[column].unique())]
    return ", ".join(values[:-1]) + " and " + values[-1] if len(values) > 1 else values[0]


def _methods_text(study: pd.DataFrame, cite: dict[str, int]) -> list[str]:
    first = study.iloc[0]
    keys = list(dict.fromkeys(zip(study["analysis"], study["method"], strict=True)))
    compared = "; ".join(
        f"{BINARY_METHODS[k][0]}: {BINARY_METHODS[k][1]}"
        + (f" [{', '.join(str(cite[r]) for r in BINARY_METHODS[k][2])}]"
           if BINARY_METHODS[k][2] else "") if k in BINARY_METHODS else _label(*k)
        for k in keys
    )
    alpha = float(first["alpha"])
    design = (
        f"Trials with a binary outcome and no covariates were simulated for every combination "
        f"of {_values(study, 'n_clusters')} clusters (randomised 1:1), control-arm risk "
        f"{_values(study, 'prevalence')} (of a typical cluster) and latent-scale ICC "
        f"{_values(study, 'icc')}; clusters recruited {first['cluster_size']:g} patients on "
        f"average (gamma-distributed sizes, CV {first['cv']:g}). Events were binomial given "
        "a normal random cluster intercept on the logit scale. In each cell "
        f"{fmt_count(first['reps'])} trials without an effect gave the type I error (share "
        f"rejecting at two-sided α {alpha:g}) and, on independent random streams, "
        f"{fmt_count(first['reps'])} trials with a cluster-specific odds ratio of "
        f"{first['odds_ratio']:g} gave the coverage of the {100 * (1 - alpha):g}% interval, "
        "judged against the parameter each method estimates: the cluster-specific log odds "
        "ratio (GLMM), the population-averaged log odds ratio (GEE) and the risk difference "
        "(practice proportions); the Hayes–Moulton ratio has no exact target and only its "
        f"type I error is shown. Base seed {int(first['seed'])}. Rates are over the trials a "
        f"method could analyse, with Monte Carlo standard errors [{cite['morris']}]; a method "
        f"was called valid when its type I error lay within [{SIZE_BAND[0]:g}, "
        f"{SIZE_BAND[1]:g}] (coverage within [{1 - SIZE_BAND[1]:g}, {1 - SIZE_BAND[0]:g}])."
    )
    return [f"Methods compared, by table column: {compared}.", design]


def _tables(study: pd.DataFrame) -> tuple[Table, Table]:
    alpha = float(study["alpha"].iloc[0])
    reps = fmt_count(study["reps"].iloc[0])
    size = rate_summary(study, "type_i_error", SIZE_BAND, _CELL, BINARY_METHODS)
    fewest = study.loc[study["analysis"] != c.ADJUSTED, "n_analysed"].min()
    hayes_moulton = study.loc[study["analysis"] == c.ADJUSTED, "n_analysed"]
    other = study["analysis"] != c.ADJUSTED
    size_notes = (
        f"Share of the {reps} trials per cell without an effect rejecting at two-sided α "
        f"{alpha:g}, among those the method could analyse (at least {fmt_count(fewest)}"
        + (f"; CL-HM {fmt_count(hayes_moulton.min())}–{fmt_count(hayes_moulton.max())}, as it "
           "needs an event in every practice" if len(hayes_moulton) else "")
        + "); Monte Carlo SE at most "
        f"{fmt(study.loc[other, 'type_i_error_mc_se'].max(), DIGITS)}"
        + (" (CL-HM: larger where few trials were analysable)" if len(hayes_moulton) else "")
        + f". {FLAG}: outside [{SIZE_BAND[0]:g}, {SIZE_BAND[1]:g}]."
    )
    band = (1.0 - SIZE_BAND[1], 1.0 - SIZE_BAND[0])
    covered = study[study["coverage"].notna()]
    coverage = rate_summary(covered, "coverage", band, _CELL, BINARY_METHODS)
    coverage_notes = (
        f"Share of the {reps} trials per cell with an odds ratio of "
        f"{study['odds_ratio'].iloc[0]:g} whose {100 * (1 - alpha):g}% interval contains the "
        "parameter the method estimates; Monte Carlo SE at most "
        f"{fmt(coverage['coverage_mc_se'].max(), DIGITS)}. {FLAG}: outside "
        f"[{band[0]:g}, {band[1]:g}]."
    )
    return (
        rate_table(size, "type_i_error", name="validity_binary_type_i_error",
                   title="Table 1. Type I error by number of clusters, prevalence and ICC "
                   "(binary outcome)", notes=size_notes, cell=_CELL),
        rate_table(coverage, "coverage", name="validity_binary_coverage",
                   title=f"Table 2. Coverage of the {100 * (1 - alpha):g}% confidence interval "
                   "by number of clusters, prevalence and ICC (binary outcome)",
                   notes=coverage_notes, cell=_CELL),
    )


def binary_validity_report(study: pd.DataFrame) -> Report:
    """The binary validity report: methods, type I error and coverage tables, figure.

    Parameters
    ----------
    study : pandas.DataFrame
        :data:`~trialstats.simulation.validity_binary.BINARY_COLUMNS`.

    Returns
    -------
    Report
        Its one figure is named ``validity_binary``.

    Raises
    ------
    TrialstatsError
        When ``study`` fails :func:`check_binary_validity_table`.
    """
    check_binary_validity_table(study, "binary validity table")
    keys = list(dict.fromkeys(zip(study["analysis"], study["method"], strict=True)))
    cited = list(dict.fromkeys(
        [r for k in keys if k in BINARY_METHODS for r in BINARY_METHODS[k][2]] + ["morris"]))
    cite = {key: i for i, key in enumerate(cited, start=1)}
    first = study.iloc[0]
    alpha = float(first["alpha"])
    figure = render_figure(
        validity_figure(
            study, panel="prevalence", style="icc", label=_label,
            title=f"Validity for a binary outcome: {int(first['reps']):,} trials per cell and "
            f"hypothesis; mean cluster size {first['cluster_size']:g} (CV {first['cv']:g}), "
            f"odds ratio {first['odds_ratio']:g} for coverage"),
        "validity_binary",
        f"Figure 1. Type I error (top) and coverage of the {100 * (1 - alpha):g}% confidence "
        "interval (bottom) against the number of clusters, one panel per prevalence; solid "
        "lines the smaller ICC, dashed the larger; bars are 95% Monte Carlo intervals and the "
        "grey bands the acceptance bands",
    )
    size, coverage = _tables(study)
    cells = len(study[["n_clusters", *_CELL]].drop_duplicates())
    return Report("Validity of the analysis methods for a binary outcome", (
        f"Simulation study (trialstats methods-check --outcome-type binary): {cells} design "
        f"cells, {len(keys)} analysis methods, base seed {int(first['seed'])}."), (
        Section("Methods", tuple(_methods_text(study, cite))),
        Section("Type I error", (size,)),
        Section("Coverage", (coverage,)),
        Section("Type I error and coverage by number of clusters", (figure,)),
        Section("References", tuple(REFERENCES[k] for k in cited)),
    ))
