"""The validity study (``trialstats methods-check``) as a short report: methods, two tables, figure.

Everything is read from the study table itself
(:func:`trialstats.simulation.validity.validity_study`, or its ``validity.csv`` read back), so
the report can be re-rendered without re-simulating and its methods text cannot drift from the
settings that were run. The type I error and coverage tables have one row per design cell
(clusters, then ICC, then cluster-size CV) and one column per analysis method; a cell whose
rate lies outside the acceptance band (:data:`trialstats.simulation.validity.SIZE_BAND` for
the type I error, its mirror around the nominal level for coverage) is marked with
:data:`FLAG`. The band is checked on the unrounded rates; numbers are rounded only when the
display cells are written. The figure (:func:`validity_figure`) plots both rates against the
number of clusters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from trialstats.contract import (
    ADJUSTED,
    BELL_MCCAFFREY,
    CLUSTER_DF,
    CR2,
    KAUERMANN_CARROLL,
    MANCL_DEROUEN,
    check_columns,
)
from trialstats.errors import TrialstatsError
from trialstats.report.document import Report, Section, Table
from trialstats.report.format import fmt, fmt_count
from trialstats.report.methods import REFERENCES
from trialstats.report.render import render_figure
from trialstats.simulation.analyse import MIXED_MODEL
from trialstats.simulation.constrained import PERMUTATION_COLUMNS
from trialstats.simulation.validity import COLUMNS, SIZE_BAND

#: Marker appended to a rate outside its acceptance band.
FLAG = "†"
#: Decimals of the rates in the tables.
DIGITS = 4
#: Design columns that define a cell of the continuous study after the number of clusters,
#: and their names in the tables.
CELL = ("icc", "cv")
CELL_NAMES = {"icc": "ICC", "cv": "CV", "prevalence": "prevalence"}

#: Column header, description and reference keys of each ``(analysis, method)`` of the study.
METHODS = {
    (MIXED_MODEL, "kenward-roger"): ("KR", "mixed model, Kenward-Roger SE and df",
                                     ("kenward-roger",)),
    (MIXED_MODEL, "satterthwaite"): ("Satt", "mixed model, model SE, Satterthwaite df",
                                     ("satterthwaite",)),
    (MIXED_MODEL, "between-within"): ("B-W", "mixed model, model SE, between-within df "
                                      "(J − 2 for arm)", ("between-within",)),
    (MIXED_MODEL, "residual"): ("resid", "mixed model, model SE, residual df (patients minus "
                                "parameters)", ()),
    (MIXED_MODEL, "z"): ("z", "mixed model, model SE, normal reference (Wald z)", ()),
    (ADJUSTED, CLUSTER_DF): ("CL", "two-stage cluster-level analysis (Hayes & Moulton), t on "
                             "J − 2 df", ()),
    (MANCL_DEROUEN, CLUSTER_DF): ("GEE-MD", "GEE with exchangeable working correlation, "
                                  "Mancl-DeRouen SE, t on J − 2 df", ()),
    (KAUERMANN_CARROLL, CLUSTER_DF): ("GEE-KC", "GEE with exchangeable working correlation, "
                                      "Kauermann-Carroll SE, t on J − 2 df", ()),
    (CR2, BELL_MCCAFFREY): ("CR2", "OLS with the CR2 cluster-robust SE, Bell-McCaffrey df",
                              ()),
}

_GENERATORS = {
    "sums": "each practice's sufficient statistics drawn from their exact distribution",
    "patients": "every patient generated",
}
_DESIGN = ("cluster_size", "attrition", "rho_s", "rho_c", "effect", "alpha", "seed")


def check_validity_table(
    study: pd.DataFrame, source: str, columns: Sequence[str] = COLUMNS,
    fixed: Sequence[str] = _DESIGN, written_by: str = "validity.csv written by `trialstats "
    "methods-check`",
) -> None:
    """Raise a user-facing error when ``study`` is not a validity-study table.

    Parameters
    ----------
    study : pandas.DataFrame
        The table to check.
    source : str
        Where it came from, for the message.
    columns, fixed : sequence of str
        Required columns (default :data:`trialstats.simulation.validity.COLUMNS`) and those
        that must hold one value (default the continuous study's mean cluster size,
        attrition, correlations, effect, alpha and seed).
    written_by : str
        What the table should be, for the message.

    Raises
    ------
    TrialstatsError
        When a column of ``columns`` is absent, the table is empty, or a ``fixed`` design
        value differs between rows.
    """
    check_columns(study, source, columns, f"is it the {written_by}?")
    if study.empty:
        raise TrialstatsError(f"{source}: the validity table has no rows.")
    mixed = [c for c in fixed if (study[c] != study[c].iloc[0]).any()]
    if mixed:
        raise TrialstatsError(
            f"{source}: {', '.join(mixed)} differ between rows; the report describes one "
            "study, so render each study's table separately."
        )


def method_label(analysis: str, method: str, methods: Mapping = METHODS) -> str:
    """Column header of ``(analysis, method)``: the abbreviation of ``methods`` (default
    :data:`METHODS`), or ``"analysis (method)"`` for an analysis not listed there."""
    known = methods.get((analysis, method))
    return known[0] if known else f"{analysis} ({method})"


def _keys(study: pd.DataFrame) -> list[tuple[str, str]]:
    """The ``(analysis, method)`` pairs of the study, in the table's order."""
    return list(dict.fromkeys(zip(study["analysis"], study["method"], strict=True)))


def _labels(keys: list[tuple[str, str]]) -> str:
    """``"A, B and C"``."""
    names = [method_label(*k) for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _abbreviations(keys: list[tuple[str, str]]) -> str:
    known = [k for k in keys if k in METHODS]
    return "; ".join(f"{METHODS[k][0]}: {METHODS[k][1]}" for k in known)


def _reps_text(study: pd.DataFrame) -> str:
    """``"10,000 trials per cell and hypothesis for KR, ... and CL; 2,000 for GEE-MD, ..."``."""
    parts = []
    for k, (reps, rows) in enumerate(study.groupby("reps", sort=False)):
        unit = " trials per cell and hypothesis" if k == 0 else ""
        parts.append(f"{fmt_count(reps)}{unit} for {_labels(_keys(rows))}")
    return "; ".join(parts)


def rate_summary(
    study: pd.DataFrame, rate: str, band: tuple[float, float], cell: Sequence[str] = CELL,
    methods: Mapping = METHODS,
) -> pd.DataFrame:
    """One rate of every cell and method, with whether it lies outside ``band``.

    Parameters
    ----------
    study : pandas.DataFrame
        The validity-study table.
    rate : {"type_i_error", "coverage"}
        Which rate.
    band : (float, float)
        Acceptance band, inclusive.
    cell : sequence of str
        The design columns that, after ``n_clusters``, define a cell (:data:`CELL`).
    methods : mapping
        Column headers (:data:`METHODS`).

    Returns
    -------
    pandas.DataFrame
        Sorted by cell, columns ``analysis``, ``method``, ``label`` (column header),
        ``n_clusters``, the ``cell`` columns, ``reps``, ``n_analysed``, the rate and its
        ``*_mc_se`` (unrounded) and ``flagged`` (the rate is outside ``band``; False when it
        is missing).
    """
    summary = study[["analysis", "method", "n_clusters", *cell, "reps", "n_analysed",
                     rate, f"{rate}_mc_se"]].copy()
    summary.insert(2, "label", [method_label(a, m, methods) for a, m in
                                zip(summary["analysis"], summary["method"], strict=True)])
    values = summary[rate]
    summary["flagged"] = values.notna() & ~values.between(*band)
    return summary.sort_values(["n_clusters", *cell], kind="stable").reset_index(drop=True)


def rate_table(summary: pd.DataFrame, rate: str, *, name: str, title: str, notes: str,
               cell: Sequence[str] = CELL) -> Table:
    """The display form of :func:`rate_summary`: clusters as headings, one row per ICC and CV.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`rate_summary`.
    rate : str
        The rate column shown.
    name, title, notes : str
        As in :class:`~trialstats.report.tables.Table`.
    cell : sequence of str
        The design columns of a row after ``n_clusters`` (:data:`CELL`).

    Returns
    -------
    Table
        Columns ``Design`` then one per method; a heading row per number of clusters, then
        one row per value of the ``cell`` columns (e.g. ``ICC 0.05, CV 0.8``). Cells hold the
        rate to :data:`DIGITS` decimals, followed by
        :data:`FLAG` when it is outside the band; empty when the method has no rate there.
    """
    labels = list(dict.fromkeys(summary["label"]))
    rows: list[tuple[str, ...]] = []
    depth: list[int] = []
    for n_clusters, group in summary.groupby("n_clusters", sort=False):
        rows.append((f"{fmt_count(n_clusters)} clusters", *[""] * len(labels)))
        depth.append(0)
        for values, part in group.groupby(list(cell), sort=False):
            by_label = {r.label: r for r in part.itertuples()}
            heading = ", ".join(f"{CELL_NAMES.get(c, c)} {v:g}"
                                for c, v in zip(cell, values, strict=True))
            rows.append((heading, *(
                fmt(getattr(by_label[label], rate), DIGITS)
                + (FLAG if by_label[label].flagged else "") if label in by_label else ""
                for label in labels
            )))
            depth.append(1)
    return Table(name=name, title=title, columns=("Design", *labels), rows=tuple(rows),
                 depth=tuple(depth), notes=notes, data=summary)


def type_i_error_table(study: pd.DataFrame, number: int) -> Table:
    """Type I error of every method in every cell; :data:`FLAG` outside :data:`SIZE_BAND`."""
    summary = rate_summary(study, "type_i_error", SIZE_BAND)
    keys = _keys(study)
    notes = (
        f"Share of the trials without an effect rejecting at two-sided α "
        f"{study['alpha'].iloc[0]:g} ({_reps_text(study)}), among those the method could "
        f"analyse; Monte Carlo SE at most {fmt(summary['type_i_error_mc_se'].max(), DIGITS)}. "
        f"{FLAG}: outside the acceptance band [{SIZE_BAND[0]:g}, {SIZE_BAND[1]:g}]. "
        f"{_abbreviations(keys)}."
    )
    return rate_table(
        summary, "type_i_error", name="validity_type_i_error",
        title=f"Table {number}. Type I error by number of clusters, ICC and cluster-size CV",
        notes=notes,
    )


def coverage_table(study: pd.DataFrame, number: int) -> Table:
    """Coverage of every method's interval; :data:`FLAG` outside the mirrored band."""
    band = (1.0 - SIZE_BAND[1], 1.0 - SIZE_BAND[0])
    summary = rate_summary(study, "coverage", band)
    alpha = float(study["alpha"].iloc[0])
    notes = (
        f"Share of the trials with a true effect of {study['effect'].iloc[0]:g} SD whose "
        f"{100 * (1 - alpha):g}% confidence interval contains it ({_reps_text(study)}); "
        f"Monte Carlo SE at most {fmt(summary['coverage_mc_se'].max(), DIGITS)}. {FLAG}: "
        f"outside [{band[0]:g}, {band[1]:g}]. Abbreviations as in the type I error table."
    )
    return rate_table(
        summary, "coverage", name="validity_coverage",
        title=f"Table {number}. Coverage of the {100 * (1 - alpha):g}% confidence interval by "
        "number of clusters, ICC and cluster-size CV",
        notes=notes,
    )


def _values(study: pd.DataFrame, column: str) -> str:
    values = [f"{v:g}" for v in sorted(study[column].unique())]
    return ", ".join(values[:-1]) + " and " + values[-1] if len(values) > 1 else values[0]


def validity_references(study: pd.DataFrame) -> list[str]:
    """Keys of :data:`trialstats.report.methods.REFERENCES` cited by :func:`validity_methods`,
    in order of citation."""
    keys = [ref for key in _keys(study) if key in METHODS for ref in METHODS[key][2]]
    return list(dict.fromkeys([*keys, "morris"]))


def validity_methods(study: pd.DataFrame, cite: dict[str, int]) -> list[str]:
    """Methods paragraphs: the analyses compared, then the simulation design, from the table.

    Parameters
    ----------
    study : pandas.DataFrame
        The validity-study table (checked with :func:`check_validity_table`).
    cite : dict
        Reference number of each key of :func:`validity_references`.

    Returns
    -------
    list of str
        Two paragraphs.
    """
    def ref(keys: tuple[str, ...]) -> str:
        return f" [{', '.join(str(cite[k]) for k in keys)}]" if keys else ""

    keys = _keys(study)
    first = study.iloc[0]
    alpha = float(first["alpha"])
    compared = "; ".join(
        f"{METHODS[k][0]}: {METHODS[k][1]}{ref(METHODS[k][2])}" if k in METHODS
        else method_label(*k) for k in keys
    )
    analyses = (
        "Each simulated trial was analysed as in the primary analysis (follow-up score "
        "regressed on arm and baseline score, complete cases, random intercept for practice, "
        "restricted maximum likelihood) and by the alternatives the pipeline offers. Methods "
        f"compared, by table column: {compared}."
    )
    generated = [f"{_GENERATORS.get(g, g)} for {_labels(_keys(study[study['generator'] == g]))}"
                 for g in dict.fromkeys(study["generator"])]
    cells = study[["n_clusters", "icc", "cv"]].drop_duplicates()
    design = (
        f"Trials were simulated for every combination of {_values(study, 'n_clusters')} "
        f"clusters (practices, randomised 1:1), intracluster correlation "
        f"{_values(study, 'icc')} and coefficient of variation of practice size "
        f"{_values(study, 'cv')} ({len(cells)} design cells). Practices recruited "
        f"{first['cluster_size']:g} patients on average (gamma-"
        f"distributed sizes with the cell's CV), {100 * first['attrition']:g}% of follow-up "
        "scores were missing completely at random, and the baseline-to-follow-up correlation "
        f"was {first['rho_s']:g} within patients and {first['rho_c']:g} between practice "
        f"effects ({'; '.join(generated)}). In each cell, trials without an effect gave the "
        f"type I error (share rejecting at two-sided α {alpha:g}) and, on independent "
        f"random-number streams, trials with an effect of {first['effect']:g} SD gave the "
        f"coverage of the {100 * (1 - alpha):g}% confidence interval and the power: "
        f"{_reps_text(study)}. Base seed {int(first['seed'])}, with an independent stream for "
        "every cell, hypothesis and trial. Rates are over the trials a method could analyse, "
        f"with Monte Carlo standard errors{ref(('morris',))}. A method was called valid in a "
        f"cell when its type I error lay within [{SIZE_BAND[0]:g}, {SIZE_BAND[1]:g}] "
        f"(coverage within [{1 - SIZE_BAND[1]:g}, {1 - SIZE_BAND[0]:g}])."
    )
    return [analyses, design]


_INK = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000",
        "#882255", "#999933")


def validity_figure(
    table: pd.DataFrame, *, panel: str = "icc", style: str = "cv",
    label: Callable[[str, str], str] | None = None, title: str | None = None,
) -> Figure:
    """Type I error (top row) and coverage (bottom row) against the number of clusters.

    One column per value of ``panel`` (default ICC); one colour per analysis method; solid
    lines for the first value of ``style`` (default cluster-size CV), dashed for the others.
    Bars are 95% Monte Carlo intervals (``± 1.96 mc_se``); the grey bands are
    :data:`SIZE_BAND` and its mirror around the nominal coverage.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`trialstats.simulation.validity.validity_study` (or of
        :func:`trialstats.simulation.validity_binary.binary_validity_study` with
        ``panel="prevalence", style="icc"``).
    panel, style : str
        Design columns of the panels and of the line styles.
    label : callable, optional
        Legend label of ``(analysis, method)``; default the df method for the mixed model and
        the analysis otherwise.
    title : str, optional
        Figure title; default that of the continuous study.

    Returns
    -------
    matplotlib.figure.Figure
    """
    panels = sorted(table[panel].unique())
    styled = sorted(table[style].unique())
    keyed = table.assign(label=[
        label(a, m) if label is not None else (m if a == MIXED_MODEL else a)
        for a, m in zip(table["analysis"], table["method"], strict=True)
    ])
    labels = list(dict.fromkeys(keyed["label"]))
    alpha = float(table["alpha"].iloc[0])
    figure = Figure(figsize=(10.0, 6.0))
    axes = figure.subplots(2, len(panels), sharex=True, sharey="row", squeeze=False)
    styles = {v: ("-" if i == 0 else "--", "o" if i == 0 else "s") for i, v in enumerate(styled)}
    rows = (("type_i_error", "type I error", SIZE_BAND),
            ("coverage", "coverage", (1.0 - SIZE_BAND[1], 1.0 - SIZE_BAND[0])))
    offsets = np.linspace(-0.04, 0.04, len(labels)) if len(labels) > 1 else np.zeros(1)
    for r, (column, name, band) in enumerate(rows):
        for c, value in enumerate(panels):
            ax = axes[r, c]
            ax.axhspan(*band, color="#dddddd", zorder=0)
            ax.axhline(alpha if r == 0 else 1.0 - alpha, color="#777777", lw=0.8, zorder=1)
            for k, name_k in enumerate(labels):
                for v in styled:
                    part = keyed[(keyed[panel] == value) & (keyed[style] == v)
                                 & (keyed["label"] == name_k)].sort_values("n_clusters")
                    line, marker = styles[v]
                    ax.errorbar(
                        part["n_clusters"] * np.exp(offsets[k]), part[column],
                        yerr=1.96 * part[f"{column}_mc_se"], color=_INK[k % len(_INK)],
                        ls=line, marker=marker, ms=3, lw=1.0, capsize=1.5,
                        label=(f"{name_k}, {CELL_NAMES.get(style, style)} {v:g}"
                               if r == 0 and c == 0 else None),
                    )
            ax.set_xscale("log")
            ticks = sorted(table["n_clusters"].unique())
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            if r == 0:
                ax.set_title(f"{CELL_NAMES.get(panel, panel)} {value:g}", fontsize=9)
            else:
                ax.set_xlabel("clusters (both arms)")
            if c == 0:
                ax.set_ylabel(name)
    first = table.iloc[0]
    figure.suptitle(title or (
        f"Validity of the primary analysis: {int(first['reps']):,} trials per cell and "
        f"hypothesis; mean cluster size {first['cluster_size']:g}, attrition "
        f"{first['attrition']:g}, effect {first['effect']:g} SD for coverage"),
        fontsize=9,
    )
    figure.legend(loc="lower center", ncol=min(len(labels), 5), fontsize=7, frameon=False)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.2, wspace=0.08, hspace=0.12)
    return figure


def permutation_table(permutation: pd.DataFrame, number: int) -> Table:
    """Type I error of the permutation test on constrained designs, one row per cell.

    Parameters
    ----------
    permutation : pandas.DataFrame
        From :func:`trialstats.simulation.constrained.permutation_validity`.
    number : int
        Table number.

    Returns
    -------
    Table
        Columns ``Design``, ``Trials``, ``Type I error`` (:data:`FLAG` outside
        :data:`SIZE_BAND`) and ``Monte Carlo SE``.
    """
    check_columns(permutation, "permutation validity table", PERMUTATION_COLUMNS,
                  "is it the permutation_validity.csv written by `trialstats methods-check`?")
    rows = tuple(
        (f"{r.n_clusters} practices, {r.outcome} outcome, "
         f"{'all' if r.space == 'all' else f'{int(r.space):,} sampled'} allocations",
         fmt_count(r.trials),
         fmt(r.type_i_error, DIGITS) + ("" if SIZE_BAND[0] <= r.type_i_error <= SIZE_BAND[1]
                                        else FLAG),
         fmt(r.type_i_error_mc_se, DIGITS))
        for r in permutation.itertuples()
    )
    first = permutation.iloc[0]
    notes = (
        f"Trials without an effect; practices carry x1 ~ N(0, 1) and x2 ~ Bernoulli(0.5) "
        f"that predict the outcome, are allocated 1:1 by constrained randomisation (l2 "
        f"balance on x1 and x2, the best {100 * first['cutoff']:g}% of the allocations, one "
        f"drawn), and are analysed by the clustered permutation test over the accepted "
        f"allocations adjusted for x1 and x2 (Gail et al. 1996; Li et al. 2016), rejecting at "
        f"p <= {first['alpha']:g}. Base seed {int(first['seed'])}. {FLAG}: outside "
        f"[{SIZE_BAND[0]:g}, {SIZE_BAND[1]:g}]."
    )
    return Table(
        name="validity_permutation",
        title=f"Table {number}. Type I error of the permutation test on constrained designs",
        columns=("Design", "Trials", "Type I error", "Monte Carlo SE"), rows=rows,
        depth=(0,) * len(rows), notes=notes, data=permutation,
    )


def validity_report(study: pd.DataFrame, permutation: pd.DataFrame | None = None) -> Report:
    """The validity report: methods, type I error table, coverage table, figure, references.

    Parameters
    ----------
    study : pandas.DataFrame
        The validity-study table (:data:`trialstats.simulation.validity.COLUMNS`).
    permutation : pandas.DataFrame, optional
        The permutation test's type I error on constrained designs
        (:func:`trialstats.simulation.constrained.permutation_validity`); adds its table.

    Returns
    -------
    Report
        Ready for every renderer of :mod:`trialstats.report.render`; its one figure is named
        ``validity``.

    Raises
    ------
    TrialstatsError
        When ``study`` fails :func:`check_validity_table`.
    """
    check_validity_table(study, "validity table")
    cited = validity_references(study)
    cite = {key: i for i, key in enumerate(cited, start=1)}
    alpha = float(study["alpha"].iloc[0])
    figure = render_figure(
        validity_figure(study), "validity",
        f"Figure 1. Type I error (top) and coverage of the {100 * (1 - alpha):g}% confidence "
        "interval (bottom) against the number of clusters, one panel per ICC; solid lines "
        "equal practice sizes, dashed the largest CV; bars are 95% Monte Carlo intervals and "
        "the grey bands the acceptance bands",
    )
    methods = len(_keys(study))
    cells = len(study[["n_clusters", "icc", "cv"]].drop_duplicates())
    subtitle = (
        f"Simulation study (trialstats methods-check): {cells} design cells, {methods} "
        f"analysis methods, base seed {int(study['seed'].iloc[0])}."
    )
    extra = () if permutation is None else (
        Section("Permutation test on constrained designs", (permutation_table(permutation, 3),)),
    )
    return Report("Validity of the analysis methods", subtitle, (
        Section("Methods", tuple(validity_methods(study, cite))),
        Section("Type I error", (type_i_error_table(study, 1),)),
        Section("Coverage", (coverage_table(study, 2),)),
        *extra,
        Section("Type I error and coverage by number of clusters", (figure,)),
        Section("References", tuple(REFERENCES[k] for k in cited)),
    ))
