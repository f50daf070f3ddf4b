"""Assemble the report and its supplement from the trial tables and the analysis results
(no file I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trialstats.contract import RATIO_MEASURES, RISK_DIFFERENCE
from trialstats.data.periods import is_period_design
from trialstats.report.consort import consort_counts, flow_figure
from trialstats.report.document import Report, Section
from trialstats.report.figures import (
    forest_data,
    forest_figure,
    measure_figure,
    measure_forest_data,
    sensitivity_figure,
    sensitivity_measure_figure,
    split_by_outcome,
)
from trialstats.report.format import month_label, printable, words
from trialstats.report.methods import (
    REFERENCES,
    methods_paragraphs,
    provenance_table,
    reference_keys,
)
from trialstats.report.periods import build_period_report
from trialstats.report.planning import check_power, planning_references, planning_section
from trialstats.report.render import render_figure
from trialstats.report.supplement import (
    SUBGROUP,
    completeness_table,
    dropout_table,
    subgroup_table,
)
from trialstats.report.tables import (
    baseline_summary,
    baseline_table,
    check_results,
    outcome_summary,
    outcome_table,
    sensitivity_summary,
    sensitivity_table,
)
from trialstats.report.tipping import tipping_figure, tipping_sentences


@dataclass(frozen=True)
class Provenance:
    """Facts about the run gathered at the command's edge.

    Attributes
    ----------
    files : list of (role, path, sha256)
        Configuration, raw inputs and results files with their checksums.
    versions : dict
        Python and package versions.
    commit : str
        Git commit of the working tree, or ``"not available"``.
    """

    files: list[tuple[str, str, str]]
    versions: dict[str, str]
    commit: str


@dataclass(frozen=True)
class MissingData:
    """The missing-data summary tables (``results/missing_data``)."""

    completeness: pd.DataFrame
    dropout: pd.DataFrame


def build_report(
    practices: pd.DataFrame, patients: pd.DataFrame, config: dict[str, Any],
    results: pd.DataFrame, sensitivity: pd.DataFrame | None, provenance: Provenance,
    power: pd.DataFrame | None = None, missing: MissingData | None = None,
    tipping: pd.DataFrame | None = None, allocation: Section | None = None,
) -> tuple[Report, Report, pd.DataFrame]:
    """Build every table and figure of the report and its supplement.

    Parameters
    ----------
    practices, patients : DataFrame
        The validated trial tables.
    config : dict
        The validated run configuration.
    results : DataFrame
        ``primary.csv``.
    sensitivity : DataFrame or None
        ``sensitivity.csv`` when the workflow produced one.
    provenance : Provenance
        Checksums, versions and commit for the provenance table.
    power : DataFrame or None
        The gathered power-grid table (``results/power/power.csv``); when given, a
        "Planning the next trial" section shows its power curves and the clusters per arm
        needed for 80% and 90% power.
    missing : MissingData or None
        The missing-data tables; when given, the supplement reports them.
    tipping : DataFrame or None
        The tipping points of the delta-adjustment analysis (``results/tipping.csv``); when
        given, one sentence per primary outcome in the results and a figure each in the
        supplement.
    allocation : Section or None
        :func:`trialstats.report.allocation.allocation_section`, placed before the references.

    Returns
    -------
    Report
        The main report (what a paper holds): methods, flow, Table 1, the primary outcomes at
        the primary month, the other outcomes and months, the forest plot, a one-row-per-
        analysis sensitivity summary of the primary outcomes at the primary month, planning.
    Report
        The supplement: every sensitivity row at every month, its figures (split by outcome
        so each fits a page), the exploratory subgroup analyses and the missing-data tables.
    DataFrame
        The CONSORT counts (:func:`trialstats.report.consort.consort_counts`).

    Raises
    ------
    TrialstatsError
        When a results table lacks a column or does not match the data.

    Notes
    -----
    Period designs (stepped wedge, crossover, parallel-baseline) get their own report
    (:func:`trialstats.report.periods.build_period_report`; ``power`` is not shown).
    """
    check_results(results, "primary.csv")
    if sensitivity is not None:
        check_results(sensitivity, "sensitivity.csv", ("analysis",))
    if is_period_design(config):
        report, counts = build_period_report(practices, patients, config, results, sensitivity,
                                             provenance)
        supplement = Report(f"Supplement: {report.title}", report.subtitle, (Section(
            "Supplementary material",
            ("Every analysis of this design (the primary model and the sensitivity analyses) "
             "is in the main report.",)),))
        return report, supplement, counts
    if power is not None:
        check_power(power, "power.csv")
    # a control character in a label or a cell would break Word and SVG output
    practices, patients, config, results, sensitivity, power = (printable(v) for v in (
        practices, patients, config, results, sensitivity, power))
    design = config["design"]
    w = words(config)
    counts = consort_counts(practices, patients, results, config)
    month = design["primary_month"]
    primary_month = month_label(month, -1)
    flow = render_figure(
        flow_figure(counts, config), "consort",
        f"Figure 1. Flow of {w.clusters} and {w.participants} through the trial (CONSORT 2010, "
        "extension to cluster randomised trials)",
    )
    table1 = baseline_table(baseline_summary(practices, patients, config), config)
    descriptive = outcome_summary(patients, config)

    def headline(primary: bool, at: int) -> bool:
        return primary and at in (design["baseline_month"], month)

    results_items: list = [
        outcome_table(descriptive, results, config, headline, "table2_primary",
                      f"Table 2. Primary outcomes at {primary_month}: by arm and estimated "
                      "effects"),
    ]
    tables = 2
    other = outcome_table(descriptive, results, config,
                          lambda primary, at: not headline(primary, at) and (
                              not primary or at != design["baseline_month"]),
                          "table3_other", "Table 3. Secondary outcomes, and primary outcomes "
                          "at other months: by arm and estimated effects")
    if other.rows:
        tables = 3
        results_items.append(other)
    figures = 1
    standardised = forest_data(results, config)
    if len(standardised):  # binary and count outcomes have no standardised effect
        figures += 1
        results_items.append(render_figure(
            forest_figure(standardised, config), "forest",
            f"Figure {figures}. Standardised effects at {primary_month} with confidence "
            "intervals; the shaded band runs from −MCID to +MCID for each outcome",
        ))
    for ratios, caption in (
            (True, "Odds, risk and rate ratios at {month} with confidence intervals, on a log "
                   "scale (null value 1); the shaded band runs from 1/MCID to MCID where the "
                   "MCID is set on that ratio"),
            (False, "Risk differences at {month} with confidence intervals (null value 0); "
                    "the shaded band runs from −MCID to +MCID where the MCID is set on the "
                    "risk difference")):
        measured = measure_forest_data(results, config, ratios)
        if len(measured):
            figures += 1
            results_items.append(render_figure(
                measure_figure(measured, config, ratios),
                "forest_ratios" if ratios else "forest_risk_differences",
                f"Figure {figures}. " + caption.format(month=primary_month)))
    if sensitivity is None:
        sensitivity = pd.DataFrame(columns=[*results.columns, "analysis"])
    subgroup = sensitivity["analysis"].astype(str).str.startswith(SUBGROUP)
    others = sensitivity[~subgroup]
    primary_names = [o["name"] for o in config["outcomes"] if o["primary"]]
    compact = sensitivity_summary(results[results["outcome"].isin(primary_names)],
                                  others[others["outcome"].isin(primary_names)], config)
    if len(compact):
        tables += 1
        results_items.append(sensitivity_table(
            compact, config, f"table{tables}_sensitivity",
            f"Table {tables}. Sensitivity analyses of the primary outcomes at "
            f"{primary_month} (all analyses: Supplementary Table S1)"))
    supplement = _supplement(results, others, sensitivity[subgroup], missing, config)
    if tipping is not None and len(tipping):
        sentences = tipping_sentences(tipping, config)
        results_items += list(sentences.values())
        supplement.append(Section("Missing not at random: tipping points", (
            *sentences.values(),
            *(render_figure(
                tipping_figure(others, tipping, name, config), f"supplement_tipping_{k}",
                f"Figure T{k}. Delta-adjusted multiple imputation of "
                f"{_label(config, name)}: estimate and confidence interval against delta, "
                "the MCID band and the tipping points")
              for k, name in enumerate(dict.fromkeys(tipping["outcome"]), start=1)),
        )))
    methods = methods_paragraphs(config, counts, results, sensitivity if len(sensitivity) else None,
                                 provenance.versions)
    sections = [
        Section("Statistical methods", tuple(methods)),
        Section("Participant flow", (flow,)),
        Section("Baseline characteristics", (table1,)),
        Section("Outcomes", tuple(results_items)),
    ]
    analyses = tuple(dict.fromkeys(sensitivity["analysis"].astype(str)))
    cited = reference_keys(config, analyses,
                           planning_references(power) if power is not None else ())
    if power is not None:
        cite = {key: i for i, key in enumerate(cited, start=1)}
        sections.append(planning_section(power, cite, table=tables + 1, figure=figures + 1,
                                         w=w))
    sections += [
        *([allocation] if allocation is not None else []),
        Section("References", tuple(REFERENCES[k] for k in cited)),
        Section("Provenance", (provenance_table(provenance.files, provenance.versions,
                                                provenance.commit),)),
    ]
    randomised = counts[counts["stage"] == "randomised"].iloc[0]
    outcomes = [o["label"] for o in config["outcomes"] if o["primary"]]
    subtitle = (
        f"Cluster randomised trial: {w.count(randomised['clusters'])}, "
        f"{w.count(randomised['patients'], True)}; primary outcome"
        f"{'s' if len(outcomes) != 1 else ''} {', '.join(outcomes) or 'none'} at {primary_month}."
    )
    title = config.get("report", {}).get("title") or "Trial report"
    main = Report(title, subtitle, tuple(sections))
    extra = Report(f"{title}: supplementary material", subtitle, tuple(supplement))
    return main, extra, counts


def _label(config: dict[str, Any], name: str) -> str:
    return next(o["label"] for o in config["outcomes"] if o["name"] == name)


def _supplement(
    results: pd.DataFrame, sensitivity: pd.DataFrame, subgroups: pd.DataFrame,
    missing: MissingData | None, config: dict[str, Any],
) -> list[Section]:
    """Sections of the supplement (Tables S1..., Figures S1...)."""
    design = config["design"]
    sections: list[Section] = []
    table = 0
    full = sensitivity_summary(results, sensitivity, config, design["followup_months"])
    if len(full):
        table += 1
        items: list = [sensitivity_table(
            full, config, f"table_s{table}_sensitivity",
            f"Table S{table}. Sensitivity analyses of every outcome at every follow-up month")]
        every = sensitivity_summary(results, sensitivity, config)
        # Standardised effects first; binary and count outcomes have none (their own figures
        # follow).
        with_effects = every.groupby("outcome")["effect_size"].transform(
            lambda e: e.notna().any())
        at_primary = every[with_effects.astype(bool)] if len(every) else every
        for k, part in enumerate(split_by_outcome(at_primary), start=1):
            labels = ", ".join(dict.fromkeys(part["label"]))
            items.append(render_figure(
                sensitivity_figure(part, config), f"supplement_sensitivity_{k}",
                f"Figure S{k}. Standardised effects of the primary and sensitivity analyses "
                f"at {month_label(design['primary_month'], -1)}: {labels}; the shaded band "
                "runs from −MCID to +MCID"))
        items += _measure_figures(every, config, len(items))
        sections.append(Section("Sensitivity analyses", tuple(items)))
    if len(subgroups):
        table += 1
        sections.append(Section("Exploratory subgroup analyses", (subgroup_table(
            subgroups, config, f"table_s{table}_subgroups",
            f"Table S{table}. Exploratory subgroup analyses"),)))
    if missing is not None:
        table += 2
        sections.append(Section("Missing data", (
            completeness_table(missing.completeness, config, f"table_s{table - 1}_completeness",
                               f"Table S{table - 1}. Completeness of outcome data by arm"),
            dropout_table(missing.dropout, config, f"table_s{table}_dropout",
                          f"Table S{table}. Predictors of returning the follow-up "
                          "questionnaire"),
        )))
    return sections


def _measure_figures(at_primary: pd.DataFrame, config: dict[str, Any], first: int) -> list:
    """Supplementary figures of the binary and count outcomes' analyses at the primary month:
    ratios on a log scale, then risk differences, each split by outcome to fit a page and
    numbered from Figure S``first``."""
    figures: list = []
    month = month_label(config["design"]["primary_month"], -1)
    estimated = at_primary[np.isfinite(at_primary["estimate"].astype(float))]
    for ratios, stem, what in ((True, "ratios", "Odds, risk and rate ratios (log scale)"),
                               (False, "risk_differences", "Risk differences")):
        wanted = RATIO_MEASURES if ratios else (RISK_DIFFERENCE,)
        part = estimated[estimated["effect_measure"].isin(wanted)]
        for k, chunk in enumerate(split_by_outcome(part) if len(part) else [], start=1):
            labels = ", ".join(dict.fromkeys(chunk["label"]))
            figures.append(render_figure(
                sensitivity_measure_figure(chunk, config, ratios),
                f"supplement_sensitivity_{stem}_{k}",
                f"Figure S{first + len(figures)}. {what} of the primary and sensitivity "
                f"analyses at {month}: {labels}; the shaded band marks the MCID where it is "
                "set on that measure"))
    return figures
