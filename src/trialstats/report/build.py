"""Assemble the whole report from the trial tables and the analysis results (no file I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from trialstats.report.consort import consort_counts, flow_figure
from trialstats.report.document import Report, Section
from trialstats.report.figures import forest_data, forest_figure, sensitivity_figure
from trialstats.report.format import month_label, printable
from trialstats.report.methods import (
    REFERENCES,
    methods_paragraphs,
    provenance_table,
    reference_keys,
)
from trialstats.report.planning import check_power, planning_references, planning_section
from trialstats.report.render import render_figure
from trialstats.report.tables import (
    baseline_summary,
    baseline_table,
    check_results,
    outcome_summary,
    outcome_table,
    sensitivity_summary,
    sensitivity_table,
)


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


def build_report(
    practices: pd.DataFrame, patients: pd.DataFrame, config: dict[str, Any],
    results: pd.DataFrame, sensitivity: pd.DataFrame | None, provenance: Provenance,
    power: pd.DataFrame | None = None,
) -> tuple[Report, pd.DataFrame]:
    """Build every table and figure of the report.

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

    Returns
    -------
    Report
        The report, ready for every renderer.
    DataFrame
        The CONSORT counts (:func:`trialstats.report.consort.consort_counts`).

    Raises
    ------
    TrialstatsError
        When a results table lacks a column or does not match the data.
    """
    check_results(results, "primary.csv")
    if sensitivity is not None:
        check_results(sensitivity, "sensitivity.csv", ("analysis",))
    if power is not None:
        check_power(power, "power.csv")
    # a control character in a label or a cell would break Word and SVG output
    practices, patients, config, results, sensitivity, power = (printable(v) for v in (
        practices, patients, config, results, sensitivity, power))
    design = config["design"]
    counts = consort_counts(practices, patients, results, config)
    primary_month = month_label(design["primary_month"], -1)
    flow = render_figure(
        flow_figure(counts, config), "consort",
        "Figure 1. Flow of practices and patients through the trial (CONSORT 2010, "
        "extension to cluster randomised trials)",
    )
    table1 = baseline_table(baseline_summary(practices, patients, config), config)
    table2 = outcome_table(outcome_summary(patients, config), results, config)
    forest = render_figure(
        forest_figure(forest_data(results, config), config), "forest",
        f"Figure 2. Standardised effects at {primary_month} with confidence intervals; the "
        "shaded band runs from −MCID to +MCID for each outcome",
    )
    results_items: list = [table2, forest]
    tables, figures = 2, 2
    if sensitivity is not None and len(sensitivity):
        tables, figures = 3, 3
        summary = sensitivity_summary(results, sensitivity, config)
        results_items += [
            sensitivity_table(summary, config),
            render_figure(
                sensitivity_figure(summary, config), "sensitivity",
                "Figure 3. Standardised effects of the primary and sensitivity analyses; the "
                "shaded band runs from −MCID to +MCID",
            ),
        ]
    methods = methods_paragraphs(config, counts, results, sensitivity, provenance.versions)
    sections = [
        Section("Statistical methods", tuple(methods)),
        Section("Participant flow", (flow,)),
        Section("Baseline characteristics", (table1,)),
        Section("Outcomes", tuple(results_items)),
    ]
    cited = reference_keys(config, planning_references(power) if power is not None else ())
    if power is not None:
        cite = {key: i for i, key in enumerate(cited, start=1)}
        sections.append(planning_section(power, cite, table=tables + 1, figure=figures + 1))
    sections += [
        Section("References", tuple(REFERENCES[k] for k in cited)),
        Section("Provenance", (provenance_table(provenance.files, provenance.versions,
                                                provenance.commit),)),
    ]
    randomised = counts[counts["stage"] == "randomised"].iloc[0]
    outcomes = [o["label"] for o in config["outcomes"] if o["primary"]]
    subtitle = (
        f"Cluster randomised trial: {int(randomised['clusters'])} practices, "
        f"{int(randomised['patients']):,} patients; primary outcome"
        f"{'s' if len(outcomes) != 1 else ''} {', '.join(outcomes) or 'none'} at {primary_month}."
    )
    return Report("Trial report", subtitle, tuple(sections)), counts
